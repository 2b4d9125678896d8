//! The preprocessing an exported package ships (`ecgfm_preprocess.py`, numpy and scipy): run on
//! the raw WFDB records with the package's `config.json`, it gives the windows `ecgfm data
//! ingest` stored, every window with its lead mask and valid length, and every value within one
//! stored unit (1 uV). Records written here cover the lead mapping (`-aVR` negated back, `MLII`,
//! a single `ECG` lead, a pleth left out), three input rates (500, 360, 300 Hz), uV and mV
//! units, a kept trailing window and per-record z-scores; PTB-XL and CinC 2017 records too where
//! ../shared/data is present.

mod common;

use common::{export, path_str, run_ok, short_run, temp_dir};
use ecgfm_data::windows::read_split_windows;
use ecgfm_test_support::{python_stdout, shared_data};
use std::path::Path;
use std::process::Command;

const MODULES: [&str; 4] = ["numpy", "scipy", "wfdb", "pyarrow"];

/// Writes three WFDB records into argv[1] (see the file comment).
const WRITE_RECORDS: &str = r#"
import sys
import numpy as np, wfdb
out = sys.argv[1]
rng = np.random.default_rng(7)
def ecg(n, rate, gain):
    t = np.arange(n) / rate
    beats = sum(np.exp(-((t - b) / 0.012) ** 2) for b in np.arange(0.3, n / rate, 0.83))
    waves = sum(0.2 * np.exp(-((t - b - 0.25) / 0.05) ** 2) for b in np.arange(0.3, n / rate, 0.83))
    return gain * (beats + waves + 0.1 * np.sin(2 * np.pi * 0.3 * t)) + 0.01 * rng.standard_normal(n)
leads = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
x = np.stack([ecg(12500, 500, 0.3 + 0.1 * l) for l in range(12)], axis=1)
names = list(leads)
names[3] = "-aVR"
x[:, 3] = -x[:, 3]
wfdb.wrsamp("neg12", fs=500, units=["mV"] * 12, sig_name=names, p_signal=x, fmt=["16"] * 12,
            adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=out)
y = np.stack([ecg(5760, 360, 900.0), ecg(5760, 360, 600.0), 50 + rng.standard_normal(5760)], axis=1)
wfdb.wrsamp("holter", fs=360, units=["uV", "uV", "NU"], sig_name=["MLII", "V5", "PLETH"],
            p_signal=y, fmt=["16"] * 3, adc_gain=[1.0, 1.0, 100.0], baseline=[0] * 3, write_dir=out)
z = ecg(2700, 300, 1.1)[:, None]
wfdb.wrsamp("single", fs=300, units=["mV"], sig_name=["ECG"], p_signal=z, fmt=["16"],
            adc_gain=[1000.0], baseline=[0], write_dir=out)
"#;

/// argv: PACKAGE INPUTS.json, then DATASET SOURCE pairs. Prepares every record of each dataset
/// from its raw files with the package's ecgfm_preprocess (its config.json, with the dataset
/// manifest's preprocessing and signal_scale), and prints per dataset the windows compared, the
/// worst difference in stored units, and whether every record got the same windows (count, lead
/// masks, valid lengths). Writes the first dataset's model inputs (`model_inputs`: centre crops
/// and lead masks) to INPUTS.json by window id (RECORD#INDEX).
const COMPARE: &str = r#"
import glob, json, os, sys
import numpy as np, pyarrow.parquet as pq
pkg, inputs_out = sys.argv[1], sys.argv[2]
sys.path.insert(0, pkg)
import ecgfm_preprocess as prep
package_config = json.load(open(os.path.join(pkg, "config.json")))
results = []
inputs = {}
for ds, src in zip(sys.argv[3::2], sys.argv[4::2]):
    man = json.load(open(os.path.join(ds, "manifest.json")))
    config = dict(package_config, preprocessing=man["preprocessing"], signal_scale=man["signal_scale"])
    paths = {f[:-4]: os.path.join(d, f[:-4]) for d, _, fs in os.walk(src) for f in fs if f.endswith(".hea")}
    stored = {}
    for shard in sorted(glob.glob(os.path.join(ds, "shards", "*.parquet"))):
        t = pq.read_table(shard, columns=["record_id", "window_index", "n_samples", "lead_mask", "signal"])
        signals = t.column("signal").combine_chunks().flatten().to_numpy().reshape(t.num_rows, 12, -1)
        for i, (rid, w, n, mask) in enumerate(zip(*(t.column(c).to_pylist() for c in
                                                    ["record_id", "window_index", "n_samples", "lead_mask"]))):
            stored.setdefault(rid, {})[w] = (n, mask, signals[i] * man["signal_scale"])
    worst, same, rows = 0.0, True, 0
    for rid, windows in stored.items():
        got = prep.prepare(*prep.read_wfdb(paths[rid]), config)
        same &= sorted(windows) == list(range(len(got["n_samples"])))
        for w, (n, mask, values) in windows.items():
            same &= int(got["n_samples"][w]) == n and got["lead_mask"][w].tolist() == mask
            worst = max(worst, float(np.abs(got["signal"][w] - values).max()) / man["signal_scale"])
            rows += 1
        x, mask = prep.model_inputs(got, package_config["samples"])
        same &= x.shape == (len(got["n_samples"]), 12, package_config["samples"]) and x.dtype == np.float32
        same &= mask.tolist() == got["lead_mask"].tolist()
        if not results:
            for w in range(len(x)):
                inputs[f"{rid}#{w}"] = {"x": x[w].flatten().tolist(), "mask": mask[w].tolist()}
    results.append({"dataset": os.path.basename(ds), "records": len(stored), "windows": rows,
                    "worst_units": worst, "same_windows": bool(same)})
json.dump(inputs, open(inputs_out, "w"))
print(json.dumps(results))
"#;

/// Ingests `source` into `out` with `extra` ingest flags.
fn ingest(source: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec!["data", "ingest", path_str(source), "--out", path_str(out)];
    args.extend(["--threads", "2"]);
    args.extend(extra);
    run_ok(&args);
}

#[test]
fn packaged_preprocessing_gives_the_windows_ingest_stored() {
    let dir = temp_dir("python-preprocess");
    let raw = dir.join("raw");
    std::fs::create_dir_all(&raw).unwrap();
    let mut write = Command::new("python3");
    write.args(["-c", WRITE_RECORDS]).arg(&raw);
    if python_stdout(&mut write, &MODULES, "writing WFDB records with wfdb").is_none() {
        return;
    }
    let ds = dir.join("ds");
    ingest(&raw, &ds, &[]);
    let zscores = dir.join("ds-z");
    ingest(&raw, &zscores, &["--standardize", "per_record"]);
    let run = short_run(&dir, Some(&ds), &[]);
    let pkg = dir.join("pkg");
    export(&run, &pkg, &[]);
    let mut pairs = vec![(ds, raw.clone()), (zscores, raw)];
    for (folder, format) in [("ptbxl-500", "ptbxl"), ("cinc2017", "cinc2017")] {
        if let Some(source) = shared_data(folder) {
            let out = dir.join(folder);
            ingest(&source, &out, &["--format", format, "--limit", "12"]);
            pairs.push((out, source));
        }
    }
    let inputs = dir.join("inputs.json");
    let mut compare = Command::new("python3");
    compare.args(["-c", COMPARE]).arg(&pkg).arg(&inputs);
    for (ds, source) in &pairs {
        compare.arg(ds).arg(source);
    }
    let out = python_stdout(&mut compare, &MODULES, "the packaged preprocessing").unwrap();
    let results: serde_json::Value = serde_json::from_slice(&out).unwrap();
    println!("packaged preprocessing against ingest: {results}");
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), pairs.len());
    for r in results {
        assert_eq!(r["same_windows"], true, "{r}");
        assert!(r["windows"].as_u64().unwrap() > 0, "{r}");
        // Rounding to a stored unit may land on either side of a half: one unit, and the f32
        // product's last bit.
        assert!(r["worst_units"].as_f64().unwrap() <= 1.001, "{r}");
    }
    assert_eq!(results[0]["records"], 3, "{}", results[0]);
    // The inputs `model_inputs` gives the encoder are the centre crops `ecgfm embed` reads (the
    // model's 750 samples of these 2,500-sample windows), to a stored unit (0.001 mV).
    let inputs: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&inputs).unwrap()).unwrap();
    let windows = read_split_windows(path_str(&dir.join("ds")), &[], "all", 750).unwrap();
    assert_eq!(windows.len(), 6);
    let mut crop = vec![0.0f32; 12 * 750];
    for (i, info) in windows.windows.iter().enumerate() {
        let python = &inputs[info.window_id()];
        windows.fill(i, &mut crop);
        let x = python["x"].as_array().unwrap();
        assert_eq!(x.len(), crop.len(), "{}", info.window_id());
        let worst = x
            .iter()
            .zip(&crop)
            .map(|(p, r)| (p.as_f64().unwrap() - f64::from(*r)).abs())
            .fold(0.0, f64::max);
        assert!(worst <= 1.001e-3, "{}: {worst}", info.window_id());
        let mask: Vec<bool> = windows.lead_mask(i).iter().map(|&m| m != 0).collect();
        let python_mask: Vec<bool> = python["mask"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_bool().unwrap())
            .collect();
        assert_eq!(python_mask, mask, "{}", info.window_id());
    }
}
