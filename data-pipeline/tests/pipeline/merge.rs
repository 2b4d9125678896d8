//! `merge`: datasets with the same preprocessing into one (rows, counts, sources, quarantine
//! together, every shard checked on the way), the refusals (different windows or
//! preprocessing, a source twice, no input, an existing dataset as output, a changed shard) and the
//! resumption of an interrupted merge; the same dataset whether the store copies the shards or
//! they pass through this process, whatever the number of copies at once, on a local disk (hard
//! links) and on S3 (a moto server); a one-input merge giving an older dataset the chunk
//! checksums its manifest lacks; a merge run again with fewer inputs (or a synth over a larger
//! killed one) removes the shards left beyond its own; a folder another writer holds is refused. On real recordings when `../shared/data` is present:
//! single-lead CinC 2017 and 12-lead PTB-XL in one dataset.

use crate::common;
use crate::ingest_support;

use std::collections::BTreeMap;

use ecgfm_data::error::DataError;
use ecgfm_data::ingest::ingest;
use ecgfm_data::inspect::inspect;
use ecgfm_data::manifest::{Manifest, PartialEntry, QuarantineEntry};
use ecgfm_data::merge::{merge, MergeOptions, MergeReport};
use ecgfm_data::out_lock::{OutputLock, Writer, LOCK_FILE};
use ecgfm_data::store;
use ecgfm_data::synth_dataset::{write_synth_dataset, SynthDatasetOptions};
use ecgfm_data::windows::read_split_windows;
use ingest_support::{hidden, open_dataset, options, read_dataset};
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
        // Two sources merge only under different names.
        source: format!("synth-{seed}"),
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

/// Rewrites the manifest of the dataset at `url` as `edit` leaves it; returns what it wrote.
fn rewrite_manifest(url: &str, edit: impl FnOnce(&mut Manifest)) -> Manifest {
    let mut m = manifest(url);
    edit(&mut m);
    let (object_store, root) = store::open_url(url).unwrap();
    m.save(object_store.as_ref(), &root).unwrap();
    m
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
    merge_with(inputs, out, &MergeOptions::default())
        .unwrap_err()
        .to_string()
}

fn merge_with(
    inputs: &[String],
    out: &str,
    options: &MergeOptions,
) -> Result<MergeReport, DataError> {
    merge(inputs, out, options, &hidden())
}

fn streamed(jobs: usize) -> MergeOptions {
    MergeOptions {
        jobs,
        in_store_copy: false,
        ..MergeOptions::default()
    }
}

#[test]
fn merged_dataset_holds_every_row_of_its_inputs_in_order() {
    let a = synth("rows-a", 1, 7, |_| {});
    let b = synth("rows-b", 2, 5, |_| {});
    let out = "memory://merge-tests/rows-out";
    let report = merge_with(&[a.clone(), b.clone()], out, &streamed(1)).unwrap();
    let (ma, mb) = (manifest(&a), manifest(&b));
    assert!(ma.shards.len() >= 2 && !mb.shards.is_empty());
    assert_eq!(
        report.shards_copied as usize,
        ma.shards.len() + mb.shards.len()
    );
    assert_eq!(report.shards_copied_in_store, 0);
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
fn a_copy_gives_a_dataset_from_an_older_ecgfm_its_chunk_checksums() {
    let current = synth("older-now", 3, 6, |_| {});
    // The same dataset as older ecgfm versions wrote it: its first shard without checksums,
    // the others with those of the signal and lead-mask chunks only.
    let older = synth("older-then", 3, 6, |_| {});
    let stripped = rewrite_manifest(&older, |m| {
        for (i, shard) in m.shards.iter_mut().enumerate() {
            shard.split_source_crc32c.clear();
            shard.footer_crc32c = None;
            if i == 0 {
                shard.set_checksums(Default::default());
            }
        }
    });
    let summary = |url: &str| inspect(url, &[], &hidden()).unwrap();
    let said = summary(&older).to_string();
    assert_eq!(summary(&older).unchecked_shards, stripped.shards.len());
    assert!(
        said.contains("chunk checksums: ") && said.contains("data merge"),
        "{said}"
    );
    assert_eq!(summary(&current).unchecked_shards, 0);

    // Copied by the store (same memory store) and through here: each copy has them again.
    for (name, options) in [
        ("older-copy", MergeOptions::default()),
        ("older-stream", streamed(2)),
    ] {
        let out = format!("memory://merge-tests/{name}");
        let report = merge_with(std::slice::from_ref(&older), &out, &options).unwrap();
        assert_eq!(report.checksums_added, stripped.shards.len(), "{name}");
        let (copy, now) = (manifest(&out), manifest(&current));
        assert!(!copy.shards.is_empty());
        for (a, b) in copy.shards.iter().zip(&now.shards) {
            assert_eq!(a.checksums(), b.checksums(), "{name} {}", a.path);
            assert!(!a.lacks_chunk_checksums());
        }
        assert_eq!(summary(&out).unchecked_shards, 0);
        // A dataset that has them keeps them as they are.
        let again = format!("{out}-again");
        let report = merge_with(std::slice::from_ref(&out), &again, &options).unwrap();
        assert_eq!(report.checksums_added, 0);
        assert_eq!(manifest(&again).shards, copy.shards);
    }
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
    // Another source of the same name: its ids would collide with the first's.
    let namesake = synth("differ-namesake", 9, 2, |o| o.source = "synth-1".into());
    let err = error_of(&[a.clone(), namesake], "memory://merge-tests/differ-out");
    assert!(
        err.contains("both hold a source named synth-1")
            && err.contains("write one again with `data synth --source-name NAME`"),
        "{err}"
    );
    // The same recordings under another name: each copy would be split on its own.
    let twin = synth("differ-twin", 1, 2, |o| o.source = "twin".into());
    let err = error_of(&[a.clone(), twin], "memory://merge-tests/differ-out");
    assert!(
        err.contains("(source synth-1) and memory://merge-tests/differ-twin (source twin)")
            && err.contains("both read from ecgfm-synth seed 1")
            && err.contains("another --seed"),
        "{err}"
    );
    let err = error_of(&[], "memory://merge-tests/differ-out");
    assert!(err.contains("needs a dataset"), "{err}");

    let b = synth("differ-b", 5, 2, |_| {});
    let err = error_of(&[a.clone(), b.clone()], &a);
    assert!(err.contains("already holds a dataset"), "{err}");
}

/// An input whose stored values are in another unit (`signal_scale`, as a manifest written
/// with another scale has it) is refused, naming both scales: its rows would be read at the
/// first input's scale.
#[test]
fn a_signal_scale_that_differs_is_refused() {
    let a = synth("scale-a", 1, 2, |_| {});
    let b = synth("scale-b", 2, 2, |_| {});
    rewrite_manifest(&b, |m| m.signal_scale = 0.002);
    let err = error_of(&[a.clone(), b.clone()], "memory://merge-tests/scale-out");
    assert!(
        err.contains(&format!(
            "{b} cannot be merged with {a}: its signal_scale is 0.002, not 0.001"
        )),
        "{err}"
    );
}

/// The merged manifest keeps each input's quarantined and partial records, in input order, and
/// adds their quarantine counts reason by reason.
#[test]
fn quarantined_and_partial_records_of_every_input_are_kept() {
    let edit = |url: &str, n: u64| {
        rewrite_manifest(url, |m| {
            let source = m.sources[0].name.clone();
            m.quarantine.push(QuarantineEntry {
                source: source.clone(),
                record: format!("bad-{n}"),
                uri: format!("/raw/bad-{n}.hea"),
                kind: "checksum mismatch".into(),
                reason: "checksum 0".into(),
            });
            m.partial.push(PartialEntry {
                source,
                record: format!("part-{n}"),
                dropped_leads: vec!["V1".into()],
                hard_failed_windows: n,
            });
            m.counts.quarantine = [
                ("checksum mismatch".to_string(), n),
                ("too short".to_string(), 1),
            ]
            .into();
        })
    };
    let a = synth("quarantine-a", 1, 2, |_| {});
    let b = synth("quarantine-b", 2, 2, |_| {});
    let (ma, mb) = (edit(&a, 2), edit(&b, 3));
    let out = "memory://merge-tests/quarantine-out";
    merge_with(&[a, b], out, &streamed(1)).unwrap();
    let merged = manifest(out);
    assert_eq!(merged.quarantine, [ma.quarantine, mb.quarantine].concat());
    assert_eq!(merged.partial, [ma.partial, mb.partial].concat());
    let counts: Vec<(&str, u64)> = (merged.counts.quarantine.iter())
        .map(|(k, n)| (k.as_str(), *n))
        .collect();
    assert_eq!(counts, [("checksum mismatch", 5), ("too short", 2)]);
}

/// An input without rows has no lead counts to give: the merged dataset keeps the other
/// inputs' counts (only an input with rows but no counts, from before them, clears them).
#[test]
fn an_input_without_rows_keeps_the_lead_counts_of_the_others() {
    let a = synth("rowless-a", 1, 4, |_| {});
    let b = synth("rowless-b", 2, 2, |_| {});
    rewrite_manifest(&b, |m| {
        m.shards.clear();
        m.counts = Default::default();
    });
    let out = "memory://merge-tests/rowless-out";
    let report = merge_with(&[a.clone(), b], out, &streamed(1)).unwrap();
    assert!(report.without_lead_counts.is_empty(), "{report:?}");
    let merged = manifest(out);
    assert!(!merged.counts.leads_present.is_empty());
    assert_eq!(
        merged.counts.leads_present,
        manifest(&a).counts.leads_present
    );
}

#[test]
fn a_changed_input_shard_stops_the_merge_before_any_manifest() {
    let a = synth("changed-a", 1, 3, |_| {});
    let b = synth("changed-b", 2, 3, |_| {});
    let shard = &manifest(&b).shards[0];
    flip_bit(&b, &shard.path, 100);
    // b's first shard follows a's in the merged dataset.
    let bad_copy = format!("shards/shard-{:05}.parquet", manifest(&a).shards.len());

    for (options, out) in [
        (MergeOptions::default(), "memory://merge-tests/changed-out"),
        (streamed(2), "memory://merge-tests/changed-out-streamed"),
    ] {
        let err = merge_with(&[a.clone(), b.clone()], out, &options).unwrap_err();
        // Damaged by type, as the loader says it: `ecgfm data merge` exits 65 for it.
        assert!(matches!(err, DataError::Damaged { .. }), "{err:?}");
        let err = err.to_string();
        assert!(err.contains(&format!("{b}/{}", shard.path)), "{err}");
        assert!(err.contains("changed after it was written"), "{err}");
        let (out_store, out_root) = store::open_url(out).unwrap();
        assert!(Manifest::load(out_store.as_ref(), &out_root).is_err());
        let copy = store::join(&out_root, &bad_copy);
        assert!(
            store::block_on(out_store.head(&copy)).is_err(),
            "the changed shard's copy stayed at {out}/{bad_copy}"
        );
    }
}

/// Every shard's bytes of the dataset at `url`, in manifest order.
fn shard_bytes(url: &str, options: &[(String, String)]) -> Vec<Vec<u8>> {
    let ((object_store, root), m) = open_dataset(url, options);
    m.shards
        .iter()
        .map(|s| {
            let location = store::join(&root, &s.path);
            store::block_on(store::get_bytes(object_store.as_ref(), &location))
                .unwrap()
                .to_vec()
        })
        .collect()
}

#[test]
fn copies_by_the_store_or_through_here_one_or_many_at_once_give_one_dataset() {
    let inputs = [
        synth("ways-a", 1, 7, |_| {}),
        synth("ways-b", 2, 5, |_| {}),
        synth("ways-c", 3, 3, |_| {}),
    ];
    let shards: usize = inputs.iter().map(|i| manifest(i).shards.len()).sum();
    assert!(shards >= 5, "{shards}");
    let reference = merge_with(&inputs, "memory://merge-tests/ways-1", &streamed(1)).unwrap();
    let expected = shard_bytes("memory://merge-tests/ways-1", &[]);
    for (name, options) in [
        ("ways-8", streamed(8)),
        ("ways-store", MergeOptions::default()),
        (
            "ways-store-1",
            MergeOptions {
                jobs: 1,
                ..MergeOptions::default()
            },
        ),
    ] {
        let out = format!("memory://merge-tests/{name}");
        let report = merge_with(&inputs, &out, &options).unwrap();
        assert_eq!(report.manifest, reference.manifest, "{name}");
        assert_eq!(shard_bytes(&out, &[]), expected, "{name}");
        let by_store = if options.in_store_copy { shards } else { 0 };
        assert_eq!(
            (
                report.shards_copied_in_store as usize,
                report.shards_copied as usize
            ),
            (by_store, shards - by_store),
            "{name}"
        );
    }
}

/// Small synthetic datasets at `urls` (seeds 0, 1, ...), written with `store_options`.
fn small_inputs<const N: usize>(
    urls: [String; N],
    store_options: &[(String, String)],
) -> [String; N] {
    for (i, url) in urls.iter().enumerate() {
        let opts = SynthDatasetOptions {
            out: url.clone(),
            out_store_options: store_options.to_vec(),
            records: 4,
            seed: i as u64,
            source: format!("synth-{i}"),
            shard_target_bytes: 40_000,
            row_group_rows: 2,
            threads: 2,
            ..SynthDatasetOptions::default()
        };
        write_synth_dataset(&opts, &hidden()).unwrap();
    }
    urls
}

/// Two small synthetic datasets in folders `a` and `b` of `dir`.
fn local_inputs(dir: &std::path::Path) -> [String; 2] {
    small_inputs(
        [dir.join("a"), dir.join("b")].map(|p| p.display().to_string()),
        &[],
    )
}

#[test]
fn across_two_disks_a_hard_link_fails_and_the_bytes_pass_through_here() {
    use std::os::unix::fs::MetadataExt;
    let out_dir = tempfile::tempdir().unwrap();
    let Ok(in_dir) = tempfile::tempdir_in("/dev/shm") else {
        println!("skipped: no /dev/shm to hold inputs on another file system");
        return;
    };
    let device = |p: &std::path::Path| std::fs::metadata(p).unwrap().dev();
    if device(in_dir.path()) == device(out_dir.path()) {
        println!("skipped: /dev/shm and the temporary folder are one file system here");
        return;
    }
    let inputs = local_inputs(in_dir.path());
    let out = out_dir.path().join("out").display().to_string();
    let report = merge_with(&inputs, &out, &MergeOptions::default()).unwrap();
    let n = report.manifest.shards.len();
    assert_eq!(
        (report.shards_copied as usize, report.shards_copied_in_store),
        (n, 0)
    );
    let (_, rows) = read_dataset(&out, &[]);
    assert_eq!(rows.len() as u64, report.manifest.counts.rows);
}

#[test]
fn on_a_local_disk_the_store_copy_is_a_hard_link() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name).display().to_string();
    let inputs = local_inputs(dir.path());
    let links = |url: &str| -> Vec<u64> {
        manifest(url)
            .shards
            .iter()
            .map(|s| {
                let file = std::path::Path::new(url).join(&s.path);
                std::fs::metadata(file).unwrap().nlink()
            })
            .collect()
    };
    let linked = merge_with(&inputs, &at("linked"), &MergeOptions::default()).unwrap();
    let copied = merge_with(&inputs, &at("copied"), &streamed(4)).unwrap();
    let n = linked.manifest.shards.len();
    assert_eq!(
        (linked.shards_copied_in_store as usize, linked.shards_copied),
        (n, 0)
    );
    assert_eq!(linked.manifest, copied.manifest);
    // Each input shard now has a second name, in the linked merge; the streamed one owns its
    // files.
    assert!(links(&at("linked")).iter().all(|&l| l == 2));
    assert!(links(&at("copied")).iter().all(|&l| l == 1));
    assert_eq!(
        shard_bytes(&at("linked"), &[]),
        shard_bytes(&at("copied"), &[])
    );
    let (_, rows) = read_dataset(&at("linked"), &[]);
    assert_eq!(rows.len() as u64, linked.manifest.counts.rows);
}

#[test]
fn on_s3_a_merge_in_one_bucket_is_copied_by_the_server() {
    let Some(s3) = common::s3::MotoS3::start("merge-bucket") else {
        return;
    };
    a_merge_in_one_bucket_is_copied_by_the_server(|p| s3.url(p), s3.store_options());
}

#[test]
fn on_gcs_a_merge_in_one_bucket_is_copied_by_the_server() {
    let Some(gcs) = common::gcs::GcsStandIn::start("merge-bucket") else {
        return;
    };
    a_merge_in_one_bucket_is_copied_by_the_server(|p| gcs.url(p), gcs.store_options());
}

/// Two datasets merged within the bucket `url` names (its prefixes) are copied object to object
/// by the server; merged to a local disk, the same bytes pass through here.
fn a_merge_in_one_bucket_is_copied_by_the_server(
    url: impl Fn(&str) -> String,
    options: Vec<(String, String)>,
) {
    let local = tempfile::tempdir().unwrap();
    let inputs = small_inputs([url("in/a"), url("in/b")], &options);
    let with = |jobs| MergeOptions {
        jobs,
        store_options: options.clone(),
        ..MergeOptions::default()
    };
    let in_bucket = merge_with(&inputs, &url("out/same"), &with(3)).unwrap();
    let n = in_bucket.manifest.shards.len();
    assert!(n >= 2, "{n}");
    assert_eq!(
        (
            in_bucket.shards_copied_in_store as usize,
            in_bucket.shards_copied
        ),
        (n, 0)
    );
    // To a local disk the bytes have to pass through here.
    let out = local.path().join("out").display().to_string();
    let to_disk = merge_with(&inputs, &out, &with(3)).unwrap();
    assert_eq!(
        (
            to_disk.shards_copied as usize,
            to_disk.shards_copied_in_store
        ),
        (n, 0)
    );
    assert_eq!(to_disk.manifest, in_bucket.manifest);
    assert_eq!(
        shard_bytes(&url("out/same"), &options),
        shard_bytes(&out, &[])
    );
    let (_, rows) = read_dataset(&url("out/same"), &options);
    assert_eq!(rows.len() as u64, in_bucket.manifest.counts.rows);
}

#[test]
fn an_interrupted_merge_keeps_the_shards_it_copied_and_redoes_a_wrong_one() {
    let a = synth("resume-a", 1, 4, |_| {});
    let b = synth("resume-b", 2, 4, |_| {});
    let out = "memory://merge-tests/resume-out";
    let inputs = [a, b];
    let first = merge_with(&inputs, out, &MergeOptions::default()).unwrap();
    let shards = first.manifest.shards.len();
    assert!(shards >= 3);
    let (object_store, root) = store::open_url(out).unwrap();
    store::block_on(object_store.delete(&store::join(&root, "manifest.json"))).unwrap();
    flip_bit(out, &first.manifest.shards[1].path, 50);

    let again = merge_with(&inputs, out, &MergeOptions::default()).unwrap();
    assert_eq!(
        (again.shards_kept as usize, again.shards_copied_in_store),
        (shards - 1, 1)
    );
    assert_eq!(again.manifest, first.manifest);
    let (_, rows) = read_dataset(out, &[]);
    assert_eq!(rows.len() as u64, first.manifest.counts.rows);
}

#[test]
fn a_local_merge_killed_in_a_write_leaves_no_staging_file_once_run_again() {
    let inputs = [
        synth("staging-a", 1, 4, |_| {}),
        synth("staging-b", 2, 4, |_| {}),
    ];
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("merged");
    let out_url = out.display().to_string();
    let first = merge_with(&inputs, &out_url, &MergeOptions::default()).unwrap();
    // What a merge killed inside a write leaves: the store's half-written staging file, no
    // manifest.
    std::fs::remove_file(out.join("manifest.json")).unwrap();
    let staging = out.join("shards/shard-00001.parquet#3");
    std::fs::write(&staging, b"half a shard").unwrap();
    let again = merge_with(&inputs, &out_url, &MergeOptions::default()).unwrap();
    assert_eq!(again.manifest, first.manifest);
    assert!(!staging.exists(), "the staging file is left behind");
    let files = std::fs::read_dir(out.join("shards")).unwrap().count();
    assert_eq!(files, first.manifest.shards.len());
}

/// A merge run again with fewer inputs than an interrupted first attempt (the user dropped one)
/// removes the shards the first copied beyond this dataset's, and nothing else in the folder.
#[test]
fn a_merge_again_with_fewer_inputs_removes_the_shards_left_beyond_its_own() {
    let inputs = [
        synth("fewer-a", 1, 4, |_| {}),
        synth("fewer-b", 2, 4, |_| {}),
        synth("fewer-c", 3, 4, |_| {}),
    ];
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("merged");
    let out_url = out.display().to_string();
    let first = merge_with(&inputs, &out_url, &MergeOptions::default()).unwrap();
    std::fs::remove_file(out.join("manifest.json")).unwrap();
    let kept_aside = out.join("shards/notes.txt");
    std::fs::write(&kept_aside, b"not a shard").unwrap();

    let again = merge_with(&inputs[..1], &out_url, &MergeOptions::default()).unwrap();
    let own = again.manifest.shards.len();
    assert!(own >= 1 && own < first.manifest.shards.len());
    assert_eq!(
        again.shards_removed as usize,
        first.manifest.shards.len() - own
    );
    let mut files: Vec<String> = std::fs::read_dir(out.join("shards"))
        .unwrap()
        .map(|e| format!("shards/{}", e.unwrap().file_name().to_str().unwrap()))
        .collect();
    files.sort();
    let mut expected: Vec<String> = again
        .manifest
        .shards
        .iter()
        .map(|s| s.path.clone())
        .collect();
    expected.push("shards/notes.txt".into());
    expected.sort();
    assert_eq!(files, expected);
    assert!(inspect(&out_url, &[], &hidden())
        .unwrap()
        .damaged_shards
        .is_empty());
    // Run once more, nothing is left to remove.
    std::fs::remove_file(out.join("manifest.json")).unwrap();
    let third = merge_with(&inputs[..1], &out_url, &MergeOptions::default()).unwrap();
    assert_eq!((third.shards_removed, third.shards_kept as usize), (0, own));
}

/// A merge or a synth into a local folder another writer holds (its `_ingest.lock`) is refused
/// at once, naming that writer, and writes nothing there.
#[test]
fn a_merge_or_synth_into_a_folder_being_written_is_refused() {
    let inputs = [synth("locked-a", 1, 4, |_| {})];
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("busy");
    let out_url = out.display().to_string();
    let (object_store, root) = store::open_url(&out_url).unwrap();
    let lock = OutputLock::take(&object_store, &root, &out_url, Writer::Ingest).unwrap();
    let pid = std::process::id();
    let err = error_of(&inputs, &out_url);
    assert!(
        err.contains(&format!("is being written by another ingest (pid {pid})")),
        "{err}"
    );
    let synth_opts = SynthDatasetOptions {
        out: out_url.clone(),
        records: 4,
        ..SynthDatasetOptions::default()
    };
    let err = write_synth_dataset(&synth_opts, &hidden())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("is being written by another ingest (pid {pid})")),
        "{err}"
    );
    let files: Vec<_> = std::fs::read_dir(&out).unwrap().collect();
    assert_eq!(files.len(), 1, "only the lock file: {files:?}");
    drop(lock);
    merge_with(&inputs, &out_url, &MergeOptions::default()).unwrap();
    assert!(!out.join(LOCK_FILE).exists());
}

/// A synth into the folder of a larger synth that was killed before its manifest removes the
/// killed one's shards beyond its own, and the staging file of the write it was killed in.
#[test]
fn a_synth_over_a_larger_killed_synth_removes_its_extra_shards() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("synth");
    let mut opts = SynthDatasetOptions {
        out: out.display().to_string(),
        records: 40,
        shard_target_bytes: 40_000,
        row_group_rows: 2,
        threads: 2,
        ..SynthDatasetOptions::default()
    };
    let larger = write_synth_dataset(&opts, &hidden()).unwrap();
    assert_eq!(larger.shards_removed, 0);
    std::fs::remove_file(out.join("manifest.json")).unwrap();
    let staging = out.join("shards/shard-00002.parquet#1");
    std::fs::write(&staging, b"half a shard").unwrap();
    opts.records = 4;
    let smaller = write_synth_dataset(&opts, &hidden()).unwrap();
    assert!(!staging.exists(), "the staging file is left behind");
    let own = smaller.manifest.shards.len();
    assert!(own < larger.manifest.shards.len());
    assert_eq!(
        smaller.shards_removed as usize,
        larger.manifest.shards.len() - own
    );
    assert_eq!(std::fs::read_dir(out.join("shards")).unwrap().count(), own);
    let summary = inspect(out.to_str().unwrap(), &[], &hidden()).unwrap();
    assert!(summary.damaged_shards.is_empty());
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
    let report = merge_with(&inputs, &out, &MergeOptions::default()).unwrap();
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

#[test]
fn one_folder_ingested_twice_under_other_spellings_is_refused() {
    let Some(cinc) = ecgfm_test_support::shared_data("cinc2017") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let plain = cinc.display().to_string();
    let spellings = [
        plain.clone(),
        format!("{plain}/"),
        format!("file://{plain}"),
        format!("{plain}/../{}", cinc.file_name().unwrap().to_string_lossy()),
    ];
    let mut inputs = Vec::new();
    for (seed, source) in spellings.iter().enumerate() {
        let out = dir.path().join(format!("in{seed}")).display().to_string();
        let mut opts = options(std::path::Path::new(source), &out);
        (opts.source, opts.limit, opts.seed) = (source.clone(), Some(4), seed as u64);
        ingest(&opts, &hidden()).unwrap();
        inputs.push(out);
    }
    let out = dir.path().join("both").display().to_string();
    for other in &inputs[1..] {
        let pair = [inputs[0].clone(), other.clone()];
        let err = merge_with(&pair, &out, &MergeOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("counted twice"), "{other}: {err}");
    }
    // The same folder under another source name: its recordings split twice, so refused too.
    let renamed = dir.path().join("renamed").display().to_string();
    let mut opts = options(&cinc, &renamed);
    (opts.source_name, opts.limit) = (Some("cinc-again".into()), Some(4));
    ingest(&opts, &hidden()).unwrap();
    let err = merge_with(
        &[inputs[0].clone(), renamed],
        &out,
        &MergeOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("(source cinc-again) were both read from") && !err.contains("another --seed"),
        "{err}"
    );
}
