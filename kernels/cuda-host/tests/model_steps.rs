//! The whole model on the host-compiled CUDA kernels against the CPU backend: every gradient
//! tensor of a forward/backward pass of nano (shortened input, single-lead samples beside 12-lead
//! ones, so sequences of very different lengths share a batch), and the losses of a few AdamW
//! steps, in fp32 and in bf16. The kernels work together: views, workspaces, every op in
//! sequence.
//! (Weights are not compared: AdamW's first steps move a weight by about lr whatever the size of
//! its gradient, so rounding-level gradient differences of near-zero entries show up at lr.)

use ecgfm_cuda_host::{host_backend, queued, HostBackend, Queued};
use ecgfm_kernels::{Backend, CpuBackend, Precision};
use ecgfm_trainer::data::{BatchSource, SyntheticSource};
use ecgfm_trainer::model::Recompute;
use ecgfm_trainer::{AdamWConfig, HostBatch, Mae, MaskSampler, ModelConfig};

const BATCH: usize = 2;
const STEPS: u64 = 3;

/// The gradients of the first step, and the losses of STEPS steps.
fn train<B: Backend>(backend: B, cfg: &ModelConfig) -> (Vec<f32>, Vec<f32>) {
    train_recomputing(backend, cfg, Recompute::None)
}

/// `train` with activation recomputation `mode`.
fn train_recomputing<B: Backend>(
    backend: B,
    cfg: &ModelConfig,
    mode: Recompute,
) -> (Vec<f32>, Vec<f32>) {
    let mut model = Mae::new(backend, cfg.clone(), BATCH).unwrap();
    model.set_recompute(mode);
    model.init_params(7);
    let mut source = SyntheticSource::new(cfg, 7, 0.5);
    let sampler = MaskSampler::new(cfg);
    let mut batch = HostBatch::new(cfg, BATCH);
    let (mut grads, mut losses) = (Vec::new(), Vec::new());
    for step in 0..STEPS {
        source.next_batch(&mut batch).unwrap();
        sampler.fill(7, step, 0, &mut batch);
        model.zero_grads();
        model.forward_backward(&batch, 1.0).unwrap();
        if step == 0 {
            grads = model.grads_to_host();
        }
        model.optimizer_step(&AdamWConfig::default(), 1e-3, Some(1.0));
        losses.push(model.loss_sum());
    }
    (grads, losses)
}

/// The largest gradient error of any tensor, relative to that tensor's largest gradient.
fn worst_gradient_gap(cfg: &ModelConfig, got: &[f32], want: &[f32]) -> (f32, String) {
    let layout = Mae::new(CpuBackend::new(), cfg.clone(), BATCH)
        .unwrap()
        .layout()
        .clone();
    let mut worst = (0f32, String::new());
    for e in &layout.entries {
        let (g, w) = (&got[e.offset..e.end()], &want[e.offset..e.end()]);
        let scale = w.iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(scale > 0.0, "{}: zero gradient", e.name);
        let err = g.iter().zip(w).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        if err / scale > worst.0 {
            worst = (err / scale, e.name.clone());
        }
    }
    worst
}

#[test]
fn nano_on_the_cuda_kernels_matches_the_cpu() {
    let mut cfg = ModelConfig::preset("nano").unwrap();
    cfg.samples = 750;
    let (host_grads, host_losses) = train(host_backend(), &cfg);
    let (cpu_grads, cpu_losses) = train(CpuBackend::new(), &cfg);
    let (gap, name) = worst_gradient_gap(&cfg, &host_grads, &cpu_grads);
    assert!(
        gap <= 1e-5,
        "{name}: gradient error {gap:.2e} of its largest"
    );
    println!("losses: host kernels {host_losses:?}, CPU {cpu_losses:?}");
    for (h, c) in host_losses.iter().zip(&cpu_losses) {
        assert!((h - c).abs() <= 1e-5 * c.abs(), "loss {h} vs {c}");
    }
}

/// The relative L2 distance ||got - want|| / ||want|| of each gradient tensor, by name.
fn gradient_distances(cfg: &ModelConfig, got: &[f32], want: &[f32]) -> Vec<(String, f64)> {
    let layout = Mae::new(CpuBackend::new(), cfg.clone(), BATCH)
        .unwrap()
        .layout()
        .clone();
    let distance = |g: &[f32], w: &[f32]| {
        let diff: f64 = g.iter().zip(w).map(|(a, b)| f64::from(a - b).powi(2)).sum();
        let norm: f64 = w.iter().map(|b| f64::from(*b).powi(2)).sum();
        (diff / norm).sqrt()
    };
    let range = |e: &ecgfm_trainer::ParamEntry| e.offset..e.end();
    layout
        .entries
        .iter()
        .map(|e| (e.name.clone(), distance(&got[range(e)], &want[range(e)])))
        .collect()
}

/// The bf16 model end to end: tensor-core attention (through the MMA's host twin) and GEMMs with
/// rounded operands, against the CPU's bf16 emulation. Both round the same operands, but sum in
/// other orders (and round attention's P in another place), so a rounding can flip either way:
/// the gradients differ at bf16's level (measured 0.04% to 0.43% relative L2 per tensor), yet
/// every tensor is closer to the bf16 CPU than to fp32 (0.27% to 0.95%), and the losses agree
/// within 5.4e-5 (fp32 is 3.3e-4 away).
#[test]
fn nano_in_bf16_on_the_cuda_kernels_matches_the_bf16_cpu() {
    let mut cfg = ModelConfig::preset("nano").unwrap();
    cfg.samples = 750;
    let bf16 = Precision::Bf16;
    let (host_grads, host_losses) = train(host_backend().with_precision(bf16), &cfg);
    let (cpu_grads, cpu_losses) = train(CpuBackend::with_precision(bf16), &cfg);
    let (fp32_grads, fp32_losses) = train(CpuBackend::new(), &cfg);
    let to_bf16 = gradient_distances(&cfg, &host_grads, &cpu_grads);
    let to_fp32 = gradient_distances(&cfg, &host_grads, &fp32_grads);
    for ((name, d), (_, f)) in to_bf16.iter().zip(&to_fp32) {
        assert!(*d <= 1e-2, "{name}: {d:.2e} from the bf16 CPU");
        assert!(
            d < f,
            "{name}: {d:.2e} from the bf16 CPU, {f:.2e} from fp32"
        );
    }
    println!("losses: host kernels {host_losses:?}, bf16 CPU {cpu_losses:?}, fp32 {fp32_losses:?}");
    for ((h, c), f) in host_losses.iter().zip(&cpu_losses).zip(&fp32_losses) {
        assert!((h - c).abs() <= 2e-4 * c.abs(), "loss {h} vs bf16 CPU {c}");
        assert_ne!(h, f, "bf16 gave the fp32 loss bit for bit");
    }
}

/// A bf16 backend stores the LayerNorm and GELU outputs (the GEMMs' saved inputs) in bf16
/// (`Backend::alloc_operand`), and its GEMMs then multiply two bf16 matrices: on the host
/// harness, whose GEMM (and epilogue twin) sums in one order, bit for bit the same gradients and
/// losses as keeping them in f32 and rounding them in the GEMM, for less activation memory, with
/// or without activation recomputation. On a GPU the GEMMs of the two storages (and cuBLASLt's
/// epilogue against cuBLAS and a bias pass) may pick different kernels, so there they agree
/// within bf16 tolerance only; scripts/gpu-check.sh item 3c runs the comparison on `CudaBackend`
/// and reports whether it is bitwise.
#[test]
fn bf16_operand_storage_is_bitwise_the_f32_storage() {
    let mut cfg = ModelConfig::preset("nano").unwrap();
    cfg.samples = 750;
    let stored = || host_backend().with_precision(Precision::Bf16);
    let kept = || stored().with_f32_operands();
    assert_eq!((stored().operand_bytes(), kept().operand_bytes()), (2, 4));
    let bytes = |be| Mae::new(be, cfg.clone(), BATCH).unwrap().activation_bytes();
    let (small, large) = (bytes(stored()), bytes(kept()));
    println!("nano activations, batch {BATCH}: {small} bytes with bf16 operands, {large} in f32");
    assert!(small < large, "{small} >= {large}");
    let (kept_grads, kept_losses) = train(kept(), &cfg);
    // Recomputation reruns the same operand-writing kernels into the shared sets. On bf16
    // storage the linear layers add their bias in the GEMM's epilogue (Device::gemm_epilogue),
    // unless turned off: the same additions and roundings either way (here, where the twin
    // shares the GEMM's loop).
    let runs = [
        (Recompute::None, stored()),
        (Recompute::None, stored().without_gemm_epilogues()),
        (Recompute::Pointwise, stored()),
        (Recompute::Blocks, stored()),
    ];
    for (mode, backend) in runs {
        let epilogues = backend.gemm_epilogues();
        let (stored_grads, stored_losses) = train_recomputing(backend, &cfg, mode);
        let what = format!("{mode:?}, GEMM epilogues {epilogues}");
        assert_eq!(stored_losses, kept_losses, "{what}");
        assert!(
            stored_grads == kept_grads,
            "{what}: gradients differ: {:?}",
            worst_gradient_gap(&cfg, &stored_grads, &kept_grads)
        );
    }
}

/// What `train` (initialisation and STEPS training steps of `cfg`) queues on `backend`.
fn queued_by_training(backend: HostBackend, cfg: &ModelConfig) -> Queued {
    let before = queued();
    train(backend, cfg);
    let after = queued();
    Queued {
        kernels: after.kernels - before.kernels,
        gemms: after.gemms - before.gemms,
    }
}

/// A linear layer whose input is in bf16 storage adds its bias (and rounds qkv and fc1 into bf16)
/// in its GEMM's epilogue: nano's steps queue fewer kernels, the same GEMMs. Counted on the host
/// harness, whose launch code is CudaBackend's (on a GPU, cuBLASLt may refuse a shape: then
/// that layer keeps its bias pass).
#[test]
fn gemm_epilogues_remove_bias_passes() {
    let mut cfg = ModelConfig::preset("nano").unwrap();
    cfg.samples = 750;
    let bf16 = || host_backend().with_precision(Precision::Bf16);
    let fused = queued_by_training(bf16(), &cfg);
    let apart = queued_by_training(bf16().without_gemm_epilogues(), &cfg);
    println!("nano, {STEPS} steps in bf16: {fused:?} with GEMM epilogues, {apart:?} without");
    assert_eq!(fused.gemms, apart.gemms);
    assert!(fused.kernels < apart.kernels, "{fused:?} {apart:?}");
}
