//! The order of samples in an epoch, a pure function of (seed, epoch):
//! 1. shuffle the shards (a shard whose source has weight `w` is listed `floor(w)` times, each
//!    listing a "copy" of it, plus once more, for the fraction, when `w` is not whole);
//! 2. shuffle the row groups within each shard copy; with `mix_across_shards`, shuffle that
//!    whole row-group sequence again, so a window draws its row groups from anywhere in the
//!    dataset rather than from one shard (or two);
//! 3. cut that row-group sequence into mixing windows of `mix_row_groups` row groups;
//! 4. shuffle all samples within each window.
//!
//! Every sample of the split appears exactly once per epoch (`r` times for a source repeated
//! `r` times, once per copy), and only a window's row groups need to be in memory to emit its
//! samples. A source's fractional copy reads exactly `round(fract(w) * rows)` of its rows, drawn
//! from all its shards by selection sampling (each subset of that size equally likely) anew each
//! epoch, so over epochs every row is read about `w` times. Without weights every shard has one
//! copy, numbered 0, and the order is the one ecgfm drew before weights existed.
//!
//! The loader's sample stream is epoch 0's order, then epoch 1's, and so on: global stream
//! position `p` is sample `p % N` of epoch `p / N` (N samples per epoch).

use std::collections::BTreeMap;

use super::index::DatasetIndex;
use super::rng::{
    shuffle, SplitMix64, TAG_ACROSS_SHARDS, TAG_PART, TAG_ROW_GROUPS, TAG_SHARDS, TAG_WINDOW,
};

/// One read of a row group in an epoch: the unit, and which copy of its shard reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Slot {
    /// Index into `DatasetIndex::units`.
    pub unit: u32,
    /// Copy of the unit's shard in this epoch (0 unless its source is weighted); copy number
    /// `DatasetIndex::shard_copies[shard]` is the fractional one, when there is one.
    pub copy: u32,
}

/// One mixing window of an epoch: consecutive row groups whose samples are shuffled together.
pub(crate) struct Window {
    /// Row-group reads in the window.
    pub slots: Vec<Slot>,
    /// Offset of the window's first sample within the epoch.
    pub start: u64,
    /// Samples in the window.
    pub len: u64,
}

/// A sample's place in the data: `(slot, k)` is row `k` of the split's rows of the slot's unit.
/// Ordered by (unit, copy, row).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SampleRef {
    pub slot: Slot,
    pub k: u32,
}

/// The windows of one epoch in order.
pub(crate) struct EpochPlan {
    pub seed: u64,
    pub epoch: u64,
    pub windows: Vec<Window>,
    /// For each unit read by a fractional copy, its rows (`k`, ascending) read this epoch.
    picked: BTreeMap<u32, Vec<u32>>,
}

/// How far an epoch's shuffle reaches (`LoaderConfig::mix_row_groups`, `mix_across_shards`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mixing {
    pub row_groups: usize,
    pub across_shards: bool,
}

impl EpochPlan {
    pub fn new(index: &DatasetIndex, seed: u64, epoch: u64, mixing: Mixing) -> Self {
        let picked = pick_parts(index, seed, epoch);
        let mut shards: Vec<(u32, u32)> = (0..index.shard_copies.len() as u32)
            .flat_map(|s| {
                let part = u32::from(index.shard_has_part[s as usize]);
                (0..index.shard_copies[s as usize] + part).map(move |copy| (s, copy))
            })
            .collect();
        shuffle(&mut shards, &[seed, epoch, TAG_SHARDS]);
        let mut order: Vec<Slot> = Vec::with_capacity(index.units.len());
        for &(s, copy) in &shards {
            let mut units = index.shard_units[s as usize].clone();
            if copy == index.shard_copies[s as usize] {
                units.retain(|unit| picked.contains_key(unit));
            }
            let mut parts = vec![seed, epoch, TAG_ROW_GROUPS, u64::from(s)];
            if copy > 0 {
                parts.push(u64::from(copy));
            }
            shuffle(&mut units, &parts);
            order.extend(units.into_iter().map(|unit| Slot { unit, copy }));
        }
        if mixing.across_shards {
            shuffle(&mut order, &[seed, epoch, TAG_ACROSS_SHARDS]);
        }
        let mut plan = EpochPlan {
            seed,
            epoch,
            windows: Vec::with_capacity(order.len().div_ceil(mixing.row_groups.max(1))),
            picked,
        };
        let mut start = 0u64;
        for chunk in order.chunks(mixing.row_groups.max(1)) {
            let len = chunk
                .iter()
                .map(|&slot| plan.rows(index, slot).len())
                .sum::<usize>() as u64;
            plan.windows.push(Window {
                slots: chunk.to_vec(),
                start,
                len,
            });
            start += len;
        }
        plan
    }

    /// The rows (`k`) a slot reads: all of its unit's, or those picked for a fractional copy.
    fn rows(&self, index: &DatasetIndex, slot: Slot) -> Rows<'_> {
        let shard = index.units[slot.unit as usize].shard as usize;
        if slot.copy == index.shard_copies[shard] {
            Rows::Picked(&self.picked[&slot.unit])
        } else {
            Rows::All(index.units[slot.unit as usize].rows.len() as u32)
        }
    }

    /// Index of the window holding epoch offset `offset` (< the epoch's sample count).
    pub fn window_at(&self, offset: u64) -> usize {
        self.windows.partition_point(|w| w.start + w.len <= offset)
    }

    /// The samples of window `w` in their shuffled order.
    pub fn window_order(&self, index: &DatasetIndex, w: usize) -> Vec<SampleRef> {
        let window = &self.windows[w];
        let mut samples: Vec<SampleRef> = Vec::with_capacity(window.len as usize);
        for &slot in &window.slots {
            match self.rows(index, slot) {
                Rows::All(n) => samples.extend((0..n).map(|k| SampleRef { slot, k })),
                Rows::Picked(ks) => samples.extend(ks.iter().map(|&k| SampleRef { slot, k })),
            }
        }
        shuffle(&mut samples, &[self.seed, self.epoch, TAG_WINDOW, w as u64]);
        samples
    }
}

/// The rows of a unit one slot reads.
enum Rows<'a> {
    /// Rows `0..n`: every row of the split.
    All(u32),
    /// These rows, ascending.
    Picked(&'a [u32]),
}

impl Rows<'_> {
    fn len(&self) -> usize {
        match self {
            Rows::All(n) => *n as usize,
            Rows::Picked(ks) => ks.len(),
        }
    }
}

/// For each source read a fractional number of times, the `take` of its rows this epoch reads:
/// selection sampling (Knuth's algorithm S) over the source's rows in manifest order, so each
/// subset of that size is equally likely and the draw needs no memory beyond its result. Units
/// with no row picked are left out.
fn pick_parts(index: &DatasetIndex, seed: u64, epoch: u64) -> BTreeMap<u32, Vec<u32>> {
    let mut picked = BTreeMap::new();
    for (p, part) in index.parts.iter().enumerate() {
        let mut rng = SplitMix64::from_parts(&[seed, epoch, TAG_PART, p as u64]);
        let rows = |unit: u32| index.units[unit as usize].rows.len() as u32;
        let mut left: u64 = part.units.iter().map(|&u| u64::from(rows(u))).sum();
        let mut need = part.take;
        for &unit in &part.units {
            let mut ks = Vec::new();
            for k in 0..rows(unit) {
                if need > 0 && rng.below(left) < need {
                    ks.push(k);
                    need -= 1;
                }
                left -= 1;
            }
            if !ks.is_empty() {
                picked.insert(unit, ks);
            }
        }
    }
    picked
}

/// Which samples a rank reads. Batches start at stream position `origin`, a step's first; each
/// step's global batch is the `accum * world_size * batch_size` samples at consecutive
/// positions. Within a global batch the samples are ordered by (window, unit, row) and cut into
/// runs of `batch_size`: run `j = a * world_size + r` is micro-batch `a` of rank `r` (the
/// trainer's global micro-batch `j`, whose masks it draws by `j`). So the global batch (its set
/// of samples, each one's run, and their order when read run after run) depends on neither
/// `world_size` nor `accum` alone, only on their product: R ranks and one process accumulating
/// R micro-batches load the same (the runs were cut per call, one process's micro-batch from
/// its own `batch_size` samples, until 2026-12-06). Each rank reads only a slice of the units:
/// with `mix_row_groups` >= `world_size * accum` a run touches one or two row groups of a
/// window instead of all of them, so R ranks do not each fetch and decode the whole dataset.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RankSlice {
    pub origin: u64,
    pub batch_size: u64,
    pub rank: u64,
    pub world_size: u64,
    pub accum: u64,
}

impl RankSlice {
    /// This rank's samples of a window whose shuffled `order` starts at stream position `base`,
    /// in the order the rank's batches hold them.
    pub fn take(&self, base: u64, order: &[SampleRef]) -> Vec<SampleRef> {
        let global = self.batch_size * self.world_size * self.accum;
        let end = base + order.len() as u64;
        let start = base.max(self.origin);
        let mut taken = Vec::new();
        if start >= end {
            return taken;
        }
        // Global batches overlapping [start, end); `before` of each one's samples lie in
        // earlier windows, so they sort ahead of this window's part.
        let mut batch_start = self.origin + (start - self.origin) / global * global;
        while batch_start < end {
            let (lo, hi) = (batch_start.max(start), (batch_start + global).min(end));
            let before = lo - batch_start;
            let mut part = order[(lo - base) as usize..(hi - base) as usize].to_vec();
            part.sort_unstable();
            // The rank's runs in the order of its micro-batches, which is their order here.
            for a in 0..self.accum {
                let run = (a * self.world_size + self.rank) * self.batch_size;
                let (from, to) = (
                    run.max(before),
                    (run + self.batch_size).min(before + hi - lo),
                );
                if from < to {
                    taken
                        .extend_from_slice(&part[(from - before) as usize..(to - before) as usize]);
                }
            }
            batch_start += global;
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::index::Unit;

    /// An index of shards of one row group per entry of `row_groups` (each row group of
    /// `rows` rows), every shard read `copies` whole times per epoch.
    fn index(row_groups: &[u32], rows: u32, copies: u32) -> DatasetIndex {
        let mut units = Vec::new();
        let mut shard_units = Vec::new();
        for (s, &groups) in row_groups.iter().enumerate() {
            let first = units.len() as u32;
            for g in 0..groups {
                units.push(Unit {
                    shard: s as u32,
                    row_group: g,
                    rows: (0..rows).collect(),
                    first_id: u64::from(first + g) * u64::from(rows),
                });
            }
            shard_units.push((first..first + groups).collect());
        }
        DatasetIndex {
            shards: Vec::new(),
            samples: (units.len() as u64) * u64::from(rows * copies),
            units,
            shard_units,
            shard_copies: vec![copies; row_groups.len()],
            shard_has_part: vec![false; row_groups.len()],
            parts: Vec::new(),
            composition: Vec::new(),
            data_digest: String::new(),
            window_samples: 8,
            signal_scale: 1.0,
        }
    }

    /// The row-group reads of an epoch in order.
    fn slots(index: &DatasetIndex, seed: u64, epoch: u64, row_groups: usize) -> Vec<Slot> {
        let mixing = Mixing {
            row_groups,
            across_shards: false,
        };
        let plan = EpochPlan::new(index, seed, epoch, mixing);
        plan.windows.iter().flat_map(|w| w.slots.clone()).collect()
    }

    /// Step 1 shuffles the shards anew each epoch (from (seed, epoch)): with eight one-row-group
    /// shards, the order they are visited in differs between epochs 0 and 1.
    #[test]
    fn the_shard_order_changes_from_epoch_to_epoch() {
        let index = index(&[1; 8], 2, 1);
        let differs = (0..4).any(|seed| slots(&index, seed, 0, 1) != slots(&index, seed, 1, 1));
        assert!(differs, "epochs 0 and 1 visit the shards in the same order");
    }

    /// Step 2 shuffles each shard copy's row groups on its own: a shard read twice an epoch
    /// (repeat 2) reads its eight row groups in a different order the second time.
    #[test]
    fn the_copies_of_a_repeated_shard_read_their_row_groups_in_different_orders() {
        let index = index(&[8], 2, 2);
        let differs = (0..4).any(|seed| {
            let order = slots(&index, seed, 0, 1);
            let units = |copy| -> Vec<u32> {
                let of_copy = order.iter().filter(|s| s.copy == copy);
                of_copy.map(|s| s.unit).collect()
            };
            assert_eq!(units(0).len(), 8);
            units(0) != units(1)
        });
        assert!(differs, "both copies read the row groups in one order");
    }

    /// Step 4 shuffles each window with its own permutation: two windows of the same size
    /// (two row groups of four rows each) do not put their samples through the same one.
    #[test]
    fn windows_of_one_size_are_shuffled_differently() {
        let index = index(&[4], 4, 1);
        let mixing = Mixing {
            row_groups: 2,
            across_shards: false,
        };
        let plan = EpochPlan::new(&index, 3, 0, mixing);
        assert_eq!(plan.windows.len(), 2);
        // Each window's shuffled order, as positions in its unshuffled order.
        let permutation = |w: usize| -> Vec<usize> {
            let unshuffled: Vec<SampleRef> = (plan.windows[w].slots.iter())
                .flat_map(|&slot| (0..4).map(move |k| SampleRef { slot, k }))
                .collect();
            let order = plan.window_order(&index, w);
            let place = |s: &SampleRef| unshuffled.iter().position(|u| u == s).unwrap();
            order.iter().map(place).collect()
        };
        assert_eq!(permutation(0).len(), 8);
        assert_ne!(permutation(0), permutation(1));
    }

    /// The epoch order is part of a run's reproducible stream: a checkpoint resumed by a later
    /// ecgfm must continue it. The order of an epoch of three shards read once, of 3, 2 and 1
    /// row groups of 2 rows, as drawn at 41f0fc4 (unit, row).
    #[test]
    fn the_unweighted_order_is_the_one_drawn_so_far() {
        let index = index(&[3, 2, 1], 2, 1);
        let mixing = Mixing {
            row_groups: 4,
            across_shards: false,
        };
        let plan = EpochPlan::new(&index, 5, 1, mixing);
        let order: Vec<(u32, u32)> = (0..plan.windows.len())
            .flat_map(|w| plan.window_order(&index, w))
            .map(|s| (s.slot.unit, s.k))
            .collect();
        let pinned = [
            (4, 1),
            (3, 0),
            (2, 1),
            (2, 0),
            (4, 0),
            (5, 0),
            (5, 1),
            (3, 1),
            (1, 1),
            (0, 0),
            (0, 1),
            (1, 0),
        ];
        assert_eq!(order, pinned);
    }

    /// A stream of windows of the given lengths, each of `units` units (sample `i` of window `w`
    /// is row `i / units` of unit `w * units + i % units`), shuffled deterministically.
    fn windows(lengths: &[u64], units: u32) -> Vec<(u64, Vec<SampleRef>)> {
        let mut base = 0;
        lengths
            .iter()
            .enumerate()
            .map(|(w, &len)| {
                let mut order: Vec<SampleRef> = (0..len as u32)
                    .map(|i| SampleRef {
                        slot: Slot {
                            unit: w as u32 * units + i % units,
                            copy: 0,
                        },
                        k: i / units,
                    })
                    .collect();
                shuffle(&mut order, &[9, w as u64]);
                let out = (base, order);
                base += len;
                out
            })
            .collect()
    }

    /// Each rank's batches (chunks of `batch` samples) from `origin` on.
    fn rank_batches(
        stream: &[(u64, Vec<SampleRef>)],
        origin: u64,
        batch: u64,
        world: u64,
    ) -> Vec<Vec<Vec<SampleRef>>> {
        accumulating_batches(stream, origin, batch, world, 1)
    }

    /// Each rank's batches (its micro-batches in order) with `accum` micro-batches a step.
    fn accumulating_batches(
        stream: &[(u64, Vec<SampleRef>)],
        origin: u64,
        batch: u64,
        world: u64,
        accum: u64,
    ) -> Vec<Vec<Vec<SampleRef>>> {
        (0..world)
            .map(|rank| {
                let slice = RankSlice {
                    origin,
                    batch_size: batch,
                    rank,
                    world_size: world,
                    accum,
                };
                let all: Vec<SampleRef> = stream
                    .iter()
                    .flat_map(|(base, order)| slice.take(*base, order))
                    .collect();
                all.chunks(batch as usize).map(<[_]>::to_vec).collect()
            })
            .collect()
    }

    #[test]
    fn ranks_split_each_global_batch_by_unit_and_together_match_one_rank() {
        // Windows shorter and longer than the global batch of 12, from origin 5.
        let stream = windows(&[7, 30, 5, 40, 18], 4);
        let origin = 5;
        let single = rank_batches(&stream, origin, 12, 1).remove(0);
        let ranks = rank_batches(&stream, origin, 4, 3);
        let full = single.iter().filter(|b| b.len() == 12).count();
        assert_eq!(full, 7);
        for (g, global) in single.iter().take(full).enumerate() {
            let joined: Vec<SampleRef> = ranks.iter().flat_map(|r| r[g].clone()).collect();
            assert_eq!(&joined, global, "global batch {g}");
        }
        // Every sample from the origin on is read once, by one rank.
        let mut read: Vec<SampleRef> = single.concat();
        let mut all: Vec<SampleRef> = stream.iter().flat_map(|(_, o)| o.clone()).collect();
        all.drain(..origin as usize);
        read.sort();
        all.sort();
        assert_eq!(read, all);
    }

    /// Global micro-batch `j = a * R + r` holds the same samples whatever the split of the
    /// product R x A between ranks and accumulation: 6 = 1 x 6 = 2 x 3 = 3 x 2 = 6 x 1.
    #[test]
    fn ranks_and_accumulation_of_one_product_load_the_same_micro_batches() {
        let stream = windows(&[7, 30, 5, 40, 18], 4);
        let (origin, batch) = (6, 2);
        let micro_batches = |world: u64, accum: u64| {
            let ranks = accumulating_batches(&stream, origin, batch, world, accum);
            // The whole steps: 94 samples from the origin make 7 of 12.
            let steps = 7;
            let mut by_j = Vec::new();
            for step in 0..steps {
                for a in 0..accum as usize {
                    for rank in &ranks {
                        by_j.push(rank[step * accum as usize + a].clone());
                    }
                }
            }
            by_j
        };
        let one = micro_batches(1, 6);
        assert_eq!(one.len(), 42);
        for (world, accum) in [(2, 3), (3, 2), (6, 1)] {
            assert_eq!(micro_batches(world, accum), one, "{world} ranks x {accum}");
        }
        // Accumulating is not reading batch after batch: each micro-batch is a run of the whole
        // step's sorted samples, not of its own.
        let per_call = accumulating_batches(&stream, origin, batch, 1, 1).remove(0);
        assert_ne!(one, per_call[..42]);
    }

    /// How many units a rank's batches draw from.
    fn units_touched(batches: &[Vec<SampleRef>]) -> usize {
        let mut units: Vec<u32> = batches.concat().iter().map(|s| s.slot.unit).collect();
        units.sort_unstable();
        units.dedup();
        units.len()
    }

    #[test]
    fn a_rank_reads_few_units_of_a_window() {
        // One window of 16 units x 64 rows read by 16 ranks, 8 global batches of 128: each
        // rank's slices gather around its own unit and its neighbours, not all 16 units.
        let stream = windows(&[1024], 16);
        let touched: Vec<usize> = rank_batches(&stream, 0, 8, 16)
            .iter()
            .map(|batches| units_touched(batches))
            .collect();
        println!("units touched per rank: {touched:?}");
        assert!(touched.iter().all(|&n| n <= 5), "{touched:?}");
    }

    /// Units fetched by all ranks together over one window of `mix` units of 256 rows, as a
    /// multiple of `mix` (1: each unit fetched by one rank).
    fn fetch_factor(world: u64, accum: u64, mix: u32) -> f64 {
        let stream = windows(&[256 * u64::from(mix)], mix);
        let touched: usize = accumulating_batches(&stream, 0, 64, world, accum)
            .iter()
            .map(|batches| units_touched(batches))
            .sum();
        touched as f64 / f64::from(mix)
    }

    /// What `LoaderConfig::ranks_share_row_groups` warns of: ranks fetch the same units when
    /// the mixing window is narrow, fewer as it widens; accumulation alone shares nothing.
    #[test]
    fn ranks_fetch_fewer_of_the_same_units_from_a_wider_window() {
        let eight: Vec<f64> = [4, 8, 16].map(|mix| fetch_factor(8, 1, mix)).to_vec();
        println!("8 ranks, batch 64, 4/8/16 units a window: fetched {eight:?} times");
        assert!(
            eight[0] > 3.0 && eight[0] > eight[1] && eight[1] > eight[2],
            "{eight:?}"
        );
        assert!(eight[2] < 2.0, "{eight:?}");
        assert_eq!(fetch_factor(1, 8, 4), 1.0);
    }
}
