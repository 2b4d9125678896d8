//! Before a GPU run builds its model: the GPU memory its training step takes
//! (`ecgfm_trainer::device_memory`, counted without touching the GPU) against what the GPU has
//! free. A run that cannot fit stops here with what would fit, instead of failing to allocate
//! halfway through building the model.

use anyhow::{bail, Result};
use ecgfm_kernels::{CudaBackend, Precision};
use ecgfm_trainer::device_memory::step_bytes;
use ecgfm_trainer::model::{MaeMemory, Recompute};
use ecgfm_trainer::ModelConfig;

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

/// What a GPU run's step needs: its bytes, and the start-up note saying so.
pub struct Fit {
    pub bytes: u64,
    pub note: String,
}

/// The step's GPU memory, or the error when it does not fit in what `be`'s GPU has free.
pub fn check(
    be: &CudaBackend,
    model: &ModelConfig,
    batch: usize,
    precision: Precision,
    memory: MaeMemory,
) -> Result<Fit> {
    let need = step_bytes(model, batch, precision, memory.clone())?;
    let Some(free) = be.device().memory_free() else {
        let note = format!("step needs about {:.1} GiB", gib(need));
        return Ok(Fit { bytes: need, note });
    };
    // Only a run that does not fit is told what recomputing every block would need.
    let blocks = MaeMemory {
        recompute: Recompute::Blocks,
        ..memory.clone()
    };
    let with_blocks = (need > free as u64 && memory.recompute != Recompute::Blocks)
        .then(|| step_bytes(model, batch, precision, blocks).ok())
        .flatten();
    let note = verdict(
        need,
        free as u64,
        with_blocks,
        &format!("--batch-size {batch}"),
    )?;
    Ok(Fit { bytes: need, note })
}

/// `need` bytes against `free`; `with_blocks`: what recomputing every block would need.
fn verdict(need: u64, free: u64, with_blocks: Option<u64>, batch: &str) -> Result<String> {
    if need <= free {
        return Ok(format!(
            "step needs about {:.1} GiB of {:.1} GiB free",
            gib(need),
            gib(free)
        ));
    }
    let hint = match with_blocks {
        Some(b) if b <= free => format!(
            ", or recompute activations (--set train.recompute=blocks: about {:.1} GiB)",
            gib(b)
        ),
        _ => String::new(),
    };
    bail!(
        "the training step at {batch} needs about {:.1} GiB of GPU memory (parameters, \
         gradients, optimizer state, activations, workspaces), but the GPU has {:.1} GiB free: \
         lower --batch-size (train.accum_steps keeps the global batch){hint}",
        gib(need),
        gib(free)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn a_step_that_fits_gets_a_note() {
        let note = verdict(10 * GIB, 20 * GIB, None, "--batch-size 256").unwrap();
        assert_eq!(note, "step needs about 10.0 GiB of 20.0 GiB free");
    }

    #[test]
    fn a_step_that_does_not_fit_is_refused_naming_what_would() {
        let err = verdict(30 * GIB, 20 * GIB, Some(8 * GIB), "--batch-size 512").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("--batch-size 512 needs about 30.0 GiB"),
            "{text}"
        );
        assert!(text.contains("20.0 GiB free"), "{text}");
        assert!(
            text.contains("train.recompute=blocks: about 8.0 GiB"),
            "{text}"
        );
        // Recomputation is not suggested where it would not fit either.
        let err = verdict(30 * GIB, 20 * GIB, Some(25 * GIB), "--batch-size 512").unwrap_err();
        assert!(!err.to_string().contains("recompute"), "{err}");
    }
}
