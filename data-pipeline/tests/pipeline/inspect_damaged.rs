//! `inspect` and `plot` on damaged datasets: a truncated, a changed and a missing shard are each
//! reported (the unreadable ones with the error naming the file by its absolute path) while the
//! other shards are still counted; rows per split are checked against the manifest; `plot`
//! names a truncated shard the same way and refuses a record count out of range before reading.

use crate::ingest_support;

use std::path::Path;

use ecgfm_data::inspect::inspect;
use ecgfm_data::plot::{plot_records, MAX_RECORDS};
use ecgfm_data::store;
use ingest_support::{hidden, small_shards_synth};
use parquet::file::reader::{FileReader, SerializedFileReader};

/// Flips a byte in the middle of the first row group's `signal` chunk, a column `inspect` does
/// not decode: only the SHA-256 tells.
fn flip_signal_byte(shard: &Path) {
    let reader = SerializedFileReader::new(std::fs::File::open(shard).unwrap()).unwrap();
    let row_group = reader.metadata().row_group(0);
    let signal = (row_group.columns().iter())
        .find(|c| c.column_path().parts()[0] == "signal")
        .unwrap();
    let (start, len) = signal.byte_range();
    let mut bytes = std::fs::read(shard).unwrap();
    bytes[(start + len / 2) as usize] ^= 4;
    std::fs::write(shard, bytes).unwrap();
}

#[test]
fn damaged_shards_are_all_reported_and_the_others_counted() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = dir.path().join("ds");
    let url = dataset.to_str().unwrap();
    let manifest = small_shards_synth(url, 16, 5, 4);
    assert!(
        manifest.shards.len() >= 4,
        "{} shards",
        manifest.shards.len()
    );
    let clean = inspect(url, &[], &hidden()).unwrap();
    assert!(clean.damaged_shards.is_empty() && clean.split_mismatches().is_empty());
    assert_eq!(clean.shard_splits, clean.splits);
    assert!(clean
        .to_string()
        .contains("rows per split: the shards hold the manifest's counts"));

    // The first shard loses its last 100 bytes, the second has a byte flipped, the third is gone.
    let shard = |i: usize| dataset.join(&manifest.shards[i].path);
    let truncated = std::fs::read(shard(0)).unwrap();
    std::fs::write(shard(0), &truncated[..truncated.len() - 100]).unwrap();
    flip_signal_byte(&shard(1));
    std::fs::remove_file(shard(2)).unwrap();

    let summary = inspect(url, &[], &hidden()).unwrap();
    let named: Vec<&str> = (summary.damaged_shards.iter())
        .map(|(p, _)| p.as_str())
        .collect();
    let paths: Vec<&str> = manifest.shards[..3]
        .iter()
        .map(|s| s.path.as_str())
        .collect();
    assert_eq!(named, paths);
    let [(_, short), (_, flipped), (_, missing)] = &summary.damaged_shards[..] else {
        unreachable!()
    };
    let full = |i: usize| shard(i).display().to_string();
    let sizes = format!("{} bytes with SHA-256 ", manifest.shards[0].bytes - 100);
    assert!(
        short.contains(&sizes)
            && short.contains(&format!(
                "the manifest says {} bytes",
                manifest.shards[0].bytes
            ))
            && short.contains(&format!("cannot be read: shard {}: ", full(0))),
        "{short}"
    );
    assert!(full(0).starts_with('/'), "{}", full(0));
    assert!(
        flipped.contains("the manifest says") && !flipped.contains("cannot be read"),
        "{flipped}"
    );
    assert!(
        missing.contains("cannot be read") && missing.contains(&full(2)),
        "{missing}"
    );
    // The changed shard and every shard after the missing one are still counted.
    assert_eq!(summary.unread_shards, 2);
    let unread_rows = manifest.shards[0].rows + manifest.shards[2].rows;
    assert_eq!(
        summary.quality_histogram.iter().sum::<u64>(),
        summary.rows - unread_rows
    );
    assert_eq!(
        summary.shard_splits.values().sum::<u64>(),
        summary.rows - unread_rows
    );
    assert!(summary.split_mismatches().is_empty());
    let text = summary.to_string();
    for said in [
        &format!("shards: 3 of {} DIFFER from the manifest:", summary.shards),
        "quality score (rows per bin; not counted: the 2 shard(s) that cannot be read):",
        "rows per split: not checked against the manifest (2 shard(s) cannot be read)",
    ] {
        assert!(text.contains(said), "{said}\n{text}");
    }

    // The plot reads the first shard, and names it the same way.
    let png = dir.path().join("p.png");
    let err = plot_records(url, &[], &png, 2).unwrap_err().to_string();
    assert!(err.starts_with(&format!("shard {}: ", full(0))), "{err}");
    assert!(!png.exists());
}

#[test]
fn rows_per_split_that_differ_from_the_manifest_are_reported() {
    let url = "memory://inspect-damaged/splits";
    let mut manifest = small_shards_synth(url, 16, 5, 4);
    let train = manifest.counts.splits["train"];
    *manifest.counts.splits.get_mut("train").unwrap() += 1;
    manifest.counts.splits.insert("extra".into(), 2);
    let (object_store, root) = store::open_url(url).unwrap();
    manifest.save(object_store.as_ref(), &root).unwrap();
    let summary = inspect(url, &[], &hidden()).unwrap();
    assert!(summary.damaged_shards.is_empty());
    assert_eq!(
        summary.split_mismatches(),
        [
            ("extra".to_string(), 0, 2),
            ("train".to_string(), train, train + 1)
        ]
    );
    let text = summary.to_string();
    let said = format!(
        "rows per split: the shards' DIFFER from the manifest's: extra 0 (the manifest says 2), \
         train {train} (the manifest says {})",
        train + 1
    );
    assert!(text.contains(&said), "{text}");
}

#[test]
fn a_plot_of_too_many_or_no_records_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("nowhere");
    for records in [0, MAX_RECORDS + 1] {
        let err = plot_records(
            nowhere.to_str().unwrap(),
            &[],
            &dir.path().join("p.png"),
            records,
        )
        .unwrap_err()
        .to_string();
        let said = format!("a plot draws 1 to {MAX_RECORDS} records, not {records}");
        assert!(err.contains(&said), "{err}");
    }
}
