//! The GPU memory a training step takes, known before a GPU is touched: the model is built on
//! `ShapeDevice` (the CUDA backend's launch code over a device that runs nothing and counts
//! every allocation) and driven through one step of a batch with every lead present, the most
//! tokens a batch holds. The count is the model's own buffers (parameters, gradients, AdamW
//! state, the bf16 weight copy, activations, workspaces); the CUDA context, cuBLAS's
//! workspaces and data-parallel buckets come on top. The same for the downstream encoder
//! ([`encoder_bytes`]): a fine-tuning step, or the forward pass alone that probes and
//! `ecgfm embed` run.

use ecgfm_kernels::cuda::{KernelBackend, ShapeDevice};
use ecgfm_kernels::{Backend, Precision};

use crate::data::{BatchSource, SyntheticSource};
use crate::model::{Encoder, HeadSpec, Mae, MaeMemory, Recompute, Targets};
use crate::{AdamWConfig, HostBatch, MaskSampler, ModelConfig, ModelError};

/// The CUDA backend's launch code in `precision` over a device that only counts.
fn counting_backend(precision: Precision) -> KernelBackend<ShapeDevice> {
    KernelBackend::with_device(ShapeDevice::new()).with_precision(precision)
}

/// Peak bytes of device memory a training step of `cfg` at micro-batch `batch` allocates in
/// `precision` on the CUDA backend, the model built with `memory`.
pub fn step_bytes(
    cfg: &ModelConfig,
    batch: usize,
    precision: Precision,
    memory: MaeMemory,
) -> Result<u64, ModelError> {
    let model = step_on(counting_backend(precision), cfg, batch, memory)?;
    Ok(model.backend().device().peak_bytes())
}

/// A model of `cfg` built on `backend` with `memory`, after one training step (forward,
/// backward, AdamW) on a [`full_batch`] of `batch` samples.
pub fn step_on<B: Backend>(
    backend: B,
    cfg: &ModelConfig,
    batch: usize,
    memory: MaeMemory,
) -> Result<Mae<B>, ModelError> {
    let mut model = Mae::with_memory(backend, cfg.clone(), batch, memory)?;
    model.zero_grads();
    model.forward_backward(&full_batch(cfg, batch)?, 1.0)?;
    model.optimizer_step(&AdamWConfig::default(), 1e-4, Some(1.0));
    Ok(model)
}

/// Host bytes of a [`full_batch`] of `batch` samples (what [`step_bytes`] allocates to count a
/// step, before counting anything): signals in f32, lead and patch masks in bytes; saturating,
/// so a caller can refuse a batch too large to hold before it is allocated.
pub fn full_batch_bytes(cfg: &ModelConfig, batch: usize) -> u64 {
    let per_sample = (cfg.leads * (4 * cfg.samples + 1 + cfg.patches_per_lead())) as u64;
    per_sample.saturating_mul(batch as u64)
}

/// A masked synthetic batch of `batch` samples, every one with all its leads: the most tokens
/// such a batch holds.
pub fn full_batch(cfg: &ModelConfig, batch: usize) -> Result<HostBatch, ModelError> {
    let mut host = HostBatch::new(cfg, batch);
    SyntheticSource::new(cfg, 0, 0.0)
        .next_batch(&mut host)
        .map_err(|e| ModelError::InvalidBatch(format!("synthetic batch: {e}")))?;
    MaskSampler::new(cfg).fill(0, 0, 0, &mut host);
    Ok(host)
}

/// What the downstream encoder is asked to do on a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncoderWork {
    /// The forward pass to the pooled features and logits (probes, scoring, `ecgfm embed`).
    Forward,
    /// Forward, backward and AdamW (fine-tuning, training from scratch), keeping the
    /// activations the recomputation mode keeps.
    Finetune(Recompute),
}

/// Peak bytes of device memory the encoder of `cfg` with `head`, built for batches of `batch`,
/// allocates doing `work` on a full batch in `precision` on the CUDA backend.
pub fn encoder_bytes(
    cfg: &ModelConfig,
    head: HeadSpec,
    batch: usize,
    precision: Precision,
    work: EncoderWork,
) -> Result<u64, ModelError> {
    let encoder = encoder_step_on(counting_backend(precision), cfg, head, batch, work)?;
    Ok(encoder.backend().device().peak_bytes())
}

/// An encoder of `cfg` with `head` built on `backend` for batches of `batch` (forward-only for
/// [`EncoderWork::Forward`]), after `work` on a [`full_batch`] (targets: sample i of class
/// i mod K, or every third (sample, class) positive).
pub fn encoder_step_on<B: Backend>(
    backend: B,
    cfg: &ModelConfig,
    head: HeadSpec,
    batch: usize,
    work: EncoderWork,
) -> Result<Encoder<B>, ModelError> {
    let host = full_batch(cfg, batch)?;
    let cfg = cfg.clone();
    match work {
        EncoderWork::Forward => {
            let mut encoder = Encoder::forward_only(backend, cfg, head, batch)?;
            encoder.logits(&host.x, &host.lead_mask, batch)?;
            Ok(encoder)
        }
        EncoderWork::Finetune(mode) => {
            let mut encoder = Encoder::with_recompute(backend, cfg, head, batch, mode)?;
            let k = head.classes;
            let classes: Vec<u32> = (0..batch).map(|i| (i % k) as u32).collect();
            let multi: Vec<f32> = (0..batch * k).map(|i| (i % 3 == 0) as u8 as f32).collect();
            let targets = match head.multi_label {
                true => Targets::MultiLabel(&multi),
                false => Targets::Classes(&classes),
            };
            encoder.zero_grads();
            encoder.forward_backward(&host.x, &host.lead_mask, batch, targets, 1.0)?;
            encoder.optimizer_step(&AdamWConfig::default(), 1e-4, Some(1.0), &[]);
            Ok(encoder)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(batch: usize, precision: Precision, recompute: Recompute) -> u64 {
        let cfg = ModelConfig::preset("base").unwrap();
        let memory = MaeMemory {
            recompute,
            optimizer_shard: None,
        };
        step_bytes(&cfg, batch, precision, memory).unwrap()
    }

    /// `full_batch_bytes` is the host memory of the batch `full_batch` builds: f32 signals
    /// (4 bytes a sample point), a byte per lead and per patch of the masks; it saturates.
    #[test]
    fn full_batch_bytes_are_the_bytes_of_the_full_batch() {
        let cfg = ModelConfig::preset("nano").unwrap();
        for batch in [1, 3] {
            let host = full_batch(&cfg, batch).unwrap();
            let bytes = 4 * host.x.len() + host.lead_mask.len() + host.patch_mask.len();
            assert_eq!(full_batch_bytes(&cfg, batch), bytes as u64, "batch {batch}");
        }
        assert_eq!(full_batch_bytes(&cfg, usize::MAX), u64::MAX);
    }

    #[test]
    fn memory_grows_with_the_batch_and_shrinks_with_bf16_and_recomputation() {
        let full = base(64, Precision::Bf16, Recompute::None);
        assert!(base(128, Precision::Bf16, Recompute::None) > full);
        assert!(base(64, Precision::Fp32, Recompute::None) > full);
        assert!(base(64, Precision::Bf16, Recompute::Blocks) < full);
        // More than the parameters, gradients and AdamW moments alone (4 f32 copies).
        let params = crate::ParamLayout::new(&ModelConfig::preset("base").unwrap()).total;
        assert!(full > 16 * params as u64, "{full}");
    }

    #[test]
    fn the_forward_pass_alone_takes_less_than_a_fine_tuning_step() {
        let cfg = ModelConfig::preset("base").unwrap();
        let head = HeadSpec {
            pooling: crate::model::Pooling::Mean,
            classes: 5,
            multi_label: false,
        };
        let bytes = |batch, precision, work| encoder_bytes(&cfg, head, batch, precision, work);
        let forward = bytes(64, Precision::Bf16, EncoderWork::Forward).unwrap();
        let finetune = bytes(64, Precision::Bf16, EncoderWork::Finetune(Recompute::None)).unwrap();
        let blocks = bytes(
            64,
            Precision::Bf16,
            EncoderWork::Finetune(Recompute::Blocks),
        )
        .unwrap();
        assert!(forward < blocks && blocks < finetune, "{blocks} {finetune}");
        // No gradients, moments or saved activations: a fraction of the fine-tuning step.
        assert!(4 * forward < finetune, "{forward} {finetune}");
        assert!(bytes(128, Precision::Bf16, EncoderWork::Forward).unwrap() > forward);
        let fp32 = bytes(64, Precision::Fp32, EncoderWork::Finetune(Recompute::None));
        assert!(fp32.unwrap() > finetune);
        // Parameters, gradients, two moments: at least 16 bytes per parameter.
        let params = crate::ParamLayout::encoder_with_head(&cfg, cfg.dim, 5).total as u64;
        assert!(forward > 16 * params, "{forward}");
    }
}
