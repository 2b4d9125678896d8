//! The downstream encoder (`Encoder`: patch embedding, blocks, pooling, classification head) on
//! the host-compiled CUDA kernels: fine-tuning steps in bf16 with the bf16 weight copy and bf16
//! operand storage give bit for bit the losses and gradients of the same backend keeping every
//! operand in f32 (rounded by its GEMMs) here, where the GEMM sums in one order (on a GPU, whose
//! GEMMs may pick other kernels for the two, within bf16 tolerance; unverified), and stay
//! within bf16's reach of the CPU's bf16 emulation; a frozen encoder rounds its weight copy
//! once, not every batch.

use ecgfm_cuda_host::{host_backend, queued, HostBackend};
use ecgfm_kernels::{Backend, CpuBackend, Precision};
use ecgfm_trainer::data::{BatchSource, SyntheticSource};
use ecgfm_trainer::model::{Encoder, HeadSpec, Pooling, Targets};
use ecgfm_trainer::{AdamWConfig, HostBatch, MaskSampler, ModelConfig};

const BATCH: usize = 3;
const STEPS: u64 = 3;
const CLASSES: usize = 5;

/// The losses of STEPS fine-tuning steps and the gradients of the last, for each head.
fn fine_tune<B: Backend>(make: impl Fn() -> B) -> Vec<(Vec<f32>, Vec<f32>)> {
    let mut cfg = ModelConfig::preset("nano").unwrap();
    cfg.samples = 750;
    let mut source = SyntheticSource::new(&cfg, 5, 0.5);
    let mut batch = HostBatch::new(&cfg, BATCH);
    let labels: Vec<u32> = (0..BATCH as u32).map(|i| i % CLASSES as u32).collect();
    let multi: Vec<f32> = (0..BATCH * CLASSES).map(|i| (i % 2) as f32).collect();
    let heads = [(Pooling::Mean, false), (Pooling::Leads, true)];
    heads
        .into_iter()
        .map(|(pooling, multi_label)| {
            let head = HeadSpec {
                pooling,
                classes: CLASSES,
                multi_label,
            };
            let mut encoder = Encoder::new(make(), cfg.clone(), head, BATCH).unwrap();
            encoder.init_params(3);
            let targets = match multi_label {
                true => Targets::MultiLabel(&multi),
                false => Targets::Classes(&labels),
            };
            let mut losses = Vec::new();
            for step in 0..STEPS {
                source.next_batch(&mut batch).unwrap();
                MaskSampler::new(&cfg).fill(5, step, 0, &mut batch);
                encoder.zero_grads();
                let loss = encoder
                    .forward_backward(&batch.x, &batch.lead_mask, BATCH, targets, 1.0)
                    .unwrap();
                losses.push(loss);
                if step + 1 < STEPS {
                    encoder.optimizer_step(&AdamWConfig::default(), 1e-3, Some(1.0), &[]);
                }
            }
            (losses, encoder.grads_to_host())
        })
        .collect()
}

fn bf16() -> HostBackend {
    host_backend().with_precision(Precision::Bf16)
}

#[test]
fn bf16_encoder_with_its_weight_copy_is_bitwise_the_f32_operand_storage() {
    let (stored, kept) = (fine_tune(bf16), fine_tune(|| bf16().with_f32_operands()));
    for (head, ((s_losses, s_grads), (k_losses, k_grads))) in stored.iter().zip(&kept).enumerate() {
        assert_eq!(s_losses, k_losses, "head {head}");
        assert!(s_grads == k_grads, "head {head}: gradients differ");
    }
    let cpu = fine_tune(|| CpuBackend::with_precision(Precision::Bf16));
    for (head, ((losses, _), (cpu_losses, _))) in stored.iter().zip(&cpu).enumerate() {
        println!("head {head}: losses {losses:?} on the kernels, {cpu_losses:?} on the bf16 CPU");
        for (h, c) in losses.iter().zip(cpu_losses) {
            assert!(
                (h - c).abs() <= 1e-3 * (1.0 + c.abs()),
                "head {head}: {h} vs {c}"
            );
        }
    }
}

/// Evaluation batches on a frozen bf16 encoder: the first rounds the weights into the bf16 copy,
/// the next ones do not (one kernel fewer), until the weights change again.
#[test]
fn a_frozen_encoder_rounds_its_weight_copy_once() {
    let mut cfg = ModelConfig::preset("nano").unwrap();
    cfg.samples = 750;
    let mut batch = HostBatch::new(&cfg, BATCH);
    SyntheticSource::new(&cfg, 5, 0.5)
        .next_batch(&mut batch)
        .unwrap();
    let head = HeadSpec {
        pooling: Pooling::Mean,
        classes: CLASSES,
        multi_label: false,
    };
    let mut encoder = Encoder::forward_only(bf16(), cfg, head, BATCH).unwrap();
    encoder.init_params(3);
    let mut kernels_of_a_batch = || {
        let before = queued().kernels;
        encoder.embed(&batch.x, &batch.lead_mask, BATCH).unwrap();
        queued().kernels - before
    };
    let (first, second, third) = (
        kernels_of_a_batch(),
        kernels_of_a_batch(),
        kernels_of_a_batch(),
    );
    assert_eq!((first, third), (second + 1, second));
    let params = encoder.params_to_host();
    encoder.load_params(&params).unwrap();
    let before = queued().kernels;
    encoder.embed(&batch.x, &batch.lead_mask, BATCH).unwrap();
    assert_eq!(queued().kernels - before, first);
}
