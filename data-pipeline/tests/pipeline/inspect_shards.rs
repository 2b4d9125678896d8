//! `inspect` over a dataset of many shards (more than it fetches ahead): every row counted once,
//! and shards that differ from their manifest entries named in manifest order.

use crate::ingest_support;

use ecgfm_data::inspect::inspect;
use ecgfm_data::manifest::Manifest;
use ecgfm_data::store;
use ingest_support::{hidden, small_shards_synth};

#[test]
fn every_shard_is_read_once_and_changed_ones_are_named_in_order() {
    let url = "memory://inspect-tests/many";
    small_shards_synth(url, 24, 3, 2);
    let summary = inspect(url, &[], &hidden()).unwrap();
    assert!(summary.shards >= 8, "{} shards", summary.shards);
    assert_eq!(summary.quality_histogram.iter().sum::<u64>(), summary.rows);
    assert!(summary.damaged_shards.is_empty());

    // Two manifest entries no longer match their shards: the second and the seventh.
    let (object_store, root) = store::open_url(url).unwrap();
    let mut manifest = Manifest::load(object_store.as_ref(), &root).unwrap();
    for i in [1, 6] {
        manifest.shards[i].sha256 = "0".repeat(64);
    }
    manifest.save(object_store.as_ref(), &root).unwrap();
    let again = inspect(url, &[], &hidden()).unwrap();
    let named: Vec<&str> = again
        .damaged_shards
        .iter()
        .map(|(p, _)| p.as_str())
        .collect();
    assert_eq!(named, [&manifest.shards[1].path, &manifest.shards[6].path]);
    assert_eq!(again.quality_histogram, summary.quality_histogram);
}
