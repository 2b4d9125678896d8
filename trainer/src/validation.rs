//! Validation loss during pretraining: the masked reconstruction loss on held-out ECGs with
//! fixed, seeded masks, every `train.val_every` steps and at the end of the run (the scaling
//! fits need a held-out loss, not the noisy training loss).
//!
//! The held-out set is `train.val_batches` batches of the run's first batch size, drawn once when
//! the run starts: from the dataset's `val` split, or for the synthetic source from a disjoint
//! index range of the generator (`synthetic_held_out`). Sample i of the set has the mask the
//! training masks give sample i of a step (`MaskSampler::fill`, under a seed of its own). Its data
//! and masks do not depend on the run's seed, so every run of a sweep is measured on the same
//! ECGs with the same masks. The loss is the mean over every masked patch of the set, measured in
//! pieces of at most the current micro-batch, so a run resumed with another batch geometry
//! measures the same set to rounding, and with the same geometry the same bits. A dataset of
//! several sources (a merge) can
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
    /// The set, in pieces of at most the model's batch.
    pieces: Vec<HostBatch>,
    /// Samples per validation batch (the run's first `train.batch_size`).
    batch: usize,
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

/// `train.val_batches` batches of `batch` samples from `source` (which gives batches of that
/// size), their masks fixed, cut into pieces of at most `train.batch_size` (the model's batch).
fn draw(
    config: &TrainConfig,
    batch: usize,
    source: &mut dyn BatchSource,
) -> Result<Vec<HostBatch>, SourceError> {
    let sampler = MaskSampler::new(&config.model);
    let mut pieces = Vec::new();
    for index in 0..config.train.val_batches {
        let mut host = HostBatch::new(&config.model, batch);
        source.next_batch(&mut host)?;
        sampler.fill(MASK_SEED, u64::MAX, (index * batch) as u64, &mut host);
        pieces.extend(host.split(config.train.batch_size.max(1)));
    }
    Ok(pieces)
}

/// The masked reconstruction loss over every masked patch of `pieces` at the model's current
/// weights: each piece's mean weighted by its count of masked patches.
fn mean_loss<B: Backend>(pieces: &[HostBatch], model: &mut Mae<B>) -> Result<f32, ModelError> {
    let (mut sum, mut masked) = (0.0f64, 0u64);
    for piece in pieces {
        let count = piece.patch_mask.iter().filter(|&&m| m == 1).count() as u64;
        sum += model.forward_loss(piece)? as f64 * count as f64;
        masked += count;
    }
    Ok((sum / masked.max(1) as f64) as f32)
}

impl Validator {
    /// Draws `train.val_batches` batches of `batch` samples from `source` (opened to give
    /// batches of that size) and fixes their masks. `batch` is the run's first batch size
    /// (`Trainer::validation_batch`), so a resumed run measures the set its start measured.
    pub fn new(
        config: &TrainConfig,
        batch: usize,
        mut source: Box<dyn BatchSource>,
    ) -> Result<Validator, SourceError> {
        let pieces = draw(config, batch, source.as_mut())?;
        let by = match pieces.first().map(|p| p.batch) {
            Some(piece) if piece < batch => format!(" (measured {piece} at a time)"),
            _ => String::new(),
        };
        Ok(Validator {
            description: format!(
                "{} batches x {batch}{by} from {}",
                config.train.val_batches,
                source.describe()
            ),
            pieces,
            batch,
            by_source: Vec::new(),
            every: config.train.val_every,
        })
    }

    /// Adds the validation set of source `name`, drawn like the whole one from `source` (its
    /// rows only, in batches of the whole set's size), measured beside it.
    pub fn add_source(
        &mut self,
        config: &TrainConfig,
        name: &str,
        mut source: Box<dyn BatchSource>,
    ) -> Result<(), SourceError> {
        let pieces = draw(config, self.batch, source.as_mut())?;
        self.by_source.push((name.to_string(), pieces));
        Ok(())
    }

    /// Whether to measure after `done` of `total` steps: every `val_every` steps (0: never
    /// before the end) and at the end.
    pub fn due(&self, done: u64, total: u64) -> bool {
        done == total || (self.every > 0 && done.is_multiple_of(self.every))
    }

    /// The masked reconstruction loss over every masked patch of the set at the model's current
    /// weights, and over each source's set.
    pub fn losses<B: Backend>(&self, model: &mut Mae<B>) -> Result<ValLosses, ModelError> {
        let whole = mean_loss(&self.pieces, model)?;
        let mut by_source = BTreeMap::new();
        for (name, pieces) in &self.by_source {
            by_source.insert(name.clone(), mean_loss(pieces, model)?);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(batch_size: usize) -> TrainConfig {
        let mut config = TrainConfig::default_config();
        config.train.batch_size = batch_size;
        config.train.val_batches = 3;
        config
    }

    /// Each sample's masks over all leads, in order.
    fn masks(pieces: &[HostBatch], per_sample: usize) -> Vec<Vec<u8>> {
        let all: Vec<u8> = pieces.iter().flat_map(|p| p.patch_mask.clone()).collect();
        all.chunks(per_sample).map(<[u8]>::to_vec).collect()
    }

    #[test]
    fn every_sample_has_its_own_mask_and_any_piece_size_draws_the_same_set() {
        let whole = config(4);
        let pieces = draw(&whole, 4, &mut synthetic_held_out(&whole).unwrap()).unwrap();
        assert_eq!(
            pieces.iter().map(|p| p.batch).collect::<Vec<_>>(),
            [4, 4, 4]
        );
        let per_sample = whole.model.leads * whole.model.patches_per_lead();
        let drawn = masks(&pieces, per_sample);
        for (i, a) in drawn.iter().enumerate() {
            for b in &drawn[i + 1..] {
                assert_ne!(a, b, "two samples of the validation set share their masks");
            }
        }
        // Resumed with micro-batches of 3: the same 12 samples and masks, each batch of 4 in
        // pieces of 3 and 1.
        let smaller = config(3);
        let split = draw(&smaller, 4, &mut synthetic_held_out(&smaller).unwrap()).unwrap();
        let sizes: Vec<usize> = split.iter().map(|p| p.batch).collect();
        assert_eq!(sizes, [3, 1, 3, 1, 3, 1]);
        assert_eq!(masks(&split, per_sample), drawn);
        let signals = |p: &[HostBatch]| p.iter().flat_map(|b| b.x.clone()).collect::<Vec<f32>>();
        assert_eq!(signals(&split), signals(&pieces));
    }
}
