//! What `ecgfm eval` and `ecgfm embed` start from: a run's checkpoint (its encoder tensors, read
//! by name, and the run's model configuration) and a dataset's windows in order, held in memory
//! or in a mapped scratch file as the evaluation's `WindowSource` (or read shard by shard:
//! `shard_windows`).

use crate::progress::shard_bar;
use crate::run_checkpoint::RunCheckpoint;
use anyhow::{bail, Context, Result};
use clap::Args;
use ecgfm_data::manifest::Manifest;
use ecgfm_data::store::redact_url;
use ecgfm_data::windows::held::{read_held, HeldSignal, Hold};
use ecgfm_data::windows::{ShardWindows, SplitWindows};
use ecgfm_trainer::config::TrainConfig;
use ecgfm_trainer::eval::WindowSource;
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
    /// SHA-256 of its weights file.
    pub weights_sha256: String,
    pub config: TrainConfig,
    /// The data digest of the dataset the run read, as its checkpoint recorded it (absent for
    /// the synthetic generator and in older checkpoints).
    pub data_digest: Option<String>,
    /// Samples of the synthetic generator's stream the run consumed (all ranks together), when
    /// it pretrained on the generator: samples 0 to this of the stream of `train.seed`.
    pub synth_consumed: Option<u64>,
    /// The encoder tensors (`ParamLayout::encoder` order: the checkpoint's first tensors).
    pub encoder: Vec<f32>,
}

/// Opens the checkpoint of `run` at `step` (the newest complete one when `None`), checked
/// against the run's `config.toml` tensor by tensor, and keeps its encoder.
pub fn load_pretrained(run: &Path, step: Option<u64>) -> Result<Pretrained> {
    let ckpt = RunCheckpoint::open(run, step)?;
    let encoder = ckpt.params[..ckpt.layout.encoder_params()].to_vec();
    Ok(Pretrained {
        dir: ckpt.dir,
        step: ckpt.state.step,
        weights_sha256: ckpt.weights_sha256,
        data_digest: ckpt.state.data["data_digest"].as_str().map(str::to_string),
        synth_consumed: (ckpt.state.data["kind"] == "synth")
            .then(|| ckpt.state.data["consumed"].as_u64())
            .flatten(),
        config: ckpt.config,
        encoder,
    })
}

/// A dataset's windows as the evaluation reads them.
pub struct DatasetWindows<S = Vec<i16>>(pub SplitWindows<S>);

impl<S: AsRef<[i16]> + Sync> WindowSource for DatasetWindows<S> {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn fill(&self, i: usize, x: &mut [f32], lead_mask: &mut [u8]) {
        self.0.fill(i, x);
        lead_mask.copy_from_slice(self.0.lead_mask(i));
    }
}

/// Reads every window of `split` of the dataset at `url`, cropped to the model's input length,
/// its stored values kept where `hold` says (given the bytes they take at most; it returns where
/// and a line saying why).
pub fn read_windows(
    url: &str,
    split: &str,
    config: &TrainConfig,
    hold: impl FnOnce(u64) -> (Hold, String),
) -> Result<DatasetWindows<HeldSignal>> {
    let mut shards = shard_windows(url, split, config)?;
    let (hold, line) = hold(shards.signal_bytes());
    say!("{line}");
    let bar = shard_bar("reading windows", shards.shards() as u64);
    let windows = read_held(&mut shards, &hold, &mut || bar.inc(1))
        .with_context(|| format!("reading the windows of {url}"))?;
    bar.finish_and_clear();
    if windows.is_empty() {
        bail!("{url} has no window in split {split:?}");
    }
    Ok(DatasetWindows(windows))
}

/// The windows of `split` of the dataset at `url` shard by shard, cropped to the model's input
/// length: for passes over datasets larger than memory.
pub fn shard_windows(url: &str, split: &str, config: &TrainConfig) -> Result<ShardWindows> {
    let shards = ShardWindows::open(url, &[], split, config.model.samples)
        .with_context(|| format!("opening the dataset {url}"))?;
    warn_if_padded(url, &shards.empty());
    Ok(shards)
}

/// Fails when `--out`, the file `eval` or `embed` writes, is an existing folder: before the work,
/// not when the file is written at its end.
pub fn refuse_folder_as_out_file(out: &Path) -> Result<()> {
    if out.is_dir() {
        bail!(
            "--out {} is a folder: give the file to write in it (e.g. {})",
            out.display(),
            out.join("result").display()
        );
    }
    Ok(())
}

/// The sampling rate a run pretrained at: its dataset's (`manifest`), or the synthetic
/// generator's (`None`).
pub fn pretraining_rate(manifest: Option<&Manifest>) -> f32 {
    manifest.map_or(ecgfm_synth::SynthConfig::default().sampling_rate, |m| {
        m.sampling_rate
    })
}

/// A warning when a dataset's sampling rate differs from the one the encoder was pretrained at:
/// its windows then span another length of time per patch than the encoder learned. The
/// pretraining rate is the synthetic generator's, or the training dataset's where its manifest
/// still opens at the run's saved address (no warning where it does not).
pub fn rate_warning(config: &TrainConfig, url: &str, rate: f32) -> Option<String> {
    let manifest = if config.data.source == "synth" {
        None
    } else {
        let (store, root) = ecgfm_data::store::open_url(&config.data.source).ok()?;
        Some(Manifest::load(store.as_ref(), &root).ok()?)
    };
    let trained = pretraining_rate(manifest.as_ref());
    (trained != rate).then(|| {
        format!(
            "{} holds windows sampled at {rate} Hz; the encoder was pretrained at {trained} Hz, \
             so each patch spans another stretch of time than it learned (ingest the data with \
             --rate {trained})",
            redact_url(url)
        )
    })
}

fn warn_if_padded(url: &str, windows: &SplitWindows) {
    if windows.window_samples < windows.samples {
        tracing::warn!(
            "{} holds windows of {} samples per lead; the model takes {}: each window is \
             zero-padded at its end",
            redact_url(url),
            windows.window_samples,
            windows.samples
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_at_another_rate_than_pretraining_earns_a_warning() {
        let mut config = TrainConfig::default_config();
        assert_eq!(rate_warning(&config, "ds", 250.0), None);
        let warning = rate_warning(&config, "ds", 500.0).unwrap();
        assert!(
            warning.starts_with("ds holds windows sampled at 500 Hz")
                && warning.contains("pretrained at 250 Hz"),
            "{warning}"
        );
        // A training dataset that no longer opens: nothing to compare with, no warning.
        config.data.source = "/no/such/dataset".into();
        assert_eq!(rate_warning(&config, "ds", 500.0), None);
    }

    /// The warning names the dataset without the secrets of its address (a SAS token, a key).
    #[test]
    fn the_rate_warning_names_the_data_redacted() {
        let config = TrainConfig::default_config();
        let url = "https://acct.blob.core.windows.net/ecg/ds?sv=1&sig=SECRET7";
        let warning = rate_warning(&config, url, 500.0).unwrap();
        assert!(
            warning.starts_with("https://acct.blob.core.windows.net/ecg/ds?*** holds windows")
                && !warning.contains("SECRET7"),
            "{warning}"
        );
    }
}
