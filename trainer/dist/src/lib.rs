//! ecgfm-dist: what data-parallel training needs between processes.
//!
//! - [`env`](mod@env): where this process stands in a job ([`JobEnv`]), read from the environment of
//!   `ecgfm launch`, torchrun, SLURM's srun or Open MPI's mpirun.
//! - [`rendezvous`]: ranks find each other through rank 0 (with a timeout that names the ranks
//!   that never arrived) and connect pairwise over TCP. [`handoff`]: the listening socket
//!   `ecgfm launch --master-port 0` binds and hands to rank 0.
//! - [`Collective`] (`collective.rs`): reduce-scatter, all-gather, all-reduce, broadcast,
//!   barrier, with sums in rank order and a per-call timeout; errors name the peer rank.
//!   [`CpuCollective`] (`cpu.rs`) implements it over tokio TCP connections (it trains CPU ranks
//!   and is how every multi-rank test runs); [`nccl`] over NCCL for GPU ranks, whose waits
//!   watch the CPU collective's connections ([`peer_watch`]) to notice a peer that is gone.
//!   [`nccl_lib`] finds `libnccl.so.2` for cudarc (re-executing a GPU rank once at start-up);
//!   `nccl_comm.rs` holds one rank's raw NCCL communicator.
//! - [`DistError`] (`error.rs`): every failure between ranks, naming the rank concerned.
//! - [`Shards`]: the partition of a flat buffer among ranks (gradient reduce-scatter, ZeRO-1).
//!
//! Depends on tokio and socket2 (network, TCP keepalive), cudarc (NCCL, loaded at run time only
//! when used) and `ecgfm-kernels` (CUDA driver errors in words). The trainer
//! (`ecgfm-trainer`, `data_parallel.rs`) drives it; docs/distributed.md explains the design.

pub mod collective;
pub mod cpu;
pub mod env;
mod error;
pub mod handoff;
pub mod nccl;
mod nccl_comm;
pub mod nccl_lib;
pub mod peer_watch;
pub mod rendezvous;
pub mod shards;

pub use collective::Collective;
pub use cpu::CpuCollective;
pub use env::{JobEnv, Launcher};
pub use error::DistError;
pub use peer_watch::PeerWatch;
pub use rendezvous::{connect, connect_with, on_threads, Timeouts};
pub use shards::Shards;
