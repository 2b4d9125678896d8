//! ecgfm-sweep: scaling sweeps over encoder sizes and the report that answers "does a larger
//! ECG model help?".
//!
//! What lives here:
//! - `spec`: the sweep file (TOML) and its validation; `expand`: the grid of runs it names, each
//!   an ordinary pretrain configuration (N, D and C of each run are defined there);
//! - `record`: the lines of `sweep.jsonl`, one per finished run (losses, AUROCs, wall time);
//! - `fit`: the scaling-law fits (L(N) per data size, L(N, D) as Chinchilla's third approach,
//!   iso-FLOP optima) with bootstrap confidence intervals, over a small hand-written L-BFGS;
//! - `analysis`: groups, comparisons (losses by the Welch t interval over seeds of `welch`,
//!   AUROCs by the paired bootstrap of `ecgfm_trainer::eval::paired`) and fits of a finished
//!   sweep; `charts` and `plot`: its PNG charts (plotters); `report`: `report.md`, whose
//!   `verdict` is written in `verdict` and whose table of each size against the smallest in
//!   `size_table`; `results`: the folder beside it with the records, the sweep file and every
//!   run's result files, which `ecgfm compare` reads and from which the report can be made
//!   again;
//! - `presets`: the built-in sweep files (`--preset toy`, `--preset demo`, `--preset gpu`).
//!
//! Depends on `ecgfm-trainer` for configurations and model statistics. Running the runs is the
//! `ecgfm` binary's job (launch/src/sweep_run.rs): this crate plans and reports.

pub mod analysis;
pub mod charts;
pub mod expand;
pub mod fit;
pub mod plot;
pub mod presets;
pub mod record;
pub mod report;
pub mod results;
mod size_table;
pub mod spec;
mod verdict;
pub mod welch;

pub use expand::{RunPlan, SweepPlan};
pub use spec::{SpecError, SweepSpec};
