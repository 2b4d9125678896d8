//! The data-parallel side of `ecgfm pretrain`: which rank this process is (from `ecgfm launch`,
//! torchrun, srun or mpirun), the connection to the other ranks, the run directory they all use
//! (rank 0 chooses it), and the trainer's `DataParallel`: CPU ranks reduce in host memory with
//! the CPU collective; GPU ranks reduce their device gradients with NCCL (also one rank under a
//! launcher, so a one-GPU job runs the multi-GPU code path).

use anyhow::{Context, Result};
use ecgfm_dist::{connect, CpuCollective, JobEnv, Launcher, Timeouts};
use ecgfm_kernels::{CpuBackend, CudaBackend};
use ecgfm_trainer::data_parallel::{DataParallel, DpOptions};
use ecgfm_trainer::nccl_rank::NcclComm;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::DistArgs;

/// This process's place in the job, connected to the other ranks when there are any.
pub struct JobRank {
    pub env: JobEnv,
    collective: Option<CpuCollective>,
}

/// GPU ranks load NCCL; the pip wheel's `libnccl.so.2` needs a link made before the process
/// starts (`nccl_lib::ensure_loadable` re-executes once). Done before anything else, when this
/// process is a rank of a job, `--device` is not `cpu` and a GPU is usable; if NCCL is still
/// missing, joining the communicator later says why.
pub fn prepare_nccl(device: Option<&str>) {
    let launched = JobEnv::detect().is_ok_and(|env| is_rank(&env));
    if launched && device != Some("cpu") && ecgfm_kernels::cuda::probe::check_cuda(0).is_ok() {
        if let Err(e) = ecgfm_dist::nccl_lib::ensure_loadable() {
            tracing::debug!("NCCL at start-up: {e}");
        }
    }
}

/// Whether `env` makes the process a rank of a job: several ranks, or a launcher's.
fn is_rank(env: &JobEnv) -> bool {
    env.world_size > 1 || env.launcher != Launcher::Single
}

impl JobRank {
    /// Reads the launcher's environment and, in a job of several ranks or under a launcher,
    /// meets the others (alone: at once, without the network).
    pub fn join(args: &DistArgs) -> Result<JobRank> {
        let env = JobEnv::detect()?;
        let collective = if is_rank(&env) {
            let timeouts = Timeouts {
                rendezvous: Duration::from_secs_f64(args.rdzv_timeout),
                collective: Duration::from_secs_f64(args.collective_timeout),
            };
            let c = connect(&env, timeouts).with_context(|| {
                format!(
                    "rank {} of {}: meeting the other ranks",
                    env.rank, env.world_size
                )
            })?;
            Some(c)
        } else {
            None
        };
        Ok(JobRank { env, collective })
    }

    pub fn rank(&self) -> usize {
        self.env.rank
    }

    /// Whether this process is a rank of a job (several ranks, or started by a launcher).
    pub fn is_rank(&self) -> bool {
        is_rank(&self.env)
    }

    pub fn world_size(&self) -> usize {
        self.env.world_size
    }

    /// The run directory: rank 0's choice, sent to every rank.
    pub fn agree_on_run_dir(
        &mut self,
        choose: impl FnOnce() -> Result<PathBuf>,
    ) -> Result<PathBuf> {
        let Some(c) = self.collective.as_mut() else {
            return choose();
        };
        let mut bytes = match self.env.rank {
            0 => choose()?.to_string_lossy().into_owned().into_bytes(),
            _ => Vec::new(),
        };
        c.broadcast_bytes(&mut bytes, 0)
            .context("receiving the run directory from rank 0")?;
        Ok(PathBuf::from(String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// The trainer's data-parallel side of a CPU rank for a model of `total` parameters
    /// (`None` alone: one process needs no communication).
    pub fn data_parallel_cpu(
        &mut self,
        total: usize,
        args: &DistArgs,
    ) -> Result<Option<DataParallel<CpuBackend>>> {
        if self.env.world_size == 1 {
            return Ok(None);
        }
        let Some(collective) = self.collective.take() else {
            return Ok(None);
        };
        let dp = DataParallel::over_cpu(Box::new(collective), total, options(args))
            .context("starting the communication thread")?;
        Ok(Some(dp))
    }

    /// The data-parallel side of a GPU rank: NCCL over `be`'s device gradient buffer (`None`
    /// for one process that no launcher started).
    pub fn data_parallel_gpu(
        &mut self,
        be: &CudaBackend,
        total: usize,
        args: &DistArgs,
    ) -> Result<Option<DataParallel<CudaBackend>>> {
        let Some(cpu) = self.collective.take() else {
            return Ok(None);
        };
        let (rank, world) = (self.env.rank, self.env.world_size);
        let context = be.context().clone();
        let init = move || NcclComm::join(cpu, context);
        let dp = DataParallel::new(be, rank, world, total, options(args), init)
            .with_context(|| format!("rank {rank} of {world}: joining the NCCL communicator"))?;
        Ok(Some(dp))
    }
}

/// Bucket size, ZeRO-1 and overlap from the command line.
fn options(args: &DistArgs) -> DpOptions {
    DpOptions {
        zero: args.zero == 1,
        bucket_elems: ((args.bucket_mb * 1024.0 * 1024.0 / 4.0) as usize).max(1024),
        overlap: !args.no_overlap,
    }
}
