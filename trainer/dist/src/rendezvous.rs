//! The rendezvous: how the ranks of a job find each other and connect, every pair by one TCP
//! connection, before any collective runs.
//!
//! Rank 0 listens on the master port; every other rank connects to it (retrying until rank 0 is
//! up), says who it is and on which port it accepts connections. When all have arrived, rank 0
//! sends everyone the address table (or, when some never arrived before the timeout, an error
//! naming them, so every rank reports the same cause). Then rank k connects to ranks 1..k and
//! accepts ranks k+1..; its connection to rank 0 is the one it used to arrive.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::cpu::{CpuCollective, Peer};
use crate::{Collective, DistError, JobEnv};

const MAGIC: &[u8; 8] = b"ECGFMRV1";

/// How long the rendezvous and each collective may wait.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// Until every rank has arrived.
    pub rendezvous: Duration,
    /// Per collective call, once running.
    pub collective: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            rendezvous: Duration::from_secs(300),
            collective: Duration::from_secs(600),
        }
    }
}

fn rdzv_err(env: &JobEnv, reason: impl Into<String>) -> DistError {
    DistError::Rendezvous {
        addr: format!("{}:{}", env.master_addr, env.master_port),
        reason: reason.into(),
    }
}

/// Connects this rank to every other rank of `env`'s job and returns its CPU collective. Rank 0
/// listens on the master port, or adopts the socket its launcher bound there (`handoff.rs`).
pub fn connect(env: &JobEnv, timeouts: Timeouts) -> Result<CpuCollective, DistError> {
    let inherited = (env.rank == 0)
        .then(|| crate::handoff::take(env.master_port))
        .flatten();
    connect_with(env, inherited, timeouts)
}

/// [`connect`], with rank 0 listening on `listener` (already bound to the master port) when given.
pub fn connect_with(
    env: &JobEnv,
    listener: Option<std::net::TcpListener>,
    timeouts: Timeouts,
) -> Result<CpuCollective, DistError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| rdzv_err(env, format!("cannot start the network runtime: {e}")))?;
    let peers = runtime.block_on(async {
        if env.world_size == 1 {
            return Ok(vec![None]);
        }
        let deadline = Instant::now() + timeouts.rendezvous;
        if env.rank == 0 {
            serve(env, listener, deadline, timeouts.rendezvous).await
        } else {
            join(env, deadline, timeouts.rendezvous).await
        }
    })?;
    let mut collective = CpuCollective::new(env.rank, peers, runtime, timeouts.collective);
    collective.barrier()?;
    Ok(collective)
}

/// Connects the `world` ranks of one job as threads of this process, over loopback with rank 0
/// on a socket bound here to a free port (no other process can take it first), and runs `f` on
/// each rank's collective: the results in rank order (a rank that could not connect, its error).
/// Benchmarks and tests of the collectives use it.
pub fn on_threads<T: Send>(
    world: usize,
    timeouts: Timeouts,
    f: impl Fn(CpuCollective) -> T + Sync,
) -> std::io::Result<Vec<Result<T, DistError>>> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let mut listener = Some(listener);
    Ok(std::thread::scope(|s| {
        let handles: Vec<_> = (0..world)
            .map(|rank| {
                let (f, listener) = (&f, listener.take());
                s.spawn(move || {
                    let env = JobEnv {
                        launcher: crate::Launcher::Ecgfm,
                        rank,
                        world_size: world,
                        local_rank: rank,
                        master_addr: "127.0.0.1".into(),
                        master_port: port,
                    };
                    connect_with(&env, listener, timeouts).map(f)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("rank thread panicked"))
            .collect()
    }))
}

async fn write_u32s(stream: &mut TcpStream, values: &[u32]) -> std::io::Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    stream.write_all(&bytes).await
}

async fn read_u32s(stream: &mut TcpStream, n: usize) -> std::io::Result<Vec<u32>> {
    let mut bytes = vec![0u8; 4 * n];
    stream.read_exact(&mut bytes).await?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect())
}

/// Reads a peer's hello: magic, rank, world size, listening port.
async fn read_hello(stream: &mut TcpStream) -> std::io::Result<(usize, usize, u16)> {
    let mut magic = [0u8; 8];
    stream.read_exact(&mut magic).await?;
    if &magic != MAGIC {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not an ecgfm rank (wrong greeting)",
        ));
    }
    let v = read_u32s(stream, 3).await?;
    Ok((v[0] as usize, v[1] as usize, v[2] as u16))
}

async fn write_hello(stream: &mut TcpStream, env: &JobEnv, port: u16) -> std::io::Result<()> {
    stream.write_all(MAGIC).await?;
    write_u32s(
        stream,
        &[env.rank as u32, env.world_size as u32, u32::from(port)],
    )
    .await
}

/// A connection that greeted as an ecgfm rank: its stream, address and (rank, world size,
/// listening port).
type Hello = (TcpStream, SocketAddr, (usize, usize, u16));

/// The next connection to `listener` that greets as an ecgfm rank, or None at `deadline`. Each
/// connection's greeting is read on its own task in `pending`, so one that says nothing (a port
/// scanner, a health check) or something else holds up no rank behind it; it is dropped.
async fn next_hello(
    listener: &TcpListener,
    pending: &mut JoinSet<std::io::Result<Hello>>,
    deadline: Instant,
) -> Option<Hello> {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((mut stream, addr)) = accepted {
                    pending.spawn(async move {
                        let hello = read_hello(&mut stream).await?;
                        Ok((stream, addr, hello))
                    });
                }
            }
            Some(Ok(greeted)) = pending.join_next(), if !pending.is_empty() => {
                if let Ok(hello) = greeted {
                    return Some(hello);
                }
            }
            () = tokio::time::sleep_until(deadline) => return None,
        }
    }
}

/// Rank 0: accepts every other rank, then sends the address table.
async fn serve(
    env: &JobEnv,
    listener: Option<std::net::TcpListener>,
    deadline: Instant,
    waited: Duration,
) -> Result<Vec<Option<Peer>>, DistError> {
    let cannot_listen = |e: std::io::Error| {
        let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
            " (another job on this port? `ecgfm launch --master-port 0` picks a free one)"
        } else {
            ""
        };
        rdzv_err(env, format!("rank 0 cannot listen: {e}{hint}"))
    };
    let listener = match listener {
        Some(l) => {
            l.set_nonblocking(true).map_err(cannot_listen)?;
            TcpListener::from_std(l).map_err(cannot_listen)?
        }
        None => TcpListener::bind(("0.0.0.0", env.master_port))
            .await
            .map_err(cannot_listen)?,
    };
    let mut arrived: BTreeMap<usize, (TcpStream, SocketAddr)> = BTreeMap::new();
    let mut pending = JoinSet::new();
    while arrived.len() + 1 < env.world_size {
        let hello = next_hello(&listener, &mut pending, deadline).await;
        let Some((mut stream, addr, (rank, world, port))) = hello else {
            let missing: Vec<usize> = (1..env.world_size)
                .filter(|r| !arrived.contains_key(r))
                .collect();
            let message = format!(
                "timed out after {}s: rank(s) {} never arrived",
                waited.as_secs(),
                missing
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            for (stream, _) in arrived.values_mut() {
                let _ = send_verdict(stream, Err(&message)).await;
            }
            return Err(DistError::RendezvousTimeout {
                addr: format!("{}:{}", env.master_addr, env.master_port),
                waited,
                missing,
            });
        };
        if world != env.world_size || rank == 0 || rank >= world || arrived.contains_key(&rank) {
            let message = format!(
                "a process claiming rank {rank} of {world} joined a job of {} ranks{}",
                env.world_size,
                if arrived.contains_key(&rank) {
                    " (that rank had already arrived)"
                } else {
                    ""
                }
            );
            let _ = send_verdict(&mut stream, Err(&message)).await;
            for (stream, _) in arrived.values_mut() {
                let _ = send_verdict(stream, Err(&message)).await;
            }
            return Err(rdzv_err(env, message));
        }
        arrived.insert(rank, (stream, SocketAddr::new(addr.ip(), port)));
    }
    // The address of this node that ranks of other nodes reached it by, if any arrived.
    let node_ip = arrived
        .values()
        .find(|(_, a)| !a.ip().is_loopback())
        .and_then(|(stream, _)| stream.local_addr().ok())
        .map(|a| a.ip());
    let seen = arrived.values().map(|(_, a)| *a).collect();
    let table = reachable_from_every_node(seen, node_ip);
    let mut peers: Vec<Option<Peer>> = vec![None];
    for (rank, (mut stream, _)) in arrived {
        send_verdict(&mut stream, Ok(&table))
            .await
            .map_err(|e| rdzv_err(env, format!("rank {rank} left during the rendezvous: {e}")))?;
        peers.push(Some(Peer::new(stream)));
    }
    Ok(peers)
}

/// The listening addresses of ranks 1.. as rank 0 saw them, with those of rank 0's own node
/// (seen over loopback when the master address resolves to 127.0.x.x, as a host's own name does
/// in a default /etc/hosts) given as `node_ip`, the address other nodes reached it by: a rank
/// of another node could not connect to a loopback address.
fn reachable_from_every_node(seen: Vec<SocketAddr>, node_ip: Option<IpAddr>) -> Vec<SocketAddr> {
    let Some(node_ip) = node_ip else {
        return seen;
    };
    seen.into_iter()
        .map(|a| match a.ip().is_loopback() {
            true => SocketAddr::new(node_ip, a.port()),
            false => a,
        })
        .collect()
}

/// Rank 0's answer: the listening addresses of ranks 1.. or an error message.
async fn send_verdict(
    stream: &mut TcpStream,
    verdict: Result<&[SocketAddr], &str>,
) -> std::io::Result<()> {
    match verdict {
        Ok(table) => {
            let text = table
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(" ");
            stream.write_all(&[0]).await?;
            write_u32s(stream, &[text.len() as u32]).await?;
            stream.write_all(text.as_bytes()).await
        }
        Err(message) => {
            stream.write_all(&[1]).await?;
            write_u32s(stream, &[message.len() as u32]).await?;
            stream.write_all(message.as_bytes()).await
        }
    }
}

/// Ranks 1..: arrives at rank 0, then connects to the lower ranks and accepts the higher ones.
async fn join(
    env: &JobEnv,
    deadline: Instant,
    waited: Duration,
) -> Result<Vec<Option<Peer>>, DistError> {
    let listener = TcpListener::bind(("0.0.0.0", 0))
        .await
        .map_err(|e| rdzv_err(env, format!("rank {} cannot listen: {e}", env.rank)))?;
    let port = listener
        .local_addr()
        .map_err(|e| rdzv_err(env, e.to_string()))?
        .port();
    let master = format!("{}:{}", env.master_addr, env.master_port);
    let mut to_master = loop {
        match TcpStream::connect(&master).await {
            Ok(stream) => break stream,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => {
                tracing::debug!("last connection error: {e}");
                return Err(DistError::RendezvousTimeout {
                    addr: master,
                    waited,
                    missing: vec![0],
                });
            }
        }
    };
    let lost = |e: std::io::Error| rdzv_err(env, format!("rank 0 went away: {e}"));
    write_hello(&mut to_master, env, port).await.map_err(lost)?;
    let mut kind = [0u8; 1];
    to_master.read_exact(&mut kind).await.map_err(lost)?;
    let len = read_u32s(&mut to_master, 1).await.map_err(lost)?[0] as usize;
    let mut text = vec![0u8; len];
    to_master.read_exact(&mut text).await.map_err(lost)?;
    let text = String::from_utf8_lossy(&text).to_string();
    if kind[0] != 0 {
        return Err(rdzv_err(env, format!("rank 0 reports: {text}")));
    }
    let table: Vec<SocketAddr> = text
        .split(' ')
        .map(|a| a.parse())
        .collect::<Result<_, _>>()
        .map_err(|_| rdzv_err(env, format!("unreadable address table `{text}`")))?;
    let mut peers: Vec<Option<Peer>> = (0..env.world_size).map(|_| None).collect();
    peers[0] = Some(Peer::new(to_master));
    for lower in 1..env.rank {
        let addr = table[lower - 1];
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| rdzv_err(env, format!("cannot reach rank {lower} at {addr}: {e}")))?;
        write_hello(&mut stream, env, port)
            .await
            .map_err(|e| rdzv_err(env, format!("rank {lower} went away: {e}")))?;
        peers[lower] = Some(Peer::new(stream));
    }
    let mut pending = JoinSet::new();
    for _ in env.rank + 1..env.world_size {
        let Some((stream, _, (rank, _, _))) = next_hello(&listener, &mut pending, deadline).await
        else {
            return Err(DistError::RendezvousTimeout {
                addr: format!("rank {}'s port {port}", env.rank),
                waited,
                missing: (env.rank + 1..env.world_size)
                    .filter(|&r| peers[r].is_none())
                    .collect(),
            });
        };
        if rank <= env.rank || rank >= env.world_size || peers[rank].is_some() {
            return Err(rdzv_err(
                env,
                format!("unexpected connection from rank {rank}"),
            ));
        }
        peers[rank] = Some(Peer::new(stream));
    }
    Ok(peers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_of_rank_0s_node_seen_over_loopback_get_the_address_other_nodes_used() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        let seen = vec![addr("127.0.0.1:4001"), addr("10.99.0.2:4002")];
        let node = Some("10.99.0.1".parse().unwrap());
        assert_eq!(
            reachable_from_every_node(seen.clone(), node),
            [addr("10.99.0.1:4001"), addr("10.99.0.2:4002")]
        );
        // One node, every rank over loopback: nothing to change.
        let local = vec![addr("127.0.0.1:4001"), addr("127.0.0.1:4002")];
        assert_eq!(reachable_from_every_node(local.clone(), None), local);
    }
}
