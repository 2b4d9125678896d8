//! Validation loss during pretraining: the masked reconstruction loss on held-out ECGs with
//! fixed, seeded masks, every `train.val_every` steps and at the end of the run (the scaling
//! fits need a held-out loss, not the noisy training loss).
//!
//! The held-out set is a function of the data and `train.val_windows` alone: the first
//! `val_windows` windows (all of them, when there are fewer; never one twice) of the dataset's
//! `val` split read in a fixed order whatever the run's own data settings (the caller opens it
//! so), or for the synthetic source of a disjoint index range of the generator
//! (`synthetic_held_out`). Window i of the set has the mask the training masks give sample i of
//! a step (`MaskSampler::fill`, under a seed of its own). Neither depends on the run's seed,
//! batch geometry or loader settings, so runs are measured on the same ECGs with the same masks.
//! The loss is the mean over every masked patch of the set, measured in pieces of at most the
//! micro-batch, so the geometry changes it only by rounding. A dataset of several sources (a
//! merge) can add one such set per source (`add_source`), measured beside the whole one, so a
//! run that mixes or repeats sources sees how each fares.
//!
//! The set is read a piece at a time (`reader`): the `Validator` keeps the pieces, `ecgfm
//! validate` measures them as they come.
//!
//! `VALIDATION_VERSION` names this definition of the set in each checkpoint: a resume of a run
//! measured on another one warns that its validation losses do not compare across the resume.

use std::collections::BTreeMap;

mod reader;

pub use reader::{LossMean, SetReader};

use crate::config::TrainConfig;
use crate::data::{BatchSource, SourceError, SyntheticSource};
use crate::model::Mae;
use crate::{HostBatch, ModelError};
use ecgfm_kernels::Backend;

/// The validation set's definition, recorded in each checkpoint (`TrainingState`). Version 1
/// (checkpoints without the field): `train.val_batches` batches of the run's first batch size in
/// the order of the run's own `data.mix_row_groups` and `data.mix_across_shards`, wrapping
/// around a small split. Version 2: `train.val_windows` windows read in a fixed order.
pub const VALIDATION_VERSION: u32 = 2;

/// Windows per read of a validation source (it gives batches of this size): any size reads the
/// same windows, the order and crops of a split do not depend on it.
pub const READ_BATCH: usize = 32;

/// Seed of the held-out synthetic ECGs (any run seed trains on other indices, see below).
const HELD_OUT_SEED: u64 = 0x0E_CF_3A_11;
/// The synthetic held-out stream starts here; training streams start at 0 and would need
/// 2^62 samples to reach it.
const HELD_OUT_START: u64 = 1 << 62;
/// Seed of the validation masks.
const MASK_SEED: u64 = 0x7A11_DA7E;

/// The warning for a resume at `step` from a checkpoint that measured its validation losses on
/// the set of definition `saved` (`None`: version 1), when that is not today's: the losses
/// before and after the resume do not compare. Later checkpoints record today's, so it is said
/// once.
pub fn version_moved(saved: Option<u32>, config: &TrainConfig, step: u64) -> Option<String> {
    let saved = saved.unwrap_or(1);
    let measured = config.train.val_windows > 0;
    (measured && saved != VALIDATION_VERSION).then(|| {
        format!(
            "the validation losses up to step {step} were measured on the validation set of \
             an older ecgfm (version {saved}: batches of the run's first batch size in its own \
             loader order), those from here on on today's (version {VALIDATION_VERSION}: \
             {} windows in a fixed order): do not compare validation losses across step {step}",
            config.train.val_windows
        )
    })
}

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

/// The first `windows` windows of `source` (which gives batches of `READ_BATCH`), their masks
/// fixed, cut into pieces of at most `train.batch_size` (the model's batch).
#[cfg(test)]
fn draw(
    config: &TrainConfig,
    windows: usize,
    source: Box<dyn BatchSource>,
) -> Result<Vec<HostBatch>, SourceError> {
    let mut config = config.clone();
    config.train.val_windows = windows;
    all_pieces(&mut SetReader::new(&config, source))
}

/// Every piece of the set `reader` reads.
fn all_pieces(reader: &mut SetReader) -> Result<Vec<HostBatch>, SourceError> {
    let mut pieces = Vec::new();
    while let Some(piece) = reader.next_piece()? {
        pieces.push(piece);
    }
    Ok(pieces)
}

/// The masked reconstruction loss over every masked patch of `pieces` at the model's current
/// weights: each piece's mean weighted by its count of masked patches.
fn mean_loss<B: Backend>(pieces: &[HostBatch], model: &mut Mae<B>) -> Result<f32, ModelError> {
    let mut mean = LossMean::default();
    for piece in pieces {
        mean.add(piece, model)?;
    }
    Ok(mean.value())
}

/// A description of the whole set followed by the names of the sources with a set of their own.
pub fn describe_with_sources(whole: &str, sources: &[&str]) -> String {
    match sources {
        [] => whole.to_string(),
        _ => format!(
            "{whole}; and up to as many of each source's own: {}",
            sources.join(", ")
        ),
    }
}

impl Validator {
    /// Draws the set from `source`, opened to give batches of `READ_BATCH` windows in the fixed
    /// order (see the module documentation), and fixes its masks.
    pub fn new(
        config: &TrainConfig,
        source: Box<dyn BatchSource>,
    ) -> Result<Validator, SourceError> {
        let mut reader = SetReader::new(config, source);
        let pieces = all_pieces(&mut reader)?;
        Ok(Validator {
            description: reader.describe(),
            pieces,
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
        source: Box<dyn BatchSource>,
    ) -> Result<(), SourceError> {
        let pieces = all_pieces(&mut SetReader::new(config, source))?;
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
        let names: Vec<&str> = self.by_source.iter().map(|(n, _)| n.as_str()).collect();
        describe_with_sources(&self.description, &names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecgfm_kernels::CpuBackend;

    fn config(batch_size: usize) -> TrainConfig {
        let mut config = TrainConfig::default_config();
        config.train.batch_size = batch_size;
        config.train.val_windows = 10;
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
        let pieces = draw(&whole, 10, Box::new(synthetic_held_out(&whole).unwrap())).unwrap();
        assert_eq!(
            pieces.iter().map(|p| p.batch).collect::<Vec<_>>(),
            [4, 4, 2]
        );
        let per_sample = whole.model.leads * whole.model.patches_per_lead();
        let drawn = masks(&pieces, per_sample);
        for (i, a) in drawn.iter().enumerate() {
            for b in &drawn[i + 1..] {
                assert_ne!(a, b, "two samples of the validation set share their masks");
            }
        }
        // Micro-batches of 3: the same 10 samples and masks, in pieces of 3.
        let smaller = config(3);
        let split = draw(
            &smaller,
            10,
            Box::new(synthetic_held_out(&smaller).unwrap()),
        )
        .unwrap();
        let sizes: Vec<usize> = split.iter().map(|p| p.batch).collect();
        assert_eq!(sizes, [3, 3, 3, 1]);
        assert_eq!(masks(&split, per_sample), drawn);
        let signals = |p: &[HostBatch]| p.iter().flat_map(|b| b.x.clone()).collect::<Vec<f32>>();
        assert_eq!(signals(&split), signals(&pieces));
    }

    /// A set longer than a read of the source (`READ_BATCH` windows), read in pieces that do not
    /// divide it: the pieces are the set read in one piece and cut up, signals and masks alike.
    #[test]
    fn pieces_across_reads_are_the_whole_set_cut_up() {
        let draw_70 = |batch_size: usize| {
            let mut config = config(batch_size);
            config.data.synth_single_lead_fraction = 0.5;
            draw(&config, 70, Box::new(synthetic_held_out(&config).unwrap())).unwrap()
        };
        let one = draw_70(1000);
        assert_eq!(one.iter().map(|p| p.batch).collect::<Vec<_>>(), [70]);
        assert!(one[0].lead_mask.contains(&0), "some windows single-lead");
        for size in [16, 50, 7] {
            let pieces = draw_70(size);
            let cut = one[0].clone().split(size);
            assert_eq!(pieces.len(), cut.len(), "pieces of {size}");
            for (a, b) in pieces.iter().zip(&cut) {
                assert_eq!(a.batch, b.batch);
                assert_eq!(a.x, b.x);
                assert_eq!(a.lead_mask, b.lead_mask);
                assert_eq!(a.patch_mask, b.patch_mask);
            }
        }
    }

    /// The loss is the mean over every masked patch of the set, whatever pieces it is measured
    /// in: pieces of 4, 4 and 2 and of 3, 3, 3 and 1 give the loss of the 10 windows in one piece
    /// (to f32 rounding), where a plain mean of the pieces' means would weigh the small piece's
    /// windows more. Also with half the windows single-lead, whose absent leads are not masked:
    /// each piece weighs by its masked patches, not its windows.
    #[test]
    fn the_loss_does_not_depend_on_the_piece_size() {
        let loss = |batch_size: usize, single_lead: f32| {
            let mut config = config(batch_size);
            config.data.synth_single_lead_fraction = single_lead;
            let pieces = draw(&config, 10, Box::new(synthetic_held_out(&config).unwrap())).unwrap();
            let leads = config.model.leads;
            let present: Vec<usize> = (pieces.iter())
                .flat_map(|p| {
                    p.lead_mask
                        .chunks(leads)
                        .map(|m| m.iter().filter(|&&x| x == 1).count())
                })
                .collect();
            if single_lead > 0.0 {
                assert!(
                    present.contains(&1) && present.contains(&leads),
                    "{present:?}"
                );
            }
            let mut model = Mae::new(CpuBackend::new(), config.model.clone(), batch_size).unwrap();
            model.init_params(7);
            mean_loss(&pieces, &mut model).unwrap()
        };
        for single_lead in [0.0, 0.5] {
            let whole = loss(10, single_lead);
            for batch_size in [4, 3] {
                let got = loss(batch_size, single_lead);
                assert!(
                    (got - whole).abs() <= 1e-6 * whole,
                    "single-lead {single_lead}, pieces of {batch_size}: {got}, one piece: {whole}"
                );
            }
        }
    }

    /// A stream with an epoch shorter than `train.val_windows` gives its whole epoch once: the
    /// set has that epoch's windows, not `val_windows` of them read around it again.
    struct ShortEpoch(SyntheticSource);

    impl BatchSource for ShortEpoch {
        fn next_batch(&mut self, batch: &mut HostBatch) -> Result<(), SourceError> {
            self.0.next_batch(batch)
        }
        fn state(&self) -> serde_json::Value {
            self.0.state()
        }
        fn restore(&mut self, state: &serde_json::Value) -> Result<(), SourceError> {
            self.0.restore(state)
        }
        fn describe(&self) -> String {
            "a short split".into()
        }
        fn samples_per_epoch(&self) -> Option<u64> {
            Some(6)
        }
    }

    /// A split of 6 windows and `val_windows` = 10: the set is all 6, each once.
    #[test]
    fn a_split_shorter_than_the_set_is_measured_whole_and_once() {
        let config = config(4);
        let source = ShortEpoch(synthetic_held_out(&config).unwrap());
        let validator = Validator::new(&config, Box::new(source)).unwrap();
        let sizes: Vec<usize> = validator.pieces.iter().map(|p| p.batch).collect();
        assert_eq!(sizes, [4, 2]);
        assert!(
            validator
                .describe()
                .starts_with("all 6 windows of a short split"),
            "{}",
            validator.describe()
        );
    }

    /// Each added source is measured on its own set: a source of other ECGs gets its own loss
    /// (the loss of its own first windows), and one that is the held-out stream gets the whole
    /// set's.
    #[test]
    fn each_source_is_measured_on_its_own_set() {
        let config = config(4);
        let other = || Box::new(SyntheticSource::new(&config.model, 5, 0.0));
        let mut validator =
            Validator::new(&config, Box::new(synthetic_held_out(&config).unwrap())).unwrap();
        validator.add_source(&config, "other", other()).unwrap();
        let same = Box::new(synthetic_held_out(&config).unwrap());
        validator.add_source(&config, "same", same).unwrap();
        let mut model = Mae::new(CpuBackend::new(), config.model.clone(), 4).unwrap();
        model.init_params(7);
        let losses = validator.losses(&mut model).unwrap();
        let own = draw(&config, 10, other()).unwrap();
        let expected = mean_loss(&own, &mut model).unwrap();
        assert_eq!(losses.by_source["other"], expected);
        assert_ne!(losses.by_source["other"], losses.whole);
        assert_eq!(losses.by_source["same"], losses.whole);
    }
}
