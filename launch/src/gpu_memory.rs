//! Before a GPU run builds its model: the GPU memory its training step (or the downstream
//! encoder's work) takes (`ecgfm_trainer::device_memory`, counted without touching the GPU)
//! against what the GPU has free. A run that cannot fit stops here with what would fit, instead
//! of failing to allocate halfway through building the model.

use anyhow::{bail, Result};
use ecgfm_kernels::{gib, CudaBackend, Precision};
use ecgfm_trainer::device_memory::{encoder_bytes, step_bytes, EncoderWork};
use ecgfm_trainer::model::{HeadSpec, MaeMemory, Recompute};
use ecgfm_trainer::ModelConfig;

/// What a GPU run needs: its bytes, and the start-up note saying so.
pub struct Fit {
    pub bytes: u64,
    pub note: String,
}

/// The training step's GPU memory, or the error when it does not fit in what `be`'s GPU has
/// free.
pub fn check(
    be: &CudaBackend,
    model: &ModelConfig,
    batch: usize,
    precision: Precision,
    memory: MaeMemory,
) -> Result<Fit> {
    let need = step_bytes(model, batch, precision, memory.clone())?;
    let free = be.device().memory_free().map(|f| f as u64);
    // Only a run that does not fit is told what recomputing every block would need.
    let too_big = free.is_some_and(|free| need > free);
    let with_blocks = (too_big && memory.recompute != Recompute::Blocks)
        .then(|| {
            let blocks = MaeMemory {
                recompute: Recompute::Blocks,
                ..memory
            };
            step_bytes(model, batch, precision, blocks).ok()
        })
        .flatten();
    let hint = recompute_hint(with_blocks, free);
    let need = Need {
        bytes: need,
        noun: "step",
        what: format!(
            "the training step at --batch-size {batch} needs about {:.1} GiB of GPU memory \
             (parameters, gradients, optimizer state, activations, workspaces)",
            gib(need)
        ),
        advice: format!("lower --batch-size (train.accum_steps keeps the global batch){hint}"),
    };
    Ok(Fit {
        bytes: need.bytes,
        note: verdict(&need, free)?,
    })
}

/// The downstream encoder's GPU memory doing `work` (`ecgfm eval`, `ecgfm embed`), or the
/// error when it does not fit in what `be`'s GPU has free.
pub fn check_encoder(
    be: &CudaBackend,
    model: &ModelConfig,
    head: HeadSpec,
    batch: usize,
    precision: Precision,
    work: EncoderWork,
) -> Result<Fit> {
    let bytes = encoder_bytes(model, head, batch, precision, work)?;
    let doing = match work {
        EncoderWork::Forward => "the encoder's forward pass",
        EncoderWork::Finetune(_) => "fine-tuning the encoder",
    };
    let need = Need {
        bytes,
        noun: "encoder",
        what: format!(
            "{doing} at --batch-size {batch} needs about {:.1} GiB of GPU memory",
            gib(bytes)
        ),
        advice: match work {
            EncoderWork::Finetune(Recompute::Blocks) | EncoderWork::Forward => "lower --batch-size",
            EncoderWork::Finetune(_) => {
                "lower --batch-size or recompute activations (--recompute blocks)"
            }
        }
        .to_string(),
    };
    let free = be.device().memory_free().map(|f| f as u64);
    Ok(Fit {
        bytes,
        note: verdict(&need, free)?,
    })
}

/// The advice to recompute every block, where that (`with_blocks` bytes) fits in `free`.
fn recompute_hint(with_blocks: Option<u64>, free: Option<u64>) -> String {
    match (with_blocks, free) {
        (Some(b), Some(free)) if b <= free => format!(
            ", or recompute activations (--set train.recompute=blocks: about {:.1} GiB)",
            gib(b)
        ),
        _ => String::new(),
    }
}

/// What a run needs, and what to say when it does not fit.
struct Need {
    bytes: u64,
    /// The start-up note's subject: "step needs about ...".
    noun: &'static str,
    /// The error's opening: what needs how much.
    what: String,
    /// The error's closing: what to change.
    advice: String,
}

/// `need` against `free` bytes (None: the GPU did not say): the start-up note, or the error.
fn verdict(need: &Need, free: Option<u64>) -> Result<String> {
    let Some(free) = free else {
        return Ok(format!(
            "{} needs about {:.1} GiB",
            need.noun,
            gib(need.bytes)
        ));
    };
    if need.bytes <= free {
        return Ok(format!(
            "{} needs about {:.1} GiB of {:.1} GiB free",
            need.noun,
            gib(need.bytes),
            gib(free)
        ));
    }
    bail!(
        "{}, but the GPU has {:.1} GiB free: {}",
        need.what,
        gib(free),
        need.advice
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn need(bytes: u64) -> Need {
        Need {
            bytes,
            noun: "step",
            what: format!("the step needs about {:.1} GiB", gib(bytes)),
            advice: "lower --batch-size".into(),
        }
    }

    #[test]
    fn a_run_that_fits_gets_a_note() {
        let note = verdict(&need(10 * GIB), Some(20 * GIB)).unwrap();
        assert_eq!(note, "step needs about 10.0 GiB of 20.0 GiB free");
        let note = verdict(&need(10 * GIB), None).unwrap();
        assert_eq!(note, "step needs about 10.0 GiB");
    }

    #[test]
    fn a_run_that_does_not_fit_is_refused_saying_what_to_change() {
        let text = verdict(&need(30 * GIB), Some(20 * GIB))
            .unwrap_err()
            .to_string();
        assert_eq!(
            text,
            "the step needs about 30.0 GiB, but the GPU has 20.0 GiB free: lower --batch-size"
        );
    }

    #[test]
    fn recomputation_is_suggested_only_where_it_fits() {
        let hint = recompute_hint(Some(8 * GIB), Some(20 * GIB));
        assert!(
            hint.contains("train.recompute=blocks: about 8.0 GiB"),
            "{hint}"
        );
        assert_eq!(recompute_hint(Some(25 * GIB), Some(20 * GIB)), "");
        assert_eq!(recompute_hint(None, Some(20 * GIB)), "");
    }
}
