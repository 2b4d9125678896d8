//! Faults: a killed rank is named and `--max-restarts` finishes the run exactly; a NaN on one rank
//! skips the step on every rank; a batch one rank cannot read stops all of them with a checkpoint
//! that resumes exactly; a corrupt newest checkpoint is named and the run resumes from the one
//! before; a hung rank is named after the collective timeout; a run folder lost mid-job stops every
//! rank with that reason.

use super::common::{
    ecgfm_env, flip_middle_byte, run_ok, set_flag, synth_dataset_with, temp_dir, ECGFM,
};
use super::{assert_same_run, launch_args, logged_steps, losses, pretrain, Lines};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Starts a 2-rank launch of `command` and sends `signal` to rank 1 once rank 0 has logged
/// `after` steps; returns the launcher's output when it ends.
fn launch_and_signal_rank_1(
    command: &[String],
    out: &Path,
    after: usize,
    extra: &[&str],
    signal: &str,
) -> Output {
    let child = Command::new(ECGFM)
        .args(launch_args(2, extra, command))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    signal_rank_1_when(child, out, after, signal)
}

/// A guard against a hang, not a time a job must meet: a launcher still running this long after
/// its rank 1 was signalled is killed, with its ranks, and the test fails.
const HANG_GUARD: Duration = Duration::from_secs(120);

/// The (rank, pid) of each "launch: rank R started (pid P)" line of `lines`.
fn started_ranks(lines: &[String]) -> Vec<(usize, i32)> {
    lines
        .iter()
        .filter_map(|line| {
            let rest = line.strip_prefix("launch: rank ")?;
            let (rank, pid) = rest.split_once(" started (pid ")?;
            Some((rank.parse().ok()?, pid.trim_end_matches(')').parse().ok()?))
        })
        .collect()
}

fn signal_rank_1_when(mut child: Child, out: &Path, after: usize, signal: &str) -> Output {
    let stdout = Lines::read(child.stdout.take().unwrap());
    let mut stderr = Lines::read(child.stderr.take().unwrap());
    let mut ranks = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        ranks.extend(started_ranks(&stderr.new_lines()));
        let rank_1 = ranks.iter().rev().find(|(rank, _)| *rank == 1);
        if let (Some((_, pid)), true) = (rank_1, logged_steps(out) >= after) {
            Command::new("kill")
                .args([signal, &pid.to_string()])
                .status()
                .unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let signalled = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if signalled.elapsed() > HANG_GUARD {
            // SIGKILL, which also ends a stopped rank (the SIGTERM a rank gets when its
            // launcher dies waits until it runs again).
            ranks.extend(started_ranks(&stderr.new_lines()));
            for (_, pid) in &ranks {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "hang guard: the launch still ran {HANG_GUARD:?} after rank 1 got {signal}, \
                 killed:\n{}",
                stderr.text
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.all().into_bytes(),
        stderr: stderr.all().into_bytes(),
    }
}

#[test]
fn a_killed_rank_is_named_and_max_restarts_finishes_the_run_exactly() {
    let dir = temp_dir("kill");
    // Long enough that rank 1 is still running when it is killed after step 5.
    let steps = 60;
    let full = dir.join("full");
    run_ok(&launch_args(2, &[], &pretrain(&full, steps, 4, 1)));

    let failed = dir.join("failed");
    let out = launch_and_signal_rank_1(&pretrain(&failed, steps, 4, 1), &failed, 5, &[], "-KILL");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("rank 1 was killed by signal 9"), "{stderr}");

    let restarted = dir.join("restarted");
    let command = pretrain(&restarted, steps, 4, 1);
    let out = launch_and_signal_rank_1(&command, &restarted, 5, &["--max-restarts", "1"], "-KILL");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("restart 1 of 1"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("[rank 0] resuming from"), "{stdout}");
    assert_same_run(&full, &restarted, steps);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_nan_on_one_rank_skips_the_step_on_all_ranks() {
    let dir = temp_dir("nan");
    let out = dir.join("skip");
    let args = launch_args(2, &[], &pretrain(&out, 5, 4, 1));
    let result = ecgfm_env(&args, &[("ECGFM_FAULT_NONFINITE", "1:2")]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    // Step index 2 is the progress line's step 3.
    assert!(stderr.contains("step 3 skipped on every rank"), "{stderr}");
    assert!(
        stderr.contains("(non-finite loss on rank 1; non-finite input on rank 1)"),
        "{stderr}"
    );
    let records = losses(&out);
    assert!(f32::from_bits(records[2].1).is_nan());
    assert!(records
        .iter()
        .filter(|r| r.0 != 2)
        .all(|r| f32::from_bits(r.1).is_finite()));

    let stop = dir.join("stop");
    let mut command = pretrain(&stop, 5, 4, 1);
    command.extend(["--on-nonfinite".into(), "stop".into()]);
    let result = ecgfm_env(
        &launch_args(2, &[], &command),
        &[("ECGFM_FAULT_NONFINITE", "1:2")],
    );
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success());
    assert!(
        stderr.contains("at step 3 (non-finite loss on rank 1): a batch's signals held NaN"),
        "{stderr}"
    );
    assert!(!stderr.contains("clip_norm"), "{stderr}");

    let repeated = dir.join("repeated");
    let args = launch_args(2, &[], &pretrain(&repeated, 8, 4, 1));
    let result = ecgfm_env(&args, &[("ECGFM_FAULT_NONFINITE", "0:2,1:3,0:4")]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success());
    assert!(stderr.contains("3 steps in a row"), "{stderr}");
    // The two skipped steps and the one that stopped the run are logged, each with a null loss.
    let nan_steps: Vec<u64> = losses(&repeated)
        .iter()
        .filter(|r| f32::from_bits(r.1).is_nan())
        .map(|r| r.0)
        .collect();
    assert_eq!(nan_steps, [2, 3, 4]);

    // The count of skipped steps in a row survives a checkpoint: two skipped before the stop,
    // the third after the resume ends the run as it would have without the stop.
    let resumed = dir.join("resumed");
    let mut first = pretrain(&resumed, 8, 4, 1);
    first.extend(["--stop-after".into(), "4".into()]);
    let result = ecgfm_env(&first, &[("ECGFM_FAULT_NONFINITE", "0:2,0:3")]);
    assert!(result.status.success());
    let mut rest = pretrain(&resumed, 8, 4, 1);
    rest.push("--resume".into());
    let result = ecgfm_env(&rest, &[("ECGFM_FAULT_NONFINITE", "0:4")]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success(), "{stderr}");
    assert!(stderr.contains("3 steps in a row"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_read_failing_on_one_rank_stops_every_rank_with_a_checkpoint_that_resumes_exactly() {
    let dir = temp_dir("read-fail");
    let steps = 7;
    let one = dir.join("one");
    run_ok(&pretrain(&one, steps, 4, 4));
    // Rank 1 cannot read step 5's batch ahead (ZeRO-1: both ranks write their optimizer
    // shard); rank 0, the writer, cannot read micro-batch 1 of step 5 inside it.
    let cases: [(&str, &str, &[&str]); 2] = [
        ("ahead-zero", "1:4", &["--zero", "1"]),
        ("inside", "0:4:1", &[]),
    ];
    for (name, fault, extra) in cases {
        let out = dir.join(name);
        let mut command = pretrain(&out, steps, 4, 2);
        command.extend(extra.iter().map(|s| s.to_string()));
        let result = ecgfm_env(
            &launch_args(2, &[], &command),
            &[("ECGFM_FAULT_READ", fault)],
        );
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(
            result.status.code(),
            Some(1),
            "{name}: a failed read not known as damage: {stderr}"
        );
        assert!(
            stderr.contains("could not read the batch of step 5: data source")
                && stderr.contains("ECGFM_FAULT_READ"),
            "{name}: {stderr}"
        );
        assert!(
            stderr.contains("the run stopped after step 4 with a checkpoint there"),
            "{name}: {stderr}"
        );
        let saved = out.join("checkpoints/step_00000004");
        assert!(saved.join("COMPLETE").is_file(), "{name}: {stderr}");
        let shards = std::fs::read_dir(&saved)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().starts_with("optimizer.shard-")
            })
            .count();
        let zero_shards = if extra.is_empty() { 0 } else { 2 };
        assert_eq!(shards, zero_shards, "{name}");
        command.push("--resume".into());
        run_ok(&launch_args(2, &[], &command));
        assert_same_run(&one, &out, steps);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_corrupt_newest_checkpoint_is_named_and_the_run_resumes_from_the_one_before() {
    let dir = temp_dir("corrupt");
    let full = dir.join("full");
    run_ok(&pretrain(&full, 8, 4, 1));
    let split = dir.join("split");
    let mut first = pretrain(&split, 8, 4, 1);
    first.extend(["--stop-after".into(), "7".into()]);
    run_ok(&first);
    let newest = split.join("checkpoints/step_00000007/model.safetensors");
    let mut bytes = std::fs::read(&newest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x04;
    std::fs::write(&newest, bytes).unwrap();
    let mut resume = pretrain(&split, 8, 4, 1);
    resume.push("--resume".into());
    let out = ecgfm_env(&resume, &[]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: skipping checkpoint") && stderr.contains("step_00000007"),
        "{stderr}"
    );
    assert!(
        stdout.contains("resuming from") && stdout.contains("step_00000006"),
        "{stdout}"
    );
    assert_same_run(&full, &split, 8);

    // A file the completion marker lists but that is gone: the same fallback.
    let lost = dir.join("lost");
    let mut first = pretrain(&lost, 8, 4, 1);
    first.extend(["--stop-after".into(), "7".into()]);
    run_ok(&first);
    std::fs::remove_file(lost.join("checkpoints/step_00000007/optimizer.safetensors")).unwrap();
    let mut resume = pretrain(&lost, 8, 4, 1);
    resume.push("--resume".into());
    let out = ecgfm_env(&resume, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("is missing"), "{stderr}");
    assert_same_run(&full, &lost, 8);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_hung_rank_is_named_after_the_collective_timeout() {
    let dir = temp_dir("hang");
    let out = dir.join("run");
    let mut command = pretrain(&out, 400, 4, 1);
    set_flag(&mut command, "--collective-timeout", "2");
    // SIGSTOP: rank 1 stays alive, its connections open, but it never answers again. The job
    // ends (a hang is caught by the launch helper's hang guard) with the timeout's message,
    // which shows that the 2 s collective timeout, not anything slower, stopped it.
    let result = launch_and_signal_rank_1(&command, &out, 3, &[], "-STOP");
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success(), "{stderr}");
    assert!(
        stderr.contains("timed out after 2s waiting for rank(s) 1"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A shard damaged after ingest stops every rank, each naming the dataset and its repair (the
/// rank that read it tells the other the kind of failure), and the launcher does not restart the
/// job for it, as every attempt would read the same bytes: it exits 65, as each rank does.
#[test]
fn a_damaged_shard_stops_every_rank_and_is_not_restarted() {
    let dir = temp_dir("damaged-ranks");
    let data = synth_dataset_with(&dir, "ds", &["--row-group-rows", "4"]);
    flip_middle_byte(&data.join("shards/shard-00000.parquet"));
    let mut command = pretrain(&dir.join("run"), 30, 4, 1);
    command.extend(["--data".to_string(), data.display().to_string()]);
    let result = ecgfm_env(&launch_args(2, &["--max-restarts", "2"], &command), &[]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(65), "{stderr}");
    assert!(
        stderr.contains("rank 0 exited with status 65")
            || stderr.contains("rank 1 exited with status 65"),
        "{stderr}"
    );
    assert!(
        stderr.contains("not restarted: the data is damaged"),
        "{stderr}"
    );
    assert!(!stderr.contains("restarting every rank"), "{stderr}");
    let hint = format!(
        "a shard of the dataset {} is damaged (`ecgfm data inspect",
        data.display()
    );
    assert!(
        stderr.contains("found its batch of step 4 damaged (its own error names the shard)"),
        "the rank that read the shard tells the other: {stderr}"
    );
    for rank in 0..2 {
        let prefix = format!("[rank {rank}] error: ");
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&prefix) && l.contains(&hint)),
            "rank {rank}: {stderr}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// A run folder that loses its `config.toml` mid-job (a scratch purge) stops every rank at the
/// next checkpoint with rank 0's reason, where rank 1 used to fail on rank 0's closed connection.
#[test]
fn a_run_folder_lost_mid_job_stops_every_rank_with_the_reason() {
    let dir = temp_dir("folder-lost");
    let out = dir.join("run");
    let mut child = Command::new(ECGFM)
        .args(launch_args(2, &[], &pretrain(&out, 400, 4, 1)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = Lines::read(child.stderr.take().unwrap());
    let started = Instant::now();
    while logged_steps(&out) < 4 && started.elapsed() < HANG_GUARD {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::fs::remove_file(out.join("config.toml")).unwrap();
    while child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < HANG_GUARD,
            "still running: {}",
            stderr.text
        );
        stderr.new_lines();
        std::thread::sleep(Duration::from_millis(10));
    }
    let stderr = stderr.all();
    assert_eq!(child.wait().unwrap().code(), Some(1), "{stderr}");
    for rank in 0..2 {
        assert!(
            stderr.contains(&format!(
                "[rank {rank}] error: {} lost its config.toml",
                out.display()
            )),
            "rank {rank}: {stderr}"
        );
    }
    assert!(!stderr.contains("closed its connection"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}
