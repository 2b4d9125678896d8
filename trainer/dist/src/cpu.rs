//! `CpuCollective`: the CPU implementation of `Collective` over TCP (tokio), one connection per
//! pair of ranks (made by `rendezvous::connect`).
//!
//! Reduce-scatter is direct: each rank sends every owner its part of the range and each owner
//! adds the R parts in rank order, so sums are bitwise reproducible and equal to one process
//! adding the same values in the same order. Every rank sends and receives (R - 1)/R of the
//! range, the traffic of a ring reduce-scatter; the all-gather is the mirror image. All sends and
//! receives of one call run concurrently, under one per-call timeout.
//!
//! Wire format: each message is a header (call sequence number, payload bytes, the call's kind;
//! u64 little endian) and the payload. The sequence number and the kind catch ranks that fall
//! out of step, and the error names both ranks' calls.

use std::ops::Range;
use std::os::fd::AsFd;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;

use crate::peer_watch::{Lost, PeerWatch};
use crate::{Collective, DistError, Shards};

/// One connection to another rank.
pub(crate) struct Peer {
    read: OwnedReadHalf,
    write: OwnedWriteHalf,
}

/// TCP keepalive on every connection: a peer whose machine stops answering (power lost, the
/// network cut) fails a wait on it within about a minute (30 s without traffic, then 6 probes
/// 5 s apart) instead of at the per-call timeout. A read from it gets the error, and the peer
/// watch of GPU ranks sees it. Probes are answered by a live peer's kernel, busy or not.
/// Keepalive runs only while nothing sent is unacknowledged; data in flight to a dead machine
/// is left to TCP's retransmission limit, past the per-call timeout.
const KEEPALIVE: TcpKeepalive = TcpKeepalive::new()
    .with_time(Duration::from_secs(30))
    .with_interval(Duration::from_secs(5))
    .with_retries(6);

impl Peer {
    pub(crate) fn new(stream: TcpStream) -> Peer {
        let _ = stream.set_nodelay(true);
        if let Err(e) = SockRef::from(&stream).set_tcp_keepalive(&KEEPALIVE) {
            tracing::warn!("TCP keepalive could not be set on a connection to a peer: {e}");
        }
        let (read, write) = stream.into_split();
        Peer { read, write }
    }
}

/// The CPU collective of one rank.
pub struct CpuCollective {
    rank: usize,
    world: usize,
    /// Connection to each other rank (`None` at this rank's own index).
    peers: Vec<Option<Peer>>,
    runtime: Runtime,
    timeout: Duration,
    seq: u64,
    /// Receive buffers, one per peer, reused between calls.
    scratch: Vec<Vec<f32>>,
}

/// What one peer sends and receives in one exchange.
struct Transfer<'a> {
    send: Option<&'a [u8]>,
    recv: Option<&'a mut [u8]>,
}

/// The kinds of call, in the order of their codes on the wire (code = index + 1).
const OPS: [&str; 5] = [
    "reduce_scatter",
    "all_gather",
    "broadcast (length)",
    "broadcast",
    "barrier",
];

/// The wire code of the call `op` (0 for a name not in `OPS`).
fn op_code(op: &str) -> u64 {
    OPS.iter()
        .position(|&o| o == op)
        .map_or(0, |i| i as u64 + 1)
}

/// The name of the call with wire code `code`.
fn op_name(code: u64) -> &'static str {
    match code {
        1..=5 => OPS[code as usize - 1],
        _ => "an unknown call",
    }
}

/// Bytes of a message header: sequence number, payload length, kind of call.
const HEADER: usize = 24;

fn io_to_dist(rank: usize, op: &str, e: std::io::Error) -> DistError {
    match Lost::from_io(rank, e.kind()) {
        Some(lost) => lost.error(op),
        None => DistError::Io {
            rank,
            op: op.to_string(),
            source: e,
        },
    }
}

async fn transfer(
    peer: &mut Peer,
    seq: u64,
    op: &str,
    rank: usize,
    t: Transfer<'_>,
) -> Result<(), DistError> {
    let Peer { read, write } = peer;
    let code = op_code(op);
    let expected_len = t.recv.as_ref().map(|b| b.len() as u64);
    let send = async {
        if let Some(bytes) = t.send {
            let mut header = [0u8; HEADER];
            header[..8].copy_from_slice(&seq.to_le_bytes());
            header[8..16].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
            header[16..].copy_from_slice(&code.to_le_bytes());
            write.write_all(&header).await?;
            write.write_all(bytes).await?;
        }
        Ok::<(), std::io::Error>(())
    };
    let recv = async {
        if let Some(buf) = t.recv {
            let mut header = [0u8; HEADER];
            read.read_exact(&mut header).await?;
            let field =
                |i: usize| u64::from_le_bytes(header[i..i + 8].try_into().expect("8 bytes"));
            let (got_seq, got_len, got_code) = (field(0), field(8), field(16));
            if got_seq != seq || got_len != buf.len() as u64 || got_code != code {
                return Ok(Some((got_seq, got_len, got_code)));
            }
            read.read_exact(buf).await?;
        }
        Ok::<Option<(u64, u64, u64)>, std::io::Error>(None)
    };
    let (sent, received) = tokio::join!(send, recv);
    sent.map_err(|e| io_to_dist(rank, op, e))?;
    if let Some((got_seq, got_len, got_code)) = received.map_err(|e| io_to_dist(rank, op, e))? {
        return Err(DistError::OutOfStep {
            rank,
            expected: format!(
                "call #{seq} is {op}, expecting {} bytes from it",
                expected_len.unwrap_or_default()
            ),
            got: format!(
                "{} with {got_len} bytes as its call #{got_seq}",
                op_name(got_code)
            ),
        });
    }
    Ok(())
}

/// Splits `buf` into the disjoint, rank-ordered `ranges` (relative to `buf`), mutably.
fn split_disjoint<'a>(mut buf: &'a mut [f32], ranges: &[Range<usize>]) -> Vec<&'a mut [f32]> {
    let mut out = Vec::with_capacity(ranges.len());
    let mut consumed = 0;
    for r in ranges {
        let (_, tail) = std::mem::take(&mut buf).split_at_mut(r.start - consumed);
        let (piece, rest) = tail.split_at_mut(r.len());
        out.push(piece);
        buf = rest;
        consumed = r.end;
    }
    out
}

impl CpuCollective {
    pub(crate) fn new(
        rank: usize,
        peers: Vec<Option<Peer>>,
        runtime: Runtime,
        timeout: Duration,
    ) -> CpuCollective {
        let world = peers.len();
        CpuCollective {
            rank,
            world,
            peers,
            runtime,
            timeout,
            seq: 0,
            scratch: vec![Vec::new(); world],
        }
    }

    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A watch on this rank's connections, to notice a peer's exit while waiting on something
    /// else (an NCCL collective). It holds duplicates of the sockets: keep it no longer than
    /// this collective.
    pub fn peer_watch(&self) -> Result<PeerWatch, DistError> {
        let sockets = self.peers.iter().enumerate().filter_map(|(rank, peer)| {
            let peer = peer.as_ref()?;
            let socket = peer.read.as_ref().as_fd().try_clone_to_owned();
            Some(
                socket
                    .map(|s| (rank, s))
                    .map_err(|e| io_to_dist(rank, "peer_watch", e)),
            )
        });
        Ok(PeerWatch::new(sockets.collect::<Result<_, _>>()?))
    }

    /// Runs one exchange: for each peer, sends and receives its `Transfer` concurrently.
    fn exchange(&mut self, op: &str, mut transfers: Vec<Transfer<'_>>) -> Result<(), DistError> {
        let seq = self.seq;
        self.seq += 1;
        let timeout = self.timeout;
        let peers = &mut self.peers;
        self.runtime.block_on(async {
            let mut pending: Vec<usize> = Vec::new();
            let mut calls = FuturesUnordered::new();
            for (rank, (peer, t)) in peers.iter_mut().zip(transfers.drain(..)).enumerate() {
                let Some(peer) = peer else { continue };
                if t.send.is_none() && t.recv.is_none() {
                    continue;
                }
                pending.push(rank);
                calls.push(async move { (rank, transfer(peer, seq, op, rank, t).await) });
            }
            let deadline = tokio::time::Instant::now() + timeout;
            while !pending.is_empty() {
                match tokio::time::timeout_at(deadline, calls.next()).await {
                    Ok(Some((rank, result))) => {
                        result?;
                        pending.retain(|&r| r != rank);
                    }
                    Ok(None) => break,
                    Err(_) => {
                        return Err(DistError::Timeout {
                            op: format!("{op} (call #{seq})"),
                            waited: timeout,
                            ranks: pending,
                        })
                    }
                }
            }
            Ok(())
        })
    }

    fn no_transfers<'a>(&self) -> Vec<Transfer<'a>> {
        (0..self.world)
            .map(|_| Transfer {
                send: None,
                recv: None,
            })
            .collect()
    }

    /// Broadcasts a byte string of any length from `root` (run directories, NCCL ids).
    pub fn broadcast_bytes(&mut self, bytes: &mut Vec<u8>, root: usize) -> Result<(), DistError> {
        let mut len = [bytes.len() as u64];
        self.broadcast_raw(
            bytemuck::cast_slice_mut(&mut len),
            root,
            "broadcast (length)",
        )?;
        bytes.resize(len[0] as usize, 0);
        self.broadcast_raw(bytes, root, "broadcast")
    }

    fn broadcast_raw(&mut self, buf: &mut [u8], root: usize, op: &str) -> Result<(), DistError> {
        let mut transfers = self.no_transfers();
        if self.rank == root {
            for t in transfers.iter_mut() {
                t.send = Some(buf);
            }
        } else {
            transfers[root].recv = Some(buf);
        }
        self.exchange(op, transfers)
    }
}

impl Collective<[f32]> for CpuCollective {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.world
    }

    fn reduce_scatter(
        &mut self,
        src: &[f32],
        range: Range<usize>,
        shards: &Shards,
        acc: &mut [f32],
    ) -> Result<(), DistError> {
        assert_eq!(
            src.len(),
            range.len(),
            "reduce_scatter: src must cover the range"
        );
        let own = shards.range(self.rank);
        assert_eq!(
            acc.len(),
            own.len(),
            "reduce_scatter: acc must be this rank's shard"
        );
        let mine = shards.piece(self.rank, &range);
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut transfers = self.no_transfers();
        for (q, (t, buf)) in transfers.iter_mut().zip(scratch.iter_mut()).enumerate() {
            if q == self.rank {
                continue;
            }
            let piece = shards.piece(q, &range);
            if !piece.is_empty() {
                let part = &src[piece.start - range.start..piece.end - range.start];
                t.send = Some(bytemuck::cast_slice(part));
            }
            if !mine.is_empty() {
                buf.resize(mine.len(), 0.0);
                t.recv = Some(bytemuck::cast_slice_mut(buf.as_mut_slice()));
            }
        }
        let result = self.exchange("reduce_scatter", transfers);
        if result.is_ok() && !mine.is_empty() {
            let dst = &mut acc[mine.start - own.start..mine.end - own.start];
            for (p, received) in scratch.iter().enumerate() {
                let part = if p == self.rank {
                    &src[mine.start - range.start..mine.end - range.start]
                } else {
                    &received[..mine.len()]
                };
                for (d, s) in dst.iter_mut().zip(part) {
                    *d += *s;
                }
            }
        }
        self.scratch = scratch;
        result
    }

    fn all_gather(
        &mut self,
        buf: &mut [f32],
        range: Range<usize>,
        shards: &Shards,
    ) -> Result<(), DistError> {
        let pieces: Vec<Range<usize>> = (0..self.world).map(|q| shards.piece(q, &range)).collect();
        let rank = self.rank;
        let mut transfers = self.no_transfers();
        let mut parts = split_disjoint(buf, &pieces);
        let mine: &[f32] = std::mem::take::<&mut [f32]>(&mut parts[rank]);
        for (q, (t, part)) in transfers.iter_mut().zip(parts).enumerate() {
            if q == rank {
                continue;
            }
            if !mine.is_empty() {
                t.send = Some(bytemuck::cast_slice(mine));
            }
            if !part.is_empty() {
                t.recv = Some(bytemuck::cast_slice_mut(part));
            }
        }
        self.exchange("all_gather", transfers)
    }

    fn all_reduce(&mut self, buf: &mut [f32]) -> Result<(), DistError> {
        let shards = Shards::even(buf.len(), self.world);
        let mut acc = vec![0.0f32; shards.range(self.rank).len()];
        self.reduce_scatter(buf, 0..buf.len(), &shards, &mut acc)?;
        let own = shards.range(self.rank);
        buf[own].copy_from_slice(&acc);
        let len = buf.len();
        self.all_gather(buf, 0..len, &shards)
    }

    fn broadcast(&mut self, buf: &mut [f32], root: usize) -> Result<(), DistError> {
        self.broadcast_raw(bytemuck::cast_slice_mut(buf), root, "broadcast")
    }

    fn barrier(&mut self) -> Result<(), DistError> {
        let mut flags = vec![[0u8; 0]; self.world];
        let mut transfers = self.no_transfers();
        for (q, (t, flag)) in transfers.iter_mut().zip(flags.iter_mut()).enumerate() {
            if q != self.rank {
                t.send = Some(&[]);
                t.recv = Some(&mut flag[..]);
            }
        }
        self.exchange("barrier", transfers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{on_threads, Timeouts};

    #[test]
    fn every_connection_to_a_peer_has_keepalive() {
        let timeouts = Timeouts {
            rendezvous: Duration::from_secs(20),
            collective: Duration::from_secs(20),
        };
        let settings = on_threads(3, timeouts, |c| {
            c.peers
                .iter()
                .flatten()
                .map(|peer| {
                    let socket = SockRef::from(peer.read.as_ref());
                    (
                        socket.keepalive().unwrap(),
                        socket.tcp_keepalive_time().unwrap().as_secs(),
                        socket.tcp_keepalive_interval().unwrap().as_secs(),
                        socket.tcp_keepalive_retries().unwrap(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .unwrap();
        for rank in settings {
            assert_eq!(rank.unwrap(), vec![(true, 30, 5, 6); 2]);
        }
    }

    #[test]
    fn a_peer_that_stops_answering_is_named_unreachable() {
        let timed_out = std::io::Error::from(std::io::ErrorKind::TimedOut);
        let err = io_to_dist(4, "barrier", timed_out);
        assert!(
            matches!(&err, DistError::PeerUnreachable { rank: 4, op } if op == "barrier"),
            "{err}"
        );
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(matches!(
            io_to_dist(4, "barrier", reset),
            DistError::PeerClosed { rank: 4, .. }
        ));
    }
}
