//! The command-line interface: every subcommand and flag of `ecgfm`.

use clap::{Args, Parser, Subcommand};
use ecgfm_trainer::model::Recompute;
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
    /// Evaluate a run's encoder on a labelled task: linear probe, fine-tuning, from scratch.
    Eval(crate::eval::EvalArgs),
    /// Compare two sides of `ecgfm eval` result files on the same test set (paired bootstrap
    /// of the AUROC difference).
    Compare(crate::compare::CompareArgs),
    /// Write the encoder's embedding of every window of a dataset as Parquet.
    Embed(crate::embed::EmbedArgs),
    /// Measure a checkpoint's validation loss again, on the run's validation set or a larger one
    /// (`--windows all`: the whole val split), without training.
    Validate(crate::validate::ValidateArgs),
    /// Start a data-parallel job: N ranks on this node (one GPU each with --device cuda),
    /// torchrun-style; `ecgfm launch --nproc-per-node 4 -- pretrain ...`.
    Launch(crate::launch::LaunchArgs),
    /// Estimate memory per GPU, step time and communication share before booking a cluster.
    Plan(crate::plan::PlanArgs),
    /// Benchmarks, side by side with the tool a user would otherwise pick.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Write a checkpoint as a package PyTorch loads without ecgfm (safetensors, config.json,
    /// model card, loader, checksums).
    Export(crate::export::ExportArgs),
    /// Upload an exported package to an object store and verify every file after upload.
    Publish(crate::publish::PublishArgs),
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
    /// Where a sweep stands: each run's state, step, losses, evaluations, last log; time left.
    Status(crate::sweep_status::SweepStatusArgs),
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
    /// Join datasets made with the same preprocessing (say PTB-XL and CinC 2021) into one, or copy one, checked.
    Merge(crate::data_merge::MergeArgs),
}

#[derive(Args, Debug, Default, Clone)]
pub struct PretrainArgs {
    /// TOML configuration file (`[model]`, `[data]`, `[optim]`, `[train]`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Model size preset: nano (the default), tiny, small, base, large, huge.
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// Optimiser steps in the whole run (default 2400).
    #[arg(long, value_name = "N", value_parser = positive_config_integer)]
    pub steps: Option<u64>,
    /// Samples per micro-batch (default 16).
    #[arg(long, value_name = "B", value_parser = at_least_one)]
    pub batch_size: Option<usize>,
    /// Seed of initialisation, masks and synthetic data (default 0).
    #[arg(long, value_name = "S", value_parser = config_integer)]
    pub seed: Option<u64>,
    /// Run directory (default `runs/<UTC timestamp>`; with --resume, the newest run under runs/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Steps between checkpoints (default 400; 0: only at the end).
    #[arg(long, value_name = "N", value_parser = config_integer)]
    pub checkpoint_every: Option<u64>,
    /// Keep only the newest N complete checkpoints, removing older ones after each save
    /// (default 0: keep all).
    #[arg(long, value_name = "N", value_parser = config_integer)]
    pub keep_checkpoints: Option<u64>,
    /// Continue from the newest complete checkpoint of the run directory.
    #[arg(long)]
    pub resume: bool,
    /// Dataset URL written by `ecgfm data ingest` (default: the synthetic generator).
    #[arg(long, value_name = "URL")]
    pub data: Option<String>,
    /// CPU threads (default: all cores).
    #[arg(long, value_name = "N", value_parser = cpu_threads)]
    pub threads: Option<usize>,
    /// Where to train: cpu, cuda (GPU 0), cuda:N, or auto (CUDA when a GPU is usable, else the
    /// CPU; the default).
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,
    /// Matrix products in fp32, bf16 (bf16 operands, f32 sums; tensor cores on a GPU) or auto
    /// (bf16 on a GPU, fp32 on the CPU; the default). Sets train.precision.
    #[arg(long, value_name = "PRECISION")]
    pub precision: Option<String>,
    /// Override any config field, e.g. --set optim.lr=3e-4 --set model.depth=4 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Stop after this many steps in this session; continue later with --resume
    /// (for time-limited cluster jobs).
    #[arg(long, value_name = "N", value_parser = positive_config_integer)]
    pub stop_after: Option<u64>,
    /// On a NaN/Inf loss or gradient: skip the step on every rank (three in a row stop the run)
    /// or stop at once (train.on_nonfinite).
    #[arg(long, value_name = "skip|stop", value_parser = ["skip", "stop"])]
    pub on_nonfinite: Option<String>,
    #[command(flatten)]
    pub dist: DistArgs,
}

/// How the ranks of a data-parallel job communicate (none of it changes the results).
#[derive(Args, Debug, Clone)]
pub struct DistArgs {
    /// ZeRO stage: 0 (every rank keeps the whole AdamW state) or 1 (each keeps its shard).
    #[arg(long, value_name = "0|1", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub zero: u8,
    /// Gradient bucket size in MiB (reduced while the backward pass goes on).
    #[arg(long, value_name = "MIB", default_value_t = 4.0)]
    pub bucket_mb: f64,
    /// Reduce the gradients only after the backward pass (to measure what overlap hides).
    #[arg(long)]
    pub no_overlap: bool,
    /// Seconds a collective may wait for a rank before the job stops naming it.
    #[arg(long, value_name = "S", default_value_t = 600.0, value_parser = timeout_seconds)]
    pub collective_timeout: f64,
    /// Seconds the ranks may take to find each other at the start.
    #[arg(long, value_name = "S", default_value_t = 300.0, value_parser = timeout_seconds)]
    pub rdzv_timeout: f64,
}

impl Default for DistArgs {
    fn default() -> Self {
        DistArgs {
            zero: 0,
            bucket_mb: 4.0,
            no_overlap: false,
            collective_timeout: 600.0,
            rdzv_timeout: 300.0,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Time a training step (forward, backward, AdamW) against PyTorch on the same model.
    Step(BenchStepArgs),
    /// ECGs/s the streaming loader delivers, against pyarrow + numpy on the same shards.
    Loader(crate::bench_loader::BenchLoaderArgs),
    /// Bus bandwidth of the CPU all-reduce between local ranks over loopback.
    Allreduce(crate::bench_allreduce::BenchAllreduceArgs),
    /// Our attention forward + backward against PyTorch's scaled_dot_product_attention.
    Attention(crate::bench_attention::BenchAttentionArgs),
}

#[derive(Args, Debug, Clone)]
pub struct BenchStepArgs {
    /// Model size preset.
    #[arg(long, default_value = "nano")]
    pub model: String,
    /// Samples per timed training step.
    #[arg(long, default_value_t = 32, value_parser = at_least_one)]
    pub batch_size: usize,
    /// CPU threads for both ecgfm and PyTorch (default: all cores).
    #[arg(long, value_parser = cpu_threads)]
    pub threads: Option<usize>,
    /// Device of both ecgfm and PyTorch: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Peak fp32 TFLOP/s of the GPU for the MFU (default: known from the device name).
    #[arg(long, value_name = "TFLOPS")]
    pub peak_tflops: Option<f64>,
    /// Peak dense bf16 TFLOP/s of the GPU for the mixed-precision MFU (default: from the name).
    #[arg(long, value_name = "TFLOPS")]
    pub peak_bf16_tflops: Option<f64>,
    /// Our matrix products: fp32, bf16 (tensor cores on a GPU; emulated, slower, on the CPU)
    /// or auto (bf16 on a GPU, fp32 on the CPU).
    #[arg(long, default_value = "auto", value_parser = ["auto", "bf16", "fp32"])]
    pub precision: String,
    /// PyTorch's precision on a GPU: bf16 (autocast), tf32 or fp32 (default: ours, so the two
    /// sides compute alike).
    #[arg(long, value_parser = ["bf16", "tf32", "fp32"])]
    pub torch_precision: Option<String>,
    /// On a GPU, run PyTorch without torch.compile.
    #[arg(long)]
    pub torch_no_compile: bool,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 20, value_parser = at_least_one)]
    pub steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    #[command(flatten)]
    pub torch: crate::python_bench::TorchSide,
    /// Also print a per-operation time breakdown of one step (on a GPU the device is waited for
    /// around every op).
    #[arg(long)]
    pub profile: bool,
    /// Data-parallel scaling instead: this many CPU ranks (threads split among them) against
    /// one rank, and how much of the all-reduce the overlap with the backward pass hides.
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub ranks: Option<usize>,
    /// Activations rerun in the backward pass (`train.recompute`): none, pointwise (each
    /// block's LayerNorms and GELU) or blocks (each block's forward; the bare flag). With
    /// blocks PyTorch likewise checkpoints each block (`torch.utils.checkpoint`).
    #[arg(long, value_name = "MODE", num_args = 0..=1, default_value = "none", default_missing_value = "blocks")]
    pub recompute: Recompute,
}

/// Parses a timeout in seconds: more than 0, at most a week (a `Duration` must hold it).
pub fn timeout_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 7.0 * 86400.0 => Ok(s),
        Ok(s) => Err(format!(
            "{s} s: give more than 0 and at most a week (604800)"
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Parses a count that must be at least 1 (`--batch-size`); clap names the flag in the error.
pub fn at_least_one(text: &str) -> Result<usize, String> {
    match config_integer(text)? {
        0 => Err("must be at least 1".into()),
        n => usize::try_from(n).map_err(|e| e.to_string()),
    }
}

/// Parses a count of at least 1 that goes into the run's TOML configuration (`--steps`).
pub fn positive_config_integer(text: &str) -> Result<u64, String> {
    match config_integer(text)? {
        0 => Err("must be at least 1".into()),
        n => Ok(n),
    }
}

/// Parses a number that goes into the run's TOML configuration (`--seed`): TOML integers are
/// signed 64-bit, so at most 2^63 - 1.
pub fn config_integer(text: &str) -> Result<u64, String> {
    let n = text.parse::<u64>().map_err(|e| e.to_string())?;
    match i64::try_from(n) {
        Ok(_) => Ok(n),
        Err(_) => Err(format!("{n}: must be at most {} (2^63 - 1)", i64::MAX)),
    }
}

/// Parses a fraction in (0, 1] (`plan --mfu`).
pub fn fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(f) if f > 0.0 && f <= 1.0 => Ok(f),
        Ok(f) => Err(format!("{f}: give more than 0 and at most 1")),
        Err(e) => Err(e.to_string()),
    }
}

/// Parses a count of threads that must be at least 1 (`bench loader --threads`, decode
/// threads): at most 4 per core, as `cpu_threads`.
pub fn some_cpu_threads(text: &str) -> Result<usize, String> {
    match cpu_threads(text)? {
        0 => Err("must be at least 1".into()),
        n => Ok(n),
    }
}

/// Parses `--threads` (0: all cores): at most 4 per core this process may use
/// (`ecgfm_trainer::config::too_many_threads`).
pub fn cpu_threads(text: &str) -> Result<usize, String> {
    let n = text.parse::<usize>().map_err(|e| e.to_string())?;
    match ecgfm_trainer::config::too_many_threads(n) {
        Some(why) => Err(why),
        None => Ok(n),
    }
}
