//! Compares decoded records with the Python `wfdb` package on every record of the shared
//! `wfdb-formats` folder and on samples of PTB-XL, CinC 2017 and CinC 2021: same sample count,
//! digital sum and SHA-256 of the digital samples per signal, physical sums within 1e-9.

mod oracle;

use ecgfm_test_support::shared_data;
use std::path::Path;

use ecgfm_wfdb::{read_record_with, DirSource, ReadOptions, WfdbError};
use sha2::{Digest, Sha256};

/// Record paths relative to the shared data folder, with `@channels` where only some are read.
const RECORDS: &[&str] = &[
    "wfdb-formats/100",
    "wfdb-formats/03700181",
    "wfdb-formats/3000003_0003",
    "wfdb-formats/a103l",
    "wfdb-formats/binformats",
    "wfdb-formats/p10143",
    // s0010_re.xyz (signals 12-14) is not in the shared data: compare the 12 standard leads.
    "wfdb-formats/s0010_re@0,1,2,3,4,5,6,7,8,9,10,11",
    "wfdb-formats/test01_00s",
    "wfdb-formats/v102s",
    "ptbxl-500/records500/00000/00001_hr",
    "ptbxl-500/records500/00000/00002_hr",
    "ptbxl-500/records500/00000/00250_hr",
    "ptbxl-500/records500/00000/00500_hr",
    "cinc2017/A00001",
    "cinc2017/A00002",
    "cinc2017/A01500",
    "cinc2017/A03000",
    "cinc2021-sample/E07500",
    "cinc2021-sample/HR06000",
    "cinc2021-sample/JS20000",
    "cinc2021-sample/JS20019",
];

fn read(data: &Path, spec: &str) -> Result<ecgfm_wfdb::Record, WfdbError> {
    let (path, channels) = match spec.split_once('@') {
        Some((p, c)) => (p, Some(c.split(',').map(|x| x.parse().unwrap()).collect())),
        None => (spec, None),
    };
    // Every CinC 2017 header writes checksum 0 (never computed), so those are not verified.
    let options = ReadOptions {
        channels,
        ignore_checksums: spec.starts_with("cinc2017/"),
    };
    read_record_with(&DirSource::new(data), path, &options)
}

#[test]
fn every_record_matches_the_wfdb_package() {
    let Some(data) = shared_data("") else {
        return;
    };
    let mut args = vec!["signals".to_string()];
    args.extend(RECORDS.iter().map(|r| r.to_string()));
    let Some(expected) = oracle::run_oracle(&data, &args) else {
        return;
    };
    let mut checked = 0;
    for spec in RECORDS {
        let record = read(&data, spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
        let rows: Vec<&Vec<String>> = expected.iter().filter(|r| r[0] == *spec).collect();
        assert_eq!(rows.len(), record.signals.len(), "{spec}: signal count");
        for row in rows {
            let sig: usize = row[1].parse().unwrap();
            let digital = &record.digital[sig];
            let sum: i64 = digital.iter().map(|&d| i64::from(d)).sum();
            let mut hasher = Sha256::new();
            for d in digital {
                hasher.update(d.to_le_bytes());
            }
            let hash = format!("{:x}", hasher.finalize());
            let physical = record.physical(sig);
            let nan = physical.iter().filter(|p| p.is_nan()).count();
            let psum: f64 = physical.iter().filter(|p| !p.is_nan()).sum();
            let want_psum: f64 = row[5].parse().unwrap();
            assert_eq!(
                digital.len().to_string(),
                row[2],
                "{spec} signal {sig}: count"
            );
            assert_eq!(sum.to_string(), row[3], "{spec} signal {sig}: digital sum");
            assert_eq!(hash, row[4], "{spec} signal {sig}: digital hash");
            assert_eq!(
                nan.to_string(),
                row[6],
                "{spec} signal {sig}: missing samples"
            );
            let scale = physical
                .iter()
                .filter(|p| !p.is_nan())
                .map(|p| p.abs())
                .sum::<f64>();
            assert!(
                (psum - want_psum).abs() <= 1e-9 * scale.max(1.0),
                "{spec} signal {sig}: physical sum {psum} vs {want_psum}"
            );
            checked += 1;
        }
    }
    println!("{checked} signals of {} records match wfdb", RECORDS.len());
}

#[test]
fn missing_signal_file_is_named() {
    let Some(data) = shared_data("") else {
        return;
    };
    let err = read(&data, "wfdb-formats/s0010_re").unwrap_err();
    match &err {
        WfdbError::NotFound { file } => assert!(file.ends_with("s0010_re.xyz"), "{err}"),
        other => panic!("expected NotFound, got {other}"),
    }
}

#[test]
fn cinc2017_placeholder_checksum_is_reported() {
    let Some(data) = shared_data("") else {
        return;
    };
    let err = ecgfm_wfdb::read_record(&data.join("cinc2017/A00001")).unwrap_err();
    match &err {
        WfdbError::ChecksumMismatch {
            file,
            signal: 0,
            expected: 0,
            ..
        } => assert!(file.ends_with("A00001.hea"), "{err}"),
        other => panic!("expected a checksum mismatch, got {other}"),
    }
}
