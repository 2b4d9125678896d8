//! The GPU memory a training step takes, known before a GPU is touched: the model is built on
//! `ShapeDevice` (the CUDA backend's launch code over a device that runs nothing and counts
//! every allocation) and driven through one step of a batch with every lead present, the most
//! tokens a batch holds. The count is the model's own buffers (parameters, gradients, AdamW
//! state, the bf16 weight copy, activations, workspaces); the CUDA context, cuBLAS's
//! workspaces and data-parallel buckets come on top.

use ecgfm_kernels::cuda::{KernelBackend, ShapeDevice};
use ecgfm_kernels::{Backend, Precision};

use crate::data::{BatchSource, SyntheticSource};
use crate::model::{Mae, MaeMemory};
use crate::{AdamWConfig, HostBatch, MaskSampler, ModelConfig, ModelError};

/// Peak bytes of device memory a training step of `cfg` at micro-batch `batch` allocates in
/// `precision` on the CUDA backend, the model built with `memory`.
pub fn step_bytes(
    cfg: &ModelConfig,
    batch: usize,
    precision: Precision,
    memory: MaeMemory,
) -> Result<u64, ModelError> {
    let backend = KernelBackend::with_device(ShapeDevice::new()).with_precision(precision);
    let model = step_on(backend, cfg, batch, memory)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Recompute;

    fn base(batch: usize, precision: Precision, recompute: Recompute) -> u64 {
        let cfg = ModelConfig::preset("base").unwrap();
        let memory = MaeMemory {
            recompute,
            optimizer_shard: None,
        };
        step_bytes(&cfg, batch, precision, memory).unwrap()
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
}
