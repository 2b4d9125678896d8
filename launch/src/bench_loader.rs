//! `ecgfm bench loader --data URL`: 12-lead ECG windows per second delivered as training
//! batches by the streaming loader, next to pyarrow + numpy batching of the same shards
//! (bench/loader_pyarrow.py) in the same run, decoding in as many processes (pyarrow on one
//! thread in each) as ecgfm has decode threads; both counts are printed beside the ratio. The
//! last line printed is one JSON object.

use crate::python_bench::run_comparison;
use anyhow::{Context, Result};
use clap::Args;
use ecgfm_data::loader::{bench_loader, LoaderConfig};
use serde_json::json;
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct BenchLoaderArgs {
    /// Dataset URL (local folder, file://, s3://, gs://, az://).
    #[arg(long)]
    pub data: String,
    /// Windows per batch.
    #[arg(long, default_value_t = 256, value_parser = crate::cli::at_least_one)]
    pub batch_size: usize,
    /// Decode threads (and the pyarrow side's decoding processes); at most 4 per core.
    #[arg(long, default_value_t = 2, value_parser = crate::cli::some_cpu_threads)]
    pub threads: usize,
    /// Timed batches.
    #[arg(long, default_value_t = 40)]
    pub batches: usize,
    /// Samples per lead after cropping.
    #[arg(long, default_value_t = 2250)]
    pub crop_samples: usize,
    /// Split to read.
    #[arg(long, default_value = "all")]
    pub split: String,
    /// Time rank 0 of a job of this many ranks (the global batch is `batch-size x world-size`).
    /// The pyarrow comparison runs only for 1.
    #[arg(long, default_value_t = 1)]
    pub world_size: usize,
    /// Row groups shuffled together (use at least `world-size`).
    #[arg(long, default_value_t = LoaderConfig::default().mix_row_groups)]
    pub mix_row_groups: usize,
    /// Shuffle row groups across the whole dataset (`data.mix_across_shards`).
    #[arg(long)]
    pub mix_across_shards: bool,
    /// The pyarrow script to compare with (local datasets only).
    #[arg(long, value_name = "FILE")]
    pub pyarrow_script: Option<PathBuf>,
    /// Python interpreter that has pyarrow and numpy (for the comparison).
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Skip the pyarrow comparison.
    #[arg(long)]
    pub no_pyarrow: bool,
}

fn run_pyarrow(args: &BenchLoaderArgs) -> Result<Option<serde_json::Value>> {
    let flags = [
        ("--data", args.data.clone()),
        ("--batch-size", args.batch_size.to_string()),
        ("--batches", args.batches.to_string()),
        ("--crop", args.crop_samples.to_string()),
        ("--workers", args.threads.to_string()),
    ];
    run_comparison(
        &args.python,
        &["pyarrow", "numpy"],
        args.pyarrow_script.as_deref(),
        "loader_pyarrow.py",
        &flags,
        &[],
    )
}

/// Runs `ecgfm bench loader`.
pub fn run(args: &BenchLoaderArgs) -> Result<()> {
    crate::embed::refuse_unknown_split(&args.split)?;
    let config = LoaderConfig {
        batch_size: args.batch_size,
        decode_threads: args.threads,
        crop_samples: args.crop_samples,
        split: args.split.clone(),
        world_size: args.world_size,
        mix_row_groups: args.mix_row_groups,
        mix_across_shards: args.mix_across_shards,
        ..LoaderConfig::default()
    };
    if let Some(warning) =
        crate::dataset_source::shared_row_groups_warning(&config, "--mix-row-groups")
    {
        say_err!("WARNING: {warning}");
    }
    let result = bench_loader(&args.data, config, args.batches)
        .with_context(|| format!("benchmarking the loader on {}", args.data))?;
    if result.crop_samples > result.window_samples {
        say_err!(
            "WARNING: --crop-samples {} is longer than the dataset's windows ({} samples): each \
             crop is padded with {} zero samples per lead, which the timing includes (training \
             warns of such a model.samples too)",
            result.crop_samples,
            result.window_samples,
            result.crop_samples - result.window_samples
        );
    }
    say!(
        "ecgfm   loader: {:.0} ECGs/s (batch {}, decode threads {}, 12 lead slots x {} samples; open {:.2} s, first batch {:.2} s)",
        result.ecgs_per_s,
        result.batch_size,
        result.threads,
        result.crop_samples,
        result.open_s,
        result.first_batch_s
    );
    let mut summary = json!({
        "ecgs_per_s": result.ecgs_per_s,
        "batch_size": result.batch_size,
        "threads": result.threads,
        "crop_samples": result.crop_samples,
        "world_size": args.world_size,
        "mix_row_groups": args.mix_row_groups,
        "mix_across_shards": args.mix_across_shards,
    });
    let pyarrow = match !args.no_pyarrow && args.world_size == 1 {
        true => run_pyarrow(args)?,
        false => None,
    };
    if let Some(py) = pyarrow {
        let py_rate = py["ecgs_per_s"]
            .as_f64()
            .context("pyarrow JSON has no ecgs_per_s")?;
        let processes = py["processes"]
            .as_u64()
            .context("pyarrow JSON has no processes")?;
        say!(
            "pyarrow loader: {py_rate:.0} ECGs/s (pyarrow + numpy, same shards and batch, {processes} decoding processes of 1 thread)"
        );
        let unequal = processes != result.threads as u64;
        if unequal {
            say_err!(
                "WARNING: ecgfm decoded on {} threads and pyarrow in {processes} processes: the \
                 ratio compares unequal parallelism",
                result.threads
            );
        }
        say!(
            "ratio (ecgfm {} threads vs pyarrow {processes} processes{}): ecgfm is {:.2}x the speed of pyarrow + numpy",
            result.threads,
            if unequal { ", UNEQUAL" } else { "" },
            result.ecgs_per_s / py_rate
        );
        summary["pyarrow_ecgs_per_s"] = json!(py_rate);
        summary["pyarrow_processes"] = json!(processes);
        summary["speedup_vs_pyarrow"] = json!(result.ecgs_per_s / py_rate);
    }
    say!("{summary}");
    Ok(())
}
