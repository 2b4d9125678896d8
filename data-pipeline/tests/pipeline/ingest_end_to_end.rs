//! `ingest` end to end against an independent Python conversion of the same raw records
//! (`ingest_oracle.py`: wfdb, the numpy Kaiser-sinc resampler written from ecgfm's documentation
//! that exported packages ship (python/ecgfm_preprocess.py), scipy's Butterworth band-pass, windows and int16 rounding from the documented defaults): the
//! stored int16 rows of PTB-XL (12 leads, 500 Hz) and CinC 2017 (1 lead, 300 Hz, records longer
//! and shorter than a window) have the oracle's windows, n_samples, leads and samples.
//!
//! What the bounds below rest on, measured over all 500 PTB-XL records and CinC 2017's first 600
//! (2479 windows): every stored sample within 1 uV of the oracle's, interior and record ends
//! alike, and 54 of 19.9 million samples off at all (at most 2 in a window): values within float
//! rounding of a half unit (ingest rounds an f32, the oracle an f64). For scale: scipy's
//! resample_poly in the oracle's place differs by up to 20 uV more than 1 s from the record's
//! ends and 419 uV nearer.

use crate::ingest_support;

use std::path::Path;
use std::process::Command;

use ecgfm_data::ingest::ingest;
use ecgfm_data::schema::STANDARD_LEADS;
use ecgfm_test_support::{python_stdout, shared_data};
use ingest_support::{hidden, options};
use serde_json::{json, Value};

/// Largest |stored - oracle| allowed more than 1 s from the record's ends (measured: 1 uV).
const MAX_INTERIOR_DIFF_UV: f64 = 2.0;
/// Largest |stored - oracle| allowed anywhere in a window, padding included (measured: 1 uV).
const MAX_WINDOW_DIFF_UV: f64 = 3.0;
/// Most samples of one lead of one window that may differ at all (measured: 2 of 2500). This
/// catches errors below a unit that the bounds above let through: rounding down instead of to
/// the nearest (about 1250 differ), a 0.1% gain error (120), a resampler cut-off of 0.95 x
/// Nyquist instead of 0.9 (15).
const MAX_DIFFERING_SAMPLES: u64 = 10;
/// Smallest RMS of a present lead, so no comparison is of a flat line (measured: 19 uV).
const MIN_PRESENT_RMS_UV: f64 = 10.0;

/// Ingests `records` of the shared folder `folder` (a `--records` list) and returns the oracle's
/// comparison of them with the rows stored; `None` (skipped) without the shared data or the
/// Python packages.
fn ingest_and_compare(folder: &str, records: &[String]) -> Option<Value> {
    let source = shared_data(folder)?;
    let out = tempfile::tempdir().unwrap();
    let list = out.path().join("records.txt");
    std::fs::write(&list, records.join("\n")).unwrap();
    let mut opts = options(&source, out.path().join("dataset").to_str().unwrap());
    opts.records = Some(list.to_str().unwrap().to_string());
    let report = ingest(&opts, &hidden()).unwrap();
    assert_eq!(report.records_ingested, records.len() as u64, "{report}");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ingest_oracle.py");
    let stdout = python_stdout(
        Command::new("python3")
            .arg(script)
            .arg(out.path().join("dataset"))
            .arg(&source)
            .args(records),
        &["numpy", "scipy", "wfdb", "pyarrow"],
        "ingest_oracle.py",
    )?;
    Some(serde_json::from_slice(&stdout).unwrap())
}

/// Asserts that every record of the oracle's comparison has the oracle's windows, n_samples and
/// present leads (`leads`), its samples within the bounds, and a signal on each present lead.
fn assert_matches_oracle(comparison: &Value, leads: &[&str]) {
    for record in comparison["records"].as_array().unwrap() {
        let id = record["record"].as_str().unwrap();
        assert_eq!(record["leads_present"], json!(leads), "{id}");
        assert_eq!(
            record["window_indices"], record["stored_window_indices"],
            "{id}: windows"
        );
        for window in record["windows"].as_array().unwrap() {
            let at = format!("{id} window {}", window["window_index"]);
            assert_eq!(window["stored_n_samples"], window["n_samples"], "{at}");
            assert_eq!(window["stored_leads_present"], json!(leads), "{at}");
            for (lead, figures) in window["leads"].as_object().unwrap() {
                let figure = |name: &str| figures[name].as_f64().unwrap_or(0.0);
                assert!(
                    figure("interior_max_abs_diff_uv") <= MAX_INTERIOR_DIFF_UV
                        && figure("max_abs_diff_uv") <= MAX_WINDOW_DIFF_UV
                        && figure("differing_samples") <= MAX_DIFFERING_SAMPLES as f64,
                    "{at} lead {lead}: {figures}"
                );
                if leads.contains(&lead.as_str()) {
                    assert!(figure("rms_uv") >= MIN_PRESENT_RMS_UV, "{at} lead {lead}");
                }
            }
        }
    }
}

/// (window count, n_samples of the last window) of `record` as the oracle cut it.
fn windows_of(comparison: &Value, record: &str) -> (usize, u64) {
    let found = comparison["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["record"] == record)
        .unwrap();
    let windows = found["windows"].as_array().unwrap();
    let last = windows.last().unwrap()["n_samples"].as_u64().unwrap();
    (windows.len(), last)
}

#[test]
fn ptbxl_windows_equal_the_python_conversion() {
    let records: Vec<String> = (1..=20).map(|i| format!("{i:05}_hr")).collect();
    let Some(comparison) = ingest_and_compare("ptbxl-500", &records) else {
        return;
    };
    assert_eq!(comparison["records"].as_array().unwrap().len(), 20);
    assert_matches_oracle(&comparison, &STANDARD_LEADS);
    // 10 s at 500 Hz: one whole window.
    assert_eq!(windows_of(&comparison, "00001_hr"), (1, 2500));
}

#[test]
fn cinc2017_windows_equal_the_python_conversion() {
    // A00592 (2996 samples at 300 Hz, 2497 at 250 Hz) is the first record shorter than a
    // window; the others: 30 s, 60 s, and trailing parts of 2142 and 2100 samples (kept) and of
    // 85 (dropped).
    let records: Vec<String> = ["A00001", "A00003", "A00014", "A00015", "A00019", "A00592"]
        .map(String::from)
        .to_vec();
    let Some(comparison) = ingest_and_compare("cinc2017", &records) else {
        return;
    };
    assert_eq!(comparison["records"].as_array().unwrap().len(), 6);
    assert_matches_oracle(&comparison, &["I"]);
    assert_eq!(windows_of(&comparison, "A00001"), (3, 2500));
    assert_eq!(windows_of(&comparison, "A00003"), (6, 2500));
    assert_eq!(windows_of(&comparison, "A00014"), (2, 2142));
    assert_eq!(windows_of(&comparison, "A00015"), (2, 2500));
    assert_eq!(windows_of(&comparison, "A00019"), (4, 2100));
    assert_eq!(windows_of(&comparison, "A00592"), (1, 2497));
}
