//! `ecgfm eval` and `ecgfm embed` through the real binary on a small synthetic labelled dataset
//! and a short pretraining run (results.rs): the result file holds every protocol and fraction
//! with finite metrics and intervals and the scored test units (whose scores give the reported
//! AUROC and, at the reported thresholds, F1), the probe and fine-tuning score well above chance,
//! the random encoder's probe is not the checkpoint's, the evaluation repeats bit for bit (also
//! recomputing activations), `ecgfm compare` pairs two of them (AUROC and F1), TensorBoard
//! scalars appear; the embeddings file holds the encoder's features of every window (embed.rs);
//! bad input, held-out records seen in pretraining and single-seed intervals (refusals.rs).
//!
//! One test binary: the tests sit in a module per theme, and this file holds the fixture and
//! helpers they share.

#[path = "../common/mod.rs"]
mod common;

mod embed;
mod own_labels;
mod refusals;
mod results;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{fixture_dir, run_ok, short_run};

/// A synthetic dataset of 600 labelled records in several shards and an 8-step nano run
/// (`common::short_run`: input 750 samples, some single-lead records), made once for all tests
/// of this file.
fn fixture() -> &'static (PathBuf, PathBuf) {
    static FIXTURE: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let root = fixture_dir("eval");
        let data = root.join("synth");
        let p = |p: &Path| p.to_str().unwrap().to_string();
        run_ok(&[
            "data",
            "synth",
            "--out",
            &p(&data),
            // Enough that each class has several test positives: a bootstrap resample that
            // loses one is not counted, and too many lost withhold the interval.
            "--records",
            "600",
            "--threads",
            "2",
            "--row-group-rows",
            "32",
            // Several shards: evaluation reads across them, `ecgfm embed` one at a time.
            "--shard-mb",
            "1",
            // Not the run's generator seed (0), whose first samples the run pretrains on.
            "--seed",
            "1",
        ]);
        let run = short_run(&root, None, &[]);
        (data, run)
    })
}

fn eval_args<'a>(data: &'a str, run: &'a str, out: &'a str, protocol: &'a str) -> Vec<&'a str> {
    vec![
        "eval",
        "--run",
        run,
        "--data",
        data,
        "--labels",
        "synth",
        "--protocol",
        protocol,
        "--fractions",
        "1,0.25",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--bootstrap",
        "200",
        "--min-epoch-windows",
        "64",
        "--threads",
        "2",
        "--device",
        "cpu",
        "--out",
        out,
    ]
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}
