//! `DistError`: everything that can go wrong between ranks, always naming the rank concerned.

use std::time::Duration;

/// Errors of the rendezvous, the launcher environment and the collectives.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    #[error("launcher environment: {0}")]
    Env(String),
    #[error(
        "rendezvous at {addr} timed out after {}s: rank(s) {} never arrived",
        .waited.as_secs(),
        list(.missing)
    )]
    RendezvousTimeout {
        addr: String,
        waited: Duration,
        missing: Vec<usize>,
    },
    #[error("rendezvous at {addr}: {reason}")]
    Rendezvous { addr: String, reason: String },
    #[error(
        "{op} timed out after {}s waiting for {} (hung or too slow; the per-collective \
         timeout is --collective-timeout)",
        .waited.as_secs(),
        waiting_for(.ranks)
    )]
    Timeout {
        op: String,
        waited: Duration,
        /// The ranks not heard from; empty where the wait cannot tell (NCCL).
        ranks: Vec<usize>,
    },
    #[error("rank {rank} closed its connection during {op}: it exited or crashed")]
    PeerClosed { rank: usize, op: String },
    #[error(
        "rank {rank} stopped answering during {op}: its machine is down or the network to it is \
         cut (no reply to TCP keepalive probes for about a minute)"
    )]
    PeerUnreachable { rank: usize, op: String },
    #[error("connection to rank {rank} failed during {op}: {source}")]
    Io {
        rank: usize,
        op: String,
        source: std::io::Error,
    },
    #[error(
        "rank {rank} is out of step: this rank's {expected}, but rank {rank} sent {got} (the \
         ranks made different calls: do their commands or configurations differ?)"
    )]
    OutOfStep {
        rank: usize,
        /// This rank's call: its number, kind and the bytes it expected from `rank`.
        expected: String,
        /// The call `rank` made instead.
        got: String,
    },
    #[error("NCCL: {0}")]
    Nccl(String),
}

fn list(ranks: &[usize]) -> String {
    ranks
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn waiting_for(ranks: &[usize]) -> String {
    match ranks {
        [] => "another rank (NCCL does not say which)".into(),
        _ => format!("rank(s) {}", list(ranks)),
    }
}
