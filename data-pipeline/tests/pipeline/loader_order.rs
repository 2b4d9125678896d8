//! Loader order guarantees: every sample once per epoch across 1, 2 and 4 ranks, the global
//! sequence independent of the rank count and decode threads, exact resume (also onto another
//! rank count), seeds and epochs changing the order, split filtering, decoded values, and the
//! stream order kept when a store answers later reads first.

use crate::common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::dataset::{self, Spec};
use common::reading::{self, batches, samples_of};
use ecgfm_data::loader::{Batch, Loader, LoaderConfig, LoaderState};
use ecgfm_data::store;
use ecgfm_test_support::store::{Hooks, Intercepted};
use object_store::path::Path;
use object_store::{GetOptions, GetResult, ObjectStore};

const WINDOW: usize = 500;
const CROP: usize = 400;

fn spec(split_of: fn(u64) -> &'static str) -> Spec {
    Spec {
        shards: 3,
        rows_per_shard: 100,
        row_group_rows: 32,
        window_samples: WINDOW,
        split_of,
        source_of: dataset::synth_source,
    }
}

/// Writes the dataset once per test under a unique memory:// prefix and returns its URL.
fn dataset(name: &str, split_of: fn(u64) -> &'static str) -> String {
    let url = format!("memory://loader-order/{name}");
    dataset::write(&store::open_url(&url).unwrap(), &spec(split_of));
    url
}

fn config(seed: u64, batch_size: usize, rank: usize, world_size: usize) -> LoaderConfig {
    LoaderConfig {
        seed,
        batch_size,
        rank,
        world_size,
        crop_samples: CROP,
        decode_threads: 2,
        mix_row_groups: 3,
        ..LoaderConfig::default()
    }
}

/// The global sequence of `steps` global batches of `global` samples over `world` ranks.
fn global_sequence(
    url: &str,
    seed: u64,
    global: usize,
    world: usize,
    steps: usize,
) -> Vec<(u64, Vec<u32>)> {
    reading::global_sequence(url, global, world, steps, |batch, rank, world| {
        config(seed, batch, rank, world)
    })
}

fn check_sample(b: &Batch, i: usize) -> usize {
    reading::check_sample(b, i, WINDOW)
}

#[test]
fn ranks_together_see_each_sample_once_per_epoch_and_the_same_global_sequence() {
    let url = dataset("ranks", dataset::all_train);
    let n = 300usize;
    let global = 24;
    let steps = n.div_ceil(global) + 2;
    let reference = global_sequence(&url, 7, global, 1, steps);
    let epoch0: Vec<u64> = reference[..n].iter().map(|s| s.0).collect();
    assert_eq!(
        epoch0.iter().copied().collect::<BTreeSet<_>>(),
        (0..n as u64).collect()
    );
    assert_ne!(
        epoch0,
        (0..n as u64).collect::<Vec<_>>(),
        "epoch order is not shuffled"
    );
    for world in [2, 4] {
        let seq = global_sequence(&url, 7, global, world, steps);
        assert_eq!(seq, reference, "{world} ranks changed the global sequence");
        // Disjointness within the epoch: rank slices of positions < n never repeat an id.
        let ids: Vec<u64> = seq[..n].iter().map(|s| s.0).collect();
        assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), n);
    }
}

#[test]
fn decoded_values_are_crops_of_the_stored_windows() {
    let url = dataset("values", dataset::all_train);
    let mut loader = Loader::open(&url, config(3, 50, 0, 1)).unwrap();
    let mut offsets = BTreeSet::new();
    for b in batches(&mut loader, 6) {
        assert_eq!((b.batch, b.samples), (50, CROP));
        for i in 0..b.batch {
            offsets.insert(check_sample(&b, i));
        }
    }
    assert!(offsets.len() > 20, "crop offsets do not vary: {offsets:?}");
}

#[test]
fn restore_resumes_exactly_also_across_epochs_and_rank_counts() {
    let url = dataset("resume", dataset::all_train);
    let (global, steps, stop) = (12, 30, 22); // The epoch (300) ends inside step 25.
    let reference = global_sequence(&url, 11, global, 2, steps);
    for (world, rank_batch) in [(2, 6), (3, 4), (1, 12)] {
        let mut resumed = Vec::new();
        for rank in 0..world {
            let mut first = Loader::open(&url, config(11, 12 / 2, rank.min(1), 2)).unwrap();
            batches(&mut first, stop);
            let state = first.state();
            assert_eq!(
                state,
                LoaderState {
                    epoch: 0,
                    samples_consumed: (stop * global) as u64
                }
            );
            let json = serde_json::to_string(&state).unwrap();
            let mut second = Loader::open(&url, config(11, rank_batch, rank, world)).unwrap();
            second
                .restore(&serde_json::from_str(&json).unwrap())
                .unwrap();
            resumed.push(batches(&mut second, steps - stop));
            assert_eq!(
                second.state(),
                LoaderState {
                    epoch: 1,
                    samples_consumed: (steps * global - 300) as u64
                }
            );
        }
        let mut seq = Vec::new();
        for step in 0..steps - stop {
            for r in &resumed {
                seq.extend(samples_of(&r[step]));
            }
        }
        assert_eq!(seq, reference[stop * global..], "resume onto {world} ranks");
    }
}

#[test]
fn seeds_and_epochs_change_the_order_and_threads_do_not() {
    let url = dataset("seeds", dataset::all_train);
    let ids = |seq: &[(u64, Vec<u32>)]| seq.iter().map(|s| s.0).collect::<Vec<_>>();
    let a = global_sequence(&url, 1, 30, 1, 20);
    let b = global_sequence(&url, 2, 30, 1, 20);
    assert_ne!(ids(&a[..300]), ids(&b[..300]));
    assert_ne!(
        ids(&a[..300]),
        ids(&a[300..600]),
        "epoch 1 repeats epoch 0's order"
    );
    let mut epoch1 = ids(&a[300..600]);
    epoch1.sort_unstable();
    assert_eq!(epoch1, (0..300).collect::<Vec<_>>());
    let mut one_thread = config(1, 30, 0, 1);
    one_thread.decode_threads = 1;
    one_thread.prefetch_batches = 0; // Taken as 1.
    let single: Vec<(u64, Vec<u32>)> = batches(&mut Loader::open(&url, one_thread).unwrap(), 20)
        .iter()
        .flat_map(samples_of)
        .collect();
    assert_eq!(single, a);
}

/// Once armed, holds its first reads back, each less than the one before: 400 ms, 350 ms, ...,
/// 50 ms. The first mixing windows' row groups then arrive last-asked first.
#[derive(Debug, Default)]
struct LaterReadsFirst {
    armed: AtomicBool,
    reads: AtomicU32,
}

#[async_trait::async_trait]
impl Hooks for LaterReadsFirst {
    async fn get_opts(
        &self,
        inner: &dyn ObjectStore,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        if self.armed.load(Ordering::SeqCst) {
            let i = self.reads.fetch_add(1, Ordering::SeqCst);
            let held = 8u32.saturating_sub(i) * 50;
            tokio::time::sleep(Duration::from_millis(held.into())).await;
        }
        inner.get_opts(location, options).await
    }
}

#[test]
fn the_stream_order_holds_when_the_store_answers_later_reads_first() {
    let url = dataset("answered-out-of-order", dataset::all_train);
    let reference = global_sequence(&url, 4, 10, 1, 30);
    let (inner, root) = store::open_url(&url).unwrap();
    let store = Arc::new(Intercepted {
        inner,
        hooks: LaterReadsFirst::default(),
    });
    let mut loader = Loader::open_store(store.clone(), root, config(4, 10, 0, 1)).unwrap();
    store.hooks.armed.store(true, Ordering::SeqCst);
    let read: Vec<(u64, Vec<u32>)> = batches(&mut loader, 30)
        .iter()
        .flat_map(samples_of)
        .collect();
    assert!(
        store.hooks.reads.load(Ordering::SeqCst) > 8,
        "too few reads"
    );
    assert_eq!(read, reference);
}

#[test]
fn splits_filter_rows_including_mixed_row_groups() {
    let url = dataset("splits", dataset::every_fifth_val);
    let mut train = Loader::open(&url, config(5, 40, 0, 1)).unwrap();
    assert_eq!(train.samples_per_epoch(), 240);
    let ids: Vec<u64> = batches(&mut train, 6)
        .iter()
        .flat_map(|b| b.ids.clone())
        .collect();
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 240);
    assert!(ids.iter().all(|id| id % 5 != 4));
    let mut val = Loader::open(
        &url,
        LoaderConfig {
            split: "val".into(),
            ..config(5, 20, 0, 1)
        },
    )
    .unwrap();
    assert_eq!(val.samples_per_epoch(), 60);
    let b = batches(&mut val, 3);
    let val_ids: BTreeSet<u64> = b.iter().flat_map(|b| b.ids.clone()).collect();
    assert_eq!(val_ids, (0..300).filter(|id| id % 5 == 4).collect());
    for batch in &b {
        for i in 0..batch.batch {
            check_sample(batch, i);
        }
    }
    let err = Loader::open(
        &url,
        LoaderConfig {
            split: "test".into(),
            ..config(5, 20, 0, 1)
        },
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("no rows in split"), "{err}");
}
