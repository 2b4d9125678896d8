//! Stop signals: SIGTERM, SIGUSR1 and SIGHUP to the launcher (forwarded) or to the ranks
//! (SLURM's) checkpoint every rank at one step and exit 75, a stop, not a failure to restart; the
//! run resumes exactly; ranks do not outlive a launcher killed outright.

use super::common::{run_ok, set_flag, temp_dir, with_default_stop_signals, ECGFM};
use super::{assert_same_run, checkpoints, launch_args, logged_steps, pretrain, Lines};
use ecgfm_test_support::free_port;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `pretrain` of `steps` steps into `out` with no periodic checkpoint.
fn pretrain_without_checkpoints(out: &Path, steps: u64) -> Vec<String> {
    let mut command = pretrain(out, steps, 4, 1);
    set_flag(&mut command, "--checkpoint-every", "0");
    command
}

/// Waits until `run` has logged 5 steps while `child` runs (panics naming `lines` otherwise).
fn wait_for_five_steps(child: &mut Child, run: &Path, lines: &mut Lines) {
    let started = Instant::now();
    while logged_steps(run) < 5 {
        if let Some(status) = child.try_wait().unwrap() {
            lines.new_lines();
            panic!(
                "the run ended ({status}) before its fifth step:\n{}",
                lines.text
            );
        }
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            lines.new_lines();
            panic!(
                "the run did not reach its fifth step in 60 s:\n{}",
                lines.text
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs `kill` with `args` (a signal, then whom); a process already gone is no failure.
fn kill(args: &[&str]) {
    Command::new("kill").args(args).status().unwrap();
}

/// Launches `command` (which trains into `run`) on two ranks in a process group of its own,
/// waits for five steps and sends `signal` to the launcher, or to its whole group; asserts the
/// stop every rank makes (each says it stopped; the launcher exits 75, EX_TEMPFAIL, as they
/// do). The checkpoints left in `run`.
fn stop_launch_by_signal(run: &Path, command: &[String], signal: &str, group: bool) -> Vec<String> {
    let mut child = with_default_stop_signals(&mut Command::new(ECGFM))
        .args(launch_args(2, &[], command))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Lines::read(child.stderr.take().unwrap());
    wait_for_five_steps(&mut child, run, &mut lines);
    let pid = child.id().to_string();
    let whom = match group {
        true => format!("-{pid}"),
        false => pid,
    };
    kill(&[signal, "--", &whom]);
    let status = child.wait().unwrap();
    let stderr = lines.all();
    assert_eq!(status.code(), Some(75), "{signal} {whom}: {stderr}");
    for rank in 0..2 {
        assert!(
            stderr.contains(&format!("[rank {rank}] error: stopped by a signal to ")),
            "{signal} {whom}: {stderr}"
        );
    }
    checkpoints(run)
}

#[test]
fn sigterm_checkpoints_every_rank_at_one_step_and_the_run_resumes_exactly() {
    let dir = temp_dir("sigterm");
    let steps = 60;
    let full = dir.join("full");
    run_ok(&launch_args(2, &[], &pretrain(&full, steps, 4, 1)));
    // SIGTERM to the launcher alone (it forwards it), then to its whole process group as Ctrl-C
    // or `timeout` send it: every rank then gets it twice, from there and forwarded.
    for (name, target) in [("stopped", "launcher"), ("stopped-group", "group")] {
        let stopped = dir.join(name);
        let command = pretrain_without_checkpoints(&stopped, steps);
        let saved = stop_launch_by_signal(&stopped, &command, "-TERM", target == "group");
        assert_eq!(saved.len(), 1, "{target}: {saved:?}");
        assert_ne!(
            saved[0],
            format!("step_{steps:08}"),
            "the run was not interrupted"
        );
        let mut resume = command;
        resume.push("--resume".into());
        run_ok(&launch_args(2, &[], &resume));
        assert_same_run(&full, &stopped, steps);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn under_slurm_a_rank_stopped_by_sigusr1_leaves_only_once_the_checkpoint_is_written() {
    let dir = temp_dir("usr1");
    // Without ZeRO rank 0 writes the whole checkpoint; with it every rank writes its optimizer
    // shard and rank 0 then seals the folder (hashes, COMPLETE, rename).
    for (name, zero) in [("run", &[][..]), ("run-zero", &["--zero", "1"][..])] {
        let run = dir.join(name);
        let mut command = pretrain_without_checkpoints(&run, 100_000);
        command.extend(zero.iter().map(|a| a.to_string()));
        stop_slurm_ranks_by_sigusr1(&run, &command);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// Runs `command` as 2 SLURM tasks, sends both SIGUSR1 after 5 steps, kills rank 0 as soon as
/// rank 1 has exited (srun --kill-on-bad-exit), and checks the checkpoint was complete by then.
fn stop_slurm_ranks_by_sigusr1(run: &Path, command: &[String]) {
    let port = free_port();
    let mut ranks: Vec<Child> = (0..2)
        .map(|rank| {
            Command::new(ECGFM)
                .args(command)
                .env_remove("RANK")
                .env_remove("WORLD_SIZE")
                .envs([
                    ("SLURM_PROCID", rank.to_string()),
                    ("SLURM_NTASKS", "2".into()),
                    ("SLURM_LOCALID", rank.to_string()),
                    ("SLURM_JOB_NODELIST", "localhost".into()),
                    ("SLURM_JOB_ID", "4243".into()),
                    ("MASTER_PORT", port.to_string()),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut lines = Lines::read(ranks[1].stderr.take().unwrap());
    wait_for_five_steps(&mut ranks[1], run, &mut lines);
    // SLURM's warning before the time limit reaches every task; when one exits with an error,
    // srun --kill-on-bad-exit kills the others at once, as here.
    for rank in &ranks {
        kill(&["-USR1", &rank.id().to_string()]);
    }
    let status = ranks[1].wait().unwrap();
    ranks[0].kill().unwrap();
    ranks[0].wait().unwrap();
    let stderr = lines.all();
    // A rank stopped with its checkpoint saved exits 75 (EX_TEMPFAIL), as launch expects.
    assert_eq!(status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("stopped by a signal to "), "{stderr}");
    let saved = checkpoints(run);
    assert!(
        saved.iter().any(|name| name.starts_with("step_")),
        "rank 1 left before rank 0 had written the checkpoint: {saved:?}\n{stderr}"
    );
}

/// Starts `ecgfm launch` (with the launcher flags `extra`) of two ranks running `command`: the
/// launcher, the lines of its standard error, and its ranks' pids once both started.
fn launch_two_ranks(extra: &[&str], command: &[String]) -> (Child, Lines, Vec<i32>) {
    let mut child = Command::new(ECGFM)
        .args(launch_args(2, extra, command))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Lines::read(child.stderr.take().unwrap());
    let pids = rank_pids(&mut lines, 2);
    (child, lines, pids)
}

/// The pids of the first `n` ranks the launcher whose stderr is `lines` reports started.
fn rank_pids(lines: &mut Lines, n: usize) -> Vec<i32> {
    let mut pids = Vec::new();
    let started = Instant::now();
    while pids.len() < n {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            lines.text
        );
        pids.extend(lines.new_lines().iter().filter_map(|line| {
            let rest = line.split_once(" started (pid ")?.1;
            rest.trim_end_matches(')').parse::<i32>().ok()
        }));
        std::thread::sleep(Duration::from_millis(1));
    }
    pids
}

/// Whether process `pid` still runs (not gone, not a zombie nobody reaped).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

#[test]
fn the_launcher_forwards_sigusr1_and_sighup_and_its_ranks_stop_when_it_dies() {
    let dir = temp_dir("launcher-signals");
    // SIGUSR1 (sbatch --signal=B:USR1 around `ecgfm launch`) and SIGHUP (the terminal closed)
    // reach the launcher alone: every rank checkpoints and stops, and the launcher exits 75.
    for (name, signal) in [("usr1", "-USR1"), ("hup", "-HUP")] {
        let run = dir.join(name);
        let command = pretrain_without_checkpoints(&run, 100_000);
        let saved = stop_launch_by_signal(&run, &command, signal, false);
        assert_eq!(saved.len(), 1, "{name}: {saved:?}");
    }
    // A launcher killed outright forwards nothing: its ranks get SIGTERM from the kernel instead
    // of training on unowned (quietly: no output line fails on the closed pipe first).
    let run = dir.join("killed");
    let mut command = pretrain(&run, 100_000, 4, 1);
    set_flag(&mut command, "--checkpoint-every", "2");
    for set in ["train.log_every=100000", "train.val_every=100000"] {
        command.extend(["--set".into(), set.into()]);
    }
    let (mut child, lines, pids) = launch_two_ranks(&[], &command);
    let started = Instant::now();
    while checkpoints(&run).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            lines.text
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = Instant::now();
    while pids.iter().any(|&pid| alive(pid)) {
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "ranks {pids:?} outlived their launcher by 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn ranks_stopped_by_their_own_signal_are_a_stop_not_a_failure_to_restart() {
    // SLURM's --signal (without B:) and scancel --signal reach the ranks, not the launcher.
    let dir = temp_dir("rank-stop");
    let run = dir.join("run");
    let command = pretrain_without_checkpoints(&run, 60);
    let (mut child, mut lines, pids) = launch_two_ranks(&["--max-restarts", "2"], &command);
    wait_for_five_steps(&mut child, &run, &mut lines);
    for pid in &pids {
        kill(&["-TERM", &pid.to_string()]);
    }
    let status = child.wait().unwrap();
    let stderr = lines.all();
    assert_eq!(
        status.code(),
        Some(75),
        "a stopped run is neither finished nor failed: {stderr}"
    );
    assert!(!stderr.contains("restarting"), "{stderr}");
    // Both signals in one step reach every rank; one a step after the other, its rank.
    let by =
        ["every rank", "rank 0", "rank 1"].map(|to| format!("stopped by a signal to {to} at step"));
    assert!(
        by.iter().any(|said| stderr.contains(said.as_str())),
        "{stderr}"
    );
    let saved = checkpoints(&run);
    assert_eq!(saved.len(), 1, "{saved:?}");
    assert!(saved[0].starts_with("step_") && saved[0] != "step_00000060");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_stop_signal_to_one_rank_is_named_as_that_rank_s() {
    let dir = temp_dir("rank-1-stop");
    let run = dir.join("run");
    let command = pretrain_without_checkpoints(&run, 60);
    let (mut child, mut lines, pids) = launch_two_ranks(&[], &command);
    wait_for_five_steps(&mut child, &run, &mut lines);
    kill(&["-TERM", &pids[1].to_string()]);
    let status = child.wait().unwrap();
    let stderr = lines.all();
    assert_eq!(status.code(), Some(75), "{stderr}");
    // Both ranks stop at the same step, each saying whose signal it was; the launcher names it.
    for rank in 0..2 {
        let said = format!("[rank {rank}] error: stopped by a signal to rank 1 at step");
        assert!(stderr.contains(&said), "{said} in\n{stderr}");
    }
    assert!(
        stderr.contains("stopped by a signal to rank 1 at step"),
        "{stderr}"
    );
    assert!(!stderr.contains("to rank 0"), "{stderr}");
    assert_eq!(checkpoints(&run).len(), 1);
    std::fs::remove_dir_all(dir).unwrap();
}
