//! `PeerWatch`: notices that another rank is gone while this rank waits on work that
//! is not its connection to that rank: an NCCL collective on the GPU, whose kernels would
//! otherwise wait for a dead peer until the per-call timeout (600 s by default), on every node.
//!
//! A process that exits or crashes, on any node, has its sockets closed by its kernel, so its
//! connections of the CPU collective end. The watch holds duplicates of this rank's ends of
//! those connections and polls them for the peer's end of the connection (`POLLRDHUP`, a
//! hang-up or an error; nothing is read, the CPU collective's next message stays where it is).
//! A machine that loses power sends nothing; the connections' TCP keepalive (`cpu.rs`) fails
//! them within about a minute, and the watch names that peer as unreachable.
//!
//! [`wait_watching`] is the wait loop of a GPU collective: it polls the work, looks at the
//! peers every 50 ms, and reports a gone peer once the work has not finished within two seconds
//! of seeing it (a peer may leave as soon as its own part of the last collective is done, a
//! moment before this rank's part finishes). [`run_watching`] does the same for a call that
//! blocks (NCCL's initialisation), run on a thread of its own.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::DistError;

/// How often the wait loop polls the work.
const POLL: Duration = Duration::from_micros(200);
/// How often it looks at the peers' connections (one `poll` for all of them).
const LOOK_EVERY: Duration = Duration::from_millis(50);
/// How long the work may still take after a peer is seen gone.
const GRACE: Duration = Duration::from_secs(2);

/// This rank's ends of its connections to the other ranks, to poll.
pub struct PeerWatch {
    /// (the peer's rank, a duplicate of this rank's socket to it).
    peers: Vec<(usize, OwnedFd)>,
}

impl PeerWatch {
    pub(crate) fn new(peers: Vec<(usize, OwnedFd)>) -> PeerWatch {
        PeerWatch { peers }
    }

    /// The lowest rank whose connection has ended (the process exited or crashed) or failed
    /// (its machine stopped answering keepalive probes), if any. One `poll` over all the
    /// sockets, without blocking; it sees the end of a connection even behind data not yet read.
    pub fn gone(&self) -> Option<Lost> {
        let mut fds: Vec<libc::pollfd> = self
            .peers
            .iter()
            .map(|(_, socket)| libc::pollfd {
                fd: socket.as_raw_fd(),
                events: PEER_CLOSED,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` holds `fds.len()` entries for sockets this watch owns; a timeout of 0
        // returns at once.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
        if ready <= 0 {
            return None;
        }
        let ended = PEER_CLOSED | libc::POLLHUP | libc::POLLERR;
        let first = fds.iter().position(|fd| fd.revents & ended != 0)?;
        let (rank, socket) = &self.peers[first];
        let failed = match fds[first].revents & libc::POLLERR {
            0 => None,
            _ => socket_error(socket).and_then(|e| Lost::from_io(*rank, e.kind())),
        };
        Some(failed.unwrap_or(Lost::Closed(*rank)))
    }
}

/// A peer this rank has lost, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// Its connection ended: the process exited or crashed.
    Closed(usize),
    /// Its machine stopped answering: down, or the network to it cut.
    Unreachable(usize),
}

impl Lost {
    /// The peer `rank` lost, if an error of the connection to it (`kind`) says so: the CPU
    /// collective's reads and writes and the watch classify errors here.
    pub(crate) fn from_io(rank: usize, kind: std::io::ErrorKind) -> Option<Lost> {
        use std::io::ErrorKind::*;
        match kind {
            UnexpectedEof | ConnectionReset | BrokenPipe | ConnectionAborted => {
                Some(Lost::Closed(rank))
            }
            TimedOut | HostUnreachable | NetworkUnreachable => Some(Lost::Unreachable(rank)),
            _ => None,
        }
    }

    /// The error of a wait on `op` that lost this peer.
    pub fn error(self, op: &str) -> DistError {
        let op = op.to_string();
        match self {
            Lost::Closed(rank) => DistError::PeerClosed { rank, op },
            Lost::Unreachable(rank) => DistError::PeerUnreachable { rank, op },
        }
    }
}

/// The error pending on a failed socket (`SO_ERROR`: a reset, keepalive's timeout, no route).
fn socket_error(socket: &OwnedFd) -> Option<std::io::Error> {
    let mut error: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: reads the socket's pending error into `error`, of the length given.
    let read = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut error as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (read == 0 && error != 0).then(|| std::io::Error::from_raw_os_error(error))
}

/// The event of a peer closing its end (its half of the connection), where the system has one.
#[cfg(any(target_os = "linux", target_os = "android"))]
const PEER_CLOSED: libc::c_short = libc::POLLRDHUP;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const PEER_CLOSED: libc::c_short = libc::POLLHUP;

/// Waits until `done` says the work `op` has finished. Fails with `done`'s own error, with
/// [`DistError::PeerClosed`] (or `PeerUnreachable`) when `gone` names a lost peer and the work
/// is still not done two seconds later, or with [`DistError::Timeout`] after `timeout`.
pub fn wait_watching(
    op: &str,
    timeout: Duration,
    mut done: impl FnMut() -> Result<bool, DistError>,
    mut gone: impl FnMut() -> Option<Lost>,
) -> Result<(), DistError> {
    let started = Instant::now();
    let mut looked = started;
    let mut seen_gone: Option<(Lost, Instant)> = None;
    loop {
        if done()? {
            return Ok(());
        }
        let now = Instant::now();
        if seen_gone.is_none() && now - looked >= LOOK_EVERY {
            looked = now;
            seen_gone = gone().map(|lost| (lost, now));
        }
        if let Some((lost, seen)) = seen_gone {
            if now - seen >= GRACE {
                return Err(lost.error(op));
            }
        }
        if now - started > timeout {
            return Err(DistError::Timeout {
                op: op.to_string(),
                waited: timeout,
                ranks: Vec::new(),
            });
        }
        std::thread::sleep(POLL);
    }
}

/// Runs `work`, a call that blocks until every rank has made it (NCCL's initialisation), on a
/// thread of its own while this one waits as [`wait_watching`] does: a rank that exits meanwhile
/// (its own call failed, say) is named instead of leaving the others blocked for good. On an
/// error the blocked thread is left behind; the process is about to end.
pub fn run_watching<T: Send + 'static>(
    op: &str,
    timeout: Duration,
    peers: &PeerWatch,
    work: impl FnOnce() -> Result<T, DistError> + Send + 'static,
) -> Result<T, DistError> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("ecgfm-watched".into())
        .spawn(move || {
            let _ = sender.send(work());
        })
        .map_err(|e| DistError::Env(format!("starting a thread for {op}: {e}")))?;
    let mut result = None;
    let done = || match receiver.try_recv() {
        Ok(r) => {
            result = Some(r);
            Ok(true)
        }
        Err(std::sync::mpsc::TryRecvError::Empty) => Ok(false),
        Err(std::sync::mpsc::TryRecvError::Disconnected) => {
            Err(DistError::Env(format!("the thread running {op} panicked")))
        }
    };
    wait_watching(op, timeout, done, || peers.gone())?;
    result.expect("the work's result was received")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(60);

    #[test]
    fn work_that_finishes_is_waited_for() {
        let mut polls = 0;
        let result = wait_watching(
            "all_reduce",
            LONG,
            || {
                polls += 1;
                Ok(polls == 500)
            },
            || None,
        );
        assert!(result.is_ok());
        assert_eq!(polls, 500);
    }

    /// The error of a wait on work that never finishes while `lost` is seen, and how long it took.
    fn losing(lost: Lost) -> (DistError, Duration) {
        let started = Instant::now();
        let err = wait_watching("NCCL's all_reduce", LONG, || Ok(false), || Some(lost));
        (err.unwrap_err(), started.elapsed())
    }

    #[test]
    fn a_gone_peer_is_named_two_seconds_after_it_is_seen() {
        let (err, waited) = losing(Lost::Closed(3));
        assert!(
            matches!(&err, DistError::PeerClosed { rank: 3, op } if op == "NCCL's all_reduce"),
            "{err}"
        );
        assert!(waited >= GRACE && waited < GRACE + Duration::from_secs(5));
        assert_eq!(
            err.to_string(),
            "rank 3 closed its connection during NCCL's all_reduce: it exited or crashed"
        );
        let (err, _) = losing(Lost::Unreachable(2));
        assert_eq!(
            err.to_string(),
            "rank 2 stopped answering during NCCL's all_reduce: its machine is down or the \
             network to it is cut (no reply to TCP keepalive probes for about a minute)"
        );
    }

    #[test]
    fn work_finishing_within_the_grace_is_not_an_error() {
        let started = Instant::now();
        let result = wait_watching(
            "barrier",
            LONG,
            || Ok(started.elapsed() > Duration::from_millis(500)),
            || Some(Lost::Closed(1)),
        );
        assert!(result.is_ok());
    }

    #[test]
    fn without_a_gone_peer_the_timeout_ends_the_wait() {
        let err = wait_watching(
            "broadcast",
            Duration::from_millis(300),
            || Ok(false),
            || None,
        )
        .unwrap_err();
        assert!(matches!(err, DistError::Timeout { .. }), "{err}");
        assert!(
            err.to_string().starts_with(
                "broadcast timed out after 0s waiting for another rank (NCCL does not say which)"
            ),
            "{err}"
        );
    }

    #[test]
    fn the_works_own_error_comes_back_at_once() {
        let err = wait_watching(
            "all_gather",
            LONG,
            || {
                Err(DistError::Nccl(
                    "cuEventQuery: CUDA_ERROR_ILLEGAL_ADDRESS".into(),
                ))
            },
            || Some(Lost::Unreachable(0)),
        )
        .unwrap_err();
        assert!(matches!(err, DistError::Nccl(_)), "{err}");
    }
}
