//! `ecgfm validate`: a checkpoint's masked-reconstruction validation loss, measured again without
//! training, on the run's validation set or a larger one (`--windows N`, `--windows all`: the
//! whole `val` split), on its dataset or another (`--data`). The set is the one pretraining
//! measures (`ecgfm_trainer::validation`: the first windows of the split in a fixed order, fixed
//! masks), so with the run's own settings it gives the run's last logged validation loss bit for
//! bit on the CPU; on a larger set it compares runs whose sweeps measured few windows without
//! touching their weights (a resume of one step did that before, moving them by a step).
//! The set is read and measured a piece at a time (`validation::SetReader`), so a split larger
//! than memory is measured in the memory of one piece.

use crate::bad_config::RefusedConfig;
use crate::compute::{self, ComputeArgs, Device};
use crate::damaged_data::name_damaged_dataset;
use crate::pretrain::{open_validation_sources, thread_pool, ValidationSources};
use crate::pretrained::rate_warning;
use crate::progress::window_bar;
use crate::run_checkpoint::RunCheckpoint;
use anyhow::{Context, Result};
use clap::Args;
use ecgfm_data::manifest::Manifest;
use ecgfm_data::store::redact_url;
use ecgfm_kernels::Backend;
use ecgfm_trainer::config::TrainConfig;
use ecgfm_trainer::model::{Mae, MaeMemory, Recompute};
use ecgfm_trainer::validation::{self, LossMean, SetReader, VALIDATION_VERSION};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct ValidateArgs {
    /// Run directory of `ecgfm pretrain` (its config.toml and checkpoints).
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// Checkpoint step (default: the newest complete checkpoint).
    #[arg(long, value_name = "N")]
    pub step: Option<u64>,
    /// Dataset URL whose `val` split to measure (default: the one the run pretrained on).
    #[arg(long, value_name = "URL")]
    pub data: Option<String>,
    /// Windows of the validation set: a count, or `all` for the whole `val` split (default: the
    /// run's `train.val_windows`).
    #[arg(long, value_name = "N|all")]
    pub windows: Option<String>,
    /// Print the result as one JSON object instead of a sentence.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub compute: ComputeArgs,
}

/// What `ecgfm validate` measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Validation {
    /// The checkpoint folder and its step.
    pub checkpoint: String,
    pub step: u64,
    pub weights_sha256: String,
    /// The dataset (credentials redacted), or `synth`.
    pub data: String,
    /// Windows measured: `train.val_windows` (`--windows`), or the split's when it has fewer.
    pub windows: usize,
    /// What the set is, as pretraining logs it.
    pub set: String,
    /// `ecgfm_trainer::validation::VALIDATION_VERSION`.
    pub validation_version: u32,
    pub val_loss: f32,
    /// Each source's own set's loss, where the run measured them (`train.val_by_source`).
    pub val_loss_by_source: BTreeMap<String, f32>,
    pub device: String,
    pub precision: String,
}

/// `--windows`: a positive count or `all` (the whole split: as many as it has).
fn parse_windows(text: &str, synthetic: bool) -> Result<usize> {
    if text == "all" {
        if synthetic {
            return Err(RefusedConfig(
                "--windows all: the synthetic generator's held-out stream has no end; give a \
                 count"
                    .into(),
            )
            .into());
        }
        return Ok(usize::MAX);
    }
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(RefusedConfig(format!(
            "--windows {text}: give a positive number of windows or `all`"
        ))
        .into()),
    }
}

/// Warns where dataset `url` (`--data`) was sampled at another rate than the run pretrained at:
/// its windows then span another stretch of time per patch than the model learned.
fn warn_of_another_rate(trained: &TrainConfig, url: &str) -> Result<()> {
    if url == "synth" {
        return Ok(());
    }
    let (store, root) = ecgfm_data::store::open_url(url)?;
    let manifest = Manifest::load(store.as_ref(), &root)
        .with_context(|| format!("reading the manifest of {}", redact_url(url)))?;
    if let Some(warning) = rate_warning(trained, url, manifest.sampling_rate) {
        tracing::warn!("{warning}");
    }
    Ok(())
}

/// Runs `ecgfm validate`.
pub fn run(args: &ValidateArgs) -> Result<Validation> {
    let pool = thread_pool(args.compute.threads.unwrap_or(0))?;
    let validation = pool.install(|| measure(args))?;
    if args.json {
        say!("{}", serde_json::to_string(&validation)?);
    } else {
        say!(
            "validation loss {:.4} at step {} of {}: {}",
            validation.val_loss,
            validation.step,
            args.run.display(),
            validation.set
        );
        for (source, loss) in &validation.val_loss_by_source {
            say!("  source {source}: {loss:.4}");
        }
    }
    Ok(validation)
}

fn measure(args: &ValidateArgs) -> Result<Validation> {
    // The device first: `--device cuda` without a GPU fails before anything is read.
    let device = compute::open(&args.compute)?;
    let ckpt = RunCheckpoint::open(&args.run, args.step)?;
    let mut config = ckpt.config.clone();
    if let Some(data) = &args.data {
        warn_of_another_rate(&ckpt.config, data)?;
        config.data.source = data.clone();
    }
    if let Some(windows) = &args.windows {
        config.train.val_windows = parse_windows(windows, config.data.source == "synth")?;
    }
    if config.train.val_windows == 0 {
        return Err(RefusedConfig(format!(
            "{} measured no validation loss (train.val_windows = 0): give --windows N or \
             --windows all",
            args.run.display()
        ))
        .into());
    }
    let shown = redact_url(&config.data.source);
    let sources = open_validation_sources(&config)?
        .with_context(|| format!("{shown} has no validation split to measure"))?;
    let (name, precision) = (device.name(), device.precision().to_string());
    let job = Job {
        config: &config,
        params: &ckpt.params,
    };
    let measured = match device {
        Device::Cpu(be) => job.run(be, sources),
        Device::Cuda(be) => job.run(*be, sources),
    }?;
    Ok(Validation {
        checkpoint: ckpt.dir.display().to_string(),
        step: ckpt.state.step,
        weights_sha256: ckpt.weights_sha256,
        data: shown,
        windows: measured.windows,
        set: measured.set,
        validation_version: VALIDATION_VERSION,
        val_loss: measured.whole,
        val_loss_by_source: measured.by_source,
        device: name,
        precision,
    })
}

/// The losses of the checkpoint's weights on the sets, each read and measured a piece at a time.
struct Job<'a> {
    config: &'a TrainConfig,
    params: &'a [f32],
}

/// What a job measured.
struct Measured {
    windows: usize,
    whole: f32,
    by_source: BTreeMap<String, f32>,
    set: String,
}

impl Job<'_> {
    fn run<B: Backend>(&self, backend: B, sources: ValidationSources) -> Result<Measured> {
        let cfg = &self.config.model;
        // Forward passes only: no optimizer state, and each block's input alone kept (the
        // losses are the same bits whatever is kept).
        let memory = MaeMemory {
            recompute: Recompute::Blocks,
            optimizer_shard: Some(0..0),
        };
        let batch = self.config.train.batch_size;
        let mut model = Mae::with_memory(backend, cfg.clone(), batch, memory)?;
        model.load_params(self.params)?;
        let mut reader = SetReader::new(self.config, sources.whole);
        let (whole_set, windows) = (reader.describe(), reader.windows());
        let whole = self.measure(&mut reader, &mut model, "validate")?;
        let mut by_source = BTreeMap::new();
        for (name, source) in sources.by_source {
            let mut reader = SetReader::new(self.config, source);
            by_source.insert(name.clone(), self.measure(&mut reader, &mut model, &name)?);
        }
        let names: Vec<&str> = by_source.keys().map(String::as_str).collect();
        let set = validation::describe_with_sources(&whole_set, &names);
        Ok(Measured {
            windows,
            whole,
            by_source,
            set,
        })
    }

    /// The loss over the set `reader` reads, in the memory of one piece.
    fn measure<B: Backend>(
        &self,
        reader: &mut SetReader,
        model: &mut Mae<B>,
        what: &str,
    ) -> Result<f32> {
        let bar = window_bar(what, reader.windows() as u64);
        let mut mean = LossMean::default();
        let url = &self.config.data.source;
        let read = |reader: &mut SetReader| {
            reader
                .next_piece()
                .map_err(anyhow::Error::from_boxed)
                .with_context(|| format!("reading the validation set of {}", redact_url(url)))
                .map_err(|err| name_damaged_dataset(err, url))
        };
        while let Some(piece) = read(reader)? {
            mean.add(&piece, model)?;
            bar.inc(piece.batch as u64);
        }
        bar.finish_and_clear();
        Ok(mean.value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_a_positive_count_or_all() {
        assert_eq!(parse_windows("256", false).unwrap(), 256);
        assert_eq!(parse_windows("all", false).unwrap(), usize::MAX);
        for bad in ["0", "-3", "many", ""] {
            let err = parse_windows(bad, false).unwrap_err();
            assert!(crate::bad_config::is_bad_config(&err), "{bad}");
            assert!(err.to_string().contains("positive number"), "{err}");
        }
        let err = parse_windows("all", true).unwrap_err();
        assert!(err.to_string().contains("has no end"), "{err}");
    }
}
