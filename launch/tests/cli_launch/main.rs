//! `ecgfm launch` end to end with CPU ranks on this machine: 2 and 4 ranks (with and without
//! ZeRO-1) give bit for bit the run of one process accumulating the same global batch, and the
//! same count of FLOPs over mixed-lead batches; two launchers form one two-node job; a rank
//! killed mid-run is named and `--max-restarts` finishes the run with the weights of an
//! uninterrupted one; a run moves from 4 ranks to 2; torchrun's and SLURM's variables form the
//! same ranks; a NaN on one rank skips the step on all of them, and a batch one rank cannot read
//! stops all of them with a checkpoint that resumes exactly; nodes started with other settings,
//! or resuming from other checkpoints, are refused before their first step; the launcher
//! forwards its stop signals, exits 75 for a stop, and its ranks do not outlive it.
//!
//! One test binary: the tests sit in a module per theme, and this file holds the helpers several
//! of them use.

#[path = "../common/mod.rs"]
mod common;

mod equivalence;
mod faults;
mod nodes;
mod refusals;
mod signals;
mod slurm;

use common::checkpoint_tensor_bytes;
use std::path::Path;

/// `pretrain` for nano on short inputs: micro-batch `batch`, `accum` micro-steps per rank.
fn pretrain(out: &Path, steps: u64, batch: usize, accum: usize) -> Vec<String> {
    let mut args: Vec<String> = [
        "pretrain",
        "--steps",
        &steps.to_string(),
        "--batch-size",
        &batch.to_string(),
        "--checkpoint-every",
        "3",
        "--threads",
        "1",
        "--collective-timeout",
        "60",
        "--rdzv-timeout",
        "60",
        "--out",
        out.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for set in [
        "model.samples=750".to_string(),
        "train.log_every=1".into(),
        "optim.warmup_steps=2".into(),
        format!("train.accum_steps={accum}"),
    ] {
        args.extend(["--set".into(), set]);
    }
    args
}

/// `ecgfm launch` of `nproc` ranks meeting on a free port the launcher picks (`--master-port 0`).
/// The launcher keeps listening on that port, so a rank 0 that bound it itself would fail: every
/// launch of these tests also checks that rank 0 adopts the launcher's socket.
fn launch_args(nproc: usize, extra: &[&str], command: &[String]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "launch".into(),
        "--nproc-per-node".into(),
        nproc.to_string(),
        "--master-port".into(),
        "0".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push("--".into());
    args.extend(command.iter().cloned());
    args
}

/// (step, loss bits) of every metrics record.
fn losses(run: &Path) -> Vec<(u64, u32)> {
    records(run)
        .iter()
        .map(|v| {
            let loss = v["loss"].as_f64().map_or(f32::NAN, |l| l as f32);
            (v["step"].as_u64().unwrap(), loss.to_bits())
        })
        .collect()
}

/// Every metrics record.
fn records(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn assert_same_run(a: &Path, b: &Path, step: u64) {
    assert_eq!(losses(a), losses(b), "{} vs {}", a.display(), b.display());
    assert!(
        checkpoint_tensor_bytes(a, step) == checkpoint_tensor_bytes(b, step),
        "weights of {} and {} differ",
        a.display(),
        b.display()
    );
}

/// The lines a child writes to a pipe, read on a thread of their own so the pipe never fills and
/// the test can look at them while the child runs.
struct Lines {
    arrived: std::sync::mpsc::Receiver<String>,
    reader: std::thread::JoinHandle<()>,
    text: String,
}

impl Lines {
    fn read(pipe: impl std::io::Read + Send + 'static) -> Self {
        use std::io::{BufRead, BufReader};
        let (tx, arrived) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Lines {
            arrived,
            reader,
            text: String::new(),
        }
    }

    /// The lines that arrived since the last call (all of them are kept in `text`).
    fn new_lines(&mut self) -> Vec<String> {
        let lines: Vec<String> = self.arrived.try_iter().collect();
        for line in &lines {
            self.text.push_str(line);
            self.text.push('\n');
        }
        lines
    }

    /// Every line, once the child has closed the pipe.
    fn all(mut self) -> String {
        while let Ok(line) = self.arrived.recv() {
            self.text.push_str(&line);
            self.text.push('\n');
        }
        self.reader.join().unwrap();
        self.text
    }
}

/// The lines of the run's metrics.jsonl so far (0 before it exists).
fn logged_steps(out: &Path) -> usize {
    std::fs::read_to_string(out.join("metrics.jsonl")).map_or(0, |t| t.lines().count())
}

/// The checkpoints of `run` (folder names; a partial one starts with a dot).
fn checkpoints(run: &Path) -> Vec<String> {
    ecgfm_test_support::sorted_names(&run.join("checkpoints"))
}
