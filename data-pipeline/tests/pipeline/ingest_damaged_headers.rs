//! Records whose headers claim what no ECG has (a sampling rate of 1 GHz or 0.001 Hz, a skew of
//! 2^64 - 1 frames) are quarantined with that reason, naming the record, before anything is sized
//! by the claim; the rest of the run goes on.

use crate::ingest_support;

use std::collections::BTreeMap;

use ecgfm_data::ingest::ingest;
use ecgfm_test_support::shared_data;
use ingest_support::{hidden, options, read_dataset};

#[test]
fn implausible_rates_and_skews_are_quarantined_and_the_run_goes_on() {
    let Some(source) = shared_data("cinc2021-sample") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Each record's header with `from` replaced by `to` (the first time it occurs).
    let damage = [
        ("E07500", "", ""),
        ("E07501", "E07501 12 500 ", "E07501 12 1e9 "),
        ("E07502", "E07502 12 500 ", "E07502 12 0.001 "),
        ("E07503", "16x1+24", "16x1:18446744073709551615+24"),
        ("E07504", "", ""),
    ];
    for (name, from, to) in damage {
        let header = std::fs::read_to_string(source.join(format!("{name}.hea"))).unwrap();
        assert!(header.contains(from), "{name}: {from:?}");
        let changed = if from.is_empty() {
            header
        } else {
            header.replacen(from, to, 1)
        };
        std::fs::write(dir.path().join(format!("{name}.hea")), changed).unwrap();
        let mat = format!("{name}.mat");
        std::fs::copy(source.join(&mat), dir.path().join(&mat)).unwrap();
    }
    let out = tempfile::tempdir().unwrap();
    let report = ingest(
        &options(dir.path(), out.path().to_str().unwrap()),
        &hidden(),
    )
    .unwrap();
    assert_eq!(report.records_ingested, 2, "{report}");
    let (manifest, rows) = read_dataset(out.path().to_str().unwrap(), &[]);
    assert!(rows
        .iter()
        .all(|r| r.record_id == "E07500" || r.record_id == "E07504"));
    let quarantined: BTreeMap<&str, (&str, &str)> = manifest
        .quarantine
        .iter()
        .map(|q| (q.record.as_str(), (q.kind.as_str(), q.reason.as_str())))
        .collect();
    println!("{quarantined:#?}");
    let rate = "implausible sampling rate";
    for (record, kind, says) in [
        ("E07501", rate, "1000000000 Hz"),
        ("E07502", rate, "0.001 Hz"),
        ("E07503", "bad header", "skew 18446744073709551615"),
    ] {
        let (got_kind, reason) = quarantined[record];
        assert_eq!(got_kind, kind, "{reason}");
        assert!(reason.contains(record), "{reason}");
        assert!(reason.contains(says), "{reason}");
    }
    assert_eq!(manifest.counts.quarantine[rate], 2);
}
