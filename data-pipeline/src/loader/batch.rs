//! The loader's output, `Batch` (one contiguous (B, 12, S) float buffer plus lead masks and
//! sample ids), and how a batch is assembled from decoded rows: a seeded random crop of `S`
//! samples out of each window's valid length, int16 -> f32 with the manifest's `signal_scale`.
//!
//! Crops: for a window with `n` valid samples (`n_samples`) and crop length `S`, the crop starts
//! at a uniform offset in `0..=n-S` drawn from (seed, epoch, sample id, and the copy for a
//! repeated source's second and later reads), so it is the same whatever the rank count, worker
//! count or restart point, and a repeated window is cropped anew each time it is read. A window shorter than the crop
//! (`n < S`) is copied from its start and zero-padded at the end.

use std::sync::Arc;

use crate::schema::N_LEADS;

use super::rng::{SplitMix64, TAG_CROP};
use super::shard::DecodedRows;

/// A batch of cropped ECG windows, ready for the model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    /// Windows in the batch (B).
    pub batch: usize,
    /// Samples per lead after cropping (S).
    pub samples: usize,
    /// (B, 12, S) physical values, row-major, standard lead order.
    pub x: Vec<f32>,
    /// (B, 12): 1 where the lead was recorded, 0 where it is absent (and zero in `x`).
    pub lead_mask: Vec<u8>,
    /// (B): global sample id of each window (its row number over all shards in manifest order).
    pub ids: Vec<u64>,
}

impl Batch {
    /// A zeroed batch of `batch` windows of `samples` samples per lead.
    pub fn new(batch: usize, samples: usize) -> Self {
        Batch {
            batch,
            samples,
            x: vec![0.0; batch * N_LEADS * samples],
            lead_mask: vec![0; batch * N_LEADS],
            ids: vec![0; batch],
        }
    }

    fn fits(&self, batch: usize, samples: usize) -> bool {
        self.batch == batch
            && self.samples == samples
            && self.x.len() == batch * N_LEADS * samples
            && self.lead_mask.len() == batch * N_LEADS
            && self.ids.len() == batch
    }

    /// Reshapes `self` to (batch, samples) if needed, reusing its allocations.
    pub(crate) fn reshape(&mut self, batch: usize, samples: usize) {
        if !self.fits(batch, samples) {
            self.batch = batch;
            self.samples = samples;
            self.x.resize(batch * N_LEADS * samples, 0.0);
            self.lead_mask.resize(batch * N_LEADS, 0);
            self.ids.resize(batch, 0);
        }
    }
}

/// A sample ready to be cropped: its decoded row group, its row there, its identity.
pub(crate) struct ReadySample {
    pub rows: Arc<DecodedRows>,
    pub row: u32,
    pub id: u64,
    pub epoch: u64,
    /// Which of the epoch's reads of the sample (0 unless its source is repeated).
    pub copy: u32,
}

/// What cropping needs to know.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CropSpec {
    pub seed: u64,
    pub window: usize,
    pub crop: usize,
    pub scale: f32,
}

impl CropSpec {
    /// Start and length of the crop of a window with `valid` samples, read for the `copy`-th
    /// time in its epoch.
    pub fn place(&self, valid: usize, epoch: u64, id: u64, copy: u32) -> (usize, usize) {
        if valid <= self.crop {
            return (0, valid);
        }
        let mut rng = if copy == 0 {
            SplitMix64::from_parts(&[self.seed, epoch, TAG_CROP, id])
        } else {
            SplitMix64::from_parts(&[self.seed, epoch, TAG_CROP, id, u64::from(copy)])
        };
        (
            rng.below((valid - self.crop + 1) as u64) as usize,
            self.crop,
        )
    }
}

/// Fills `out` (reshaped to the samples' count and the crop length) from `samples`.
pub(crate) fn assemble(samples: &[ReadySample], spec: CropSpec, out: &mut Batch) {
    out.reshape(samples.len(), spec.crop);
    let w = spec.window;
    let s = spec.crop;
    for (b, sample) in samples.iter().enumerate() {
        let row = sample.row as usize;
        let valid = (sample.rows.n_samples[row].max(0) as usize).min(w);
        let (offset, len) = spec.place(valid, sample.epoch, sample.id, sample.copy);
        let src_row = &sample.rows.signal.values[row * N_LEADS * w..(row + 1) * N_LEADS * w];
        let dst_row = &mut out.x[b * N_LEADS * s..(b + 1) * N_LEADS * s];
        for (src, dst) in src_row.chunks_exact(w).zip(dst_row.chunks_exact_mut(s)) {
            let (head, tail) = dst.split_at_mut(len);
            for (d, &v) in head.iter_mut().zip(&src[offset..offset + len]) {
                *d = v as f32 * spec.scale;
            }
            tail.fill(0.0);
        }
        out.lead_mask[b * N_LEADS..(b + 1) * N_LEADS]
            .copy_from_slice(&sample.rows.lead_mask[row * N_LEADS..(row + 1) * N_LEADS]);
        out.ids[b] = sample.id;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n_samples: Vec<i32>, window: usize) -> Arc<DecodedRows> {
        let count = n_samples.len();
        let signal: Vec<i32> = (0..count * N_LEADS * window)
            .map(|i| (i % 30000) as i32)
            .collect();
        Arc::new(DecodedRows {
            signal: signal.into(),
            lead_mask: (0..count * N_LEADS).map(|i| (i % 2) as u8).collect(),
            n_samples,
        })
    }

    #[test]
    fn crops_scale_and_pad() {
        let window = 10;
        let data = rows(vec![10, 4], window);
        let spec = CropSpec {
            seed: 3,
            window,
            crop: 6,
            scale: 0.5,
        };
        let samples = [
            ReadySample {
                rows: data.clone(),
                row: 0,
                id: 11,
                epoch: 0,
                copy: 0,
            },
            ReadySample {
                rows: data.clone(),
                row: 1,
                id: 12,
                epoch: 0,
                copy: 0,
            },
        ];
        let mut out = Batch::default();
        assemble(&samples, spec, &mut out);
        assert_eq!(
            (out.batch, out.samples, out.ids.clone()),
            (2, 6, vec![11, 12])
        );
        let (offset, len) = spec.place(10, 0, 11, 0);
        assert_eq!(len, 6);
        for lead in 0..N_LEADS {
            for t in 0..6 {
                let want = data.signal.values[lead * window + offset + t] as f32 * 0.5;
                assert_eq!(out.x[lead * 6 + t], want);
            }
            // The short window: 4 valid samples from its start, then zeros.
            let base = N_LEADS * 6 + lead * 6;
            for t in 0..4 {
                let want = data.signal.values[(N_LEADS + lead) * window + t] as f32 * 0.5;
                assert_eq!(out.x[base + t], want);
            }
            assert_eq!(&out.x[base + 4..base + 6], &[0.0, 0.0]);
        }
        assert_eq!(&out.lead_mask[..], &data.lead_mask[..2 * N_LEADS]);
    }

    #[test]
    fn crop_offsets_depend_on_seed_epoch_id_and_copy_only() {
        let spec = CropSpec {
            seed: 1,
            window: 2500,
            crop: 2250,
            scale: 1.0,
        };
        let offsets: Vec<usize> = (0..64).map(|id| spec.place(2500, 0, id, 0).0).collect();
        assert!(offsets.iter().all(|&o| o <= 250));
        assert!(offsets.iter().any(|&o| o != offsets[0]));
        assert_eq!(spec.place(2500, 0, 7, 0), spec.place(2500, 0, 7, 0));
        let other_epoch: Vec<usize> = (0..64).map(|id| spec.place(2500, 1, id, 0).0).collect();
        assert_ne!(offsets, other_epoch);
        let second_read: Vec<usize> = (0..64).map(|id| spec.place(2500, 0, id, 1).0).collect();
        assert_ne!(offsets, second_read);
    }

    /// A stored length outside the window is held to it: one longer than the window is cropped
    /// within the stored samples, a negative one reads as no samples (all zeros).
    #[test]
    fn lengths_outside_the_window_are_clamped_to_it() {
        let window = 10;
        let data = rows(vec![15, -1], window);
        let spec = CropSpec {
            seed: 2,
            window,
            crop: 6,
            scale: 1.0,
        };
        let samples = [0, 1].map(|row| ReadySample {
            rows: data.clone(),
            row,
            id: 40 + u64::from(row),
            epoch: 0,
            copy: 0,
        });
        let mut out = Batch::default();
        assemble(&samples, spec, &mut out);
        let (offset, _) = spec.place(window, 0, 40, 0);
        for lead in 0..N_LEADS {
            let stored = &data.signal.values[lead * window..(lead + 1) * window];
            let want: Vec<f32> = stored[offset..offset + 6]
                .iter()
                .map(|&v| v as f32)
                .collect();
            assert_eq!(out.x[lead * 6..(lead + 1) * 6], want[..], "lead {lead}");
        }
        assert!(out.x[N_LEADS * 6..].iter().all(|&v| v == 0.0));
    }

    /// Crops are part of a run's reproducible stream: a checkpoint resumed by a later ecgfm must
    /// crop as the run did. The offsets of samples read once (copy 0), as drawn at 41f0fc4.
    #[test]
    fn crop_offsets_are_those_drawn_so_far() {
        let spec = CropSpec {
            seed: 1,
            window: 2500,
            crop: 2250,
            scale: 1.0,
        };
        let offsets: Vec<usize> = (0..8).map(|id| spec.place(2500, 3, id, 0).0).collect();
        assert_eq!(offsets, [168, 37, 25, 53, 237, 154, 214, 203]);
    }

    /// A random crop may start at any sample that leaves a full crop inside the valid samples:
    /// with 2 samples to spare, offsets 0, 1 and 2 (the last lets the window's end be seen) all
    /// occur over many ids, and none past 2.
    #[test]
    fn crop_offsets_cover_every_start_that_fits() {
        let spec = CropSpec {
            seed: 5,
            window: 12,
            crop: 10,
            scale: 1.0,
        };
        let mut seen = std::collections::BTreeSet::new();
        for id in 0..300 {
            let (offset, len) = spec.place(12, 0, id, 0);
            assert_eq!(len, 10);
            seen.insert(offset);
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![0, 1, 2]);
    }
}
