//! Reading a test dataset back through the loader: batches, the global sample sequence of
//! several ranks, and checking a decoded sample against the values `dataset.rs` stored.

use ecgfm_data::loader::{Batch, Loader, LoaderConfig};
use ecgfm_data::schema::N_LEADS;

use super::dataset;

/// The next `steps` batches of `loader`.
pub fn batches(loader: &mut Loader, steps: usize) -> Vec<Batch> {
    (0..steps)
        .map(|_| {
            let mut b = Batch::default();
            loader.next_batch(&mut b).unwrap();
            b
        })
        .collect()
}

/// Each sample of `b` as (id, bits of its values).
pub fn samples_of(b: &Batch) -> Vec<(u64, Vec<u32>)> {
    let per = N_LEADS * b.samples;
    (0..b.batch)
        .map(|i| {
            (
                b.ids[i],
                b.x[i * per..(i + 1) * per]
                    .iter()
                    .map(|v| v.to_bits())
                    .collect(),
            )
        })
        .collect()
}

/// The global sequence of (id, x bits) of `steps` global batches of `global` samples read by
/// `world` ranks, rank `r` opened with `config(global / world, r, world)`.
pub fn global_sequence(
    url: &str,
    global: usize,
    world: usize,
    steps: usize,
    config: impl Fn(usize, usize, usize) -> LoaderConfig,
) -> Vec<(u64, Vec<u32>)> {
    let per_rank: Vec<Vec<Batch>> = (0..world)
        .map(|r| {
            let mut loader = Loader::open(url, config(global / world, r, world)).unwrap();
            batches(&mut loader, steps)
        })
        .collect();
    let mut out = Vec::new();
    for step in 0..steps {
        for rank_batches in &per_rank {
            out.extend(samples_of(&rank_batches[step]));
        }
    }
    out
}

/// Checks sample `i` of `b` (windows of `window` samples cropped to `b.samples`) is a crop of
/// the known synthetic row; returns the crop offset.
pub fn check_sample(b: &Batch, i: usize, window: usize) -> usize {
    let (id, crop) = (b.ids[i], b.samples);
    let valid = dataset::valid_samples(id, window);
    let x = &b.x[i * N_LEADS * crop..(i + 1) * N_LEADS * crop];
    let value = |l: usize, t: usize| f32::from(dataset::stored_value(id, l, t)) * 0.001;
    let offset = if valid <= crop {
        0
    } else {
        (0..=valid - crop)
            .find(|&o| (0..8).all(|t| x[t] == value(0, o + t)))
            .unwrap_or_else(|| panic!("sample {id}: lead I is no crop of its window"))
    };
    for l in 0..N_LEADS {
        let present = dataset::lead_present(id, l);
        assert_eq!(
            b.lead_mask[i * N_LEADS + l],
            u8::from(present),
            "id {id} lead {l}"
        );
        for t in 0..crop {
            let want = if present && t < valid.min(crop) {
                value(l, offset + t)
            } else {
                0.0
            };
            assert_eq!(x[l * crop + t], want, "id {id} lead {l} t {t}");
        }
    }
    offset
}
