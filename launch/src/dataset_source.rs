//! The Parquet streaming loader of `ecgfm-data` as a training `BatchSource`
//! (`ecgfm pretrain --data URL`).

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use ecgfm_data::loader::{Batch, Loader, LoaderConfig, LoaderState};
use ecgfm_data::store::redact_url;
use ecgfm_trainer::config::TrainConfig;
use ecgfm_trainer::data::{BatchSource, SourceError};
use ecgfm_trainer::model::HostBatch;

/// One rank's view of a dataset (single-process training is rank 0 of 1).
struct DatasetSource {
    url: String,
    loader: Loader,
    batch: Batch,
}

/// Opens the training split of the dataset named by `data.source` for the model's input
/// length, its sources weighted as `data.repeat` says, as rank `rank` of `world_size`.
pub fn open(config: &TrainConfig, rank: usize, world_size: usize) -> Result<Box<dyn BatchSource>> {
    let split = Split {
        name: &config.data.split,
        seed: config.train.seed,
        repeat: &config.data.repeat,
    };
    open_split(config, split, rank, world_size)
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
    let url = config.data.source.clone();
    if config.model.leads != 12 {
        bail!(
            "datasets hold 12-lead ECGs; model.leads is {}",
            config.model.leads
        );
    }
    let loader_config = LoaderConfig {
        seed: split.seed,
        batch_size: config.train.batch_size,
        rank,
        world_size,
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
    Ok(Box::new(DatasetSource {
        url,
        loader,
        batch: Batch::default(),
    }))
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

    fn state(&self) -> serde_json::Value {
        serde_json::json!({ "kind": "dataset", "url": self.url, "loader": self.loader.state() })
    }

    fn restore(&mut self, state: &serde_json::Value) -> Result<(), SourceError> {
        if state["kind"] != "dataset" {
            return Err(format!("not a dataset-source state: {state}").into());
        }
        let loader: LoaderState = serde_json::from_value(state["loader"].clone())?;
        self.loader.restore(&loader)?;
        Ok(())
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
