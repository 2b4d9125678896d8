//! The peer watch of GPU ranks over real connections: while a rank waits on work that is not
//! its connection to the others (an NCCL collective), a peer that exits is named within seconds
//! of its exit instead of at the per-call timeout, and watching reads nothing the CPU
//! collective has yet to read; a blocking call (NCCL's initialisation) is abandoned likewise.

use std::time::{Duration, Instant};

use ecgfm_dist::peer_watch::{run_watching, wait_watching};
use ecgfm_dist::{on_threads, Collective, DistError, Timeouts};

const TIMEOUTS: Timeouts = Timeouts {
    rendezvous: Duration::from_secs(20),
    collective: Duration::from_secs(20),
};

#[test]
fn a_rank_that_exits_is_named_while_another_waits_and_its_last_message_is_kept() {
    let results = on_threads(2, TIMEOUTS, |mut c| match c.rank() {
        0 => {
            let watch = c.peer_watch().unwrap();
            c.barrier().unwrap();
            let alive = watch.gone();
            c.barrier().unwrap();
            // Rank 1 now sends its broadcast and exits; this rank waits on work that never ends.
            let started = Instant::now();
            let err = wait_watching(
                "NCCL's all_reduce",
                Duration::from_secs(60),
                || Ok(false),
                || watch.gone(),
            )
            .unwrap_err();
            let waited = started.elapsed();
            let mut said = Vec::new();
            c.broadcast_bytes(&mut said, 1).unwrap();
            (alive, Some(err), waited, said)
        }
        _ => {
            c.barrier().unwrap();
            c.barrier().unwrap();
            c.broadcast_bytes(&mut b"last words".to_vec(), 1).unwrap();
            (None, None, Duration::ZERO, Vec::new())
        }
    })
    .unwrap();
    let (alive, err, waited, said) = results.into_iter().next().unwrap().unwrap();
    assert_eq!(alive, None, "a rank in a barrier is not gone");
    let err = err.unwrap();
    assert!(
        matches!(&err, DistError::PeerClosed { rank: 1, .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "rank 1 closed its connection during NCCL's all_reduce: it exited or crashed"
    );
    assert!(
        waited < Duration::from_secs(10),
        "named after {waited:?}, not at the 60 s timeout"
    );
    assert_eq!(
        said, b"last words",
        "the watch read nothing from the connection"
    );
}

/// A call that blocks until every rank makes it (NCCL's initialisation) runs on a thread of its
/// own: its result comes back, and when a rank exits instead of making the call the wait ends
/// naming it.
#[test]
fn a_blocking_call_is_abandoned_naming_a_rank_that_exits_instead_of_joining() {
    let results = on_threads(2, TIMEOUTS, |mut c| match c.rank() {
        0 => {
            let watch = c.peer_watch().unwrap();
            let joined = run_watching("a call", Duration::from_secs(60), &watch, || Ok(7));
            c.barrier().unwrap();
            let started = Instant::now();
            let never = run_watching("ncclCommInitRank", Duration::from_secs(60), &watch, || {
                std::thread::sleep(Duration::from_secs(3600));
                Ok(0)
            });
            Some((joined.unwrap(), never.unwrap_err(), started.elapsed()))
        }
        _ => {
            c.barrier().unwrap();
            None
        }
    })
    .unwrap();
    let (joined, err, waited) = results.into_iter().next().unwrap().unwrap().unwrap();
    assert_eq!(joined, 7);
    assert_eq!(
        err.to_string(),
        "rank 1 closed its connection during ncclCommInitRank: it exited or crashed"
    );
    assert!(waited < Duration::from_secs(10), "named after {waited:?}");
}
