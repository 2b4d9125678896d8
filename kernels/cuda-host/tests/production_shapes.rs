//! The CUDA backend's launch code at the shapes users train (tiny, base, large and huge at batch
//! 256, bf16 and fp32, with and without recomputation), on `ShapeDevice`: no kernel runs, but
//! every launch and GEMM of a training step (forward, backward, AdamW) must be one a GPU accepts
//! (grid, block and shared-memory limits, argument kinds, pointers and matrices inside their
//! allocations, no int argument overflowed). The host harness runs the kernels themselves only
//! at small shapes; this covers the sizes that could overflow a grid or an int.

use ecgfm_cuda_host::ShapeDevice;
use ecgfm_kernels::cuda::KernelBackend;
use ecgfm_kernels::Precision;
use ecgfm_trainer::data::{BatchSource, SyntheticSource};
use ecgfm_trainer::model::Recompute;
use ecgfm_trainer::{AdamWConfig, HostBatch, Mae, MaskSampler, ModelConfig};

const BATCH: usize = 256;

/// One training step of `preset` at batch 256, the model built with `recompute`: the device's
/// peak bytes in use and the launches and GEMMs it checked.
fn step(
    preset: &str,
    precision: Precision,
    recompute: Recompute,
    batch: &HostBatch,
) -> (u64, usize) {
    let cfg = ModelConfig::preset(preset).unwrap();
    let backend = KernelBackend::with_device(ShapeDevice::new()).with_precision(precision);
    let mut model = Mae::with_recompute(backend, cfg, BATCH, recompute).unwrap();
    model.zero_grads();
    model.forward_backward(batch, 1.0).unwrap();
    model.optimizer_step(&AdamWConfig::default(), 1e-4, Some(1.0));
    let device = model.backend().device();
    (device.peak_bytes(), device.checked())
}

/// Also: recomputation lowers the peak of device memory (the model never holds the activation
/// sets it does not keep, not even while it is built), and bf16 storage lowers it further.
#[test]
fn every_launch_of_a_batch_256_step_is_within_gpu_limits() {
    let cfg = ModelConfig::preset("base").unwrap();
    let mut batch = HostBatch::new(&cfg, BATCH);
    // Every sample with all 12 leads: the most tokens a batch of 256 holds.
    SyntheticSource::new(&cfg, 7, 0.0)
        .next_batch(&mut batch)
        .unwrap();
    MaskSampler::new(&cfg).fill(7, 0, 0, &mut batch);
    let gib = |bytes: u64| bytes as f64 / (1u64 << 30) as f64;
    for preset in ["tiny", "base", "large", "huge"] {
        let mut peaks = Vec::new();
        for precision in [Precision::Fp32, Precision::Bf16] {
            for recompute in [Recompute::None, Recompute::Pointwise, Recompute::Blocks] {
                let (peak, checked) = step(preset, precision, recompute, &batch);
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

/// The GEMMs on bf16 operands at production shapes: every pointer and leading dimension 16-byte
/// aligned (what tensor-core kernels and cuBLASLt's epilogue kernels load by), except where a
/// dimension is the patch length (75 samples: the patch embedding and the final projection),
/// which no layout can align. Printed, to compare with the shapes cuBLASLt refuses on a GPU.
#[test]
fn bf16_gemms_are_16_byte_aligned_but_at_the_patch_length() {
    let cfg = ModelConfig::preset("base").unwrap();
    let mut batch = HostBatch::new(&cfg, BATCH);
    SyntheticSource::new(&cfg, 7, 0.0)
        .next_batch(&mut batch)
        .unwrap();
    MaskSampler::new(&cfg).fill(7, 0, 0, &mut batch);
    let backend = KernelBackend::with_device(ShapeDevice::new()).with_precision(Precision::Bf16);
    let mut model = Mae::new(backend, cfg.clone(), BATCH).unwrap();
    model.zero_grads();
    model.forward_backward(&batch, 1.0).unwrap();
    let gemms = model.backend().device().bf16_gemms();
    assert!(gemms.iter().any(|(g, _)| g.epilogue), "{gemms:?}");
    for (g, times) in &gemms {
        println!("base bf16 GEMM {g:?} x{times}");
        let (m, n, k) = g.mnk;
        let at_patch = [m, n, k].contains(&cfg.patch);
        assert!(g.align >= 16 || at_patch, "{g:?}");
    }
}
