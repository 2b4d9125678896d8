//! Before a CPU run builds its model: the memory its training step takes (counted as the GPU
//! check counts it, `ecgfm_trainer::device_memory::step_bytes`: parameters, gradients, optimizer
//! state, activations) against what this process may still take (`held_windows`: the kernel's
//! available memory under any cgroup limit). A batch that cannot fit stops here naming the flag,
//! instead of the allocation aborting the process halfway through building the model.

use anyhow::{bail, Result};
use ecgfm_kernels::{gib, Precision};
use ecgfm_trainer::device_memory::{full_batch_bytes, step_bytes};
use ecgfm_trainer::model::MaeMemory;
use ecgfm_trainer::ModelConfig;

/// Refuses a training step of `model` at micro-batch `batch` that needs more memory than the
/// process has left; says nothing where the available memory is unknown.
pub fn check(
    model: &ModelConfig,
    batch: usize,
    precision: Precision,
    memory: MaeMemory,
) -> Result<()> {
    let available = crate::held_windows::available_memory();
    if let Some(available) = available {
        // Counting the step allocates one batch of input: refuse first what cannot even hold it.
        refuse_past(full_batch_bytes(model, batch), available, batch)?;
    }
    let need = step_bytes(model, batch, precision, memory)?;
    if let Some(available) = available {
        refuse_past(need, available, batch)?;
    }
    Ok(())
}

fn refuse_past(need: u64, available: u64, batch: usize) -> Result<()> {
    if need > available {
        bail!(
            "the training step at --batch-size {batch} needs about {:.1} GiB of memory \
             (parameters, gradients, optimizer state, activations), more than the {:.1} GiB \
             this process may still take: lower --batch-size (train.accum_steps keeps the global \
             batch) or recompute activations (--set train.recompute=blocks)",
            gib(need),
            gib(available)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::refuse_past;

    #[test]
    fn a_step_past_the_available_memory_is_refused_naming_the_flag() {
        let gib = 1u64 << 30;
        assert!(refuse_past(2 * gib, 3 * gib, 64).is_ok());
        let err = refuse_past(300 * gib, 20 * gib, 10_000_000)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--batch-size 10000000 needs about 300.0 GiB"),
            "{err}"
        );
        assert!(err.contains("than the 20.0 GiB"), "{err}");
    }
}
