//! `ecgfm embed`: the pretrained encoder's features of every window of a dataset, one Parquet
//! row per window with its id (`ecgfm_data::embeddings`), for users who bring their own
//! classifier. The forward pass is docs/model.md's "Evaluation" encoder: every patch visible,
//! the window's centred crop, tokens pooled by `--pool`.

use crate::compute::{self, Compute, ComputeArgs};
use crate::pretrain::thread_pool;
use crate::pretrained::{load_pretrained, read_windows, CheckpointDataArgs, DatasetWindows};
use crate::progress::window_bar;
use anyhow::{Context, Result};
use clap::Args;
use ecgfm_data::embeddings::write_embeddings;
use ecgfm_kernels::Backend;
use ecgfm_trainer::device_memory::EncoderWork;
use ecgfm_trainer::eval::batches::features;
use ecgfm_trainer::model::{Encoder, HeadSpec, Pooling};
use ecgfm_trainer::ModelConfig;

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
    #[command(flatten)]
    pub compute: ComputeArgs,
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
    let pool = thread_pool(args.compute.threads.unwrap_or(0))?;
    pool.install(|| embed(args, pooling))
}

fn embed(args: &EmbedArgs, pooling: Pooling) -> Result<EmbedSummary> {
    // The device first: `--device cuda` without a GPU fails before any data is read.
    let device = compute::open(&args.compute)?;
    let pretrained = load_pretrained(&args.source.run, args.source.step)?;
    let windows = read_windows(&args.source.data, &args.split, &pretrained.config)?;
    let head = HeadSpec {
        pooling,
        classes: 1,
        multi_label: false,
    };
    let model = &pretrained.config.model;
    println!("device: {}", device.describe());
    let work = EncoderWork::Forward;
    if let Some(note) = device.check_memory(model, head, args.batch_size, work)? {
        println!("GPU memory: {note}");
    }
    let job = Job {
        model,
        head,
        batch: args.batch_size,
        encoder: &pretrained.encoder,
        windows: &windows,
    };
    let (values, dim) = match device.compute {
        Compute::Cpu(be) => job.run(be),
        Compute::Cuda(be) => job.run(*be),
    }?;
    let all = windows.0.len();
    let metadata = vec![
        (
            "ecgfm_checkpoint".to_string(),
            pretrained.dir.display().to_string(),
        ),
        ("ecgfm_step".to_string(), pretrained.step.to_string()),
        ("ecgfm_pooling".to_string(), args.pool.clone()),
        ("ecgfm_device".to_string(), device.name),
        ("ecgfm_precision".to_string(), device.precision.to_string()),
        (
            "ecgfm_model".to_string(),
            toml::to_string(model).context("serialising the model config")?,
        ),
    ];
    write_embeddings(&args.out, &windows.0.windows, dim, &values, &metadata)
        .with_context(|| format!("writing the embeddings to {}", args.out))?;
    println!(
        "{all} windows -> {dim}-dimensional embeddings (checkpoint step {}) written to {}",
        pretrained.step, args.out
    );
    Ok(EmbedSummary {
        windows: all,
        dim,
        step: pretrained.step,
    })
}

/// The features of every window (and their width), on whichever backend the device gave.
struct Job<'a> {
    model: &'a ModelConfig,
    head: HeadSpec,
    batch: usize,
    encoder: &'a [f32],
    windows: &'a DatasetWindows,
}

impl Job<'_> {
    fn run<B: Backend>(&self, backend: B) -> Result<(Vec<f32>, usize)> {
        let mut encoder =
            Encoder::forward_only(backend, self.model.clone(), self.head, self.batch)?;
        encoder.load_encoder(self.encoder)?;
        let all: Vec<usize> = (0..self.windows.0.len()).collect();
        let bar = window_bar("embed", all.len() as u64);
        let values = features(&mut encoder, self.windows, &all, &mut |done| {
            bar.set_position(done as u64)
        })?;
        bar.finish_and_clear();
        Ok((values, encoder.features()))
    }
}
