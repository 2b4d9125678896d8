//! Downstream evaluation of a pretrained encoder (`ecgfm eval`): does pretraining help on a
//! labelled task, against the same network trained from scratch?
//!
//! - `task`: a label vocabulary of the dataset turned into classes and per-window targets with
//!   the dataset's train / val / test splits (unlabelled windows skipped and counted);
//! - `batches`: the `WindowSource` seam the binary's dataset reader implements, and the
//!   forward-only passes of `model::Encoder` (features for the probe and `ecgfm embed`, class
//!   probabilities);
//! - `logistic`: the probe's L2 logistic regression on the host in f64 (L-BFGS);
//! - `finetune`: end-to-end training with early stopping on validation (fine-tuning, and from
//!   scratch with the same recipe);
//! - `fractions`: stratified, seeded label fractions; `metrics`: AUROC, F1 at validation
//!   thresholds, accuracy, bootstrap intervals;
//! - `protocols`: the protocols (probe, finetune, scratch, random_probe) at every fraction,
//!   reporting through `progress`; `scoring`: windows or records as the unit validation and
//!   test are scored in; `report`: the JSON result file (with every scored test unit), the
//!   terminal table and TensorBoard scalars; `paired`: two evaluations on the same test set
//!   compared by the paired bootstrap of their AUROC (or F1) difference; `result_warnings`:
//!   what the results themselves earn (withheld intervals, fractions drawn above the request,
//!   rare training classes, an L2 at the grid's edge); `pretraining`: what
//!   the encoder was pretrained on, as the result file states it; `units`: a protocol at a
//!   fraction before scoring, which a caller may keep so an interrupted evaluation goes on.
//!
//! The encoder itself (every patch visible, pooling, head) is `model/encoder.rs`; docs/model.md
//! ("Evaluation") states its contract.

pub mod batches;
pub mod finetune;
pub mod fractions;
pub mod logistic;
pub mod metrics;
pub mod paired;
pub mod pretraining;
pub mod progress;
pub mod protocols;
pub mod report;
pub mod result_warnings;
pub mod scoring;
pub mod task;
pub mod units;

pub use batches::WindowSource;
pub use finetune::FinetuneSettings;
pub use paired::{
    against_scratch, by_patient, paired_auroc_interval, paired_f1_interval, seed_dependent,
    AgainstScratch, IntervalNoise, PairError, Resample, ScoredResult,
};
pub use pretraining::Pretraining;
pub use progress::EvalProgress;
pub use protocols::{run_protocols, task_warnings, EvalInputs, EvalSettings};
pub use report::{Counts, EvalReport, Protocol, ProtocolResult, ScratchDifference, UnitScores};
pub use result_warnings::result_warnings;
pub use scoring::ScoreBy;
pub use task::{LabelledWindow, Part, Task, Vocabulary};
pub use units::{NoStore, UnitOutcome, UnitStore};

use crate::model::ModelError;

/// Why an evaluation cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The task cannot be built or run as asked (missing labels, empty splits, bad settings).
    #[error("{0}")]
    Task(String),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(
        "training diverged: loss {loss} at epoch {epoch}, step {step} (lower the learning rate)"
    )]
    Diverged { epoch: usize, step: u64, loss: f32 },
}
