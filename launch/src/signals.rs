//! SIGINT / SIGTERM / SIGUSR1 (which SLURM can send before a time limit) and SIGHUP (a closed
//! terminal or ssh session) for `ecgfm pretrain`, `ecgfm launch`, `ecgfm sweep run` and the dataset
//! writers: the handler only records the signal; the program acts on it at a safe point (the
//! launcher and the sweep pass it on to their children, a rank checkpoints and stops after its
//! step, a dataset writer releases its object-store lease and exits, [`exit_on_stop`]). A child of
//! theirs gets SIGTERM from the kernel when its parent dies ([`stop_with_parent`]), so no run
//! trains on unowned.
//!
//! One stop request often arrives twice: Ctrl-C reaches the launcher and every rank (the
//! terminal signals the whole process group), then the launcher forwards it; `timeout` and
//! `kill -- -PGID` signal the group too. So a signal within [`REPEAT_WINDOW_MS`] of the first
//! is that same request; a signal after it ends the process at once (press Ctrl-C again to
//! leave without the checkpoint), with [`STOPPED_EXIT`] where the checkpoint was already saved
//! ([`stop_saved`]): `srun --kill-on-bad-exit` signals the ranks still running when the first
//! one exits 75, and one that saved its checkpoint must not then look failed.

use std::io::Write;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::time::Duration;

/// Ignores SIGXFSZ, which the kernel sends a process writing past its file-size limit
/// (`ulimit -f`, set on some clusters) and whose default action kills it without a word: the
/// write then fails with EFBIG ("File too large"), which every command reports naming the file,
/// and what it wrote before is kept or resumed as after any failed write. Called first in `main`.
pub fn ignore_file_size_limit_signal() {
    // SAFETY: setting a signal's disposition to SIG_IGN has no handler to be unsafe in.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// The exit status of an `ecgfm pretrain` that stopped on a signal after saving its checkpoint
/// (sysexits' EX_TEMPFAIL: try again later, with --resume): `ecgfm launch` tells such a clean
/// stop from a failure by it and does not restart the job.
pub const STOPPED_EXIT: u8 = 75;

/// The error of a run stopped on a signal with its checkpoint saved; `main` exits with
/// [`STOPPED_EXIT`] for it.
#[derive(Debug)]
pub struct Stopped(pub String);

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Stopped {}

/// Whether `err` says a run stopped on a signal with its checkpoint saved (a [`Stopped`] anywhere
/// in its chain): no failure, `main` exits [`STOPPED_EXIT`].
pub fn is_stop(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.is::<Stopped>())
}

/// A signal this soon after the first one is taken for the same request.
pub const REPEAT_WINDOW_MS: u64 = 2000;

/// The first signal received and not yet acted upon (0: none).
static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// When it arrived (CLOCK_MONOTONIC, milliseconds).
static RECEIVED_AT_MS: AtomicU64 = AtomicU64::new(0);
/// The stop's checkpoint is saved: a later signal ends the process as a clean stop.
static SAVED: AtomicBool = AtomicBool::new(false);

/// CLOCK_MONOTONIC in milliseconds (clock_gettime is async-signal-safe).
fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

extern "C" fn remember(sig: libc::c_int) {
    let now = now_ms();
    if RECEIVED.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst) == Ok(0) {
        RECEIVED_AT_MS.store(now, Ordering::SeqCst);
    } else if now.saturating_sub(RECEIVED_AT_MS.load(Ordering::SeqCst)) > REPEAT_WINDOW_MS {
        let status = match SAVED.load(Ordering::SeqCst) {
            true => i32::from(STOPPED_EXIT),
            false => 128 + sig,
        };
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(status) };
    }
}

/// Says that the stop a signal asked for has its checkpoint saved: from now on the process
/// ends as a stopped run ([`STOPPED_EXIT`]) whatever signal comes next.
pub fn stop_saved() {
    SAVED.store(true, Ordering::SeqCst);
}

/// Installs the handler for `signals`, but for those this process was started ignoring: a
/// command run under `nohup` (SIGHUP ignored, output away from the terminal) goes on after a
/// logout, and one a shell script starts in the background (SIGINT ignored) is not stopped by a
/// Ctrl-C meant for the script. SIGHUP is caught all the same while the output goes to a
/// terminal: once that terminal is gone every print fails, so the command stops (with its
/// checkpoint) rather than going on to fail at its next print.
pub fn catch(signals: &[libc::c_int]) {
    let skipped = |sig: libc::c_int| ignored(sig) && !(sig == libc::SIGHUP && prints_to_terminal());
    for &sig in signals.iter().filter(|&&sig| !skipped(sig)) {
        // SAFETY: the handler only touches atomics, reads the clock and calls _exit, all
        // async-signal-safe.
        unsafe {
            libc::signal(
                sig,
                remember as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
    }
}

/// Whether standard output or standard error is a terminal.
fn prints_to_terminal() -> bool {
    // SAFETY: isatty(3) only asks about a descriptor.
    unsafe { libc::isatty(1) == 1 || libc::isatty(2) == 1 }
}

/// Whether this process was started ignoring `sig` (SIGHUP under `nohup`; SIGINT for a command
/// a shell script starts in the background).
fn ignored(sig: libc::c_int) -> bool {
    // SAFETY: sigaction with a null new action only reads the current one into `current`.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &mut current) == 0
            && current.sa_sigaction == libc::SIG_IGN
    }
}

/// The signal received, if any.
pub fn received() -> Option<libc::c_int> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}

/// The signals that ask a run to stop: each is caught, and the run checkpoints and exits
/// [`STOPPED_EXIT`].
pub const STOPS: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGUSR1, libc::SIGHUP];

/// For the dataset writers (`data ingest`, `data merge`, `data synth`), which have no checkpoint
/// to save: on the first stop signal, removes the output locks this process holds
/// (`ecgfm_data::out_lock::release_held`: a folder's lock file, an object store's lease, at most
/// 15 s; a writer restarted on another machine then finds the output free), prints `then` and
/// exits with 128 + the signal. What was
/// written stays as a kill leaves it: an ingest or merge run again goes on from the shards it
/// stored.
pub fn exit_on_stop(then: &'static str) {
    catch(&STOPS);
    std::thread::spawn(move || loop {
        if let Some(sig) = received() {
            ecgfm_data::out_lock::release_held();
            // Not `eprintln!`, which panics (ending this thread, not the process) when stderr
            // is a terminal that hung up.
            let _ = writeln!(std::io::stderr(), "stopped by signal {sig}: {then}");
            std::process::exit(128 + sig);
        }
        std::thread::sleep(Duration::from_millis(20));
    });
}

/// Sends `sig` to `child`.
pub fn send(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on the pid of a child we spawned and have not yet reaped.
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

/// What a child is sent when this process receives `sig`: SIGHUP (the terminal or ssh session
/// closed) becomes the stop request every `ecgfm` command knows, SIGTERM.
pub fn forwarded_as(sig: libc::c_int) -> libc::c_int {
    match sig {
        libc::SIGHUP => libc::SIGTERM,
        sig => sig,
    }
}

/// Makes the child `cmd` starts receive SIGTERM (a checkpointed stop) when this process dies,
/// even by SIGKILL, instead of running on unowned.
pub fn stop_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: runs in the child between fork and exec, calling only prctl and getppid (both
    // async-signal-safe) and allocating nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died before the call: its death signal will never come.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Runs `cmd` to its end, passing on each stop signal this process receives (see
/// [`forwarded_as`]; the handler must be installed with [`catch`]) and stopping it if this
/// process dies.
pub fn status_passing_on(cmd: &mut Command) -> std::io::Result<ExitStatus> {
    stop_with_parent(cmd);
    let mut child = cmd.spawn()?;
    let mut forwarded = 0;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if let Some(sig) = received().filter(|&sig| sig != forwarded) {
            forwarded = sig;
            send(&child, forwarded_as(sig));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
