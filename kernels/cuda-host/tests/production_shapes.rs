//! The CUDA backend's launch code at the shapes users train (tiny, base, large and huge at batch
//! 256, bf16 and fp32, with and without recomputation), on `ShapeDevice`: no kernel runs, but
//! every launch and GEMM of a training step (forward, backward, AdamW) must be one a GPU accepts
//! (grid, block and shared-memory limits, argument kinds, pointers and matrices inside their
//! allocations, no int argument overflowed). The host harness runs the kernels themselves only
//! at small shapes; this covers the sizes that could overflow a grid or an int. The device also
//! counts the bytes the model allocates: recomputation, bf16 storage and a ZeRO shard must each
//! lower the peak, from the moment the model is built.

use ecgfm_cuda_host::shape_device;
use ecgfm_kernels::cuda::KernelBackend;
use ecgfm_kernels::{gib, Precision};
use ecgfm_trainer::device_memory::{encoder_step_on, full_batch, step_on, EncoderWork};
use ecgfm_trainer::model::{HeadSpec, MaeMemory, Pooling, Recompute, Targets};
use ecgfm_trainer::{AdamWConfig, ModelConfig};

const BATCH: usize = 256;

/// What one training step of `preset` at batch 256 on a model built with `memory` took: the
/// device's peak bytes in use, the launches and GEMMs it checked, and the model's parameters.
struct Step {
    peak: u64,
    checked: usize,
    params: usize,
}

fn step(preset: &str, precision: Precision, memory: MaeMemory) -> Step {
    let cfg = ModelConfig::preset(preset).unwrap();
    let backend = KernelBackend::with_device(shape_device()).with_precision(precision);
    let model = step_on(backend, &cfg, BATCH, memory).unwrap();
    let device = model.backend().device();
    Step {
        peak: device.peak_bytes(),
        checked: device.checked(),
        params: model.layout().total,
    }
}

/// Also: recomputation lowers the peak of device memory (the model never holds the activation
/// sets it does not keep, not even while it is built), and bf16 storage lowers it further.
#[test]
fn every_launch_of_a_batch_256_step_is_within_gpu_limits() {
    for preset in ["tiny", "base", "large", "huge"] {
        let mut peaks = Vec::new();
        for precision in [Precision::Fp32, Precision::Bf16] {
            for recompute in [Recompute::None, Recompute::Pointwise, Recompute::Blocks] {
                let memory = MaeMemory {
                    recompute,
                    optimizer_shard: None,
                };
                let Step { peak, checked, .. } = step(preset, precision, memory);
                println!(
                    "{preset} batch {BATCH} {precision} recompute {recompute:?}: {checked} launches \
                     and GEMMs checked, peak {:.2} GiB",
                    gib(peak)
                );
                assert!(checked > 100, "{checked}");
                peaks.push(peak);
            }
        }
        assert!(
            peaks[0] > peaks[1] && peaks[1] > peaks[2],
            "{preset} fp32: {peaks:?}"
        );
        assert!(
            peaks[3] > peaks[4] && peaks[4] > peaks[5],
            "{preset} bf16: {peaks:?}"
        );
        assert!(peaks[3] < peaks[0], "{preset}: {peaks:?}");
    }
}

/// A ZeRO-1 optimizer shard given when the model is built: the peak holds AdamW's two moments
/// for the shard only, never for every parameter.
#[test]
fn a_zero_shard_lowers_the_peak_by_the_moments_it_leaves_out() {
    let full = step("base", Precision::Bf16, MaeMemory::default());
    let shard = 0..full.params / 8;
    let sharded = MaeMemory {
        optimizer_shard: Some(shard.clone()),
        ..MaeMemory::default()
    };
    let sharded = step("base", Precision::Bf16, sharded);
    println!(
        "base bf16 peak {} bytes, {} with an eighth of AdamW's state",
        full.peak, sharded.peak
    );
    let left_out = 2 * 4 * (full.params - shard.len()) as u64;
    assert_eq!(full.peak - sharded.peak, left_out);
}

/// The GEMMs on bf16 operands at production shapes: every pointer and leading dimension 16-byte
/// aligned (what tensor-core kernels and cuBLASLt's epilogue kernels load by), except where a
/// dimension is the patch length (75 samples: the patch embedding and the final projection),
/// which no layout can align. Printed, to compare with the shapes cuBLASLt refuses on a GPU.
#[test]
fn bf16_gemms_are_16_byte_aligned_but_at_the_patch_length() {
    let cfg = ModelConfig::preset("base").unwrap();
    let backend = KernelBackend::with_device(shape_device()).with_precision(Precision::Bf16);
    let model = step_on(backend, &cfg, BATCH, MaeMemory::default()).unwrap();
    let gemms = model.backend().device().bf16_gemms();
    assert!(gemms.iter().any(|(g, _)| g.epilogue), "{gemms:?}");
    for (g, times) in &gemms {
        println!("base bf16 GEMM {g:?} x{times}");
        let (m, n, k) = g.mnk;
        let at_patch = [m, n, k].contains(&cfg.patch);
        assert!(g.align >= 16 || at_patch, "{g:?}");
    }
}

/// gpu-check requires a run recomputing activations to be bitwise the plain run on a GPU (items 3b
/// and 4b), where cuBLAS and cuBLASLt pick a GEMM's kernel, and so its summation order, by its
/// shapes, epilogue and pointer alignments. Recomputation lays out fewer activations, so it could
/// hand the library other alignments: at the shapes gpu-check trains (nano at batch 32, tiny at
/// 4), fp32 and bf16, a step recomputing pointwise ops or whole blocks runs GEMMs of exactly the
/// kinds the plain step runs.
#[test]
fn recomputation_runs_the_gemm_kinds_of_the_plain_step() {
    let kinds = |preset: &str, batch: usize, precision: Precision, recompute: Recompute| {
        let cfg = ModelConfig::preset(preset).unwrap();
        let backend = KernelBackend::with_device(shape_device()).with_precision(precision);
        let memory = MaeMemory {
            recompute,
            optimizer_shard: None,
        };
        let model = step_on(backend, &cfg, batch, memory).unwrap();
        model.backend().device().gemm_kinds()
    };
    for (preset, batch) in [("nano", 32), ("tiny", 4)] {
        for precision in [Precision::Fp32, Precision::Bf16] {
            let plain = kinds(preset, batch, precision, Recompute::None);
            assert!(plain.len() > 5, "{preset} {precision}: {plain:?}");
            for recompute in [Recompute::Pointwise, Recompute::Blocks] {
                let other = kinds(preset, batch, precision, recompute);
                let only_plain: Vec<_> = plain.difference(&other).collect();
                let only_other: Vec<_> = other.difference(&plain).collect();
                assert!(
                    only_plain.is_empty() && only_other.is_empty(),
                    "{preset} batch {batch} {precision} recompute {recompute:?}: GEMM kinds only \
                     in the plain step {only_plain:?}, only with recomputation {only_other:?}"
                );
            }
        }
    }
}

/// The README's text (on one line) after `marker`, where it gives a count this file checks.
fn readme_after(marker: &str) -> String {
    let readme = ecgfm_test_support::markdown::one_line(include_str!("../../../README.md"));
    let (_, after) = readme
        .split_once(marker)
        .unwrap_or_else(|| panic!("the README's count after {marker:?}"));
    after.to_string()
}

/// The kernel counts the README gives for one tiny training step ("Kernels one tiny step queues
/// besides its N GEMMs ...: bf16 K, bf16 without GEMM epilogues K, bf16 with operands in f32 K,
/// fp32 K") are the launch code's: a step's forward, backward and AdamW (the model built and
/// one step run before it) on ShapeDevice, which counts what the host harness queues.
#[test]
fn one_tiny_step_queues_the_kernels_the_readme_counts() {
    let counted = readme_after("Kernels one tiny step queues besides its ");
    let (counted, _) = counted
        .split_once("before the weight copy")
        .expect("its end");
    let number_after = |label: &str| {
        let (_, rest) = counted.split_once(label).expect(label);
        ecgfm_test_support::markdown::leading_number(rest) as usize
    };
    let cfg = ModelConfig::preset("tiny").unwrap();
    let bf16 = || KernelBackend::with_device(shape_device()).with_precision(Precision::Bf16);
    let variants = [
        ("bf16 ", bf16()),
        (
            "bf16 without GEMM epilogues ",
            bf16().without_gemm_epilogues(),
        ),
        ("bf16 with operands in f32 ", bf16().with_f32_operands()),
        (
            "fp32 ",
            KernelBackend::with_device(shape_device()).with_precision(Precision::Fp32),
        ),
    ];
    let batch = full_batch(&cfg, 8).unwrap();
    for (label, backend) in variants {
        let mut model = step_on(backend, &cfg, 8, MaeMemory::default()).unwrap();
        let device = model.backend().device();
        let (checked, gemms) = (device.checked(), device.gemms());
        model.forward_backward(&batch, 1.0).unwrap();
        model.optimizer_step(&AdamWConfig::default(), 1e-4, Some(1.0));
        let device = model.backend().device();
        let step_gemms = device.gemms() - gemms;
        let kernels = device.checked() - checked - step_gemms;
        let name = label.trim();
        println!("tiny, {name}: {kernels} kernels and {step_gemms} GEMMs a step");
        assert_eq!(step_gemms, number_after(""), "{name}: GEMMs");
        assert_eq!(kernels, number_after(label), "{name}: kernels");
    }
}

/// The downstream side at the same sizes: the encoder with a classification head (every patch
/// of every lead: 92,160 tokens at batch 256), single-label and multi-label, mean and per-lead
/// pooling, bf16 and fp32; its forward pass alone (probes, `ecgfm embed`: the forward-only
/// encoder) and a fine-tuning step with every block recomputed (`eval --recompute blocks`, under
/// half the memory) and without.
#[test]
fn every_launch_of_a_batch_256_fine_tuning_step_is_within_gpu_limits() {
    for preset in ["base", "huge"] {
        let cfg = ModelConfig::preset(preset).unwrap();
        for precision in [Precision::Fp32, Precision::Bf16] {
            for (pooling, multi_label) in [(Pooling::Mean, false), (Pooling::Leads, true)] {
                let head = HeadSpec {
                    pooling,
                    classes: 71,
                    multi_label,
                };
                let mut peaks = Vec::new();
                let works = [
                    EncoderWork::Forward,
                    EncoderWork::Finetune(Recompute::Blocks),
                    EncoderWork::Finetune(Recompute::None),
                ];
                for work in works {
                    let backend =
                        KernelBackend::with_device(shape_device()).with_precision(precision);
                    let encoder = encoder_step_on(backend, &cfg, head, BATCH, work).unwrap();
                    let device = encoder.backend().device();
                    let (checked, peak) = (device.checked(), device.peak_bytes());
                    println!(
                        "{preset} {work:?} {precision} {pooling:?}: {checked} launches and GEMMs \
                         checked, peak {:.2} GiB",
                        gib(peak)
                    );
                    assert!(checked > 50, "{checked}");
                    peaks.push(peak);
                }
                assert!(peaks[0] < peaks[1] && 2 * peaks[1] < peaks[2], "{peaks:?}");
            }
        }
    }
}

/// The README's count for the downstream encoder ("a base fine-tuning step at batch 256 queues
/// N kernels and GEMMs in bf16 instead of M (fp32: F)"): a fine-tuning step's forward, backward
/// and AdamW, the encoder built and one step run before it, on ShapeDevice. (M is the count
/// before the bf16 weight copy, which no code path gives any more.)
#[test]
fn a_base_fine_tuning_step_queues_the_launches_the_readme_counts() {
    let counted = readme_after("a base fine-tuning step at batch 256 queues ");
    let bf16_count = ecgfm_test_support::markdown::leading_number(&counted) as usize;
    let (_, fp32) = counted.split_once("(fp32: ").expect("the fp32 count");
    let fp32_count = ecgfm_test_support::markdown::leading_number(fp32) as usize;
    let cfg = ModelConfig::preset("base").unwrap();
    let head = HeadSpec {
        pooling: Pooling::Mean,
        classes: 5,
        multi_label: false,
    };
    let host = full_batch(&cfg, BATCH).unwrap();
    let classes: Vec<u32> = (0..BATCH).map(|i| (i % head.classes) as u32).collect();
    for (precision, count) in [(Precision::Bf16, bf16_count), (Precision::Fp32, fp32_count)] {
        let backend = KernelBackend::with_device(shape_device()).with_precision(precision);
        let work = EncoderWork::Finetune(Recompute::None);
        let mut encoder = encoder_step_on(backend, &cfg, head, BATCH, work).unwrap();
        encoder.zero_grads();
        let before = encoder.backend().device().checked();
        let targets = Targets::Classes(&classes);
        encoder
            .forward_backward(&host.x, &host.lead_mask, BATCH, targets, 1.0)
            .unwrap();
        encoder.optimizer_step(&AdamWConfig::default(), 1e-4, Some(1.0), &[]);
        let launched = encoder.backend().device().checked() - before;
        println!("base fine-tuning, {precision}: {launched} kernels and GEMMs a step");
        assert_eq!(launched, count, "{precision}");
    }
}
