//! `ecgfm sweep` end to end through the real binary at toy size (2 sizes x 1 seed x 6 steps on
//! synthetic data): the report and its charts, the synthetic-label probe in sweep.jsonl,
//! the result files published beside the report (its intervals reproduced from them alone),
//! resuming (finished runs skipped, an interrupted run resumed to the same bits), `--only`, the SLURM
//! array's single grid point, runs on two data-parallel ranks, a sweep stopped by a signal and run
//! again, and (with `../shared/data`) a
//! sweep that ingests CinC 2017 and PTB-XL records and trains on their merge.
//!
//! One test binary: the tests sit in a module per theme, and this file holds the helpers several
//! of them use.

#[path = "../common/mod.rs"]
mod common;

mod cluster;
mod extend;
mod ingest;
mod report;
mod resume;
mod scratch;
mod signals;

use common::run_ok as ecgfm;
use std::path::Path;

/// The arguments of `ecgfm sweep run --preset toy` into `dir` with extra arguments.
fn toy_args<'a>(dir: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "sweep",
        "run",
        "--preset",
        "toy",
        "--threads",
        "2",
        "--out",
        dir.to_str().unwrap(),
    ];
    args.extend(extra);
    args
}

/// `ecgfm sweep run --preset toy` into `dir` with extra arguments; its output.
fn toy(dir: &Path, extra: &[&str]) -> String {
    ecgfm(&toy_args(dir, extra))
}

/// The records of sweep.jsonl, each run as its last line says, in first-seen order.
fn records(dir: &Path) -> Vec<serde_json::Value> {
    let mut out: Vec<serde_json::Value> = Vec::new();
    for line in std::fs::read_to_string(dir.join("sweep.jsonl"))
        .unwrap()
        .lines()
    {
        let rec: serde_json::Value = serde_json::from_str(line).unwrap();
        match out.iter_mut().find(|r| r["run"] == rec["run"]) {
            Some(earlier) => *earlier = rec,
            None => out.push(rec),
        }
    }
    out
}

/// The (protocol, AUROC) results of a record on the synth task.
fn synth_results(rec: &serde_json::Value) -> Vec<(String, f64)> {
    let results = rec["eval"].as_array().unwrap().iter();
    let synth = results.filter(|e| e["task"] == "synth");
    synth
        .map(|e| {
            let auroc = e["macro_auroc"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&auroc), "{e}");
            (e["protocol"].as_str().unwrap().to_string(), auroc)
        })
        .collect()
}

/// A sweep file's unknown key or value of the wrong type is refused for its configuration
/// (exit 78, as `pretrain --set` refuses one; it exited 1 until 2026-12-06), before any run.
#[test]
fn a_sweep_file_that_is_not_a_valid_sweep_is_refused_as_a_configuration() {
    let dir = common::temp_dir("sweep-bad-spec");
    for set in ["budget.stepz=50", "seeds=\"two\""] {
        let err = common::run_refused(&toy_args(&dir, &["--set", set, "--dry-run"]));
        let key = set
            .split(['.', '='])
            .nth(usize::from(set.contains('.')))
            .unwrap();
        assert!(err.contains("sweep") && err.contains(key), "{set}: {err}");
    }
    assert!(!dir.join("sweep.jsonl").exists());
    std::fs::remove_dir_all(dir).unwrap();
}
