//! Stopping, killing and resuming: a resumed run gives the bits of an uninterrupted one, on
//! another thread count too; a changed configuration is refused; kept checkpoints.

use crate::common::{
    checkpoint_tensor_bytes, flip_middle_byte, pretrain_args, run_err, run_ok, run_ok_logs,
    set_flag, temp_dir, with_default_stop_signals, ECGFM,
};
use crate::{assert_same_run_and_remove, logged_steps, losses};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs `steps` steps uninterrupted, and again stopped after `stop` and resumed with
/// `--threads resume_threads`; returns both run directories and the resume's stdout.
fn full_and_resumed(
    name: &str,
    steps: u64,
    stop: u64,
    resume_threads: &str,
) -> (PathBuf, PathBuf, String) {
    let (full, split) = (
        temp_dir(&format!("{name}-full")),
        temp_dir(&format!("{name}-split")),
    );
    run_ok(&pretrain_args(&full, steps));
    let mut first = pretrain_args(&split, steps);
    first.extend(["--stop-after".into(), stop.to_string()]);
    let stopped = run_ok(&first);
    assert!(
        stopped.contains("(1 rank x ")
            && stopped.contains(&format!("done: step {stop}/{steps} | "))
            && stopped.contains("| stopped by --stop-after: continue with --resume"),
        "{stopped}"
    );
    assert!(!split.join(format!("checkpoints/step_{steps:08}")).exists());
    let mut resume = pretrain_args(&split, steps);
    set_flag(&mut resume, "--threads", resume_threads);
    resume.push("--resume".into());
    let stdout = run_ok(&resume);
    (full, split, stdout)
}

#[test]
fn stopped_and_resumed_run_matches_an_uninterrupted_one() {
    let (full, split, stdout) = full_and_resumed("resume", 14, 6, "2");
    assert!(stdout.contains("resuming from"), "{stdout}");
    assert_same_run_and_remove(full, split, 14);
}

#[test]
fn the_last_step_is_logged_and_a_resume_without_a_checkpoint_says_so() {
    let out = temp_dir("last-line");
    let mut args = pretrain_args(&out, 5);
    args.extend(["--set".into(), "train.log_every=2".into()]);
    let stderr = run_ok_logs(&args);
    // Logged at step 1, every 2 steps, and at the last step, which 2 does not divide.
    let logged: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.split(" INFO step ").nth(1))
        .filter_map(|l| l.split(" loss ").next())
        .filter(|step| step.contains('/'))
        .collect();
    assert_eq!(logged, ["1/5", "2/5", "4/5", "5/5"], "{stderr}");
    // A run killed before its first checkpoint: --resume starts it again, and says so.
    std::fs::remove_dir_all(out.join("checkpoints")).unwrap();
    args.push("--resume".into());
    let stdout = run_ok(&args);
    assert!(
        stdout.contains(&format!(
            "--resume: no complete checkpoint in {} yet, so the run starts at step 1",
            out.display()
        )),
        "{stdout}"
    );
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn resume_on_another_thread_count_gives_the_same_losses() {
    let (full, split, _) = full_and_resumed("threads", 10, 4, "1");
    assert_eq!(losses(&full), losses(&split));
    let saved = std::fs::read_to_string(split.join("config.toml")).unwrap();
    assert!(saved.contains("threads = 1"), "{saved}");
    for dir in [full, split] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// Kills the run at random moments, each after it logged a random step beyond the last one
/// seen (so the kills land mid-run however fast the machine is), then resumes it to the end.
#[test]
fn run_killed_at_random_moments_resumes_to_the_same_bits() {
    let steps = 40;
    let (full, killed) = (temp_dir("kill-full"), temp_dir("kill-victim"));
    run_ok(&pretrain_args(&full, steps));
    let (mut kills, mut seen) = (0, 0);
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for attempt in 0..20 {
        if seen >= steps - 1 {
            break;
        }
        let target = (seen + 1 + next() % 6).min(steps - 1);
        let mut args = pretrain_args(&killed, steps);
        if attempt > 0 {
            args.push("--resume".into());
        }
        let mut child = Command::new(ECGFM)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let exited = loop {
            if child.try_wait().unwrap().is_some() {
                break true;
            }
            if logged_steps(&killed) >= target {
                break false;
            }
            std::thread::sleep(Duration::from_micros(500));
        };
        if exited {
            break;
        }
        std::thread::sleep(Duration::from_micros(next() % 3000));
        child.kill().unwrap();
        child.wait().unwrap();
        seen = target;
        kills += 1;
    }
    let mut resume = pretrain_args(&killed, steps);
    resume.push("--resume".into());
    run_ok(&resume);
    eprintln!("killed the run {kills} times");
    assert!(kills > 0, "the run was never interrupted");
    assert_same_run_and_remove(full, killed, steps);
}

/// A signal after the stop's checkpoint is saved (`srun --kill-on-bad-exit` signals the ranks
/// still running once the first exits 75) ends the run as a stop, 75, not as killed by it.
#[test]
fn a_signal_after_the_stop_checkpoint_is_saved_still_exits_as_a_stop() {
    let out = temp_dir("late-signal");
    let mut args = pretrain_args(&out, 100_000);
    set_flag(&mut args, "--checkpoint-every", "100000");
    let mut child = Command::new(ECGFM)
        .args(&args)
        .env("ECGFM_FAULT_HOLD_AFTER_STOP_MS", "20000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let term = || {
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.unwrap().success());
    };
    let waited = std::time::Instant::now();
    let mut wait_until = |done: &dyn Fn() -> bool| {
        while !done() {
            assert!(child.try_wait().unwrap().is_none(), "the run ended early");
            assert!(waited.elapsed() < Duration::from_secs(120), "timed out");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_until(&|| logged_steps(&out) >= 2);
    term();
    // The only checkpoint is the stop's (the grid's first is at step 100,000).
    let saved = || {
        std::fs::read_dir(out.join("checkpoints"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.path().join("COMPLETE").exists())
    };
    wait_until(&saved);
    // Past the window in which a second signal is the same request.
    std::thread::sleep(Duration::from_millis(2500));
    term();
    assert_eq!(child.wait().unwrap().code(), Some(75));
    std::fs::remove_dir_all(out).unwrap();
}

/// A run in a terminal that closes (an ssh session lost: the kernel sends SIGHUP, and every
/// later write to the terminal fails) checkpoints and exits as a stop, 75, also when it was
/// started ignoring SIGHUP (`trap '' HUP`: a run printing to the terminal stops, where it would
/// otherwise fail at its next print). Until 2026-12-06 SIGHUP ended the run at once, losing the
/// steps since the last checkpoint.
#[test]
fn a_closed_terminal_stops_the_run_with_a_checkpoint() {
    stop_on_closed_terminal("hangup", false);
    stop_on_closed_terminal("hangup-ignored", true);
}

/// The run of `a_closed_terminal_stops_the_run_with_a_checkpoint` in `temp_dir(name)`, started
/// with SIGHUP ignored when `ignore_hangup`.
fn stop_on_closed_terminal(name: &str, ignore_hangup: bool) {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let out = temp_dir(name);
    let mut args = pretrain_args(&out, 100_000);
    set_flag(&mut args, "--checkpoint-every", "100000");
    let (master, slave) = open_terminal();
    let mut command = Command::new(ECGFM);
    command
        .args(&args)
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave);
    with_default_stop_signals(&mut command);
    // SAFETY: setsid, ioctl and signal are async-signal-safe; the terminal becomes the child's
    // own.
    unsafe {
        command.pre_exec(move || {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if ignore_hangup {
                libc::signal(libc::SIGHUP, libc::SIG_IGN);
            }
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    drop(command);
    // Read the terminal until the run has logged steps, then close it: the hang-up.
    let mut terminal = std::fs::File::from(master);
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while logged_steps(&out) < 3 {
            let read = terminal.read(&mut buf);
            assert!(read.is_ok_and(|n| n > 0), "the terminal closed early");
        }
        out
    });
    let out = reader.join().unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(75));
    let saved = std::fs::read_dir(out.join("checkpoints")).unwrap().count();
    assert_eq!(saved, 1, "the stop's checkpoint");
    std::fs::remove_dir_all(out).unwrap();
}

/// A pseudo-terminal: its (master, slave) ends, neither inherited by children (a child holding
/// the master would keep the terminal from hanging up).
fn open_terminal() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use std::os::fd::{FromRawFd, OwnedFd};
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes the two descriptors it opens.
    let opened = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
    for fd in [master, slave] {
        // SAFETY: fcntl on descriptors just opened.
        assert_eq!(
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) },
            0
        );
    }
    // SAFETY: both descriptors are open and owned here alone.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// A run whose terminal is gone without a hang-up reaching it (started in the background and
/// `disown`ed: it is not the terminal's session, so no SIGHUP) trains to its end, checkpoint
/// and exit status 0 included; every print to the terminal fails (EIO) and is dropped. Until
/// 2026-12-06 the first such print panicked, exit 101.
#[test]
fn a_run_whose_terminal_is_gone_finishes() {
    let out = temp_dir("disowned");
    let (master, slave) = open_terminal();
    drop(master);
    let status = Command::new(ECGFM)
        .args(pretrain_args(&out, 3))
        .stdin(Stdio::null())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(logged_steps(&out), 3);
    assert!(out.join("checkpoints").read_dir().unwrap().count() >= 1);
    std::fs::remove_dir_all(out).unwrap();
}

/// A second process into a run folder while the first trains there (a sweep started twice, a
/// `--resume` in another terminal) is refused naming the first; once that one ends, its folder
/// resumes. Until 2026-12-06 both trained, interleaving their checkpoints and metrics.
#[test]
fn a_second_process_in_a_training_run_folder_is_refused() {
    let out = temp_dir("locked");
    let mut args = pretrain_args(&out, 100_000);
    set_flag(&mut args, "--checkpoint-every", "100000");
    let mut first = Command::new(ECGFM)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while logged_steps(&out) < 2 {
        assert!(first.try_wait().unwrap().is_none(), "the run ended early");
        assert!(started.elapsed() < Duration::from_secs(120), "timed out");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut second = args.clone();
    second.push("--resume".into());
    let err = run_err(&second);
    let holder = format!("is being trained by another process (pid {}", first.id());
    assert!(err.contains(&holder), "{err}");
    let pid = first.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(sent.unwrap().success());
    assert_eq!(first.wait().unwrap().code(), Some(75));
    set_flag(&mut second, "--steps", "100000");
    second.extend(["--stop-after".into(), "1".into()]);
    run_ok(&second);
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn resume_refuses_a_changed_configuration() {
    let out = temp_dir("changed");
    run_ok(&pretrain_args(&out, 6));
    let mut args = pretrain_args(&out, 8);
    args.extend(["--resume".into(), "--set".into(), "optim.lr=0.5".into()]);
    let output = Command::new(ECGFM).args(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("differs from the run's config.toml (optim.lr: saved 0.001, now 0.5)"),
        "{stderr}"
    );
    // A configuration refusal (EX_CONFIG): `ecgfm launch` does not restart it.
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    // A longer run may resume, told that its schedule moved: steps 4 and 5 decayed faster than
    // an 8-step run's would have.
    let mut longer = pretrain_args(&out, 8);
    longer.push("--resume".into());
    let stderr = run_ok_logs(&longer);
    assert!(
        stderr.contains("warning: train.steps changed from 6 to 8: after step 6"),
        "{stderr}"
    );
    std::fs::remove_dir_all(out).unwrap();
}

/// The checkpoints of `run`, by folder name.
fn checkpoint_names(run: &Path) -> Vec<String> {
    ecgfm_test_support::sorted_names(&run.join("checkpoints"))
}

/// `--keep-checkpoints 2` leaves the newest two checkpoints, saying which it removed, and a run
/// stopped and resumed with it (or given another count on resume) ends with the bits of one
/// that kept every checkpoint.
#[test]
fn keep_checkpoints_removes_all_but_the_newest_and_the_run_is_unchanged() {
    let (all, kept) = (temp_dir("keep-all"), temp_dir("keep-two"));
    let args = |out: &Path, extra: &[&str]| {
        let mut args = pretrain_args(out, 12);
        set_flag(&mut args, "--checkpoint-every", "2");
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    run_ok(&args(&all, &[]));
    assert_eq!(checkpoint_names(&all).len(), 6);
    let logs = run_ok_logs(&args(
        &kept,
        &["--keep-checkpoints", "2", "--stop-after", "8"],
    ));
    assert_eq!(checkpoint_names(&kept), ["step_00000006", "step_00000008"]);
    assert!(
        logs.contains("step_00000004 (train.keep_checkpoints = 2)"),
        "{logs}"
    );
    run_ok(&args(&kept, &["--keep-checkpoints", "1", "--resume"]));
    assert_eq!(checkpoint_names(&kept), ["step_00000012"]);
    // The weights files' headers record each run's own configuration: compare the tensors.
    assert_eq!(losses(&all), losses(&kept));
    assert!(
        checkpoint_tensor_bytes(&all, 12) == checkpoint_tensor_bytes(&kept, 12),
        "weights differ"
    );
    for dir in [all, kept] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// A resume past a damaged newest checkpoint sets it aside (`step_N.corrupt`), so
/// `--keep-checkpoints` counts only intact ones: it kept the damaged one and removed the intact
/// one the run had resumed from until 2026-12-06.
#[test]
fn a_damaged_checkpoint_is_set_aside_and_not_kept_in_place_of_an_intact_one() {
    let run = temp_dir("keep-damaged");
    let args = |steps: u64, extra: &[&str]| {
        let mut args = pretrain_args(&run, steps);
        args.extend(
            ["--keep-checkpoints", "2"]
                .iter()
                .chain(extra)
                .map(|a| a.to_string()),
        );
        args
    };
    run_ok(&args(10, &[]));
    assert_eq!(checkpoint_names(&run), ["step_00000008", "step_00000010"]);
    flip_middle_byte(&run.join("checkpoints/step_00000010/model.safetensors"));
    let logs = run_ok_logs(&args(14, &["--resume"]));
    assert!(
        logs.contains("skipping checkpoint") && logs.contains("resuming from the older"),
        "{logs}"
    );
    let aside = run.join("checkpoints/step_00000010.corrupt");
    let said = format!(
        "set the damaged checkpoint {}",
        run.join("checkpoints/step_00000010").display()
    );
    assert!(
        logs.contains(&said) && logs.contains(&aside.display().to_string()),
        "{logs}"
    );
    // The two kept are the newest intact ones; the damaged one stays for a look, beside them.
    let names = checkpoint_names(&run);
    assert_eq!(
        names,
        ["step_00000010.corrupt", "step_00000012", "step_00000014"]
    );
    // Nothing resumes from it: a second resume goes on from step 14.
    let logs = run_ok_logs(&args(16, &["--resume"]));
    let from_14 = logs.contains("step 15/16") && !logs.contains("step 13/16");
    assert!(from_14 && !logs.contains("skipping"), "{logs}");
    std::fs::remove_dir_all(run).unwrap();
}

#[test]
fn a_resume_may_change_how_often_it_checkpoints_logs_and_validates_but_not_its_precision() {
    let (full, split) = (temp_dir("cadence-full"), temp_dir("cadence-split"));
    run_ok(&pretrain_args(&full, 8));
    let mut first = pretrain_args(&split, 8);
    first.extend(["--stop-after", "3"].map(String::from));
    run_ok(&first);
    let mut bf16 = pretrain_args(&split, 8);
    bf16.extend(["--resume", "--precision", "bf16"].map(String::from));
    let stderr = run_err(&bf16);
    assert!(
        stderr.contains("was trained in fp32; in bf16 the run would round otherwise"),
        "{stderr}"
    );
    let mut resume = pretrain_args(&split, 8);
    set_flag(&mut resume, "--checkpoint-every", "1");
    resume.extend(
        [
            "--resume",
            "--set",
            "train.log_every=2",
            "--set",
            "train.val_every=3",
        ]
        .map(String::from),
    );
    let stdout = run_ok(&resume);
    assert!(
        stdout.contains("step_00000003 in fp32 (train.precision auto)"),
        "{stdout}"
    );
    for step in 4..=8 {
        let dir = split.join(format!("checkpoints/step_{step:08}"));
        assert!(dir.join("COMPLETE").is_file(), "{}", dir.display());
    }
    assert!(
        checkpoint_tensor_bytes(&full, 8) == checkpoint_tensor_bytes(&split, 8),
        "weights differ"
    );
    for dir in [full, split] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}
