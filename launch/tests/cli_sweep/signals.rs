//! A sweep asked to stop (SIGTERM to the sweep alone, as a batch system or `kill` sends it; Ctrl-C
//! to its whole process group, as a terminal sends it) passes the signal on: the run training
//! checkpoints, the sweep exits 75 without marking the run failed and leaves no process behind,
//! and the same command then finishes the sweep. Until 2026-12-06 the sweep died at once and its
//! `pretrain` trained on unowned (SIGTERM), or the run was marked failed (Ctrl-C).

use super::common::{logged_losses, temp_dir, with_default_stop_signals, ECGFM};
use super::{records, toy, toy_args};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUN: &str = "synth-d1w32-steps-f1-s0";

/// Whether any process's command line names `dir` (a sweep's child trains into it).
fn process_in(dir: &Path) -> Option<String> {
    let dir = dir.to_str().unwrap();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(dir) {
            return Some(cmdline);
        }
    }
    None
}

/// Starts the toy sweep into `dir` (400 steps a run), waits until its first run has logged five
/// steps, sends `signal` to the sweep (`group`: to its whole process group) and returns its exit
/// status.
fn stop_sweep(dir: &Path, signal: &str, group: bool, extra: &[&str]) -> Option<i32> {
    let mut sweep = with_default_stop_signals(&mut Command::new(ECGFM))
        .args(toy_args(dir, extra))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let metrics = dir.join("runs").join(RUN).join("metrics.jsonl");
    let started = Instant::now();
    while std::fs::read_to_string(&metrics).map_or(0, |t| t.lines().count()) < 5 {
        if let Some(status) = sweep.try_wait().unwrap() {
            panic!("the sweep ended ({status}) before its first run's fifth step");
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no fifth step"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let pid = sweep.id().to_string();
    let whom = if group { format!("-{pid}") } else { pid };
    let sent = Command::new("kill")
        .args(["-s", signal, "--", &whom])
        .status();
    assert!(sent.unwrap().success());
    sweep.wait().unwrap().code()
}

#[test]
fn a_stopped_sweep_checkpoints_its_run_exits_75_and_goes_on_when_run_again() {
    let extra = [
        "--set",
        "eval=[]",
        "--set",
        "budget.steps=400",
        "--set",
        "base.train.log_every=1",
    ];
    for (signal, group) in [("TERM", false), ("INT", true)] {
        let dir = temp_dir(&format!("sweep-stop-{signal}"));
        let code = stop_sweep(&dir, signal, group, &extra);
        assert_eq!(code, Some(75), "SIG{signal}: the sweep's exit status");
        assert_eq!(
            process_in(&dir),
            None,
            "SIG{signal}: a child outlived the sweep"
        );
        let run = dir.join("runs").join(RUN);
        assert!(
            !run.join("FAILED").exists(),
            "SIG{signal}: a stop is no failure"
        );
        let saved = std::fs::read_dir(run.join("checkpoints")).unwrap().count();
        assert_eq!(saved, 1, "SIG{signal}: the stop's checkpoint");
        let stopped_at = logged_losses(&run).len();
        assert!(stopped_at < 400, "SIG{signal}: stopped at {stopped_at}");

        let said = toy(&dir, &extra);
        assert!(said.contains("resuming from"), "{said}");
        assert_eq!(records(&dir).len(), 2);
        let steps: Vec<u64> = logged_losses(&run).iter().map(|&(s, _)| s).collect();
        assert_eq!(steps, (0..400).collect::<Vec<u64>>(), "SIG{signal}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
