//! `ecgfm embed`: the pretrained encoder's features of every window of a dataset, one Parquet
//! row per window with its id (`ecgfm_data::embeddings`), for users who bring their own
//! classifier. The file's metadata names the checkpoint (folder, step, `weights_sha256`), what
//! it was pretrained on, and the dataset (its URL, credentials redacted) and split embedded. The
//! forward pass is docs/model.md's "Evaluation" encoder: every patch visible,
//! the window's centred crop, tokens pooled by `--pool`. The dataset is read a shard at a time
//! and the file written as it goes, so a split larger than memory embeds in bounded memory.

use crate::bad_config::RefusedConfig;
use crate::compute::{self, ComputeArgs, Device};
use crate::out_folder::prepare_out_file;
use crate::pretrain::thread_pool;
use crate::pretrained::{
    load_pretrained, rate_warning, shard_windows, CheckpointDataArgs, DatasetWindows,
};
use crate::pretraining_check;
use crate::progress::stream_bar;
use anyhow::{bail, Context, Result};
use clap::Args;
use ecgfm_data::embeddings::EmbeddingsWriter;
use ecgfm_data::store::redact_url;
use ecgfm_data::windows::ShardWindows;
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

/// Refuses a `--split` that names none of `ecgfm_trainer::config::SPLITS` as a setting (exit 78), before any data is
/// read (`bench loader` read the dataset first and said it had no rows there, exit 1, until
/// 2026-12-06).
pub(crate) fn refuse_unknown_split(split: &str) -> Result<()> {
    if ecgfm_trainer::config::SPLITS.contains(&split) {
        return Ok(());
    }
    Err(RefusedConfig(format!("unknown split {split} (train, val, test or all)")).into())
}

/// Refuses an `--out` whose extension names another format than the Parquet `embed` writes
/// (exit 78): `--out e.csv` wrote Parquet under that name until 2026-12-06.
fn refuse_other_format(out: &str) -> Result<()> {
    let path = out.split('?').next().unwrap_or(out);
    let name = path.rsplit('/').next().unwrap_or(path);
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !ext.eq_ignore_ascii_case("parquet") => {
            Err(RefusedConfig(format!(
                "--out {}: embed writes Parquet, not .{ext}; name the file .parquet (pyarrow, \
                 pandas or polars read it)",
                redact_url(out)
            ))
            .into())
        }
        _ => Ok(()),
    }
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
    crate::pretrained::refuse_folder_as_out_file(std::path::Path::new(&args.out))?;
    // Settings it cannot take are refused as such (exit 78), as eval's are.
    refuse_other_format(&args.out)?;
    refuse_unknown_split(&args.split)?;
    let pooling = Pooling::parse(&args.pool).map_err(|e| RefusedConfig(e.to_string()))?;
    let pool = thread_pool(args.compute.threads.unwrap_or(0))?;
    pool.install(|| embed(args, pooling))
}

fn embed(args: &EmbedArgs, pooling: Pooling) -> Result<EmbedSummary> {
    // The device first: `--device cuda` without a GPU fails before anything is read or written.
    let device = compute::open(&args.compute)?;
    // A local file: its folder is made (or a file in its way named) and a write there tried
    // before any work, and made folders go again (while empty) if the embedding fails.
    let _made = match args.out.contains("://") {
        false => Some(prepare_out_file(
            std::path::Path::new(&args.out),
            &format!("--out {}", args.out),
        )?),
        true => None,
    };
    let pretrained = load_pretrained(&args.source.run, args.source.step)?;
    let shards = shard_windows(&args.source.data, &args.split, &pretrained.config)?;
    let rate = shards.empty().sampling_rate;
    if let Some(warning) = rate_warning(&pretrained.config, &args.source.data, rate) {
        tracing::warn!("{warning}");
    }
    let head = HeadSpec {
        pooling,
        classes: 1,
        multi_label: false,
    };
    let model = &pretrained.config.model;
    say!("device: {}", device.describe());
    let work = EncoderWork::Forward;
    if let Some(note) = device.check_memory(model, head, args.batch_size, work)? {
        say!("GPU memory: {note}");
    }
    let dim = pooling.features(model);
    let pretraining = pretraining_check::describe(&pretrained);
    let metadata = vec![
        (
            "ecgfm_checkpoint".to_string(),
            pretrained.dir.display().to_string(),
        ),
        ("ecgfm_step".to_string(), pretrained.step.to_string()),
        (
            "ecgfm_weights_sha256".to_string(),
            pretrained.weights_sha256.clone(),
        ),
        ("ecgfm_data".to_string(), redact_url(&args.source.data)),
        ("ecgfm_split".to_string(), args.split.clone()),
        (
            "ecgfm_pretraining".to_string(),
            serde_json::to_string(&pretraining).context("serialising the pretraining data")?,
        ),
        ("ecgfm_pooling".to_string(), args.pool.clone()),
        ("ecgfm_device".to_string(), device.name()),
        (
            "ecgfm_precision".to_string(),
            device.precision().to_string(),
        ),
        (
            "ecgfm_model".to_string(),
            toml::to_string(model).context("serialising the model config")?,
        ),
    ];
    let out = &args.out;
    let shown = redact_url(out);
    let mut writer = EmbeddingsWriter::create(out, dim, &metadata)
        .with_context(|| format!("writing the embeddings to {shown}"))?;
    let job = Job {
        model,
        head,
        batch: args.batch_size,
        encoder: &pretrained.encoder,
        data: &args.source.data,
    };
    let windows = match device {
        Device::Cpu(be) => job.run(be, shards, &mut writer),
        Device::Cuda(be) => job.run(*be, shards, &mut writer),
    }?;
    if windows == 0 {
        // The unfinished file is never published.
        bail!(
            "{} has no window in split {:?}",
            redact_url(&args.source.data),
            args.split
        );
    }
    writer
        .finish()
        .with_context(|| format!("writing the embeddings to {shown}"))?;
    say!(
        "{windows} windows -> {dim}-dimensional embeddings (checkpoint step {}) written to {shown}",
        pretrained.step
    );
    Ok(EmbedSummary {
        windows,
        dim,
        step: pretrained.step,
    })
}

/// The features of every window, a shard at a time, on whichever backend the device gave.
struct Job<'a> {
    model: &'a ModelConfig,
    head: HeadSpec,
    batch: usize,
    encoder: &'a [f32],
    /// The dataset's URL, for errors.
    data: &'a str,
}

impl Job<'_> {
    /// Embeds every window of `shards` into `writer`; returns how many. Batches run across shard
    /// boundaries (a rolling buffer keeps the windows not yet embedded), so the batches, and the
    /// numbers, are those of one pass over the whole split.
    fn run<B: Backend>(
        &self,
        backend: B,
        mut shards: ShardWindows,
        writer: &mut EmbeddingsWriter,
    ) -> Result<usize> {
        let mut encoder =
            Encoder::forward_only(backend, self.model.clone(), self.head, self.batch)?;
        encoder.load_encoder(self.encoder)?;
        let total_shards = shards.shards();
        let bar = stream_bar("embed");
        let mut pending = DatasetWindows(shards.empty());
        let (mut written, mut read) = (0, 0);
        let reading = || format!("reading the windows of {}", self.data);
        while shards.append_next(&mut pending.0).with_context(reading)? {
            read += 1;
            let full = pending.0.len() / self.batch * self.batch;
            written += self.flush(&mut encoder, &mut pending, full, writer)?;
            bar.set_message(format!("shard {read}/{total_shards}"));
            bar.set_position(written as u64);
        }
        let rest = pending.0.len();
        written += self.flush(&mut encoder, &mut pending, rest, writer)?;
        bar.finish_and_clear();
        Ok(written)
    }

    /// Embeds the first `n` windows of `pending` into `writer` and forgets them.
    fn flush<B: Backend>(
        &self,
        encoder: &mut Encoder<B>,
        pending: &mut DatasetWindows,
        n: usize,
        writer: &mut EmbeddingsWriter,
    ) -> Result<usize> {
        if n == 0 {
            return Ok(0);
        }
        let all: Vec<usize> = (0..n).collect();
        let values = features(encoder, pending, &all, &mut |_| {})?;
        writer.write(&pending.0.windows[..n], &values)?;
        pending.0.drop_front(n);
        Ok(n)
    }
}
