//! The command-line interface: every subcommand and flag of `ecgfm`.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// ecgfm: pretrain ECG foundation models (ViT masked autoencoders) at scale.
#[derive(Parser, Debug)]
#[command(name = "ecgfm", version, about, long_about = None)]
pub struct Cli {
    /// Debug-level logs (RUST_LOG overrides).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Pretrain a masked autoencoder (defaults: nano model on built-in synthetic ECGs).
    Pretrain(PretrainArgs),
    /// Datasets: read WFDB records, ingest them to Parquet shards, inspect datasets.
    #[command(subcommand)]
    Data(DataCommand),
    /// Benchmarks, side by side with the tool a user would otherwise pick.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Scaling sweeps over encoder sizes and their report.
    #[command(subcommand)]
    Sweep(SweepCommand),
}

#[derive(Subcommand, Debug)]
pub enum SweepCommand {
    /// Run every run of a sweep file (resumable), evaluate each, and write the report.
    Run(crate::sweep_run::SweepRunArgs),
    /// Fits, charts and verdict of a sweep folder: report.md.
    Report(crate::sweep_report::SweepReportArgs),
    /// One grid point of a sweep folder (what each task of `sweep run --slurm`'s array runs).
    #[command(hide = true)]
    RunOne(crate::sweep_run::SweepRunOneArgs),
}

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Print a WFDB record's samples as CSV (like rdsamp).
    Read(crate::data_read::ReadArgs),
    /// Validate, preprocess and write records as sharded Parquet with a manifest.
    Ingest(crate::data_ingest::IngestArgs),
    /// Write the synthetic generator's records as a dataset.
    Synth(crate::data_ingest::SynthArgs),
    /// Summarise a dataset: rows, labels, splits, quality, quarantine.
    Inspect(crate::data_inspect::InspectArgs),
}

#[derive(Args, Debug, Default, Clone)]
pub struct PretrainArgs {
    /// TOML configuration file ([model], [data], [optim], [train]).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Model size preset: nano, tiny, small, base, large, huge.
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// Optimiser steps in the whole run.
    #[arg(long, value_name = "N")]
    pub steps: Option<u64>,
    /// Samples per micro-batch.
    #[arg(long, value_name = "B")]
    pub batch_size: Option<usize>,
    /// Seed of initialisation, masks and synthetic data.
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Run directory (default runs/<UTC timestamp>; with --resume, the newest run under runs/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Steps between checkpoints (0: only at the end).
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<u64>,
    /// Continue from the newest complete checkpoint of the run directory.
    #[arg(long)]
    pub resume: bool,
    /// Dataset URL written by `ecgfm data ingest` (default: the synthetic generator).
    #[arg(long, value_name = "URL")]
    pub data: Option<String>,
    /// CPU threads (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Override any config field, e.g. --set optim.lr=3e-4 --set model.depth=4 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Stop after this many steps in this session; continue later with --resume
    /// (for time-limited cluster jobs).
    #[arg(long, value_name = "N")]
    pub stop_after: Option<u64>,
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Time a CPU training step (forward, backward, AdamW) against PyTorch on the same model.
    Step(BenchStepArgs),
    /// ECGs/s the streaming loader delivers, against pyarrow + numpy on the same shards.
    Loader(crate::bench_loader::BenchLoaderArgs),
}

#[derive(Args, Debug, Clone)]
pub struct BenchStepArgs {
    /// Model size preset.
    #[arg(long, default_value = "nano")]
    pub model: String,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// CPU threads for both ecgfm and PyTorch (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// The PyTorch script to compare with.
    #[arg(long, value_name = "FILE")]
    pub torch_script: Option<PathBuf>,
    /// Python interpreter that has torch.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Skip the PyTorch comparison.
    #[arg(long)]
    pub no_torch: bool,
    /// Also print a per-operation time breakdown of one step.
    #[arg(long)]
    pub profile: bool,
}
