//! What the command-line tests share: running the `ecgfm` binary, and a short pretraining run.
// Each test file uses its own part of this module.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fmt::Debug;
use std::path::Path;
use std::process::Command;

pub const ECGFM: &str = env!("CARGO_BIN_EXE_ecgfm");

/// Runs `ecgfm args` and returns its stdout; fails the test with both streams when it fails.
pub fn run_ok<S: AsRef<OsStr> + Debug>(args: &[S]) -> String {
    let output = Command::new(ECGFM).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "ecgfm {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Runs `ecgfm args`, which must fail, and returns its stderr.
pub fn run_err<S: AsRef<OsStr> + Debug>(args: &[S]) -> String {
    let output = Command::new(ECGFM).args(args).output().unwrap();
    assert!(!output.status.success(), "ecgfm {args:?} should fail");
    String::from_utf8_lossy(&output.stderr).to_string()
}

/// A 6-step nano run on the synthetic generator (input 750 samples, batch 8) in `out`.
pub fn short_run(out: &Path) {
    let _ = std::fs::remove_dir_all(out);
    run_ok(&[
        "pretrain",
        "--steps",
        "6",
        "--batch-size",
        "8",
        "--threads",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--set",
        "model.samples=750",
        "--set",
        "optim.warmup_steps=2",
    ]);
}
