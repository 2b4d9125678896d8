//! SIGINT / SIGTERM / SIGUSR1 (which SLURM can send before a time limit) for `ecgfm launch` and
//! `ecgfm pretrain`, and SIGHUP for `ecgfm launch`: the handler only records the signal; the
//! program acts on it at a safe point (the launcher forwards it to every rank, a rank
//! checkpoints and stops after its step).
//!
//! One stop request often arrives twice: Ctrl-C reaches the launcher and every rank (the
//! terminal signals the whole process group), then the launcher forwards it; `timeout` and
//! `kill -- -PGID` signal the group too. So a signal within [`REPEAT_WINDOW_MS`] of the first
//! is that same request; a signal after it ends the process at once (press Ctrl-C again to
//! leave without the checkpoint), with [`STOPPED_EXIT`] where the checkpoint was already saved
//! ([`stop_saved`]): `srun --kill-on-bad-exit` signals the ranks still running when the first
//! one exits 75, and one that saved its checkpoint must not then look failed.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

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

/// Installs the handler for `signals`.
pub fn catch(signals: &[libc::c_int]) {
    for &sig in signals {
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

/// The signal received, if any.
pub fn received() -> Option<libc::c_int> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}
