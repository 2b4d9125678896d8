//! The `ecgfm` command, as a library so tests can drive it in-process.
//!
//! `cli` declares every subcommand and flag (clap); each subcommand lives in its own module and
//! turns the parsed arguments into calls on the workspace's libraries:
//! - `pretrain`: config resolution, the run directory, the progress bar around
//!   `ecgfm_trainer::train::Trainer`; `dataset_source` adapts the `ecgfm-data` streaming loader;
//!   `device` opens the CPU or CUDA backend (`--device`); `gpu_memory` refuses a GPU run whose
//!   step cannot fit in the GPU's free memory before it allocates anything; `run_lock` keeps a
//!   second process from training in the same run folder.
//! - `pretrain_dist`: the data-parallel side of `pretrain` (launcher environment, rendezvous,
//!   the run directory every rank agrees on); `launch`: `ecgfm launch` (local ranks, restarts,
//!   the SLURM script); `plan`: the cluster cost model of docs/distributed.md.
//! - `bench_step`, `bench_attention`, `bench_loader`: benchmarks printed side by side with
//!   PyTorch / pyarrow;
//!   `bench_allreduce`, `bench_ranks`: the CPU collective's bus bandwidth and data-parallel
//!   scaling. `python_bench` runs a benchmark's Python side (a script of bench/) and reads its
//!   result, skipping the comparison, saying why, where Python lacks a package.
//! - `data_read`, `data_ingest`, `data_inspect`, `data_merge`: `ecgfm data
//!   read|ingest|synth|inspect|merge` over `ecgfm-wfdb` and `ecgfm-data`.
//! - `eval`, `embed`: a run's encoder on labelled data (`ecgfm_trainer::eval`) and as
//!   embeddings; `compute` opens their `--device` and counts the encoder's memory first
//!   (`gpu_memory`, or `cpu_memory` for a CPU run, training's too); `compare`: two sides of eval
//!   result files by the paired bootstrap; `pretrained` opens the run's checkpoint and the
//!   dataset's windows, which `held_windows` keeps in memory or in a scratch file;
//!   `pretraining_check` refuses test records the encoder was pretrained on; `out_folder` makes
//!   their output's folder first and removes it again, still empty, when they fail;
//!   `eval_units` keeps an evaluation's finished units so a run of it interrupted goes on.
//! - `validate`: a checkpoint's validation loss measured again (the run's set, a larger one or
//!   another dataset's) without training.
//! - `export`, `publish`: a checkpoint as a package loadable without ecgfm (`run_checkpoint`
//!   opens it, `model_card` writes its README, `package` its checksums), and its upload.
//! - `sweep_run`, `sweep_eval`, `sweep_extend`, `sweep_sbatch`, `sweep_failure`, `sweep_report`,
//!   `sweep_status`: `ecgfm sweep run|report|status` (and `run --extend`, `--slurm`,
//!   `--keep-going`) over `ecgfm-sweep` (which plans and reports; the runs are subprocesses of
//!   this binary, whose command lines `sweep_child` checks and runs, and `child_error` passes a
//!   failed child's error up to the sweep).
//!   `lead_mix` reads a dataset's samples by present leads, which sets what a step costs (sweep
//!   budgets, `plan --data`).
//! - `damaged_data` tells data damaged after it was written from other failures (its exit
//!   status, no restart by `launch`, the repair named); `bad_config` likewise a configuration
//!   refused.
//! - `signals`: SIGINT, SIGTERM, SIGUSR1 and SIGHUP recorded for `pretrain`, `launch` and
//!   `sweep run` to act on at a safe point (a rank checkpoints and exits 75); `slurm`: the
//!   sbatch script of `launch --slurm-script`.
//! - `error_text` writes an error chain with every URL redacted; `secret_free` refuses to keep a
//!   URL's secret in a file read again later (a sweep folder's file, a SLURM script); `logging`
//!   sets up `tracing` (`-v`, `RUST_LOG`); `progress` draws the progress bars; `say` prints
//!   (`say!`, `say_err!`, `say_inline!` in place of `println!` and kin) so that a terminal that
//!   is gone does not end a run.
//! - `docs_match_cli` (tests only) holds the documentation to the code: every `ecgfm` command
//!   the README, docs/, the workspace's messages and its shell scripts show names flags and
//!   settings that exist, the published sweep files read, the README's map of folders is the
//!   workspace.
//!
//! Libraries report typed errors; here they gain context through `anyhow`.
//!
//! It depends on every library of the workspace: `ecgfm-trainer` (model, training, evaluation),
//! `ecgfm-kernels` (the CPU and CUDA backends), `ecgfm-dist` (collectives, rendezvous),
//! `ecgfm-sweep`, `ecgfm-data`, `ecgfm-wfdb` (`data read`), `ecgfm-preprocess` (`data ingest`'s
//! settings) and `ecgfm-synth`. Start at `cli.rs`, then [`run`] below, which names the module of
//! each subcommand; `main.rs` turns an error into the exit status (`signals`, `damaged_data`,
//! `bad_config`). The tests in `tests/` mostly run the built `ecgfm` binary; the workspace's
//! tests/ crate calls this library in-process.

#[macro_use]
pub mod say;
pub mod bad_config;
pub mod bench_allreduce;
pub mod bench_attention;
pub mod bench_loader;
pub mod bench_ranks;
pub mod bench_step;
pub mod child_error;
pub mod cli;
pub mod compare;
pub mod compute;
pub mod cpu_memory;
pub mod damaged_data;
pub mod data_ingest;
pub mod data_inspect;
pub mod data_merge;
pub mod data_read;
pub mod dataset_source;
pub mod device;
#[cfg(test)]
mod docs_match_cli;
pub mod embed;
mod error_text;
pub mod eval;
mod eval_copy;
mod eval_units;
pub mod export;
pub mod gpu_memory;
pub mod held_windows;

pub mod launch;
pub mod lead_mix;
pub mod logging;
pub mod model_card;
mod out_folder;
pub mod package;
pub mod plan;
pub mod pretrain;
pub mod pretrain_dist;
pub mod pretrained;
pub mod pretraining_check;
pub mod progress;
pub mod publish;
pub mod python_bench;
pub mod run_checkpoint;
mod run_lock;
mod secret_free;
pub mod signals;
pub mod slurm;
mod sweep_child;
mod sweep_eval;
pub mod sweep_extend;
pub mod sweep_failure;
pub mod sweep_folder;
pub mod sweep_report;
pub mod sweep_run;
pub mod sweep_sbatch;
pub mod sweep_status;
pub mod validate;

use cli::{BenchCommand, Cli, Command, DataCommand, SweepCommand};
pub use error_text::error_text;

/// Runs one parsed command line. The dataset writers end on a stop signal, having removed
/// their object-store leases (`signals::exit_on_stop`; only here, for the command line: a
/// program calling `data_ingest::run_ingest` keeps its own signal handling).
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Pretrain(args) => pretrain::run(&args).map(|_| ()),
        Command::Data(DataCommand::Read(args)) => data_read::run(&args),
        Command::Data(DataCommand::Ingest(args)) => {
            signals::exit_on_stop(data_ingest::INGEST_STOPPED);
            data_ingest::run_ingest(&args)
        }
        Command::Data(DataCommand::Synth(args)) => {
            signals::exit_on_stop(data_ingest::SYNTH_STOPPED);
            data_ingest::run_synth(&args)
        }
        Command::Data(DataCommand::Inspect(args)) => data_inspect::run(&args),
        Command::Data(DataCommand::Merge(args)) => {
            signals::exit_on_stop(data_merge::MERGE_STOPPED);
            data_merge::run(&args)
        }
        Command::Eval(args) => eval::run(&args).map(|_| ()),
        Command::Compare(args) => compare::run(&args),
        Command::Embed(args) => embed::run(&args).map(|_| ()),
        Command::Validate(args) => validate::run(&args).map(|_| ()),
        Command::Bench(BenchCommand::Step(args)) => bench_step::run(&args),
        Command::Bench(BenchCommand::Loader(args)) => bench_loader::run(&args),
        Command::Sweep(SweepCommand::Run(args)) => sweep_run::run(&args),
        Command::Sweep(SweepCommand::Report(args)) => sweep_report::run(&args),
        Command::Sweep(SweepCommand::Status(args)) => sweep_status::run(&args),
        Command::Sweep(SweepCommand::RunOne(args)) => sweep_run::run_index(&args),
        Command::Bench(BenchCommand::Allreduce(args)) => bench_allreduce::run(&args),
        Command::Bench(BenchCommand::Attention(args)) => bench_attention::run(&args),
        Command::Launch(args) => launch::run(&args),
        Command::Plan(args) => plan::run(&args),
        Command::Export(args) => export::run(&args),
        Command::Publish(args) => publish::run(&args),
    }
}
