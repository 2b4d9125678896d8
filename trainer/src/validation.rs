//! Validation loss during pretraining: the masked reconstruction loss on held-out ECGs with
//! fixed, seeded masks, every `train.val_every` steps and at the end of the run (the scaling
//! fits need a held-out loss, not the noisy training loss).
//!
//! The held-out set is `train.val_batches` batches drawn once when the run starts: from the
//! dataset's `val` split, or for the synthetic source from a disjoint index range of the
//! generator (`synthetic_held_out`). Its data and masks do not depend on the run's seed, so
//! every run of a sweep is measured on the same ECGs with the same masks, and a resumed run
//! measures exactly what an uninterrupted one would. A dataset of several sources (a merge) can
//! add one such set per source (`add_source`), measured beside the whole one, so a run that
//! mixes or repeats sources sees how each fares.

use std::collections::BTreeMap;

use crate::config::TrainConfig;
use crate::data::{BatchSource, SourceError, SyntheticSource};
use crate::mask::MaskSampler;
use crate::model::Mae;
use crate::{HostBatch, ModelError};
use ecgfm_kernels::Backend;

/// Seed of the held-out synthetic ECGs (any run seed trains on other indices, see below).
const HELD_OUT_SEED: u64 = 0x0E_CF_3A_11;
/// The synthetic held-out stream starts here; training streams start at 0 and would need
/// 2^62 samples to reach it.
const HELD_OUT_START: u64 = 1 << 62;
/// Seed of the validation masks.
const MASK_SEED: u64 = 0x7A11_DA7E;

/// The synthetic generator's held-out stream for `config`'s model.
pub fn synthetic_held_out(config: &TrainConfig) -> Result<SyntheticSource, SourceError> {
    let mut source = SyntheticSource::new(
        &config.model,
        HELD_OUT_SEED,
        config.data.synth_single_lead_fraction,
    );
    source.restore(&serde_json::json!({ "kind": "synth", "consumed": HELD_OUT_START }))?;
    Ok(source)
}

/// A fixed validation set and when to measure it.
pub struct Validator {
    batches: Vec<HostBatch>,
    /// Each source's own set, by source name.
    by_source: Vec<(String, Vec<HostBatch>)>,
    every: u64,
    description: String,
}

/// The validation losses of one measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct ValLosses {
    /// On the whole validation set.
    pub whole: f32,
    /// On each source's set (empty unless sources were added).
    pub by_source: BTreeMap<String, f32>,
}

/// `train.val_batches` batches of `train.batch_size` from `source`, their masks fixed.
fn draw(config: &TrainConfig, source: &mut dyn BatchSource) -> Result<Vec<HostBatch>, SourceError> {
    let sampler = MaskSampler::new(&config.model);
    let mut batches = Vec::with_capacity(config.train.val_batches);
    for index in 0..config.train.val_batches {
        let mut batch = HostBatch::new(&config.model, config.train.batch_size);
        source.next_batch(&mut batch)?;
        sampler.fill(MASK_SEED, u64::MAX, index as u64, &mut batch);
        batches.push(batch);
    }
    Ok(batches)
}

/// The mean of `batches`' masked reconstruction losses at the model's current weights.
fn mean_loss<B: Backend>(batches: &[HostBatch], model: &mut Mae<B>) -> Result<f32, ModelError> {
    let mut sum = 0.0f64;
    for batch in batches {
        sum += model.forward_loss(batch)? as f64;
    }
    Ok((sum / batches.len().max(1) as f64) as f32)
}

impl Validator {
    /// Draws `train.val_batches` batches of `train.batch_size` from `source` and fixes their
    /// masks.
    pub fn new(
        config: &TrainConfig,
        mut source: Box<dyn BatchSource>,
    ) -> Result<Validator, SourceError> {
        let batches = draw(config, source.as_mut())?;
        Ok(Validator {
            description: format!(
                "{} batches x {} from {}",
                batches.len(),
                config.train.batch_size,
                source.describe()
            ),
            batches,
            by_source: Vec::new(),
            every: config.train.val_every,
        })
    }

    /// Adds the validation set of source `name`, drawn like the whole one from `source` (its
    /// rows only), measured beside it.
    pub fn add_source(
        &mut self,
        config: &TrainConfig,
        name: &str,
        mut source: Box<dyn BatchSource>,
    ) -> Result<(), SourceError> {
        let batches = draw(config, source.as_mut())?;
        self.by_source.push((name.to_string(), batches));
        Ok(())
    }

    /// Whether to measure after `done` of `total` steps: every `val_every` steps (0: never
    /// before the end) and at the end.
    pub fn due(&self, done: u64, total: u64) -> bool {
        done == total || (self.every > 0 && done.is_multiple_of(self.every))
    }

    /// The mean of the batches' masked reconstruction losses at the model's current weights,
    /// on the whole set and on each source's.
    pub fn losses<B: Backend>(&self, model: &mut Mae<B>) -> Result<ValLosses, ModelError> {
        let whole = mean_loss(&self.batches, model)?;
        let mut by_source = BTreeMap::new();
        for (name, batches) in &self.by_source {
            by_source.insert(name.clone(), mean_loss(batches, model)?);
        }
        Ok(ValLosses { whole, by_source })
    }

    /// One line for logs: what the validation set is.
    pub fn describe(&self) -> String {
        if self.by_source.is_empty() {
            return self.description.clone();
        }
        let names: Vec<&str> = self.by_source.iter().map(|(n, _)| n.as_str()).collect();
        format!(
            "{}; and as many of each source's: {}",
            self.description,
            names.join(", ")
        )
    }
}
