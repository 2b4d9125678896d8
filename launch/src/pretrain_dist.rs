//! The data-parallel side of `ecgfm pretrain`: which rank this process is (from `ecgfm launch`,
//! torchrun, srun or mpirun), the connection to the other ranks, the run directory they all use
//! (rank 0 chooses it), and the trainer's `DataParallel`.

use anyhow::{Context, Result};
use ecgfm_dist::{connect, CpuCollective, JobEnv, Timeouts};
use ecgfm_trainer::data_parallel::{DataParallel, DpOptions};
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::DistArgs;

/// This process's place in the job, connected to the other ranks when there are any.
pub struct JobRank {
    pub env: JobEnv,
    collective: Option<CpuCollective>,
}

impl JobRank {
    /// Reads the launcher's environment and, in a job of several ranks, meets the others.
    pub fn join(args: &DistArgs) -> Result<JobRank> {
        let env = JobEnv::detect()?;
        let collective = if env.world_size > 1 {
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

    /// The trainer's data-parallel side for a model of `total` parameters (`None` alone).
    pub fn data_parallel(&mut self, total: usize, args: &DistArgs) -> Option<DataParallel> {
        let collective = self.collective.take()?;
        let options = DpOptions {
            zero: args.zero == 1,
            bucket_elems: ((args.bucket_mb * 1024.0 * 1024.0 / 4.0) as usize).max(1024),
            overlap: !args.no_overlap,
        };
        Some(DataParallel::new(Box::new(collective), total, options))
    }
}
