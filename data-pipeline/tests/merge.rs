//! `merge`: datasets with the same preprocessing into one (rows, counts, sources, quarantine
//! together, every shard checked on the way), the refusals (different windows or
//! preprocessing, a source twice, an existing dataset as output, a changed shard) and the
//! resumption of an interrupted merge. On real recordings when `../shared/data` is present:
//! single-lead CinC 2017 and 12-lead PTB-XL in one dataset.

mod ingest_support;

use std::collections::BTreeMap;

use ecgfm_data::ingest::ingest;
use ecgfm_data::manifest::Manifest;
use ecgfm_data::merge::merge;
use ecgfm_data::store;
use ecgfm_data::synth_dataset::{write_synth_dataset, SynthDatasetOptions};
use ecgfm_data::windows::read_split_windows;
use ingest_support::{hidden, options, read_dataset};
use object_store::ObjectStoreExt;

/// A small synthetic dataset at `memory://merge-tests/NAME` (seed `seed`, small shards).
fn synth(
    name: &str,
    seed: u64,
    records: u64,
    edit: impl FnOnce(&mut SynthDatasetOptions),
) -> String {
    let url = format!("memory://merge-tests/{name}");
    let mut opts = SynthDatasetOptions {
        out: url.clone(),
        records,
        seed,
        shard_target_bytes: 40_000,
        row_group_rows: 2,
        threads: 2,
        ..SynthDatasetOptions::default()
    };
    edit(&mut opts);
    write_synth_dataset(&opts, &hidden()).unwrap();
    url
}

fn manifest(url: &str) -> Manifest {
    let (object_store, root) = store::open_url(url).unwrap();
    Manifest::load(object_store.as_ref(), &root).unwrap()
}

/// Flips the lowest bit of byte `at` of the object `path` of the dataset at `url`.
fn flip_bit(url: &str, path: &str, at: usize) {
    let (object_store, root) = store::open_url(url).unwrap();
    let location = store::join(&root, path);
    let mut bytes = store::block_on(store::get_bytes(object_store.as_ref(), &location))
        .unwrap()
        .to_vec();
    bytes[at] ^= 1;
    store::block_on(store::put_bytes(
        object_store.as_ref(),
        &location,
        bytes.into(),
    ))
    .unwrap();
}

fn error_of(inputs: &[String], out: &str) -> String {
    merge(inputs, out, &hidden()).unwrap_err().to_string()
}

#[test]
fn merged_dataset_holds_every_row_of_its_inputs_in_order() {
    let a = synth("rows-a", 1, 7, |_| {});
    let b = synth("rows-b", 2, 5, |_| {});
    let out = "memory://merge-tests/rows-out";
    let report = merge(&[a.clone(), b.clone()], out, &hidden()).unwrap();
    let (ma, mb) = (manifest(&a), manifest(&b));
    assert!(ma.shards.len() >= 2 && !mb.shards.is_empty());
    assert_eq!(
        report.shards_copied as usize,
        ma.shards.len() + mb.shards.len()
    );
    assert_eq!(report.shards_kept, 0);
    assert!(report.without_lead_counts.is_empty());

    let merged = manifest(out);
    assert_eq!(merged, report.manifest);
    let (_, rows_a) = read_dataset(&a, &[]);
    let (_, rows_b) = read_dataset(&b, &[]);
    let (_, rows) = read_dataset(out, &[]);
    assert_eq!(rows, [rows_a, rows_b].concat());
    for (i, shard) in merged.shards.iter().enumerate() {
        assert_eq!(shard.path, format!("shards/shard-{i:05}.parquet"));
    }
    let input_shards: Vec<_> = ma.shards.iter().chain(&mb.shards).collect();
    for (shard, input) in merged.shards.iter().zip(input_shards) {
        assert_eq!(
            (shard.sha256.as_str(), &shard.row_groups),
            (input.sha256.as_str(), &input.row_groups)
        );
    }

    assert_eq!(merged.counts.rows, ma.counts.rows + mb.counts.rows);
    assert_eq!(merged.counts.records, 12);
    for split in ["train", "val", "test"] {
        let n = |m: &Manifest| m.counts.splits.get(split).copied().unwrap_or(0);
        assert_eq!(n(&merged), n(&ma) + n(&mb), "{split}");
        let twelve = |m: &Manifest| {
            m.counts
                .leads_present
                .get(split)
                .and_then(|l| l.get(&12))
                .copied()
        };
        assert_eq!(
            twelve(&merged).unwrap_or(0),
            twelve(&ma).unwrap_or(0) + twelve(&mb).unwrap_or(0)
        );
    }
    for (label, n) in &merged.counts.labels {
        let of = |m: &Manifest| m.counts.labels.get(label).copied().unwrap_or(0);
        assert_eq!(*n, of(&ma) + of(&mb), "{label}");
    }
    assert_eq!(merged.sources, [ma.sources, mb.sources].concat());

    let windows = read_split_windows(out, &[], "all", merged.window_samples).unwrap();
    assert_eq!(windows.len() as u64, merged.counts.rows);
}

#[test]
fn windows_or_preprocessing_that_differ_are_refused_naming_what_differs() {
    let a = synth("differ-a", 1, 2, |_| {});
    let short = synth("differ-short", 2, 2, |o| {
        o.preprocessing.window.window_samples = 1250
    });
    let err = error_of(
        &[a.clone(), short.clone()],
        "memory://merge-tests/differ-out",
    );
    assert!(err.contains(&short) && err.contains(&a), "{err}");
    assert!(
        err.contains("window length (samples) is 1250, not 2500"),
        "{err}"
    );

    let filtered = synth("differ-filter", 3, 2, |o| {
        o.preprocessing.band_pass.as_mut().unwrap().high_hz = 100.0
    });
    let err = error_of(&[a.clone(), filtered], "memory://merge-tests/differ-out");
    assert!(err.contains("preprocessed differently"), "{err}");
    assert!(
        err.contains("preprocessing.band_pass.high_hz: 40.0 and 100.0"),
        "{err}"
    );

    let groups = synth("differ-groups", 4, 2, |o| o.row_group_rows = 16);
    let err = error_of(&[a.clone(), groups], "memory://merge-tests/differ-out");
    assert!(err.contains("row_group_rows is 16, not 2"), "{err}");

    let err = error_of(&[a.clone(), a.clone()], "memory://merge-tests/differ-out");
    assert!(err.contains("counted twice"), "{err}");
    let err = error_of(std::slice::from_ref(&a), "memory://merge-tests/differ-out");
    assert!(err.contains("two or more"), "{err}");

    let b = synth("differ-b", 5, 2, |_| {});
    let err = error_of(&[a.clone(), b.clone()], &a);
    assert!(err.contains("already holds a dataset"), "{err}");
}

#[test]
fn a_changed_input_shard_stops_the_merge_before_any_manifest() {
    let a = synth("changed-a", 1, 3, |_| {});
    let b = synth("changed-b", 2, 3, |_| {});
    let shard = &manifest(&b).shards[0];
    flip_bit(&b, &shard.path, 100);

    let out = "memory://merge-tests/changed-out";
    let err = error_of(&[a, b.clone()], out);
    assert!(err.contains(&format!("{b}/{}", shard.path)), "{err}");
    assert!(err.contains("changed after it was written"), "{err}");
    let (out_store, out_root) = store::open_url(out).unwrap();
    assert!(Manifest::load(out_store.as_ref(), &out_root).is_err());
}

#[test]
fn an_interrupted_merge_keeps_the_shards_it_copied_and_redoes_a_wrong_one() {
    let a = synth("resume-a", 1, 4, |_| {});
    let b = synth("resume-b", 2, 4, |_| {});
    let out = "memory://merge-tests/resume-out";
    let inputs = [a, b];
    let first = merge(&inputs, out, &hidden()).unwrap();
    let shards = first.manifest.shards.len();
    assert!(shards >= 3);
    let (object_store, root) = store::open_url(out).unwrap();
    store::block_on(object_store.delete(&store::join(&root, "manifest.json"))).unwrap();
    flip_bit(out, &first.manifest.shards[1].path, 50);

    let again = merge(&inputs, out, &hidden()).unwrap();
    assert_eq!(
        (again.shards_kept as usize, again.shards_copied),
        (shards - 1, 1)
    );
    assert_eq!(again.manifest, first.manifest);
    let (_, rows) = read_dataset(out, &[]);
    assert_eq!(rows.len() as u64, first.manifest.counts.rows);
}

#[test]
fn single_lead_and_twelve_lead_recordings_merge_into_one_dataset() {
    let (Some(cinc), Some(ptbxl)) = (
        ecgfm_test_support::shared_data("cinc2017"),
        ecgfm_test_support::shared_data("ptbxl-500"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut inputs = Vec::new();
    for (name, source) in [("cinc", cinc), ("ptbxl", ptbxl)] {
        let out = dir.path().join(name).display().to_string();
        let mut opts = options(&source, &out);
        opts.limit = Some(12);
        ingest(&opts, &hidden()).unwrap();
        inputs.push(out);
    }
    let out = dir.path().join("both").display().to_string();
    let report = merge(&inputs, &out, &hidden()).unwrap();
    let merged = &report.manifest;
    let names: Vec<&str> = merged.sources.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["cinc2017", "ptbxl"]);
    let all_leads = |n: u8| -> u64 {
        merged
            .counts
            .leads_present
            .values()
            .filter_map(|l| l.get(&n))
            .sum()
    };
    let (cinc_rows, ptbxl_rows) = (
        manifest(&inputs[0]).counts.rows,
        manifest(&inputs[1]).counts.rows,
    );
    assert_eq!(all_leads(1), cinc_rows);
    assert_eq!(all_leads(12), ptbxl_rows);
    // Each source keeps its own lead counts, for runs that repeat one of them.
    let by_source = merged.leads_by_source("all").expect("per-source counts");
    assert_eq!(
        by_source,
        BTreeMap::from([
            ("cinc2017".to_string(), BTreeMap::from([(1, cinc_rows)])),
            ("ptbxl".to_string(), BTreeMap::from([(12, ptbxl_rows)])),
        ])
    );
    assert!(merged
        .counts
        .labels
        .keys()
        .any(|l| l.starts_with("cinc2017:")));
    assert!(merged
        .counts
        .labels
        .keys()
        .any(|l| l.starts_with("ptbxl_superclass:")));
    let windows = read_split_windows(&out, &[], "all", merged.window_samples).unwrap();
    assert_eq!(windows.len() as u64, cinc_rows + ptbxl_rows);
    println!(
        "merged {cinc_rows} CinC 2017 rows and {ptbxl_rows} PTB-XL rows in {} shards",
        merged.shards.len()
    );
}
