//! The `ecgfm` command, as a library so tests can drive it in-process.
//!
//! `cli` declares every subcommand and flag (clap); each subcommand lives in its own module and
//! turns the parsed arguments into calls on the workspace's libraries:
//! - `pretrain`: config resolution, the run directory, the progress bar around
//!   `ecgfm_trainer::train::Trainer`; `dataset_source` adapts the `ecgfm-data` streaming loader;
//!   `device` opens the CPU or CUDA backend (`--device`).
//! - `pretrain_dist`: the data-parallel side of `pretrain` (launcher environment, rendezvous,
//!   the run directory every rank agrees on); `launch`: `ecgfm launch` (local ranks, restarts,
//!   the SLURM script); `plan`: the cluster cost model of docs/distributed.md.
//! - `bench_step`, `bench_loader`: benchmarks printed side by side with PyTorch / pyarrow;
//!   `bench_allreduce`, `bench_ranks`: the CPU collective's bus bandwidth and data-parallel
//!   scaling.
//! - `data_cmd`: `ecgfm data read|ingest|synth|inspect` over `ecgfm-wfdb` and `ecgfm-data`.
//! - `sweep_run`, `sweep_report`: `ecgfm sweep run|report` over `ecgfm-sweep` (which plans and
//!   reports; the runs are subprocesses of this binary).
//!
//! Libraries report typed errors; here they gain context through `anyhow`.

pub mod bench_allreduce;
pub mod bench_loader;
pub mod bench_ranks;
pub mod bench_step;
pub mod cli;
pub mod data_ingest;
pub mod data_inspect;
pub mod data_read;
pub mod dataset_source;
pub mod device;

pub mod launch;
pub mod logging;
pub mod plan;
pub mod pretrain;
pub mod pretrain_dist;
pub mod progress;
pub mod python_bench;
pub mod signals;
pub mod slurm;
pub mod sweep_report;
pub mod sweep_run;

use cli::{BenchCommand, Cli, Command, DataCommand, SweepCommand};

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Pretrain(args) => pretrain::run(&args).map(|_| ()),
        Command::Data(DataCommand::Read(args)) => data_read::run(&args),
        Command::Data(DataCommand::Ingest(args)) => data_ingest::run_ingest(&args),
        Command::Data(DataCommand::Synth(args)) => data_ingest::run_synth(&args),
        Command::Data(DataCommand::Inspect(args)) => data_inspect::run(&args),
        Command::Bench(BenchCommand::Step(args)) => bench_step::run(&args),
        Command::Bench(BenchCommand::Loader(args)) => bench_loader::run(&args),
        Command::Sweep(SweepCommand::Run(args)) => sweep_run::run(&args),
        Command::Sweep(SweepCommand::Report(args)) => sweep_report::run(&args),
        Command::Sweep(SweepCommand::RunOne(args)) => sweep_run::run_index(&args),
        Command::Bench(BenchCommand::Allreduce(args)) => bench_allreduce::run(&args),
        Command::Launch(args) => launch::run(&args),
        Command::Plan(args) => plan::run(&args),
    }
}
