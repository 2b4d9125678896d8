//! The order of samples in an epoch, a pure function of (seed, epoch):
//! 1. shuffle the shards;
//! 2. shuffle the row groups within each shard;
//! 3. cut that row-group sequence into mixing windows of `mix_row_groups` row groups;
//! 4. shuffle all samples within each window.
//!
//! Every sample of the split appears exactly once per epoch, and only a window's row
//! groups need to be in memory to emit its samples.
//!
//! The loader's sample stream is epoch 0's order, then epoch 1's, and so on: global stream
//! position `p` is sample `p % N` of epoch `p / N` (N samples in the split).

use super::index::DatasetIndex;
use super::rng::{shuffle, TAG_ROW_GROUPS, TAG_SHARDS, TAG_WINDOW};

/// One mixing window of an epoch: consecutive row groups whose samples are shuffled together.
pub(crate) struct Window {
    /// Units (indices into `DatasetIndex::units`) in the window.
    pub units: Vec<u32>,
    /// Offset of the window's first sample within the epoch.
    pub start: u64,
    /// Samples in the window.
    pub len: u64,
}

/// A sample's place in the data: `(unit, k)` is the `k`-th selected row of that unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SampleRef {
    pub unit: u32,
    pub k: u32,
}

/// The windows of one epoch in order.
pub(crate) struct EpochPlan {
    pub seed: u64,
    pub epoch: u64,
    pub windows: Vec<Window>,
}

impl EpochPlan {
    pub fn new(index: &DatasetIndex, seed: u64, epoch: u64, mix_row_groups: usize) -> Self {
        let mut shards: Vec<u32> = (0..index.shards.len() as u32).collect();
        shuffle(&mut shards, &[seed, epoch, TAG_SHARDS]);
        let mut order: Vec<u32> = Vec::with_capacity(index.units.len());
        for &s in &shards {
            let mut units = index.shard_units[s as usize].clone();
            shuffle(&mut units, &[seed, epoch, TAG_ROW_GROUPS, u64::from(s)]);
            order.extend(units);
        }
        let mut windows = Vec::with_capacity(order.len().div_ceil(mix_row_groups.max(1)));
        let mut start = 0u64;
        for chunk in order.chunks(mix_row_groups.max(1)) {
            let len = chunk
                .iter()
                .map(|&u| index.units[u as usize].rows.len() as u64)
                .sum();
            windows.push(Window {
                units: chunk.to_vec(),
                start,
                len,
            });
            start += len;
        }
        EpochPlan {
            seed,
            epoch,
            windows,
        }
    }

    /// Index of the window holding epoch offset `offset` (< the epoch's sample count).
    pub fn window_at(&self, offset: u64) -> usize {
        self.windows.partition_point(|w| w.start + w.len <= offset)
    }

    /// The samples of window `w` in their shuffled order.
    pub fn window_order(&self, index: &DatasetIndex, w: usize) -> Vec<SampleRef> {
        let window = &self.windows[w];
        let mut samples: Vec<SampleRef> = window
            .units
            .iter()
            .flat_map(|&unit| {
                (0..index.units[unit as usize].rows.len() as u32)
                    .map(move |k| SampleRef { unit, k })
            })
            .collect();
        shuffle(&mut samples, &[self.seed, self.epoch, TAG_WINDOW, w as u64]);
        samples
    }
}

/// Which global stream positions a rank reads: batches start at `origin`, each global batch is
/// `world_size * batch_size` consecutive positions, and rank `r` takes the `r`-th run of
/// `batch_size` positions of every global batch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RankSlice {
    pub origin: u64,
    pub batch_size: u64,
    pub rank: u64,
    pub world_size: u64,
}

impl RankSlice {
    /// The positions of `range` this rank owns, ascending.
    pub fn owned_in(&self, range: std::ops::Range<u64>) -> impl Iterator<Item = u64> + '_ {
        let global = self.batch_size * self.world_size;
        let first = range.start.max(self.origin);
        let end = range.end;
        let mine_start = self.rank * self.batch_size;
        // Jump to the first global batch that may hold owned positions at or after `first`.
        let batch0 = (first - self.origin) / global;
        (batch0..)
            .map(move |b| self.origin + b * global + mine_start)
            .take_while(move |&s| s < end)
            .flat_map(move |s| s..s + self.batch_size)
            .filter(move |&p| p >= first && p < end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_slices_partition_positions() {
        let world = 3;
        let mut seen = vec![0u32; 200];
        for rank in 0..world {
            let slice = RankSlice {
                origin: 5,
                batch_size: 4,
                rank,
                world_size: world,
            };
            let owns = |p: u64| ((p - 5) % 12) / 4 == rank;
            for p in slice.owned_in(17..200) {
                assert!(owns(p));
                seen[p as usize] += 1;
            }
            for p in 17..200u64 {
                assert_eq!(owns(p), slice.owned_in(p..p + 1).count() == 1);
            }
        }
        assert!(seen[..17].iter().all(|&n| n == 0));
        assert!(seen[17..].iter().all(|&n| n == 1));
    }
}
