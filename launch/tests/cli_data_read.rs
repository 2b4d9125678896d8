//! `ecgfm data read` against the `wfdb` Python package: the CSV of a real record carries the
//! same signal names, sample count and per-signal sums (digital exactly, physical within float
//! tolerance) as `wfdb.rdrecord`.

use std::path::{Path, PathBuf};
use std::process::Command;

const ECGFM: &str = env!("CARGO_BIN_EXE_ecgfm");

fn shared_data() -> Option<PathBuf> {
    let dir = std::env::var_os("ECGFM_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipping: shared ECG data not found at {}", dir.display());
        None
    }
}

const ORACLE: &str = r#"
import sys, json, wfdb, numpy as np
rec = sys.argv[1]
d = wfdb.rdrecord(rec, physical=False)
p = wfdb.rdrecord(rec)
print(json.dumps({"names": d.sig_name, "rows": int(d.d_signal.shape[0]),
    "digital": [int(x) for x in d.d_signal.astype(np.int64).sum(axis=0)],
    "physical": [float(x) for x in np.nansum(p.p_signal, axis=0)]}))
"#;

/// Column sums and row count of a CSV written by `ecgfm data read`.
fn csv_sums(text: &str) -> (Vec<String>, usize, Vec<f64>) {
    let mut lines = text.lines();
    let names: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    let mut sums = vec![0.0f64; names.len()];
    let mut rows = 0;
    for line in lines {
        for (sum, field) in sums.iter_mut().zip(line.split(',')) {
            *sum += field.parse::<f64>().unwrap_or(0.0);
        }
        rows += 1;
    }
    (names, rows, sums)
}

#[test]
fn csv_of_mit_bih_100_matches_wfdb() {
    let Some(shared) = shared_data() else { return };
    let record = shared.join("wfdb-formats/100");
    let oracle = Command::new("python3")
        .args(["-c", ORACLE, record.to_str().unwrap()])
        .output()
        .expect("python3 runs");
    assert!(
        oracle.status.success(),
        "the wfdb oracle failed (CI installs wfdb): {}",
        String::from_utf8_lossy(&oracle.stderr)
    );
    let expected: serde_json::Value = serde_json::from_slice(&oracle.stdout).unwrap();

    let out = std::env::temp_dir().join(format!("ecgfm-read-{}.csv", std::process::id()));
    for digital in [true, false] {
        let mut args = vec![
            "data".to_string(),
            "read".into(),
            record.to_str().unwrap().into(),
            "--out".into(),
            out.to_str().unwrap().into(),
        ];
        if digital {
            args.push("--digital".into());
        }
        let status = Command::new(ECGFM).args(&args).status().unwrap();
        assert!(status.success());
        let (names, rows, sums) = csv_sums(&std::fs::read_to_string(&out).unwrap());
        let expected_names: Vec<String> =
            serde_json::from_value(expected["names"].clone()).unwrap();
        assert_eq!(names, expected_names);
        assert_eq!(rows as u64, expected["rows"].as_u64().unwrap());
        let key = if digital { "digital" } else { "physical" };
        for (got, want) in sums.iter().zip(expected[key].as_array().unwrap()) {
            let want = want.as_f64().unwrap();
            let tolerance = if digital { 0.0 } else { 1e-6 * rows as f64 };
            assert!(
                (got - want).abs() <= tolerance,
                "{key} sum {got} != wfdb's {want}"
            );
        }
    }
    std::fs::remove_file(out).unwrap();
}
