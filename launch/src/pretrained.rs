//! What `ecgfm eval` and `ecgfm embed` start from: a run's checkpoint (its encoder tensors, read
//! by name, and the run's model configuration) and a dataset's windows in order, held in memory
//! as the evaluation's `WindowSource`.

use anyhow::{bail, Context, Result};
use clap::Args;
use ecgfm_data::windows::{read_split_windows, SplitWindows};
use ecgfm_trainer::checkpoint;
use ecgfm_trainer::config::{read_toml_file, TrainConfig};
use ecgfm_trainer::eval::WindowSource;
use ecgfm_trainer::ParamLayout;
use std::path::{Path, PathBuf};

/// The flags naming the checkpoint and the dataset (`ecgfm eval`, `ecgfm embed`).
#[derive(Args, Debug, Clone)]
pub struct CheckpointDataArgs {
    /// Run directory of `ecgfm pretrain` (its config.toml and checkpoints).
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// Checkpoint step (default: the newest complete checkpoint).
    #[arg(long, value_name = "N")]
    pub step: Option<u64>,
    /// Dataset URL (written by `ecgfm data ingest` or `ecgfm data synth`).
    #[arg(long, value_name = "URL")]
    pub data: String,
}

/// A checkpoint's encoder and the configuration of its run.
pub struct Pretrained {
    /// The checkpoint folder.
    pub dir: PathBuf,
    pub step: u64,
    pub config: TrainConfig,
    /// The encoder tensors, `ParamLayout::encoder` order.
    pub encoder: Vec<f32>,
}

/// Opens the checkpoint of `run` at `step` (the newest complete one when `None`) and reads its
/// encoder tensors by name against the run's `config.toml`.
pub fn load_pretrained(run: &Path, step: Option<u64>) -> Result<Pretrained> {
    let config_path = run.join("config.toml");
    let config = read_toml_file(&config_path)
        .and_then(TrainConfig::from_table)
        .with_context(|| format!("reading the run's configuration {}", config_path.display()))?;
    let dir = match step {
        Some(step) => {
            let dir = checkpoint::checkpoint_dir(run, step);
            if !dir.join("COMPLETE").is_file() {
                bail!(
                    "{} has no complete checkpoint at step {step} (looked for {})",
                    run.display(),
                    dir.display()
                );
            }
            dir
        }
        None => checkpoint::latest_complete(run)?
            .with_context(|| format!("{} has no complete checkpoint", run.display()))?,
    };
    let step = dir
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("step_"))
        .and_then(|s| s.parse::<u64>().ok())
        .with_context(|| format!("{} is not named step_NNNNNNNN", dir.display()))?;
    let layout = ParamLayout::encoder(&config.model);
    let encoder = checkpoint::load_params(&dir, &layout).with_context(|| {
        format!(
            "the checkpoint {} does not match the model of {} (preset {}, dim {}, depth {}, \
             patch {})",
            dir.display(),
            config_path.display(),
            config.preset,
            config.model.dim,
            config.model.depth,
            config.model.patch
        )
    })?;
    Ok(Pretrained {
        dir,
        step,
        config,
        encoder,
    })
}

/// A dataset's windows as the evaluation reads them.
pub struct DatasetWindows(pub SplitWindows);

impl WindowSource for DatasetWindows {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn fill(&self, i: usize, x: &mut [f32], lead_mask: &mut [u8]) {
        self.0.fill(i, x);
        lead_mask.copy_from_slice(self.0.lead_mask(i));
    }
}

/// Reads every window of `split` of the dataset at `url`, cropped to the model's input length.
pub fn read_windows(url: &str, split: &str, config: &TrainConfig) -> Result<DatasetWindows> {
    if config.model.leads != 12 {
        bail!(
            "datasets hold 12-lead ECGs; the run's model.leads is {}",
            config.model.leads
        );
    }
    let windows = read_split_windows(url, &[], split, config.model.samples)
        .with_context(|| format!("reading the windows of {url}"))?;
    if windows.is_empty() {
        bail!("{url} has no window in split {split:?}");
    }
    if windows.window_samples < windows.samples {
        tracing::warn!(
            "{url} holds windows of {} samples per lead; the model takes {}: each window is \
             zero-padded at its end",
            windows.window_samples,
            windows.samples
        );
    }
    Ok(DatasetWindows(windows))
}
