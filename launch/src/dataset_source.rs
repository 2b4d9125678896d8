//! The Parquet streaming loader of `ecgfm-data` as a training `BatchSource`
//! (`ecgfm pretrain --data URL`).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use ecgfm_data::loader::{Batch, Loader, LoaderConfig, LoaderState};
use ecgfm_data::store::redact_url;
use ecgfm_trainer::config::TrainConfig;
use ecgfm_trainer::data::{BatchSource, ReadFault, SourceError};
use ecgfm_trainer::model::HostBatch;

use crate::bad_config::RefusedConfig;

/// One rank's view of a dataset (single-process training is rank 0 of 1).
struct DatasetSource {
    url: String,
    loader: Loader,
    batch: Batch,
}

/// Opens the training split of the dataset named by `data.source` for the model's input
/// length, its sources weighted as `data.repeat` says, as rank `rank` of `world_size`.
pub fn open(config: &TrainConfig, rank: usize, world_size: usize) -> Result<Box<dyn BatchSource>> {
    if rank == 0 {
        if let Some(warning) = held_out_split_warning(&config.data.split) {
            tracing::warn!("{warning}");
        }
    }
    let split = Split {
        name: &config.data.split,
        seed: config.train.seed,
        repeat: &config.data.repeat,
    };
    let source = open_source(config, split, rank, world_size)?;
    if rank == 0 {
        let loader = source.loader.config();
        if let Some(warning) = shared_row_groups_warning(loader, "data.mix_row_groups") {
            tracing::warn!("{warning}");
        }
        let window = source.loader.window_samples();
        if let Some(warning) = padded_crop_warning(config.model.samples, window) {
            tracing::warn!("{warning}");
        }
    }
    Ok(Box::new(source))
}

/// A warning when the ranks fetch many of the same row groups
/// (`LoaderConfig::ranks_share_row_groups`); `mix` is the setting as the command spells it.
pub(crate) fn shared_row_groups_warning(config: &LoaderConfig, mix: &str) -> Option<String> {
    let parts = config.world_size * config.accum_steps;
    config.ranks_share_row_groups().then(|| {
        format!(
            "{mix} = {} is below the step's {parts} micro-batches ({} ranks x {} accumulated): \
             the ranks fetch many of the same row groups (8 ranks at batch 64 fetch 3.5 times \
             the data from windows of 4 row groups, 1.9 times from 16); set {mix} to {parts} or \
             more to fetch less, at the cost of the loader's memory (it grows with {mix})",
            config.mix_row_groups, config.world_size, config.accum_steps
        )
    })
}

/// A warning when the model's input is longer than the dataset's windows: every crop then ends
/// in zero padding, which the model learns to reconstruct as a flat line.
fn padded_crop_warning(crop: usize, window: usize) -> Option<String> {
    (crop > window).then(|| {
        format!(
            "model.samples {crop} is longer than the dataset's windows ({window} samples): every \
             crop ends in {} samples of zero padding ({:.0}% of the input), which the model \
             learns as a flat line; set model.samples to at most {window}, or ingest longer \
             windows (--window-s)",
            crop - window,
            100.0 * (crop - window) as f64 / crop as f64
        )
    })
}

/// A warning when pretraining reads a split that evaluation holds out: the encoder then sees the
/// windows `ecgfm eval` validates or tests on, and its results on this dataset overstate it.
fn held_out_split_warning(split: &str) -> Option<String> {
    matches!(split, "val" | "test").then(|| {
        format!(
            "pretraining on the {split:?} split: `ecgfm eval` on this dataset {} on these windows, \
             so its results would overstate the encoder (data.split = \"train\" keeps them out)",
            if split == "val" { "validates" } else { "tests" }
        )
    })
}

/// Which rows a source reads: a split, the seed of its order, and its sources' weights.
pub struct Split<'a> {
    pub name: &'a str,
    pub seed: u64,
    pub repeat: &'a BTreeMap<String, f64>,
}

/// Opens `split` of the dataset named by `data.source` as rank `rank` of `world_size`.
pub fn open_split(
    config: &TrainConfig,
    split: Split<'_>,
    rank: usize,
    world_size: usize,
) -> Result<Box<dyn BatchSource>> {
    Ok(Box::new(open_source(config, split, rank, world_size)?))
}

fn open_source(
    config: &TrainConfig,
    split: Split<'_>,
    rank: usize,
    world_size: usize,
) -> Result<DatasetSource> {
    let url = config.data.source.clone();
    let loader_config = LoaderConfig {
        seed: split.seed,
        batch_size: config.train.batch_size,
        rank,
        world_size,
        accum_steps: config.train.accum_steps,
        crop_samples: config.model.samples,
        split: split.name.to_string(),
        prefetch_batches: config.data.prefetch_batches,
        decode_threads: config.data.decode_threads,
        mix_row_groups: config.data.mix_row_groups,
        mix_across_shards: config.data.mix_across_shards,
        repeat: split.repeat.clone(),
    };
    let loader =
        Loader::open(&url, loader_config).with_context(|| format!("opening the dataset {url}"))?;
    Ok(DatasetSource {
        url,
        loader,
        batch: Batch::default(),
    })
}

impl BatchSource for DatasetSource {
    fn next_batch(&mut self, out: &mut HostBatch) -> Result<(), SourceError> {
        self.loader.next_batch(&mut self.batch)?;
        if self.batch.x.len() != out.x.len() || self.batch.lead_mask.len() != out.lead_mask.len() {
            return Err(format!(
                "loader batch holds {} values, the model expects {}",
                self.batch.x.len(),
                out.x.len()
            )
            .into());
        }
        // Swap rather than copy: the loader gets the model's previous buffers (same sizes) back
        // through its buffer pool on the next call, so no batch is copied or allocated.
        std::mem::swap(&mut out.x, &mut self.batch.x);
        std::mem::swap(&mut out.lead_mask, &mut self.batch.lead_mask);
        Ok(())
    }

    /// The address is saved without its secrets (see `store::redact_url`): a checkpoint never
    /// holds a signed URL's query string.
    fn state(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": "dataset",
            "url": redact_url(&self.url),
            "data_digest": self.loader.data_digest(),
            "loader": self.loader.state(),
            "micro_batches": MICRO_BATCHES,
        })
    }

    /// Moves to a checkpoint's position, after checking that this is the data the checkpoint
    /// read: the same digest, wherever the dataset is stored now (a run may resume on a copy of
    /// its dataset at another address, not on other data).
    fn restore(&mut self, state: &serde_json::Value) -> Result<(), SourceError> {
        if state["kind"] != "dataset" {
            return Err(format!("not a dataset-source state: {state}").into());
        }
        // Refused for its configuration (exit 78, as any other setting a resume may not change;
        // it exited 1 until 2026-12-06).
        let moved =
            same_data(state, &self.url, self.loader.data_digest()).map_err(RefusedConfig)?;
        if let Some(moved) = moved.filter(|_| self.loader.config().rank == 0) {
            tracing::info!("{moved}");
        }
        let config = self.loader.config();
        if state["micro_batches"] != MICRO_BATCHES && config.accum_steps > 1 && config.rank == 0 {
            tracing::warn!(
                "the checkpoint was written before 2026-12-06, when a run on a dataset loaded \
                 each accumulated micro-batch from samples of its own; from here on they are cut \
                 from the step's global batch as ranks cut it, so if this run accumulated before \
                 too, its steps after the resume match neither a run never stopped then nor one \
                 started now"
            );
        }
        let loader: LoaderState = serde_json::from_value(state["loader"].clone())?;
        self.loader.restore(&loader)?;
        Ok(())
    }

    /// `Damaged` for a shard failing its checksums (`DataError::Damaged` in the error's chain).
    fn fault(&self, error: &SourceError) -> ReadFault {
        crate::damaged_data::fault_of(error)
    }

    fn samples_per_epoch(&self) -> Option<u64> {
        Some(self.loader.samples_per_epoch())
    }

    fn describe(&self) -> String {
        let repeats: Vec<String> = self
            .loader
            .composition()
            .iter()
            .map(|share| {
                let mut said = format!("{} {} x{}", share.source, share.rows, share.repeat);
                if share.repeat.fract() != 0.0 {
                    said.push_str(&format!(" ({} per epoch)", share.reads));
                }
                said
            })
            .collect();
        let repeats = if repeats.is_empty() {
            String::new()
        } else {
            format!(": {}", repeats.join(", "))
        };
        format!(
            "dataset {} ({} windows per epoch in split {}{repeats})",
            redact_url(&self.url),
            self.loader.samples_per_epoch(),
            self.loader.config().split
        )
    }
}

/// How the checkpoints' loader cuts accumulated micro-batches: from the step's global batch, as
/// ranks are cut (`LoaderConfig::accum_steps`); absent in checkpoints of before 2026-12-06.
const MICRO_BATCHES: &str = "step";

/// Checks that the dataset at `url`, whose data digest is `digest`, holds the data a
/// checkpoint's source `state` read; returns the line to log when it moved (another address;
/// addresses are compared without their secrets, so a fresh signature of the same URL is not a
/// move). A checkpoint written before digests were kept resumes at its own address only.
fn same_data(state: &serde_json::Value, url: &str, digest: &str) -> Result<Option<String>, String> {
    let saved_url = state["url"].as_str().unwrap_or_default();
    let (now, then) = (redact_url(url), redact_url(saved_url));
    match state["data_digest"].as_str() {
        Some(saved) if saved != digest => Err(format!(
            "{now} holds other data than the checkpoint read from {then} (data digest {}, the \
             checkpoint's {}: other shards, or the same shards changed); resume on the dataset \
             the run trained on, or start a new run",
            short(digest),
            short(saved)
        )),
        None if then != now => Err(format!(
            "the checkpoint read {then} and records no data digest (written before ecgfm kept \
             one), so whether {now} holds the same data cannot be checked: resume on {then}"
        )),
        _ => Ok((then != now)
            .then(|| format!("the dataset moved from {then} to {now}: same data, resuming on it"))),
    }
}

/// The first 12 hex digits of a digest: enough to tell two datasets apart in a message.
fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_sharing_row_groups_are_warned_of_not_accumulation_alone() {
        let config = |world_size, accum_steps, mix_row_groups| LoaderConfig {
            world_size,
            accum_steps,
            mix_row_groups,
            ..LoaderConfig::default()
        };
        let warning = shared_row_groups_warning(&config(4, 2, 4), "data.mix_row_groups");
        let warning = warning.unwrap();
        assert!(
            warning.starts_with(
                "data.mix_row_groups = 4 is below the step's 8 micro-batches (4 ranks x 2 \
                 accumulated)"
            ),
            "{warning}"
        );
        assert!(
            warning.contains("set data.mix_row_groups to 8 or more"),
            "{warning}"
        );
        for quiet in [config(1, 8, 4), config(4, 2, 8), config(2, 1, 4)] {
            assert_eq!(shared_row_groups_warning(&quiet, "x"), None);
        }
    }

    #[test]
    fn a_crop_longer_than_the_windows_is_named_with_its_padding() {
        let warning = padded_crop_warning(3000, 2500).unwrap();
        assert!(
            warning
                .contains("model.samples 3000 is longer than the dataset's windows (2500 samples)"),
            "{warning}"
        );
        assert!(warning.contains("500 samples of zero padding (17% of the input)"));
        assert_eq!(padded_crop_warning(2500, 2500), None);
        assert_eq!(padded_crop_warning(2250, 2500), None);
    }

    #[test]
    fn a_checkpoint_resumes_on_its_data_wherever_it_is_and_an_old_one_only_where_it_was() {
        let state = |url: &str, digest: Option<&str>| {
            let mut state = serde_json::json!({ "kind": "dataset", "url": url });
            if let Some(digest) = digest {
                state["data_digest"] = digest.into();
            }
            state
        };
        let (a, b) = ("s3://bucket/ecg", "/data/ecg");
        assert_eq!(same_data(&state(a, Some("d1")), a, "d1"), Ok(None));
        let moved = same_data(&state(a, Some("d1")), b, "d1").unwrap().unwrap();
        assert!(
            moved.contains("moved from s3://bucket/ecg to /data/ecg"),
            "{moved}"
        );
        let other = same_data(&state(a, Some("d1")), a, "d2").unwrap_err();
        assert!(other.contains("holds other data"), "{other}");
        assert_eq!(same_data(&state(a, None), a, "d1"), Ok(None));
        let (signed, resigned) = ("https://h/ecg?sig=OLD", "https://h/ecg?sig=NEW");
        assert_eq!(
            same_data(&state(signed, Some("d1")), resigned, "d1"),
            Ok(None)
        );
        let saved = redact_url(signed);
        assert_eq!(
            same_data(&state(&saved, Some("d1")), resigned, "d1"),
            Ok(None)
        );
        let unknown = same_data(&state(a, None), b, "d1").unwrap_err();
        assert!(
            unknown.contains("cannot be checked: resume on s3://bucket/ecg"),
            "{unknown}"
        );
    }
}
