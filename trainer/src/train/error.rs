//! What stops a training run: `TrainError`, and for a non-finite loss or gradient where it came
//! from (`NonFiniteCause`) and on which ranks, as the messages tell it.

use crate::checkpoint::CheckpointError;
use crate::data::SourceError;
use crate::ModelError;
use ecgfm_dist::DistError;
use std::path::PathBuf;

/// Errors of a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The source's description (`BatchSource::describe`: the dataset's redacted URL) and its
    /// error, which names the shard.
    #[error("data source {0}: {1}")]
    Data(String, #[source] SourceError),
    /// A batch could not be read during the run: every rank stopped after the last step it
    /// finished (`finished`), and saved it (`checkpoint`, the one a resume starts from).
    /// `damaged`: some rank's data was damaged (`ReadFault::Damaged`), which every rank knows.
    #[error("{}", super::data_stop::stopped_message(.failure, *.finished, .checkpoint.as_deref()))]
    DataStopped {
        failure: String,
        finished: u64,
        checkpoint: Option<PathBuf>,
        damaged: bool,
    },
    #[error("data-parallel training stopped")]
    Dist(#[from] DistError),
    #[error("run directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot resume {run_dir}: {reason}")]
    Resume { run_dir: PathBuf, reason: String },
    /// The run folder lost its `config.toml` while the run trained (the folder removed by a
    /// scratch purge, say, and made again by the next write): the checkpoints and metrics
    /// written before went with it, and a run "done" there would have nothing to resume from.
    #[error(
        "{} lost its config.toml while this run trained in it (the folder removed or replaced, \
         a scratch purge say, and the checkpoints and metrics written before with it); nothing \
         more is written there: start the run again (or, if only config.toml was removed, put \
         it back and resume with --resume)",
        .run_dir.display()
    )]
    RunFolderGone { run_dir: PathBuf },
    /// The ranks of a data-parallel job did not start alike (`train/agreement.rs`): other
    /// settings, other data, or other checkpoints resumed from.
    #[error("the ranks of this job differ before their first step: {0}")]
    RanksDiffer(String),
    /// A fresh start in a folder holding another run's checkpoints: a later resume would take
    /// the newest of them and continue the old weights under the new configuration.
    #[error(
        "{} already holds the checkpoints of a run (newest: {}): continue that run with \
         --resume, start this one in another folder (--out), or remove {} to start over here",
        .run_dir.display(),
        .newest.display(),
        .run_dir.join("checkpoints").display()
    )]
    CheckpointsExist { run_dir: PathBuf, newest: PathBuf },
    /// A non-finite loss or gradient stopped the run at step `step` (from 0; the message counts
    /// from 1, as the progress line does), the `in_a_row`-th such step in a row. Its record
    /// (null loss) is in metrics.jsonl.
    #[error(
        "non-finite loss {loss} / gradient norm {grad_norm}{} at step {}{}: {cause}",
        in_a_row_note(*.in_a_row),
        .step + 1,
        ranks_note(.ranks)
    )]
    NonFinite {
        step: u64,
        loss: f32,
        grad_norm: f32,
        in_a_row: u32,
        ranks: Vec<usize>,
        cause: NonFiniteCause,
    },
}

/// Where a non-finite loss or gradient came from, as far as the run can tell.
#[derive(Debug, Clone, PartialEq)]
pub enum NonFiniteCause {
    /// The signals of a batch held a NaN or an infinity on these ranks: the data, not the
    /// optimisation.
    Input { ranks: Vec<usize> },
    /// The input was finite: the optimisation diverged at learning rate `lr`, with gradients
    /// clipped at `clip_norm` (`None`: not clipped).
    Diverged { lr: f32, clip_norm: Option<f32> },
}

impl std::fmt::Display for NonFiniteCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NonFiniteCause::Input { ranks } => write!(
                f,
                "a batch's signals held NaN or infinite values{}: the data is at fault, not the \
                 training (look for the damaged records in the dataset)",
                ranks_note_of("input", ranks)
            ),
            NonFiniteCause::Diverged {
                lr,
                clip_norm: Some(clip),
            } => write!(
                f,
                "training diverged at learning rate {lr:.2e} (lower optim.lr; gradients were \
                 already clipped at optim.clip_norm = {clip})"
            ),
            NonFiniteCause::Diverged {
                lr,
                clip_norm: None,
            } => write!(
                f,
                "training diverged at learning rate {lr:.2e} (lower optim.lr or enable \
                 optim.clip_norm)"
            ),
        }
    }
}

/// " (N steps in a row)" for a second or later non-finite step in a row, or nothing.
fn in_a_row_note(in_a_row: u32) -> String {
    match in_a_row {
        0 | 1 => String::new(),
        n => format!(" ({n} steps in a row)"),
    }
}

fn ranks_note(ranks: &[usize]) -> String {
    ranks_note_of("loss", ranks)
}

/// " (non-finite WHAT on rank 0, 2)", or nothing for no rank.
fn ranks_note_of(what: &str, ranks: &[usize]) -> String {
    match ranks {
        [] => String::new(),
        r => format!(
            " (non-finite {what} on rank {})",
            r.iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
