//! Before a CPU run builds its model: the memory its training step (or, for `eval` and `embed`,
//! its encoder's work) takes, counted as the GPU check counts it
//! (`ecgfm_trainer::device_memory`: parameters, gradients, optimizer state, activations), against
//! what this process may still take (`held_windows`: the kernel's available memory under any
//! cgroup limit). A batch that cannot fit stops here naming the flag, instead of the allocation
//! aborting the process halfway through building the model.

use anyhow::{bail, Result};
use ecgfm_kernels::{gib, Precision};
use ecgfm_trainer::device_memory::{encoder_bytes, full_batch_bytes, step_bytes, EncoderWork};
use ecgfm_trainer::model::{HeadSpec, MaeMemory};
use ecgfm_trainer::ModelConfig;

/// What a refusal names: the work, what its memory holds, and the advice.
struct Work {
    what: &'static str,
    holds: &'static str,
    advice: &'static str,
}

const TRAINING_STEP: Work = Work {
    what: "the training step",
    holds: "parameters, gradients, optimizer state, activations",
    advice: "lower --batch-size (train.accum_steps keeps the global batch) or recompute \
             activations (--set train.recompute=blocks)",
};

const ENCODER: Work = Work {
    what: "the encoder",
    holds: "parameters, activations, and while fine-tuning gradients and optimizer state",
    advice: "lower --batch-size",
};

/// Refuses a training step of `model` at micro-batch `batch` that needs more memory than the
/// process has left; says nothing where the available memory is unknown.
pub fn check(
    model: &ModelConfig,
    batch: usize,
    precision: Precision,
    memory: MaeMemory,
) -> Result<()> {
    refuse_unless_fits(&TRAINING_STEP, model, batch, || {
        Ok(step_bytes(model, batch, precision, memory)?)
    })
}

/// Refuses an encoder of `model` with `head`, built for batches of `batch` to do `work`, that
/// needs more memory than the process has left; says nothing where that is unknown.
pub fn check_encoder(
    model: &ModelConfig,
    head: HeadSpec,
    batch: usize,
    precision: Precision,
    work: EncoderWork,
) -> Result<()> {
    refuse_unless_fits(&ENCODER, model, batch, || {
        Ok(encoder_bytes(model, head, batch, precision, work)?)
    })
}

/// Refuses `work` at `batch` past the available memory: first where one batch of input alone
/// is past it (counting allocates that batch), then where `count`'s total is.
fn refuse_unless_fits(
    work: &Work,
    model: &ModelConfig,
    batch: usize,
    count: impl FnOnce() -> Result<u64>,
) -> Result<()> {
    let available = crate::held_windows::available_memory();
    if let Some(available) = available {
        refuse_past(work, full_batch_bytes(model, batch), available, batch)?;
    }
    let need = count()?;
    if let Some(available) = available {
        refuse_past(work, need, available, batch)?;
    }
    Ok(())
}

fn refuse_past(work: &Work, need: u64, available: u64, batch: usize) -> Result<()> {
    if need > available {
        bail!(
            "{} at --batch-size {batch} needs about {:.1} GiB of memory ({}), more than the \
             {:.1} GiB this process may still take: {}",
            work.what,
            gib(need),
            work.holds,
            gib(available),
            work.advice
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{refuse_past, ENCODER, TRAINING_STEP};

    #[test]
    fn a_step_past_the_available_memory_is_refused_naming_the_flag() {
        let gib = 1u64 << 30;
        assert!(refuse_past(&TRAINING_STEP, 2 * gib, 3 * gib, 64).is_ok());
        let err = refuse_past(&TRAINING_STEP, 300 * gib, 20 * gib, 10_000_000)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the training step at --batch-size 10000000 needs about 300.0 GiB"),
            "{err}"
        );
        assert!(err.contains("than the 20.0 GiB"), "{err}");
        let err = refuse_past(&ENCODER, 300 * gib, 20 * gib, 64)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("the encoder at --batch-size 64")
                && err.ends_with("lower --batch-size"),
            "{err}"
        );
    }
}
