//! SIGINT / SIGTERM (and SIGUSR1, which SLURM can send before a time limit) for `ecgfm launch`
//! and `ecgfm pretrain`: the handler only records the signal; the program acts on it at a safe
//! point (the launcher forwards it to every rank, a rank checkpoints and stops after its step).
//! A second signal while the first is pending ends the process at once.

use std::sync::atomic::{AtomicI32, Ordering};

/// The first signal received and not yet acted upon (0: none).
static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn remember(sig: libc::c_int) {
    if RECEIVED.swap(sig, Ordering::SeqCst) != 0 {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(128 + sig) };
    }
}

/// Installs the handler for `signals`.
pub fn catch(signals: &[libc::c_int]) {
    for &sig in signals {
        // SAFETY: the handler only touches an atomic and calls _exit, both async-signal-safe.
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
