//! `ecgfm data read` against the `wfdb` Python package on every record of the shared
//! `wfdb-formats` folder: the CSV carries the same signal names, sample count and per-signal sums
//! (digital exactly, physical within float tolerance; missing samples left out of both) as
//! `wfdb.rdrecord`, and a record the package cannot read either fails with the file named; a
//! stale header checksum points at `--ignore-checksums`.

use std::path::Path;
use std::process::Command;

use ecgfm_test_support::python_stdout;

use crate::common::{run_err, run_ok};
use crate::ECGFM;

const ORACLE: &str = r#"
import sys, json, wfdb, numpy as np
out = {}
for rec in sys.argv[1:]:
    try:
        d = wfdb.rdrecord(rec, physical=False)
        p = wfdb.rdrecord(rec)
    except Exception as e:
        out[rec] = {"error": str(e)}
        continue
    present = ~np.isnan(p.p_signal)
    out[rec] = {"names": d.sig_name, "rows": int(d.d_signal.shape[0]),
        "digital": [int(x) for x in np.where(present, d.d_signal, 0).astype(np.int64).sum(axis=0)],
        "physical": [float(x) for x in np.nansum(p.p_signal, axis=0)]}
print(json.dumps(out))
"#;

/// The fields of a CSV header line, unquoting `"..."` fields (`""` inside is a quote).
fn header_fields(line: &str) -> Vec<String> {
    let (mut fields, mut field, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// Column sums and row count of a CSV written by `ecgfm data read`.
fn csv_sums(text: &str) -> (Vec<String>, usize, Vec<f64>) {
    let mut lines = text.lines();
    let names = header_fields(lines.next().unwrap());
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

/// Runs `ecgfm data read RECORD --out OUT [--digital]`; its stderr when it fails.
fn read_csv(record: &str, out: &Path, digital: bool) -> Result<String, String> {
    let mut args = vec!["data", "read", record, "--out", out.to_str().unwrap()];
    if digital {
        args.push("--digital");
    }
    let output = Command::new(ECGFM).args(&args).output().unwrap();
    if output.status.success() {
        Ok(std::fs::read_to_string(out).unwrap())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

#[test]
fn csv_of_every_wfdb_formats_record_matches_wfdb() {
    let Some(folder) = ecgfm_test_support::shared_data("wfdb-formats") else {
        return;
    };
    let mut records: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .filter_map(|entry| {
            let path = entry.unwrap().path();
            (path.extension()? == "hea").then(|| path.with_extension("").display().to_string())
        })
        .collect();
    records.sort();
    assert!(records.len() >= 9, "{records:?}");
    let Some(oracle) = python_stdout(
        Command::new("python3").arg("-c").arg(ORACLE).args(&records),
        &["wfdb", "numpy"],
        "the wfdb oracle",
    ) else {
        return;
    };
    let expected: serde_json::Value = serde_json::from_slice(&oracle).unwrap();
    let out = std::env::temp_dir().join(format!("ecgfm-read-{}.csv", std::process::id()));
    let mut compared = 0;
    for record in &records {
        let want = &expected[record.as_str()];
        for digital in [true, false] {
            let csv = read_csv(record, &out, digital);
            if let Some(error) = want.get("error") {
                let message = csv.expect_err("wfdb cannot read it, ecgfm did");
                println!("{record}: wfdb: {error}; ecgfm: {}", message.trim());
                assert!(message.contains(record.as_str()), "{message}");
                continue;
            }
            let csv = csv.unwrap_or_else(|e| panic!("{record}: {e}"));
            let (names, rows, sums) = csv_sums(&csv);
            let want_names: Vec<String> = serde_json::from_value(want["names"].clone()).unwrap();
            assert_eq!(names, want_names, "{record}");
            assert_eq!(rows as u64, want["rows"].as_u64().unwrap(), "{record}");
            let key = if digital { "digital" } else { "physical" };
            for (got, want) in sums.iter().zip(want[key].as_array().unwrap()) {
                let want = want.as_f64().unwrap();
                let tolerance = if digital { 0.0 } else { 1e-6 * rows as f64 };
                assert!(
                    (got - want).abs() <= tolerance,
                    "{record}: {key} sum {got} != wfdb's {want}"
                );
            }
            compared += 1;
        }
    }
    std::fs::remove_file(out).ok();
    assert!(compared >= 16, "only {compared} CSVs compared");
}

#[test]
fn a_stale_header_checksum_points_at_ignore_checksums() {
    let Some(cinc) = ecgfm_test_support::shared_data("cinc2017") else {
        return;
    };
    // CinC 2017's headers give every checksum as 0.
    let record = cinc.join("A00001").display().to_string();
    let err = run_err(&["data", "read", &record]);
    assert!(
        err.contains("checksum mismatch") && err.contains("--ignore-checksums reads it anyway"),
        "{err}"
    );
    let csv = run_ok(&["data", "read", &record, "--ignore-checksums"]);
    assert!(csv.lines().count() > 1000, "{}", &csv[..200.min(csv.len())]);
}
