//! `ecgfm embed`: the pretrained encoder's features of every window of a dataset, one Parquet
//! row per window with its id (`ecgfm_data::embeddings`), for users who bring their own
//! classifier. The forward pass is docs/model.md's "Evaluation" encoder: every patch visible,
//! the window's centred crop, tokens pooled by `--pool`.

use crate::pretrain::thread_pool;
use crate::pretrained::{load_pretrained, read_windows, CheckpointDataArgs};
use crate::progress::window_bar;
use anyhow::{Context, Result};
use clap::Args;
use ecgfm_data::embeddings::write_embeddings;
use ecgfm_kernels::CpuBackend;
use ecgfm_trainer::eval::batches::features;
use ecgfm_trainer::model::{Encoder, HeadSpec, Pooling};

#[derive(Args, Debug, Clone)]
pub struct EmbedArgs {
    #[command(flatten)]
    pub source: CheckpointDataArgs,
    /// The Parquet file to write (a local path or object-store URL).
    #[arg(long, value_name = "FILE.parquet")]
    pub out: String,
    /// Split to embed: train, val, test or all.
    #[arg(long, default_value = "all")]
    pub split: String,
    /// Pooling: mean (D features) or leads (12 x D, per-lead means concatenated).
    #[arg(long, default_value = "mean")]
    pub pool: String,
    /// Windows per batch.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// What `ecgfm embed` wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedSummary {
    pub windows: usize,
    pub dim: usize,
    pub step: u64,
}

/// Runs `ecgfm embed`.
pub fn run(args: &EmbedArgs) -> Result<EmbedSummary> {
    let pooling = Pooling::parse(&args.pool)?;
    let pool = thread_pool(args.threads.unwrap_or(0))?;
    pool.install(|| embed(args, pooling))
}

fn embed(args: &EmbedArgs, pooling: Pooling) -> Result<EmbedSummary> {
    let pretrained = load_pretrained(&args.source.run, args.source.step)?;
    let windows = read_windows(&args.source.data, &args.split, &pretrained.config)?;
    let head = HeadSpec {
        pooling,
        classes: 1,
        multi_label: false,
    };
    let model = &pretrained.config.model;
    let mut encoder = Encoder::new(CpuBackend::new(), model.clone(), head, args.batch_size)?;
    encoder.load_encoder(&pretrained.encoder)?;
    let all: Vec<usize> = (0..windows.0.len()).collect();
    let bar = window_bar("embed", all.len() as u64);
    let values = features(&mut encoder, &windows, &all, &mut |done| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    let dim = encoder.features();
    let metadata = vec![
        (
            "ecgfm_checkpoint".to_string(),
            pretrained.dir.display().to_string(),
        ),
        ("ecgfm_step".to_string(), pretrained.step.to_string()),
        ("ecgfm_pooling".to_string(), args.pool.clone()),
        (
            "ecgfm_model".to_string(),
            toml::to_string(model).context("serialising the model config")?,
        ),
    ];
    write_embeddings(&args.out, &windows.0.windows, dim, &values, &metadata)
        .with_context(|| format!("writing the embeddings to {}", args.out))?;
    println!(
        "{} windows -> {dim}-dimensional embeddings (checkpoint step {}) written to {}",
        all.len(),
        pretrained.step,
        args.out
    );
    Ok(EmbedSummary {
        windows: all.len(),
        dim,
        step: pretrained.step,
    })
}
