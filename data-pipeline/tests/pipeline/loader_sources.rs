//! Datasets of several sources, one per shard as merge writes them. Per-source weights
//! (`LoaderConfig::repeat`): a repeated source's windows are read that many times per epoch,
//! each read with its own crop; 0 leaves a source out; a fractional weight reads exactly that
//! share of a source's windows, another share each epoch; without weights, or with every source
//! read once, the order is the plain one; ranks and resumption keep their guarantees; names the
//! dataset does not hold, weights out of range, or shards of several sources, are refused.
//! Mixing across shards (`mix_across_shards`): batches hold several sources, with the same
//! guarantees.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use common::dataset::{self, Spec};
use common::reading::{batches, check_sample, global_sequence, samples_of};
use ecgfm_data::loader::{Loader, LoaderConfig, SourceShare};
use ecgfm_data::store;

const WINDOW: usize = 500;
const CROP: usize = 400;
/// Rows of source `a` (ids below) and of source `b` (the rest).
const PER_SOURCE: u64 = 120;

/// Shards 0-1 hold source `a`, shards 2-3 source `b`.
fn by_shard(id: u64) -> &'static str {
    if id < PER_SOURCE {
        "a"
    } else {
        "b"
    }
}

/// Sources alternate row by row, so every shard holds both.
fn by_row(id: u64) -> &'static str {
    if id.is_multiple_of(2) {
        "a"
    } else {
        "b"
    }
}

fn dataset(name: &str, source_of: fn(u64) -> &'static str) -> String {
    let url = format!("memory://loader-repeat/{name}");
    let spec = Spec {
        shards: 4,
        rows_per_shard: 60,
        row_group_rows: 16,
        window_samples: WINDOW,
        split_of: dataset::all_train,
        source_of,
    };
    dataset::write(&store::open_url(&url).unwrap(), &spec);
    url
}

fn config(repeat: &[(&str, f64)], batch_size: usize, rank: usize, world: usize) -> LoaderConfig {
    LoaderConfig {
        seed: 4,
        batch_size,
        rank,
        world_size: world,
        crop_samples: CROP,
        mix_row_groups: 3,
        repeat: repeat.iter().map(|&(s, n)| (s.to_string(), n)).collect(),
        ..LoaderConfig::default()
    }
}

#[test]
fn a_repeated_source_is_read_that_many_times_per_epoch_each_time_cropped_anew() {
    let url = dataset("three", by_shard);
    let mut loader = Loader::open(&url, config(&[("b", 3.0)], 32, 0, 1)).unwrap();
    assert_eq!(loader.samples_per_epoch(), PER_SOURCE + 3 * PER_SOURCE);
    assert_eq!(
        loader.composition(),
        [
            SourceShare {
                source: "a".into(),
                rows: PER_SOURCE,
                repeat: 1.0,
                reads: PER_SOURCE,
            },
            SourceShare {
                source: "b".into(),
                rows: PER_SOURCE,
                repeat: 3.0,
                reads: 3 * PER_SOURCE,
            },
        ]
    );
    // One epoch is 480 samples, 15 batches of 32.
    let mut offsets: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for b in batches(&mut loader, 15) {
        for i in 0..b.batch {
            offsets
                .entry(b.ids[i])
                .or_default()
                .push(check_sample(&b, i, WINDOW));
        }
    }
    assert_eq!(offsets.len() as u64, 2 * PER_SOURCE);
    for (id, crops) in &offsets {
        let reads = if *id < PER_SOURCE { 1 } else { 3 };
        assert_eq!(crops.len(), reads, "id {id}");
        let short = dataset::valid_samples(*id, WINDOW) <= CROP;
        if reads == 3 && !short {
            let distinct: BTreeSet<_> = crops.iter().collect();
            assert!(
                distinct.len() > 1,
                "id {id}: every read cropped at {crops:?}"
            );
        }
    }
    // The next epoch starts over with the same composition.
    let next: Vec<u64> = batches(&mut loader, 15)
        .iter()
        .flat_map(|b| b.ids.clone())
        .collect();
    assert_eq!(
        next.iter().filter(|&&id| id >= PER_SOURCE).count() as u64,
        3 * PER_SOURCE
    );
}

#[test]
fn a_fractional_weight_reads_that_share_of_a_source_another_share_each_epoch() {
    let url = dataset("fraction", by_shard);
    // a: half of its 120 rows per epoch; b: all of them and a quarter again.
    let mut loader = Loader::open(&url, config(&[("a", 0.5), ("b", 1.25)], 30, 0, 1)).unwrap();
    assert_eq!(loader.samples_per_epoch(), 60 + 150);
    let reads: Vec<u64> = loader.composition().iter().map(|s| s.reads).collect();
    assert_eq!(reads, [60, 150]);
    // 12 epochs of 210 samples: 84 batches of 30.
    let mut epochs: Vec<BTreeMap<u64, usize>> = vec![BTreeMap::new(); 12];
    for (n, b) in batches(&mut loader, 84).iter().enumerate() {
        for i in 0..b.batch {
            check_sample(b, i, WINDOW);
            *epochs[(n * 30 + i) / 210].entry(b.ids[i]).or_default() += 1;
        }
    }
    let mut a_over_epochs: BTreeSet<u64> = BTreeSet::new();
    for (e, counts) in epochs.iter().enumerate() {
        let (a, b): (Vec<_>, Vec<_>) = counts.iter().partition(|(&id, _)| id < PER_SOURCE);
        assert_eq!(a.len(), 60, "epoch {e}: rows of a read");
        assert!(
            a.iter().all(|(_, &n)| n == 1),
            "epoch {e}: a row of a read twice"
        );
        assert_eq!(b.len() as u64, PER_SOURCE, "epoch {e}: every row of b read");
        let twice = b.iter().filter(|(_, &n)| n == 2).count();
        assert_eq!(twice, 30, "epoch {e}: rows of b read twice");
        assert!(b.iter().all(|(_, &n)| n <= 2), "epoch {e}");
        a_over_epochs.extend(a.iter().map(|(&id, _)| id));
    }
    let a_rows = |e: usize| -> BTreeSet<u64> {
        epochs[e]
            .keys()
            .copied()
            .filter(|&id| id < PER_SOURCE)
            .collect()
    };
    assert_ne!(a_rows(0), a_rows(1), "the same half of a in two epochs");
    // P(a given row is never drawn in 12 epochs) = 2^-12.
    assert_eq!(a_over_epochs.len() as u64, PER_SOURCE);
}

/// Rows 0-60 (shard 0) are source `a`, rows 61-121 (shard 1) source `b`: 61 rows each.
fn odd_halves(id: u64) -> &'static str {
    if id < 61 {
        "a"
    } else {
        "b"
    }
}

/// A fractional weight reads `floor(w) * rows + round(fract(w) * rows)` rows an epoch
/// (`SourceShare::reads`): of 61 rows, weight 0.5 reads round(30.5) = 31 and weight 1.5 reads
/// 61 + 31 = 92, in the composition and in the epoch's batches alike.
#[test]
fn a_fractional_share_of_an_odd_row_count_is_rounded_not_truncated() {
    let url = "memory://loader-repeat/odd-rows";
    let spec = Spec {
        shards: 2,
        rows_per_shard: 61,
        row_group_rows: 16,
        window_samples: WINDOW,
        split_of: dataset::all_train,
        source_of: odd_halves,
    };
    dataset::write(&store::open_url(url).unwrap(), &spec);
    let mut loader = Loader::open(url, config(&[("a", 0.5), ("b", 1.5)], 41, 0, 1)).unwrap();
    let reads: Vec<u64> = loader.composition().iter().map(|s| s.reads).collect();
    assert_eq!(reads, [31, 92]);
    assert_eq!(loader.samples_per_epoch(), 123);
    // One epoch: three batches of 41.
    let ids: Vec<u64> = batches(&mut loader, 3)
        .iter()
        .flat_map(|b| b.ids[..b.batch].to_vec())
        .collect();
    let of_a = ids.iter().filter(|&&id| odd_halves(id) == "a").count();
    assert_eq!((of_a, ids.len() - of_a), (31, 92));
}

#[test]
fn zero_leaves_a_source_out_and_ones_change_nothing() {
    let url = dataset("zero", by_shard);
    let mut loader = Loader::open(&url, config(&[("a", 0.0)], 30, 0, 1)).unwrap();
    assert_eq!(loader.samples_per_epoch(), PER_SOURCE);
    let ids: BTreeSet<u64> = batches(&mut loader, 4)
        .iter()
        .flat_map(|b| b.ids.clone())
        .collect();
    assert_eq!(ids, (PER_SOURCE..2 * PER_SOURCE).collect());

    let plain = global_sequence(&url, 30, 1, 20, |b, r, w| config(&[], b, r, w));
    let ones = global_sequence(&url, 30, 1, 20, |b, r, w| {
        config(&[("a", 1.0), ("b", 1.0)], b, r, w)
    });
    assert_eq!(plain, ones);
}

#[test]
fn with_repeats_ranks_share_one_global_sequence_and_resume_exactly() {
    let url = dataset("ranks", by_shard);
    // Epochs of 600 samples (25 steps) and of 360 (15), stopped in the second epoch.
    ranks_and_resumption(&url, &[("a", 2.0), ("b", 3.0)], (27, 1, 48));
    ranks_and_resumption(&url, &[("a", 0.5), ("b", 2.5)], (17, 1, 48));
}

/// Reads `repeat`'s stream with one rank and with four, and resumes it after `stop` steps
/// (where the state is `(epoch, samples_consumed)`) on two ranks.
fn ranks_and_resumption(
    url: &str,
    repeat: &[(&str, f64)],
    (stop, epoch, consumed): (usize, u64, u64),
) {
    let (global, steps) = (24, 40);
    let url = url.to_string();
    let one = global_sequence(&url, global, 1, steps, |b, r, w| config(repeat, b, r, w));
    let four = global_sequence(&url, global, 4, steps, |b, r, w| config(repeat, b, r, w));
    assert_eq!(one, four);
    let mut first = Loader::open(&url, config(repeat, global, 0, 1)).unwrap();
    batches(&mut first, stop);
    let state = first.state();
    assert_eq!((state.epoch, state.samples_consumed), (epoch, consumed));
    let mut second = Loader::open(&url, config(repeat, global / 2, 1, 2)).unwrap();
    second.restore(&state).unwrap();
    let mut other = Loader::open(&url, config(repeat, global / 2, 0, 2)).unwrap();
    other.restore(&state).unwrap();
    let (b1, b0) = (
        batches(&mut second, steps - stop),
        batches(&mut other, steps - stop),
    );
    let resumed: Vec<(u64, Vec<u32>)> = b0
        .iter()
        .zip(&b1)
        .flat_map(|(x, y)| samples_of(x).into_iter().chain(samples_of(y)))
        .collect();
    assert_eq!(resumed, one[stop * global..]);
}

#[test]
fn unknown_sources_mixed_shards_and_nothing_left_are_refused() {
    let url = dataset("refused", by_shard);
    let error = |repeat: &[(&str, f64)], url: &str| {
        Loader::open(url, config(repeat, 8, 0, 1))
            .err()
            .expect("refused")
            .to_string()
    };
    let unknown = error(&[("ptbxl", 2.0)], &url);
    assert!(
        unknown.contains("\"ptbxl\"") && unknown.contains("a, b"),
        "{unknown}"
    );
    let none = error(&[("a", 0.0), ("b", 0.0)], &url);
    assert!(none.contains("leaves no rows"), "{none}");
    // 0.004 of 120 rows rounds to none.
    let too_little = error(&[("a", 0.0), ("b", 0.004)], &url);
    assert!(too_little.contains("leaves no rows"), "{too_little}");
    for bad in [-1.0, f64::NAN, f64::INFINITY, 10_001.0] {
        let out_of_range = error(&[("b", bad)], &url);
        assert!(
            out_of_range.contains("data.repeat.b") && out_of_range.contains("from 0 to 10000"),
            "{out_of_range}"
        );
    }
    let mixed = error(&[("a", 2.0)], &dataset("mixed", by_row));
    assert!(
        mixed.contains("shard-00000.parquet") && mixed.contains("[a, b]"),
        "{mixed}"
    );
}

#[test]
fn mixing_across_shards_puts_several_sources_in_a_batch() {
    let url = dataset("across", by_shard);
    // Windows of 4 row groups: a shard's 4, or any 4 of the dataset's 16.
    let mixed_batches = |across: bool| {
        let config = LoaderConfig {
            mix_row_groups: 4,
            mix_across_shards: across,
            ..config(&[], 12, 0, 1)
        };
        let mut loader = Loader::open(&url, config).unwrap();
        let all = batches(&mut loader, 20);
        let mixed = all.iter().filter(|b| {
            let sources: BTreeSet<bool> = b.ids.iter().map(|&id| id < PER_SOURCE).collect();
            sources.len() == 2
        });
        mixed.count()
    };
    let (within, across) = (mixed_batches(false), mixed_batches(true));
    println!("batches of 12 holding both sources, of 20: {within} within shards, {across} across");
    assert!(within <= 2, "{within}");
    assert!(across >= 10, "{across}");

    let across = |b: usize, r: usize, w: usize| LoaderConfig {
        mix_across_shards: true,
        ..config(&[("b", 2.0)], b, r, w)
    };
    let one = global_sequence(&url, 24, 1, 30, across);
    assert_eq!(one, global_sequence(&url, 24, 3, 30, across));
    let epoch: Vec<u64> = one[..360].iter().map(|s| s.0).collect();
    let a_reads = epoch.iter().filter(|&&id| id < PER_SOURCE).count();
    assert_eq!((a_reads, epoch.len() - a_reads), (120, 240));
}
