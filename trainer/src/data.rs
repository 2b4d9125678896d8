//! Where training batches come from: the `BatchSource` seam and the built-in synthetic source.
//!
//! A source fills the signals and lead-presence mask of a reused `HostBatch` (the patch mask is
//! drawn separately by the mask sampler). Its position is a small JSON value saved in every
//! checkpoint, so a resumed run continues with exactly the samples it would have seen.
//! The Parquet streaming loader of `ecgfm-data` implements this trait in the `ecgfm` binary.

use crate::{HostBatch, ModelConfig};
use ecgfm_synth::SynthConfig;
use rayon::prelude::*;

/// Errors of a batch source, boxed so any data library can report through it.
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// What kind of failure a source's read error is. The ranks of a job tell each other with the
/// step's agreement, so every rank's error says it, and `ecgfm launch` restarts a job for one
/// kind and not the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadFault {
    /// The data's bytes are not those recorded when it was written (a shard failing its
    /// checksums): reading it again gives the same bytes, so only repairing the data helps.
    Damaged,
    /// Anything else: an object-store error that outlasted its retries, an expired signed URL,
    /// a missing file. A later attempt may read it.
    Other,
}

/// A deterministic, resumable stream of training batches.
pub trait BatchSource: Send {
    /// Fills `batch.x` (B, L, S) and `batch.lead_mask` (B, L) with the next `batch.batch` samples.
    fn next_batch(&mut self, batch: &mut HostBatch) -> Result<(), SourceError>;
    /// The position in the stream, as saved in checkpoints.
    fn state(&self) -> serde_json::Value;
    /// Moves to a position returned by `state`.
    fn restore(&mut self, state: &serde_json::Value) -> Result<(), SourceError>;
    /// One line for logs: what is being read.
    fn describe(&self) -> String;
    /// The kind of one of this source's read errors; `Other` unless the source can tell.
    fn fault(&self, _error: &SourceError) -> ReadFault {
        ReadFault::Other
    }
    /// Samples in one pass over the data (an epoch) for a stream that has one, such as a
    /// dataset's split; `None` (the default) for an endless generator.
    fn samples_per_epoch(&self) -> Option<u64> {
        None
    }
}

/// Synthetic 12-lead ECGs from `ecgfm-synth`: sample `i` of the stream is `generate(seed, i)`.
/// With R ranks, each call takes the next `R * B` samples of the stream (the global batch) and
/// rank r keeps the r-th run of `B` of them, as the dataset loader does.
pub struct SyntheticSource {
    synth: SynthConfig,
    seed: u64,
    single_lead_fraction: f32,
    rank: usize,
    world_size: usize,
    /// Samples of the stream consumed by all ranks together.
    consumed: u64,
}

/// Lead II, the lead kept by single-lead synthetic records.
const LEAD_II: usize = 1;

impl SyntheticSource {
    pub fn new(model: &ModelConfig, seed: u64, single_lead_fraction: f32) -> SyntheticSource {
        let synth = SynthConfig {
            samples: model.samples,
            ..SynthConfig::default()
        };
        SyntheticSource {
            synth,
            seed,
            single_lead_fraction,
            rank: 0,
            world_size: 1,
            consumed: 0,
        }
    }

    /// This source as rank `rank` of `world_size` (each takes its part of every global batch).
    pub fn for_rank(mut self, rank: usize, world_size: usize) -> SyntheticSource {
        self.rank = rank;
        self.world_size = world_size.max(1);
        self
    }

    /// Whether stream sample `index` keeps only lead II (a seeded coin flip).
    fn single_lead(&self, index: u64) -> bool {
        if self.single_lead_fraction <= 0.0 {
            return false;
        }
        let h = splitmix64(self.seed ^ splitmix64(index ^ 0x5EED_1EAD));
        ((h >> 40) as f32 / (1u64 << 24) as f32) < self.single_lead_fraction
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl BatchSource for SyntheticSource {
    fn next_batch(&mut self, batch: &mut HostBatch) -> Result<(), SourceError> {
        let leads = batch.lead_mask.len() / batch.batch;
        let per_sample = batch.x.len() / batch.batch;
        let samples = per_sample / leads;
        if samples != self.synth.samples {
            return Err(format!(
                "synthetic source makes {} samples per lead, the batch holds {samples}",
                self.synth.samples
            )
            .into());
        }
        let start = self.consumed + (self.rank * batch.batch) as u64;
        let this = &*self;
        batch
            .x
            .par_chunks_mut(per_sample)
            .zip(batch.lead_mask.par_chunks_mut(leads))
            .enumerate()
            .for_each(|(b, (x, mask))| {
                let index = start + b as u64;
                ecgfm_synth::generate_into(&this.synth, this.seed, index, x);
                let single = this.single_lead(index);
                for (l, m) in mask.iter_mut().enumerate() {
                    let present = !single || l == LEAD_II;
                    *m = present as u8;
                    if !present {
                        x[l * samples..(l + 1) * samples].fill(0.0);
                    }
                }
            });
        self.consumed += (batch.batch * self.world_size) as u64;
        Ok(())
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({ "kind": "synth", "consumed": self.consumed })
    }

    fn restore(&mut self, state: &serde_json::Value) -> Result<(), SourceError> {
        match (state["kind"].as_str(), state["consumed"].as_u64()) {
            (Some("synth"), Some(consumed)) => {
                self.consumed = consumed;
                Ok(())
            }
            _ => Err(format!("not a synthetic-source state: {state}").into()),
        }
    }

    fn describe(&self) -> String {
        format!(
            "synthetic 12-lead ECGs ({} samples at {} Hz, seed {})",
            self.synth.samples, self.synth.sampling_rate, self.seed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainConfig;

    fn read(source: &mut SyntheticSource, model: &ModelConfig, batch: usize) -> HostBatch {
        let mut hb = HostBatch::new(model, batch);
        source.next_batch(&mut hb).unwrap();
        hb
    }

    /// With 2 ranks of batch 3, each call takes the next global batch of 6 samples of the
    /// stream and rank r keeps its r-th run of 3: the ranks' batches in turn are the one-rank
    /// stream, and both count the whole global batch as consumed.
    #[test]
    fn ranks_take_their_parts_of_each_global_batch_in_turn() {
        let model = TrainConfig::default_config().model;
        let mut one = SyntheticSource::new(&model, 9, 0.0);
        let mut ranks: Vec<SyntheticSource> = (0..2)
            .map(|r| SyntheticSource::new(&model, 9, 0.0).for_rank(r, 2))
            .collect();
        for _ in 0..2 {
            for rank in &mut ranks {
                let expected = read(&mut one, &model, 3);
                let got = read(rank, &model, 3);
                assert_eq!(got.x, expected.x);
                assert_eq!(got.lead_mask, expected.lead_mask);
            }
        }
        for rank in &ranks {
            assert_eq!(rank.state(), one.state());
        }
    }

    /// A fraction of 1 makes every sample single-lead: only lead II is present, with the
    /// generator's signal, and every other lead is present in neither mask nor signal.
    #[test]
    fn single_lead_samples_keep_only_lead_ii() {
        let model = TrainConfig::default_config().model;
        let mut single = SyntheticSource::new(&model, 4, 1.0);
        let mut full = SyntheticSource::new(&model, 4, 0.0);
        let (a, b) = (read(&mut single, &model, 3), read(&mut full, &model, 3));
        let (l, s) = (model.leads, model.samples);
        for i in 0..3 {
            for lead in 0..l {
                let mask = a.lead_mask[i * l + lead];
                let signal = &a.x[(i * l + lead) * s..(i * l + lead + 1) * s];
                if lead == LEAD_II {
                    assert_eq!(mask, 1);
                    assert_eq!(signal, &b.x[(i * l + lead) * s..(i * l + lead + 1) * s]);
                    assert!(signal.iter().any(|&v| v != 0.0));
                } else {
                    assert_eq!(mask, 0, "sample {i} lead {lead}");
                    assert!(signal.iter().all(|&v| v == 0.0), "sample {i} lead {lead}");
                }
            }
        }
        assert!(b.lead_mask.iter().all(|&m| m == 1));
    }
}
