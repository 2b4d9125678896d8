//! Resuming an interrupted ingest (finished shards kept untouched, the final dataset equal to a
//! one-shot ingest), output to `memory://`, from and to S3 (moto) and GCS (the stand-in of
//! `common::gcs`), and the synthetic dataset writer.

use crate::common;
use crate::ingest_support;

use std::time::SystemTime;

use ecgfm_data::ingest::{ingest, IngestOptions, IngestReport, JOURNAL_FILE};
use ecgfm_data::synth_dataset::{write_synth_dataset, SynthDatasetOptions};
use ecgfm_test_support::shared_data;
use ingest_support::{
    assert_python_reads_the_same_signals, hidden, ingest_shared, options, python_summary,
    read_dataset,
};

fn mtimes(dir: &std::path::Path) -> Vec<(String, SystemTime)> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("shards"))
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, e.metadata().unwrap().modified().unwrap())
        })
        .collect();
    files.sort();
    files
}

/// CinC 2021's sample ingested at once into `dir/one-shot` in six or more small shards: the
/// options (to ingest it again elsewhere) and the report.
fn one_shot_in_small_shards(
    source: &std::path::Path,
    dir: &std::path::Path,
) -> (IngestOptions, IngestReport) {
    let mut opts = options(source, dir.join("one-shot").to_str().unwrap());
    opts.shard_target_bytes = 200_000;
    opts.row_group_rows = 4;
    let full = ingest(&opts, &hidden()).unwrap();
    assert!(full.shards >= 6, "{full}");
    (opts, full)
}

/// Asserts that `dir/one-shot` and `other` hold the same dataset, manifest and rows.
fn assert_same_as_one_shot(dir: &std::path::Path, other: &std::path::Path) {
    let (m_full, rows_full) = read_dataset(dir.join("one-shot").to_str().unwrap(), &[]);
    let (m_other, rows_other) = read_dataset(other.to_str().unwrap(), &[]);
    assert_eq!(m_full, m_other, "same manifest (shard hashes included)");
    assert_eq!(rows_full, rows_other);
}

#[test]
fn interrupted_ingest_resumes_without_rewriting_finished_shards() {
    let Some(source) = shared_data("cinc2021-sample") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let resumed = dir.path().join("resumed");
    let (mut opts, full) = one_shot_in_small_shards(&source, dir.path());

    opts.out = resumed.to_str().unwrap().to_string();
    opts.stop_after_shards = Some(3);
    let first = ingest(&opts, &hidden()).unwrap();
    assert!(!first.complete);
    assert_eq!(first.shards_written, 3);
    assert!(
        !resumed.join("manifest.json").exists(),
        "no manifest before the end"
    );
    assert!(resumed.join(JOURNAL_FILE).exists());
    let before = mtimes(&resumed);
    assert_eq!(before.len(), 3);
    std::thread::sleep(std::time::Duration::from_millis(50));
    // What a kill inside the next shard's write leaves in a local folder: the store's staging
    // file, which the resume removes (it stayed until 2026-12-06).
    let staging = resumed.join("shards/shard-00003.parquet#1");
    std::fs::write(&staging, b"half a shard").unwrap();

    opts.stop_after_shards = None;
    let second = ingest(&opts, &hidden()).unwrap();
    assert!(second.complete);
    assert!(!staging.exists(), "the staging file is left behind");
    assert_eq!(second.shards_resumed, 3);
    assert_eq!(second.shards_written, full.shards - 3);
    let after = mtimes(&resumed);
    assert_eq!(
        &after[..3],
        &before[..],
        "finished shards are not rewritten"
    );

    assert_same_as_one_shot(dir.path(), &resumed);

    // A finished run is not redone either.
    let third = ingest(&opts, &hidden()).unwrap();
    assert_eq!(third.shards_written, 0);
    assert_eq!(mtimes(&resumed), after);
}

/// The journal is not saved after every shard once it is large (`SaveCadence`), so an ingest
/// killed then leaves shards its journal does not list: the resume writes them again and the
/// dataset is the one-shot ingest's.
#[test]
fn a_journal_behind_the_shards_resumes_to_the_same_dataset() {
    let Some(source) = shared_data("cinc2021-sample") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lagging = dir.path().join("lagging");
    let (mut opts, full) = one_shot_in_small_shards(&source, dir.path());

    opts.out = lagging.to_str().unwrap().to_string();
    opts.stop_after_shards = Some(1);
    ingest(&opts, &hidden()).unwrap();
    let after_one = std::fs::read(lagging.join(JOURNAL_FILE)).unwrap();
    opts.stop_after_shards = Some(2);
    let more = ingest(&opts, &hidden()).unwrap();
    assert_eq!((more.shards_resumed, more.shards_written), (1, 2));
    std::fs::write(lagging.join(JOURNAL_FILE), after_one).unwrap();

    opts.stop_after_shards = None;
    let resumed = ingest(&opts, &hidden()).unwrap();
    assert!(resumed.complete);
    assert_eq!(resumed.shards_resumed, 1, "the journal lists one shard");
    assert_eq!(resumed.shards_written, full.shards - 1);
    assert_same_as_one_shot(dir.path(), &lagging);
}

#[test]
fn ingest_to_memory_store_equals_local_output() {
    let Some((local, opts, _)) = ingest_shared("cinc2021-sample") else {
        return;
    };
    let mut memory = opts.clone();
    memory.out = "memory://ingest-test/cinc2021".into();
    memory.threads = 1;
    ingest(&memory, &hidden()).unwrap();
    let (m_local, rows_local) = read_dataset(local.path().to_str().unwrap(), &[]);
    let (m_memory, rows_memory) = read_dataset(&memory.out, &[]);
    assert_eq!(rows_local, rows_memory, "threads do not change the output");
    assert_eq!(m_local.shards, m_memory.shards);
}

#[test]
fn ingest_from_and_to_s3() {
    let Some(source) = shared_data("wfdb-formats") else {
        return;
    };
    let Some(s3) = common::s3::MotoS3::start("ingest-bucket") else {
        return;
    };
    ingest_from_and_to_a_bucket(&source, s3.open("src"), |p| s3.url(p), s3.store_options());
}

#[test]
fn ingest_from_and_to_gcs() {
    let Some(source) = shared_data("wfdb-formats") else {
        return;
    };
    let Some(gcs) = common::gcs::GcsStandIn::start("ingest-bucket") else {
        return;
    };
    ingest_from_and_to_a_bucket(
        &source,
        gcs.open("src"),
        |p| gcs.url(p),
        gcs.store_options(),
    );
}

/// Two records of `source` uploaded to `src` (the bucket's `src/`, `url("src")`) ingest from
/// there into `url("out/ds")`.
fn ingest_from_and_to_a_bucket(
    source: &std::path::Path,
    (store, root): ecgfm_data::store::StoreRoot,
    url: impl Fn(&str) -> String,
    store_options: Vec<(String, String)>,
) {
    for file in ["100.hea", "100.dat", "3000003_0003.hea", "3000003_0003.dat"] {
        let bytes = std::fs::read(source.join(file)).unwrap();
        let location = ecgfm_data::store::join(&root, file);
        ecgfm_data::store::block_on(ecgfm_data::store::put_bytes(
            store.as_ref(),
            &location,
            bytes.into(),
        ))
        .unwrap();
    }
    let mut opts = options(source, &url("out/ds"));
    opts.source = url("src");
    opts.source_store_options = store_options.clone();
    opts.out_store_options = store_options.clone();
    let report = ingest(&opts, &hidden()).unwrap();
    assert_eq!(report.records_ingested, 2, "{report}");
    let (manifest, rows) = read_dataset(&opts.out, &store_options);
    assert_eq!(rows.len(), 182);
    assert_eq!(manifest.counts.rows, 182);
    assert!(manifest.sources[0].uri.starts_with(&url("src")));
}

#[test]
fn synthetic_dataset_has_the_same_layout() {
    let out = tempfile::tempdir().unwrap();
    let opts = SynthDatasetOptions {
        out: out.path().to_str().unwrap().to_string(),
        records: 120,
        seed: 5,
        row_group_rows: 32,
        shard_target_bytes: 1 << 20,
        ..SynthDatasetOptions::default()
    };
    let manifest = write_synth_dataset(&opts, &hidden()).unwrap().manifest;
    // A second synth into the same folder is refused: it would replace the dataset there.
    let err = write_synth_dataset(&opts, &hidden())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("already holds a dataset (manifest.json)"),
        "{err}"
    );
    assert_eq!(manifest.counts.records, 120);
    assert_eq!(manifest.counts.rows, 120);
    let (read_back, rows) = read_dataset(out.path().to_str().unwrap(), &[]);
    assert_eq!(read_back, manifest);
    assert!(rows
        .iter()
        .all(|r| r.labels.len() == 1 && r.labels[0].starts_with("synth:")));
    assert!(rows
        .iter()
        .all(|r| r.patient_id == format!("synth:{}", r.record_id)));
    assert!(rows.iter().all(|r| r.sex.is_some() && r.age.is_some()));
    assert!(rows
        .iter()
        .all(|r| r.lead_mask.iter().all(|m| *m) && r.n_samples == 2500));
    assert_eq!(rows[7].record_id, "synth-000007");
    assert!(
        manifest.counts.labels.len() >= 3,
        "{:?}",
        manifest.counts.labels
    );
    let again = tempfile::tempdir().unwrap();
    let mut second = opts.clone();
    second.out = again.path().to_str().unwrap().to_string();
    second.threads = 1;
    let manifest_again = write_synth_dataset(&second, &hidden()).unwrap().manifest;
    assert_eq!(
        manifest_again.shards, manifest.shards,
        "deterministic, bitwise"
    );
    let Some(py) = python_summary(out.path()) else {
        return;
    };
    assert_eq!(py["duckdb_rows"], 120);
    assert_python_reads_the_same_signals(&py, &rows);
}
