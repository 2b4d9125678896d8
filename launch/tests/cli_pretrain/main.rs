//! `ecgfm pretrain` end to end through the real binary: the loss falls and the run directory is
//! complete (runs.rs); runs stopped or killed at any moment resume to the bits of an
//! uninterrupted run (resume.rs); datasets, damaged shards and the validation set (data.rs);
//! `ecgfm validate`, the validation loss measured again from a checkpoint (validate.rs).
//!
//! One test binary: the tests sit in a module per theme, and this file holds the helpers several
//! of them use.

#[path = "../common/mod.rs"]
mod common;

mod data;
mod resume;
mod runs;
mod validate;

use std::path::{Path, PathBuf};

/// The step and the loss bits of each line of `run`'s `metrics.jsonl`.
fn losses(run: &Path) -> Vec<(u64, u32)> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let loss = v["loss"].as_f64().unwrap() as f32;
            (v["step"].as_u64().unwrap(), loss.to_bits())
        })
        .collect()
}

/// Asserts that runs `a` and `b` logged the same losses and ended with the same weights at
/// `step`, bit for bit, then deletes both.
fn assert_same_run_and_remove(a: PathBuf, b: PathBuf, step: u64) {
    assert_eq!(losses(&a), losses(&b));
    assert!(
        final_weights(&a, step) == final_weights(&b, step),
        "weights differ"
    );
    for dir in [a, b] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

fn final_weights(run: &Path, step: u64) -> Vec<u8> {
    let dir = run.join(format!("checkpoints/step_{step:08}"));
    assert!(
        dir.join("COMPLETE").is_file(),
        "{} incomplete",
        dir.display()
    );
    std::fs::read(dir.join("model.safetensors")).unwrap()
}

/// Steps logged so far in `run`'s `metrics.jsonl` (complete lines only).
fn logged_steps(run: &Path) -> u64 {
    std::fs::read(run.join("metrics.jsonl"))
        .map(|bytes| bytes.iter().filter(|&&b| b == b'\n').count() as u64)
        .unwrap_or(0)
}
