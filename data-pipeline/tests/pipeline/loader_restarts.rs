//! The loader across its calls: `restore` after batches were read rewinds or skips to the state
//! (the batches prefetched for the old position are dropped), a read that failed is read again
//! by the next call once the store serves the shard again, resuming inside a later epoch than the
//! first is exact, a state past the end of its epoch is refused, and one `Batch` passed to every
//! call gets recycled buffers yet the same values as a new one, padding included.

use crate::common;

use bytes::Bytes;
use common::dataset::{self, Spec};
use common::reading::{self, batches, samples_of};
use ecgfm_data::loader::{Batch, Loader, LoaderConfig, LoaderState};
use ecgfm_data::store;

const WINDOW: usize = 500;
/// Longer than the short rows' 300 valid samples: their crops are padded with zeros.
const CROP: usize = 400;
/// Samples per epoch: 3 shards of 100 rows, all in `train`.
const EPOCH: u64 = 300;

/// Writes the dataset under a unique memory:// prefix and returns its URL.
fn dataset(name: &str) -> String {
    let url = format!("memory://loader-restarts/{name}");
    let spec = Spec {
        shards: 3,
        rows_per_shard: 100,
        row_group_rows: 32,
        window_samples: WINDOW,
        split_of: dataset::all_train,
        source_of: dataset::synth_source,
    };
    dataset::write(&store::open_url(&url).unwrap(), &spec);
    url
}

fn config(batch_size: usize) -> LoaderConfig {
    LoaderConfig {
        seed: 17,
        batch_size,
        crop_samples: CROP,
        mix_row_groups: 2,
        ..LoaderConfig::default()
    }
}

/// Each sample of `batches` as (id, bits of its values), in order.
fn sequence(batches: &[Batch]) -> Vec<(u64, Vec<u32>)> {
    batches.iter().flat_map(samples_of).collect()
}

#[test]
fn restore_after_reading_rewinds_or_skips_to_the_state() {
    let url = dataset("rewind");
    let reference = batches(&mut Loader::open(&url, config(10)).unwrap(), 20);
    let state_after = |steps: u64| LoaderState {
        epoch: 0,
        samples_consumed: steps * 10,
    };
    let mut loader = Loader::open(&url, config(10)).unwrap();
    batches(&mut loader, 8);
    loader.restore(&state_after(3)).unwrap();
    assert_eq!(
        batches(&mut loader, 4),
        reference[3..7],
        "rewound to step 3"
    );
    loader.restore(&state_after(15)).unwrap();
    assert_eq!(
        batches(&mut loader, 5),
        reference[15..20],
        "skipped to step 15"
    );
}

#[test]
fn a_failed_read_is_read_again_by_the_next_call() {
    let url = dataset("transient");
    let steps = 20; // 200 samples: two thirds of the epoch, so shard 1 is read.
    let reference = batches(&mut Loader::open(&url, config(10)).unwrap(), steps);
    let (store, root) = store::open_url(&url).unwrap();
    let shard = store::join(&root, "shards/shard-00001.parquet");
    let put = |bytes: Vec<u8>| {
        store::block_on(store::put_bytes(store.as_ref(), &shard, Bytes::from(bytes))).unwrap()
    };
    let original = store::block_on(store::get_bytes(store.as_ref(), &shard)).unwrap();
    let mut loader = Loader::open(&url, config(10)).unwrap();
    // The store serves other bytes for shard 1's column chunks (its footer, read at opening, is
    // kept): each row group fails its checksum until the shard is back.
    let mut damaged = original.to_vec();
    let footer_at = damaged.len() - 2000;
    for b in &mut damaged[4..footer_at] {
        *b ^= 0x5A;
    }
    put(damaged);
    let mut read = Vec::new();
    let error = loop {
        let mut batch = Batch::default();
        match loader.next_batch(&mut batch) {
            Ok(()) => read.push(batch),
            Err(error) => break error.to_string(),
        }
        assert!(read.len() < steps, "the damaged shard was never read");
    };
    assert!(error.contains("shard-00001.parquet"), "{error}");
    put(original.to_vec());
    let left = steps - read.len();
    read.extend(batches(&mut loader, left));
    assert_eq!(sequence(&read), sequence(&reference));
}

#[test]
fn resuming_inside_a_later_epoch_is_exact() {
    let url = dataset("later-epoch");
    // Two epochs and a half of batches of 10: the windows (two row groups of 32 or 4 rows) are
    // cut at other positions in every epoch.
    let reference = batches(&mut Loader::open(&url, config(10)).unwrap(), 75);
    for stop in 30..70 {
        let consumed = stop as u64 * 10;
        let state = LoaderState {
            epoch: consumed / EPOCH,
            samples_consumed: consumed % EPOCH,
        };
        let mut loader = Loader::open(&url, config(10)).unwrap();
        loader.restore(&state).unwrap();
        assert_eq!(
            batches(&mut loader, 5),
            reference[stop..stop + 5],
            "{state:?}"
        );
    }
}

#[test]
fn a_state_past_the_end_of_its_epoch_is_refused() {
    let url = dataset("past-epoch");
    let mut loader = Loader::open(&url, config(10)).unwrap();
    let last = LoaderState {
        epoch: 2,
        samples_consumed: EPOCH - 1,
    };
    loader.restore(&last).unwrap();
    let past = LoaderState {
        epoch: 2,
        samples_consumed: EPOCH,
    };
    let error = loader.restore(&past).unwrap_err().to_string();
    assert!(
        error.contains("300 samples consumed in an epoch of 300"),
        "{error}"
    );
}

#[test]
fn one_batch_passed_to_every_call_holds_what_new_ones_would() {
    let url = dataset("reused");
    let steps = 40; // Beyond the first epoch, with short rows in many batches.
    let fresh = batches(&mut Loader::open(&url, config(10)).unwrap(), steps);
    let mut loader = Loader::open(&url, config(10)).unwrap();
    let mut batch = Batch::default();
    let mut recycled = 0;
    for (step, want) in fresh.iter().enumerate() {
        // Hand in a buffer with room to spare, which only recycling can bring back.
        let mut spare = Vec::with_capacity(batch.x.len() + 1);
        spare.extend_from_slice(&batch.x);
        batch.x = spare;
        loader.next_batch(&mut batch).unwrap();
        recycled += usize::from(batch.x.capacity() > batch.x.len());
        assert_eq!(&batch, want, "step {step}");
        for i in 0..batch.batch {
            reading::check_sample(&batch, i, WINDOW);
        }
    }
    assert!(recycled > 0, "no buffer handed in came back");
}
