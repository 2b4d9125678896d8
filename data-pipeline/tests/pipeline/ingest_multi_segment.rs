//! A plain WFDB folder holding a multi-segment record: the record is ingested once, as a whole
//! (its segments and layout are not planned as records of their own), and its windows equal
//! those of a single-segment record with the same samples.

use crate::ingest_support;

use std::path::Path;

use ecgfm_data::ingest::{ingest, make_plan, SourceFormat, SourceRoot};
use ingest_support::{hidden, options, read_dataset};

/// Lead II samples at 250 Hz: a 1.2 Hz sine of 1 mV (stored at 1000 units per mV).
fn lead_ii(range: std::ops::Range<usize>) -> Vec<i16> {
    range
        .map(|t| (1000.0 * (2.0 * std::f64::consts::PI * 1.2 * t as f64 / 250.0).sin()) as i16)
        .collect()
}

fn write_record(dir: &Path, name: &str, samples: &[i16]) {
    let header = format!(
        "{name} 1 250 {}\n{name}.dat 16 1000/mV 16 0 {} 0 0 II\n",
        samples.len(),
        samples[0]
    );
    std::fs::write(dir.join(format!("{name}.hea")), header).unwrap();
    let bytes: Vec<u8> = samples.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.join(format!("{name}.dat")), bytes).unwrap();
}

#[test]
fn multi_segment_record_is_ingested_once_and_whole() {
    let source = tempfile::tempdir().unwrap();
    let dir = source.path();
    std::fs::write(
        dir.join("m.hea"),
        "m/3 1 250 2500\nm_layout 0\nm_0001 1250\nm_0002 1250\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("m_layout.hea"),
        "m_layout 1 250 0\n~ 0 1000/mV 16 0 0 0 0 II\n",
    )
    .unwrap();
    write_record(dir, "m_0001", &lead_ii(0..1250));
    write_record(dir, "m_0002", &lead_ii(1250..2500));
    write_record(dir, "r", &lead_ii(0..2500));

    let root = SourceRoot::open(dir.to_str().unwrap(), &[]).unwrap();
    let plan = make_plan(&root, SourceFormat::Wfdb, None).unwrap();
    let names: Vec<&str> = plan.records.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["m", "r"]);

    let out = tempfile::tempdir().unwrap();
    let mut opts = options(dir, out.path().to_str().unwrap());
    opts.format = SourceFormat::Wfdb;
    let report = ingest(&opts, &hidden()).unwrap();
    println!("{report}");
    let (manifest, rows) = read_dataset(out.path().to_str().unwrap(), &[]);
    assert!(manifest.quarantine.is_empty(), "{:?}", manifest.quarantine);
    let ids: Vec<&str> = rows.iter().map(|r| r.record_id.as_str()).collect();
    assert_eq!(ids, ["m", "r"]);
    assert_eq!(rows[0].n_samples, 2500);
    assert!(rows[0].lead_abs_sums[1] > 0);
    assert_eq!(rows[0].lead_abs_sums, rows[1].lead_abs_sums);
}
