//! An ingest into an `--out` that already holds something: a dataset or the journal of an ingest
//! with other settings or other labels (a changed label CSV or `REFERENCE.csv`) is refused with
//! the folder and the way out named, and every file there is left as it was; the same ingest
//! still resumes. A merge or a synth into an unfinished ingest is refused the same way. An ingest
//! that ingested no record leaves no dataset, and another ingest, a synth or a merge may use its
//! folder. A second ingest into a folder another ingest is writing (holding its `_ingest.lock`)
//! is refused at once and writes nothing; once the first ends, the ingest goes on there.

use crate::ingest_support;

use std::collections::BTreeMap;
use std::path::Path;

use ecgfm_data::error::DataError;
use ecgfm_data::ingest::{
    ingest, IngestOptions, QuarantineReport, SourceFormat, QUARANTINE_REPORT_FILE,
};
use ecgfm_data::inspect::inspect;
use ecgfm_data::merge::{merge, MergeOptions};
use ecgfm_data::out_lock::{OutputLock, Writer, LOCK_FILE};
use ecgfm_data::synth_dataset::{write_synth_dataset, SynthDatasetOptions};
use ecgfm_test_support::shared_data;
use ingest_support::{hidden, options};

/// Every file below `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                files.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// Runs `opts`, which must be refused; checks the message names the folder, says `what` and the
/// way out, and that nothing in the folder changed.
fn assert_refused(opts: &IngestOptions, what: &str) {
    let out = Path::new(&opts.out);
    let before = snapshot(out);
    let err = ingest(opts, &hidden()).unwrap_err().to_string();
    assert!(err.contains(&opts.out), "{err}");
    assert!(err.contains(what), "{err}");
    assert!(
        err.contains("choose another --out or remove the folder"),
        "{err}"
    );
    assert!(
        snapshot(out) == before,
        "refused, yet {out:?} changed: {err}"
    );
}

#[test]
fn a_dataset_or_another_ingests_journal_is_refused_and_left_intact() {
    let Some(source) = shared_data("cinc2021-sample") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    let mut opts = options(&source, full.to_str().unwrap());
    opts.shard_target_bytes = 200_000;
    opts.row_group_rows = 4;
    let first = ingest(&opts, &hidden()).unwrap();
    assert!(first.shards >= 3, "{first}");

    let mut other = opts.clone();
    other.seed = 5;
    other.stop_after_shards = Some(1);
    assert_refused(&other, "already holds a dataset (manifest.json)");
    let summary = ecgfm_data::inspect::inspect(&opts.out, &[], &hidden()).unwrap();
    assert!(summary.damaged_shards.is_empty(), "{summary}");
    let again = ingest(&opts, &hidden()).unwrap();
    assert_eq!(
        (again.shards_written, again.shards_resumed),
        (0, first.shards)
    );

    // An interrupted ingest: another one is refused, the same one finishes.
    let partial = dir.path().join("partial");
    let mut interrupted = opts.clone();
    interrupted.out = partial.to_str().unwrap().to_string();
    interrupted.stop_after_shards = Some(1);
    assert!(!ingest(&interrupted, &hidden()).unwrap().complete);
    let mut other = interrupted.clone();
    other.preprocessing.target_rate_hz = 500.0;
    assert_refused(&other, "an unfinished ingest (_ingest_state.json");
    // Neither a merge nor a synth writes over it (they would overwrite its shards).
    let before = snapshot(&partial);
    let merged = merge(
        &[opts.out.clone()],
        &interrupted.out,
        &MergeOptions::default(),
        &hidden(),
    );
    let synth_onto = SynthDatasetOptions {
        out: interrupted.out.clone(),
        records: 8,
        ..SynthDatasetOptions::default()
    };
    let synthesized = write_synth_dataset(&synth_onto, &hidden()).map(|_| ());
    for (command, result) in [("merge", merged.map(|_| ())), ("synth", synthesized)] {
        let err = result.unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "{} already holds an unfinished ingest (_ingest_state.json",
                interrupted.out
            )) && err.contains(&format!("{command} writes a new dataset")),
            "{err}"
        );
    }
    assert!(
        snapshot(&partial) == before,
        "a refused merge or synth changed it"
    );
    interrupted.stop_after_shards = None;
    let finished = ingest(&interrupted, &hidden()).unwrap();
    assert_eq!(
        (finished.complete, finished.shards_resumed),
        (true, 1),
        "{finished}"
    );

    // A dataset no ingest wrote (no journal beside its manifest).
    let synth = dir.path().join("synth");
    let synth_opts = SynthDatasetOptions {
        out: synth.to_str().unwrap().to_string(),
        records: 8,
        ..SynthDatasetOptions::default()
    };
    write_synth_dataset(&synth_opts, &hidden()).unwrap();
    let mut onto_synth = opts.clone();
    onto_synth.out = synth_opts.out.clone();
    assert_refused(&onto_synth, "already holds a dataset (manifest.json)");
}

#[test]
fn changed_labels_do_not_resume_into_the_old_dataset() {
    let Some(source) = shared_data("cinc2017") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("records");
    std::fs::create_dir(&records).unwrap();
    let names = ["A00001", "A00002", "A00003", "A00004"];
    for name in names {
        for ext in ["hea", "mat"] {
            let file = format!("{name}.{ext}");
            std::fs::copy(source.join(&file), records.join(&file)).unwrap();
        }
    }
    let reference = |last: &str| {
        let rows: Vec<String> = names.iter().map(|n| format!("{n},N")).collect();
        let text = format!("{}\n{},{last}\n", rows[..3].join("\n"), names[3]);
        std::fs::write(records.join("REFERENCE.csv"), text).unwrap();
    };
    let label_csv = dir.path().join("labels.csv");
    let labels = |label: &str| {
        std::fs::write(
            &label_csv,
            format!("record,labels\nA00001,custom:{label}\n"),
        )
        .unwrap();
    };
    reference("N");
    labels("a");
    let mut opts = options(&records, dir.path().join("out").to_str().unwrap());
    opts.label_csv = Some(label_csv.display().to_string());
    opts.shard_target_bytes = 1;
    opts.row_group_rows = 1;
    opts.stop_after_shards = Some(1);
    assert!(!ingest(&opts, &hidden()).unwrap().complete);

    opts.stop_after_shards = None;
    reference("A");
    assert_refused(&opts, "an unfinished ingest");
    reference("N");
    let finished = ingest(&opts, &hidden()).unwrap();
    assert_eq!(
        (finished.complete, finished.shards_resumed),
        (true, 1),
        "{finished}"
    );
    labels("b");
    assert_refused(&opts, "already holds a dataset");
}

/// The same ingest spelled differently (the source with a trailing `/`, `--format auto`, `--out`
/// through `./`, a byte-identical copy of the label CSV) resumes an interrupted run into the
/// dataset an uninterrupted one writes, and a finished run does nothing; a label CSV of other
/// contents under the same name is refused naming `--label-csv`.
#[test]
fn a_respelled_ingest_resumes_and_other_labels_are_named() {
    let Some(source) = shared_data("cinc2017") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("records");
    std::fs::create_dir(&records).unwrap();
    let names = ["A00001", "A00002", "A00003", "A00004", "A00005", "A00006"];
    for name in names {
        for ext in ["hea", "mat"] {
            let file = format!("{name}.{ext}");
            std::fs::copy(source.join(&file), records.join(&file)).unwrap();
        }
    }
    std::fs::copy(source.join("REFERENCE.csv"), records.join("REFERENCE.csv")).unwrap();
    let labels = dir.path().join("labels.csv");
    let copy = dir.path().join("copy-of-labels.csv");
    std::fs::write(&labels, "record,labels\nA00002,custom:a\n").unwrap();
    std::fs::copy(&labels, &copy).unwrap();
    let mut opts = options(&records, dir.path().join("full").to_str().unwrap());
    opts.format = ecgfm_data::ingest::SourceFormat::Cinc2017;
    opts.label_csv = Some(labels.display().to_string());
    opts.shard_target_bytes = 1;
    opts.row_group_rows = 1;
    let full = ingest(&opts, &hidden()).unwrap();
    assert!(full.shards >= 3, "{full}");

    let out = dir.path().join("out");
    let mut interrupted = opts.clone();
    interrupted.out = out.display().to_string();
    interrupted.stop_after_shards = Some(1);
    assert!(!ingest(&interrupted, &hidden()).unwrap().complete);
    let mut respelled = opts.clone();
    respelled.source = format!("{}/", records.display());
    respelled.format = ecgfm_data::ingest::SourceFormat::Auto;
    respelled.out = format!("{}/./out/", dir.path().display());
    respelled.label_csv = Some(copy.display().to_string());
    let finished = ingest(&respelled, &hidden()).unwrap();
    assert_eq!(
        (finished.complete, finished.shards_resumed),
        (true, 1),
        "{finished}"
    );
    assert!(
        snapshot(&out) == snapshot(Path::new(&opts.out)),
        "the resumed dataset differs from the uninterrupted one"
    );
    let again = ingest(&opts, &hidden()).unwrap();
    assert_eq!(
        (again.shards_written, again.shards_resumed),
        (0, full.shards)
    );

    std::fs::write(&labels, "record,labels\nA00002,custom:b\n").unwrap();
    assert_refused(&opts, "already holds a dataset (manifest.json) ingested with other settings: --label-csv (a file with SHA-256 ");
}

#[test]
fn a_source_folder_without_records_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("notes.txt"), "no records here").unwrap();
    let out = dir.path().join("out");
    let opts = options(&empty, out.to_str().unwrap());
    let err = ingest(&opts, &hidden()).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}: no wfdb record there (no `.hea` header)",
            empty.display()
        )
    );
    assert!(!out.join("manifest.json").exists());
}

/// An ingest that quarantines every record (CinC 2017 read as plain WFDB: its headers' checksums
/// are all 0) leaves no dataset, only its quarantine report and no journal: `inspect` says no
/// dataset is there (naming the report), and an ingest with other settings into the same folder
/// goes ahead and removes the stale report.
#[test]
fn an_ingest_that_quarantined_every_record_leaves_no_dataset() {
    let Some(source) = shared_data("cinc2017") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cw");
    let mut failed = options(&source, out.to_str().unwrap());
    failed.format = SourceFormat::Wfdb;
    failed.limit = Some(3);
    let report = ingest(&failed, &hidden()).unwrap();
    assert_eq!(
        (report.records_ingested, report.records_quarantined),
        (0, 3)
    );
    let files: Vec<String> = snapshot(&out).into_keys().collect();
    assert_eq!(files, [QUARANTINE_REPORT_FILE]);
    let text = std::fs::read(out.join(QUARANTINE_REPORT_FILE)).unwrap();
    let written: QuarantineReport = serde_json::from_slice(&text).unwrap();
    assert_eq!(written.quarantine.len(), 3);
    assert_eq!(written.counts["checksum mismatch"], 3);
    assert!(written.quarantine[0].reason.contains("A00001.hea"));

    let err = inspect(out.to_str().unwrap(), &[], &hidden()).unwrap_err();
    assert!(matches!(err, DataError::FailedIngest { .. }), "{err:?}");
    let err = err.to_string();
    assert!(err.contains("no dataset there"), "{err}");
    assert!(
        err.contains(&format!(
            "3 quarantined, with their reasons in {}",
            out.join(QUARANTINE_REPORT_FILE).display()
        )),
        "{err}"
    );

    let mut retry = failed.clone();
    retry.format = SourceFormat::Cinc2017;
    let report = ingest(&retry, &hidden()).unwrap();
    assert_eq!(report.records_ingested, 3);
    assert!(!out.join(QUARANTINE_REPORT_FILE).exists());
    let summary = inspect(out.to_str().unwrap(), &[], &hidden()).unwrap();
    assert_eq!(summary.records, 3);
}

/// The folder of an ingest that ingested no record holds no dataset: a synth or a merge may
/// write one there (only a dataset or an unfinished ingest is refused).
#[test]
fn a_synth_or_merge_may_write_where_an_ingest_ingested_nothing() {
    let Some(source) = shared_data("cinc2017") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let failed_at = |name: &str| {
        let out = dir.path().join(name);
        let mut failed = options(&source, out.to_str().unwrap());
        failed.format = SourceFormat::Wfdb;
        failed.limit = Some(1);
        assert_eq!(ingest(&failed, &hidden()).unwrap().records_ingested, 0);
        out.to_str().unwrap().to_string()
    };
    let synth_out = failed_at("synth");
    let synth = SynthDatasetOptions {
        out: synth_out.clone(),
        records: 4,
        ..SynthDatasetOptions::default()
    };
    write_synth_dataset(&synth, &hidden()).unwrap();
    let merge_out = failed_at("merge");
    merge(
        &[synth_out],
        &merge_out,
        &MergeOptions::default(),
        &hidden(),
    )
    .unwrap();
    assert_eq!(inspect(&merge_out, &[], &hidden()).unwrap().records, 4);
}

/// An ingest into a local folder that another ingest is writing (here the test holds the lock
/// as an ingest takes it, `OutputLock::take`) is refused at once, naming the folder, the holder's
/// pid and its lock file, and writes nothing: into an interrupted ingest (the same ingest, which
/// would otherwise resume) and into a folder another ingest has just made alike. Once the lock is
/// released (an ingest that ends, or the kernel when one is killed), the ingest goes on there,
/// and an ingest leaves no lock file behind.
#[test]
fn an_ingest_into_a_folder_another_ingest_is_writing_is_refused() {
    let Some(source) = shared_data("cinc2021-sample") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ds");
    let mut opts = options(&source, out.to_str().unwrap());
    opts.shard_target_bytes = 200_000;
    opts.row_group_rows = 4;
    opts.stop_after_shards = Some(1);
    assert!(!ingest(&opts, &hidden()).unwrap().complete);
    assert!(
        !out.join(LOCK_FILE).exists(),
        "an ingest left its lock file"
    );
    opts.stop_after_shards = None;

    let refused = |opts: &IngestOptions| {
        let folder = Path::new(&opts.out);
        let before = snapshot(folder);
        let err = ingest(opts, &hidden()).unwrap_err().to_string();
        let pid = std::process::id();
        assert!(
            err.starts_with(&format!(
                "{} is being written by another ingest (pid {pid}), which holds {}/{LOCK_FILE}; ",
                opts.out, opts.out
            )),
            "{err}"
        );
        assert!(err.contains("or choose another --out"), "{err}");
        assert!(
            snapshot(folder) == before,
            "refused, yet {folder:?} changed"
        );
        before
    };
    let (object_store, root) = ecgfm_data::store::open_url(&opts.out).unwrap();
    let lock = OutputLock::take(&object_store, &root, &opts.out, Writer::Ingest).unwrap();
    let held = refused(&opts);
    assert!(held.contains_key("_ingest_state.json") && held.contains_key(LOCK_FILE));
    let mut other = opts.clone();
    other.seed = 5;
    refused(&other);
    drop(lock);
    let finished = ingest(&opts, &hidden()).unwrap();
    assert_eq!(
        (finished.complete, finished.shards_resumed),
        (true, 1),
        "{finished}"
    );
    let summary = inspect(&opts.out, &[], &hidden()).unwrap();
    assert!(summary.damaged_shards.is_empty(), "{summary}");
    assert!(
        !out.join(LOCK_FILE).exists(),
        "an ingest left its lock file"
    );

    // A folder another ingest has made and locked, nothing in it yet.
    let fresh = dir.path().join("fresh");
    let mut into_fresh = opts.clone();
    into_fresh.out = fresh.to_str().unwrap().to_string();
    let (object_store, root) = ecgfm_data::store::open_url(&into_fresh.out).unwrap();
    let lock = OutputLock::take(&object_store, &root, &into_fresh.out, Writer::Ingest).unwrap();
    let held = refused(&into_fresh);
    assert_eq!(held.keys().collect::<Vec<_>>(), [LOCK_FILE]);
    drop(lock);
    // A lock file left by a killed ingest (no process holds its lock) is taken over.
    std::fs::create_dir_all(&fresh).unwrap();
    std::fs::write(fresh.join(LOCK_FILE), b"4000000\n").unwrap();
    assert!(ingest(&into_fresh, &hidden()).unwrap().complete);
    assert!(inspect(&into_fresh.out, &[], &hidden())
        .unwrap()
        .damaged_shards
        .is_empty());
}
