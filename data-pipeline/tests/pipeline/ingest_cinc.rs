//! Ingest of the shared CinC 2017 (single-lead AliveCor, `REFERENCE.csv` labels) and CinC 2021
//! (`# Dx/# Age/# Sex` header comments) samples, a corrupted record that is quarantined with
//! a reason naming its file while the rest of the run goes on, and the label-CSV override (rows
//! matching no record reported, a CSV matching none refused), the `--records` list (a cohort
//! kept in the plan's order, a name missing from the source refused before anything is written)
//! and the `--exclude` list (read from an object store; names the source lacks a warning), and
//! `--format cinc2021` refused on a folder of another format or without `# Dx:` lines, and
//! records of one name in two subfolders (one record id) refused before anything is written.

use crate::ingest_support;

use std::collections::{BTreeMap, HashSet};

use ecgfm_data::ingest::{ingest, IngestOptions, SourceFormat};
use ecgfm_data::store;
use ecgfm_test_support::shared_data;
use ingest_support::{hidden, ingest_shared, options, read_dataset};

#[test]
fn cinc2017_all_records_ingest_with_reference_labels() {
    let Some(source) = shared_data("cinc2017") else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let mut opts = options(&source, out.path().to_str().unwrap());
    opts.shard_target_bytes = 32 << 20;
    let report = ingest(&opts, &hidden()).unwrap();
    println!("{report}");
    assert_eq!(report.format, SourceFormat::Cinc2017);
    assert_eq!(report.records_planned, 3000);
    assert_eq!(
        report.records_ingested + report.records_quarantined,
        3000,
        "every record is accounted for"
    );
    assert!(report.records_ingested >= 2990, "{report}");
    let (manifest, rows) = read_dataset(out.path().to_str().unwrap(), &[]);
    for q in &manifest.quarantine {
        assert!(q.reason.contains(&q.record), "{q:?}");
    }
    let only_lead_i: Vec<bool> = (0..12).map(|l| l == 0).collect();
    assert!(rows
        .iter()
        .all(|r| r.lead_mask == only_lead_i && r.lead_names == ["ECG"]));
    assert!(rows
        .iter()
        .all(|r| r.patient_id == format!("cinc2017:{}", r.record_id)));
    assert!(rows.iter().all(|r| r.fold.is_none() && r.age.is_none()));
    let first = rows.iter().find(|r| r.record_id == "A00001").unwrap();
    assert_eq!(first.labels, ["cinc2017:N"]);
    let a00004: Vec<_> = rows.iter().filter(|r| r.record_id == "A00004").collect();
    assert_eq!(a00004[0].labels, ["cinc2017:A"]);
    let records: HashSet<&str> = rows.iter().map(|r| r.record_id.as_str()).collect();
    assert_eq!(records.len() as u64, manifest.counts.records);
    for class in ["N", "A", "O", "~"] {
        assert!(
            manifest.counts.labels[&format!("cinc2017:{class}")] > 0,
            "{class}"
        );
    }
    let splits = &manifest.counts.splits;
    let total = manifest.counts.rows as f64;
    assert!(
        (splits["train"] as f64 / total - 0.8).abs() < 0.05,
        "{splits:?}"
    );
    assert!(splits["val"] > 0 && splits["test"] > 0, "{splits:?}");
    // Every row single-lead: the manifest's count by present leads says so for each split.
    for (split, &n) in splits {
        let by_leads = &manifest.counts.leads_present[split];
        assert_eq!(by_leads, &std::collections::BTreeMap::from([(1u8, n)]));
    }
}

#[test]
fn cinc2021_header_labels_age_and_sex() {
    let Some((out, _, report)) = ingest_shared("cinc2021-sample") else {
        return;
    };
    assert_eq!(report.format, SourceFormat::Cinc2021);
    assert_eq!(report.records_planned, 50);
    assert_eq!(report.records_ingested, 50, "{report}");
    let (_, rows) = read_dataset(out.path().to_str().unwrap(), &[]);
    assert_eq!(rows.len(), 50);
    let e07500 = rows.iter().find(|r| r.record_id == "E07500").unwrap();
    assert_eq!(e07500.labels, ["snomed:67741000119109", "snomed:426177001"]);
    assert_eq!(e07500.age, Some(78.0));
    assert_eq!(e07500.sex.as_deref(), Some("M"));
    assert!(rows
        .iter()
        .all(|r| r.labels.iter().all(|l| l.starts_with("snomed:"))));
    assert!(rows.iter().all(|r| r.lead_mask.iter().all(|m| *m)));
}

#[test]
fn corrupt_record_is_quarantined_and_the_run_goes_on() {
    let Some(source) = shared_data("cinc2017") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut reference = String::new();
    for name in ["A00001", "A00002", "A00003", "A00004"] {
        for ext in ["hea", "mat"] {
            std::fs::copy(
                source.join(format!("{name}.{ext}")),
                dir.path().join(format!("{name}.{ext}")),
            )
            .unwrap();
        }
        reference.push_str(&format!("{name},N\n"));
    }
    std::fs::write(dir.path().join("REFERENCE.csv"), reference).unwrap();
    let mat = dir.path().join("A00002.mat");
    let bytes = std::fs::read(&mat).unwrap();
    std::fs::write(&mat, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(dir.path().join("A00003.hea"), "A00003 1 300 notanumber\n").unwrap();

    let out = tempfile::tempdir().unwrap();
    let opts = options(dir.path(), out.path().to_str().unwrap());
    let report = ingest(&opts, &hidden()).unwrap();
    assert_eq!(report.records_ingested, 2);
    assert_eq!(report.records_quarantined, 2);
    let (manifest, rows) = read_dataset(out.path().to_str().unwrap(), &[]);
    let records: HashSet<&str> = rows.iter().map(|r| r.record_id.as_str()).collect();
    assert_eq!(records, HashSet::from(["A00001", "A00004"]));
    let reasons: BTreeMap<&str, (&str, &str)> = manifest
        .quarantine
        .iter()
        .map(|q| (q.record.as_str(), (q.kind.as_str(), q.reason.as_str())))
        .collect();
    let (kind, reason) = reasons["A00002"];
    assert_eq!(kind, "truncated signal file");
    assert!(reason.contains("A00002.mat"), "{reason}");
    let (kind, reason) = reasons["A00003"];
    assert_eq!(kind, "bad header");
    assert!(reason.contains("A00003.hea"), "{reason}");
    assert_eq!(manifest.counts.quarantine["truncated signal file"], 1);
}

/// Options of an ingest of `source`'s first three records into `out` with the label CSV `text`,
/// written to `csv`.
fn first_three_with_label_csv(
    source: &std::path::Path,
    out: &std::path::Path,
    csv: &std::path::Path,
    text: &str,
) -> IngestOptions {
    std::fs::write(csv, text).unwrap();
    let mut opts = options(source, out.to_str().unwrap());
    opts.limit = Some(3);
    opts.label_csv = Some(csv.display().to_string());
    opts
}

#[test]
fn label_csv_overrides_and_limit() {
    let Some(source) = shared_data("cinc2017") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (csv, out) = (dir.path().join("labels.csv"), dir.path().join("out"));
    let mut opts = first_three_with_label_csv(
        &source,
        &out,
        &csv,
        "record,labels,patient_id,age,sex\nA00002,custom:x;custom:y,p7,44,F\n\
         A00003.hea,custom:z,,,\nB00009,custom:q,,,\n",
    );
    opts.format = SourceFormat::Cinc2017;
    let report = ingest(&opts, &hidden()).unwrap();
    assert_eq!(report.records_planned, 3);
    let (_, rows) = read_dataset(out.to_str().unwrap(), &[]);
    let a2 = rows.iter().find(|r| r.record_id == "A00002").unwrap();
    assert_eq!(a2.labels, ["custom:x", "custom:y"]);
    assert_eq!(
        a2.patient_id, "cinc2017:p7",
        "prefixed by the source, as record ids are"
    );
    assert_eq!(a2.age, Some(44.0));
    assert_eq!(a2.sex.as_deref(), Some("F"));
    let a1 = rows.iter().find(|r| r.record_id == "A00001").unwrap();
    assert_eq!(a1.labels, ["cinc2017:N"]);
    let a3 = rows.iter().find(|r| r.record_id == "A00003").unwrap();
    assert_eq!(a3.labels, ["custom:z"], "a row may name the header file");
    assert!(rows.iter().all(|r| r.record_id.as_str() <= "A00003"));
    let [warning] = &report.warnings[..] else {
        panic!("one warning expected: {:?}", report.warnings);
    };
    assert!(warning.contains("labels.csv"), "{warning}");
    assert!(warning.contains("1 of its 3 rows"), "{warning}");
    assert!(warning.contains("B00009"), "{warning}");

    // A CSV none of whose rows names a record is refused, naming it.
    std::fs::write(&csv, "record,labels\nrecords/A00001x,custom:x\n").unwrap();
    opts.out = dir.path().join("out2").display().to_string();
    let err = ingest(&opts, &hidden()).unwrap_err().to_string();
    assert!(err.contains("labels.csv"), "{err}");
    assert!(err.contains("none of its 1 rows"), "{err}");
}

/// A label CSV's row replaces what it gives and keeps what the header gives that it does not:
/// age and sex from `# Age`/`# Sex` stay (until 2026-12-06 any row for a record dropped them).
#[test]
fn a_label_csv_row_keeps_the_header_s_age_and_sex() {
    let Some(source) = shared_data("cinc2021-sample") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (csv, out) = (dir.path().join("labels.csv"), dir.path().join("out"));
    let csv_text = "record,labels,age,sex\nE07500,hosp:af,,\nE07501,,40,F\n";
    ingest(
        &first_three_with_label_csv(&source, &out, &csv, csv_text),
        &hidden(),
    )
    .unwrap();
    let (_, rows) = read_dataset(out.to_str().unwrap(), &[]);
    let row = |id: &str| rows.iter().find(|r| r.record_id == id).unwrap();
    let e0 = row("E07500");
    assert_eq!(e0.labels, ["hosp:af"]);
    assert_eq!((e0.age, e0.sex.as_deref()), (Some(78.0), Some("M")));
    let e1 = row("E07501");
    assert!(e1.labels.is_empty(), "an empty labels cell gives none");
    assert_eq!((e1.age, e1.sex.as_deref()), (Some(40.0), Some("F")));
    let e2 = row("E07502");
    assert!(e2.age.is_some() && e2.sex.is_some());
}

/// Headers spelled `.HEA` are not read (WFDB names are case-sensitive), and a warning says so
/// (they were left out without a word).
#[test]
fn headers_in_upper_case_are_named_in_a_warning() {
    let Some(source) = shared_data("cinc2021-sample") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let copy = |from: &str, to: &str| {
        std::fs::copy(source.join(from), dir.path().join(to)).unwrap();
    };
    copy("E07500.hea", "E07500.hea");
    copy("E07500.mat", "E07500.mat");
    copy("E07501.hea", "E07501.HEA");
    copy("E07501.mat", "E07501.MAT");
    let out = dir.path().join("out");
    let report = ingest(&options(dir.path(), out.to_str().unwrap()), &hidden()).unwrap();
    assert_eq!(report.records_planned, 1);
    let said =
        "1 header files are not named `.hea` in lower case (e.g. E07501.HEA) and are not read";
    assert!(
        report.warnings.iter().any(|w| w.contains(said)),
        "{:?}",
        report.warnings
    );
}

/// The distinct record ids of the dataset at `out`, sorted.
fn ingested_ids(out: &std::path::Path) -> Vec<String> {
    let (_, rows) = read_dataset(out.to_str().unwrap(), &[]);
    let ids: std::collections::BTreeSet<String> = rows.into_iter().map(|r| r.record_id).collect();
    ids.into_iter().collect()
}

#[test]
fn a_record_list_keeps_its_records_and_a_missing_name_writes_nothing() {
    let Some(source) = shared_data("cinc2017") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("cohort.txt");
    std::fs::write(&list, "# AF cohort\nA00592.hea\nA00004\nA00019\n\nA01000\n").unwrap();
    let out = dir.path().join("out");
    let mut opts = options(&source, out.to_str().unwrap());
    opts.records = Some(list.display().to_string());
    opts.limit = Some(3);
    let report = ingest(&opts, &hidden()).unwrap();
    assert_eq!(report.format, SourceFormat::Cinc2017, "detected as before");
    assert_eq!(report.records_planned, 3, "the limit counts listed records");
    let (manifest, _) = read_dataset(out.to_str().unwrap(), &[]);
    assert_eq!(manifest.sources[0].records_seen, 3);
    assert_eq!(
        ingested_ids(&out),
        ["A00004", "A00019", "A00592"],
        "the first three of the list in the source's sorted order"
    );

    std::fs::write(&list, "record,labels\nA00004,x:y\nA99999,x:y\nB00001,x:y\n").unwrap();
    let out = dir.path().join("out2");
    opts.out = out.display().to_string();
    let err = ingest(&opts, &hidden()).unwrap_err().to_string();
    assert!(err.contains("cohort.txt"), "{err}");
    assert!(
        err.contains("2 of its 3 records are not in") && err.contains("A99999, B00001"),
        "{err}"
    );
    assert!(
        !out.exists(),
        "nothing written for a list that names absent records"
    );
}

#[test]
fn an_exclusion_list_leaves_its_records_out_and_warns_of_absent_ones() {
    let Some(source) = shared_data("cinc2017") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The list in an object store (the in-memory one), read with the source's store options.
    let list = "memory://lists/held-out.csv";
    let (object_store, root) = store::open_url(list).unwrap();
    let bytes = b"record,split\nA00002,test\nA00003.hea,test\nZ00001,test\n".to_vec();
    store::block_on(store::put_bytes(object_store.as_ref(), &root, bytes.into())).unwrap();
    let out = dir.path().join("out");
    let mut opts = options(&source, out.to_str().unwrap());
    opts.exclude = Some(list.to_string());
    opts.limit = Some(3);
    let report = ingest(&opts, &hidden()).unwrap();
    assert_eq!(ingested_ids(&out), ["A00001", "A00004", "A00005"]);
    let [warning] = &report.warnings[..] else {
        panic!("one warning expected: {:?}", report.warnings);
    };
    assert!(
        warning.contains("memory://lists/held-out.csv: 1 of its 3 records are not in")
            && warning.contains("Z00001"),
        "{warning}"
    );
}

/// `--format cinc2021` reads labels from `# Dx:` header lines: on a folder that is recognisably
/// another format (PTB-XL's or CinC 2017's label table) or whose headers have no `# Dx:` line
/// it is refused, saying what the folder looks like and the `--format` that reads it, before
/// anything is written (it ingested PTB-XL without labels, patients or folds).
#[test]
fn cinc2021_on_another_format_is_refused() {
    let (Some(ptbxl), Some(cinc2017), Some(plain)) = (
        shared_data("ptbxl-500"),
        shared_data("cinc2017"),
        shared_data("wfdb-formats"),
    ) else {
        return;
    };
    for (source, said) in [
        (
            &ptbxl,
            "--format cinc2021 reads labels from `# Dx:` header lines; this folder looks like \
             ptbxl (it has ptbxl_database.csv): use --format ptbxl or --format auto",
        ),
        (
            &cinc2017,
            "this folder looks like cinc2017 (it has REFERENCE.csv): use --format cinc2017 or \
             --format auto",
        ),
        (
            &plain,
            "this folder looks like wfdb (none of its 9 WFDB headers has a `# Dx:` line): use \
             --format wfdb or --format auto",
        ),
    ] {
        let out = tempfile::tempdir().unwrap();
        let mut opts = options(source, out.path().join("pc21").to_str().unwrap());
        opts.format = SourceFormat::Cinc2021;
        opts.limit = Some(20);
        let err = ingest(&opts, &hidden()).unwrap_err().to_string();
        assert!(err.contains(said), "{err}");
        assert!(!out.path().join("pc21").exists(), "{err}");
    }
    // The CinC 2021 sample itself still plans with header labels.
    let Some(sample) = shared_data("cinc2021-sample") else {
        return;
    };
    let mut opts = options(&sample, "");
    opts.format = SourceFormat::Cinc2021;
    let source = ecgfm_data::ingest::SourceRoot::open(&opts.source, &[]).unwrap();
    let plan = ecgfm_data::ingest::plan_records(&opts, &source).unwrap();
    assert_eq!(plan.records.len(), 50);
}

/// A `# Dx:` line with an empty code between commas quarantines its record as a `bad header`
/// naming the file and the line (its labels were read as if the gap were not there); the other
/// records are ingested.
#[test]
fn a_dx_line_with_an_empty_code_is_quarantined() {
    let Some(sample) = shared_data("cinc2021-sample") else {
        return;
    };
    let src = tempfile::tempdir().unwrap();
    for name in ["E07500", "E07501"] {
        for ext in ["hea", "mat"] {
            let from = sample.join(format!("{name}.{ext}"));
            std::fs::copy(&from, src.path().join(format!("{name}.{ext}"))).unwrap();
        }
    }
    let header = src.path().join("E07500.hea");
    let text = std::fs::read_to_string(&header).unwrap();
    let text: Vec<String> = text
        .lines()
        .map(|l| match l.starts_with("# Dx:") || l.starts_with("#Dx:") {
            true => "# Dx: abc,,123".to_string(),
            false => l.to_string(),
        })
        .collect();
    std::fs::write(&header, text.join("\n") + "\n").unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut opts = options(src.path(), out.path().to_str().unwrap());
    opts.format = SourceFormat::Cinc2021;
    let report = ingest(&opts, &hidden()).unwrap();
    assert_eq!(
        (report.records_ingested, report.records_quarantined),
        (1, 1)
    );
    let (manifest, rows) = read_dataset(out.path().to_str().unwrap(), &[]);
    let q = &manifest.quarantine[0];
    assert_eq!(
        (q.record.as_str(), q.kind.as_str()),
        ("E07500", "bad header")
    );
    assert!(
        q.reason
            .contains("E07500.hea: `# Dx: abc,,123` has an empty code"),
        "{q:?}"
    );
    assert!(rows.iter().all(|r| r.record_id == "E07501"));
    assert!(!manifest.counts.labels.contains_key("snomed:abc"));
}

/// Two subfolders of one source holding records of the same names (`sub1/E07500`,
/// `sub2/E07500`) would share record ids (and patients): the ingest is refused at planning
/// (so by `--dry-run` too), naming both paths and the ways out, before anything is written;
/// an `--exclude` listing one subfolder's paths ingests the other's records, each id once.
/// (Both were once ingested as `E07500`, silently.)
#[test]
fn records_sharing_a_name_in_two_subfolders_are_refused() {
    let Some(sample) = shared_data("cinc2021-sample") else {
        return;
    };
    let src = tempfile::tempdir().unwrap();
    let nest = src.path().join("nest");
    let names = ["E07500", "E07501", "E07502"];
    for sub in ["sub1", "sub2"] {
        std::fs::create_dir_all(nest.join(sub)).unwrap();
        for name in names {
            for ext in ["hea", "mat"] {
                let file = format!("{name}.{ext}");
                std::fs::copy(sample.join(&file), nest.join(sub).join(&file)).unwrap();
            }
        }
    }
    let out = src.path().join("o");
    let mut opts = options(&nest, out.to_str().unwrap());
    opts.format = SourceFormat::Cinc2021;
    let source = ecgfm_data::ingest::SourceRoot::open(&opts.source, &[]).unwrap();
    let planned = ecgfm_data::ingest::plan_records(&opts, &source).unwrap_err();
    let err = ingest(&opts, &hidden()).unwrap_err().to_string();
    assert_eq!(planned.to_string(), err);
    for said in [
        "records `sub1/E07500` and `sub2/E07500` would both be ingested as record id `E07500`",
        "(2 more records share an id",
        "--source-name",
        "--exclude",
    ] {
        assert!(err.contains(said), "{said}: {err}");
    }
    assert!(!out.exists(), "nothing written: {err}");
    // Leaving one subfolder out by path resolves it.
    let list = src.path().join("sub2.txt");
    let paths: Vec<String> = names.iter().map(|n| format!("sub2/{n}\n")).collect();
    std::fs::write(&list, paths.concat()).unwrap();
    opts.exclude = Some(list.to_str().unwrap().to_string());
    let report = ingest(&opts, &hidden()).unwrap();
    assert_eq!(
        (report.records_ingested, report.records_quarantined),
        (3, 0)
    );
    let (_, rows) = read_dataset(out.to_str().unwrap(), &[]);
    let ids: HashSet<&str> = rows.iter().map(|r| r.record_id.as_str()).collect();
    assert_eq!(ids, HashSet::from(names));
}
