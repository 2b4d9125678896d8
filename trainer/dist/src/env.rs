//! Where this process stands in a job, read from the environment the launcher set: `ecgfm
//! launch` and torchrun (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`), SLURM's
//! srun (`SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_LOCALID`, the first host of
//! `SLURM_JOB_NODELIST`), or Open MPI's mpirun (`OMPI_COMM_WORLD_*`). Without any of them the
//! process is rank 0 of 1.

use crate::DistError;

/// Port of the rendezvous when neither the launcher nor `MASTER_PORT` gives one.
pub const DEFAULT_PORT: u16 = 29500;

/// Which launcher started the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launcher {
    /// Not launched: one process.
    Single,
    /// `ecgfm launch`.
    Ecgfm,
    /// torchrun (or any launcher exporting torchrun's variables).
    Torchrun,
    /// SLURM's srun.
    Slurm,
    /// Open MPI's mpirun.
    OpenMpi,
}

/// This process's place in the job and where the ranks meet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobEnv {
    pub launcher: Launcher,
    pub rank: usize,
    pub world_size: usize,
    /// Rank among the processes of this node (picks the GPU).
    pub local_rank: usize,
    /// Host of rank 0, where the rendezvous listens.
    pub master_addr: String,
    /// Port of the rendezvous.
    pub master_port: u16,
}

impl JobEnv {
    /// Reads the process environment.
    pub fn detect() -> Result<JobEnv, DistError> {
        JobEnv::from_vars(|key| std::env::var(key).ok())
    }

    /// Reads the variables through `get` (tests pass their own).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<JobEnv, DistError> {
        let num = |key: &str| -> Result<Option<usize>, DistError> {
            get(key)
                .map(|v| {
                    v.trim().parse::<usize>().map_err(|_| {
                        DistError::Env(format!("{key}={v} is not a non-negative integer"))
                    })
                })
                .transpose()
        };
        let port_var = |key: &str| -> Result<Option<u16>, DistError> {
            get(key)
                .map(|v| {
                    v.trim()
                        .parse::<u16>()
                        .map_err(|_| DistError::Env(format!("{key}={v} is not a port number")))
                })
                .transpose()
        };
        let master_port = port_var("MASTER_PORT")?;
        let master_addr = get("MASTER_ADDR").filter(|a| !a.trim().is_empty());
        let mut env = if let (Some(rank), Some(world)) = (num("RANK")?, num("WORLD_SIZE")?) {
            let launcher = if get("ECGFM_LAUNCH").is_some() {
                Launcher::Ecgfm
            } else {
                Launcher::Torchrun
            };
            // torchrun's agent already serves its own store on MASTER_PORT: meet one port up.
            let agent_store = get("TORCHELASTIC_USE_AGENT_STORE")
                .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
            let port = master_port.unwrap_or(DEFAULT_PORT);
            JobEnv {
                launcher,
                rank,
                world_size: world,
                local_rank: num("LOCAL_RANK")?.unwrap_or(rank),
                master_addr: master_addr.unwrap_or_else(|| "127.0.0.1".into()),
                master_port: if agent_store {
                    port.wrapping_add(1)
                } else {
                    port
                },
            }
        } else if let (Some(rank), Some(world)) =
            (num("OMPI_COMM_WORLD_RANK")?, num("OMPI_COMM_WORLD_SIZE")?)
        {
            let local_size = num("OMPI_COMM_WORLD_LOCAL_SIZE")?.unwrap_or(world);
            let addr = match master_addr {
                Some(a) => a,
                None if local_size == world => "127.0.0.1".into(),
                None => {
                    return Err(DistError::Env(
                        "Open MPI across nodes: export the host of rank 0 as MASTER_ADDR \
                         (mpirun -x MASTER_ADDR=host ...)"
                            .into(),
                    ))
                }
            };
            JobEnv {
                launcher: Launcher::OpenMpi,
                rank,
                world_size: world,
                local_rank: num("OMPI_COMM_WORLD_LOCAL_RANK")?.unwrap_or(0),
                master_addr: addr,
                master_port: master_port.unwrap_or(DEFAULT_PORT),
            }
        } else if let (Some(rank), Some(world)) = (num("SLURM_PROCID")?, num("SLURM_NTASKS")?) {
            let nodelist = get("SLURM_JOB_NODELIST").or_else(|| get("SLURM_NODELIST"));
            let addr = match (master_addr, nodelist) {
                (Some(a), _) => a,
                (None, Some(list)) => first_host(&list)?,
                (None, None) if world == 1 => "127.0.0.1".into(),
                (None, None) => {
                    return Err(DistError::Env(
                        "SLURM_JOB_NODELIST is not set: cannot find the host of rank 0".into(),
                    ))
                }
            };
            // Jobs sharing a node get different ports.
            let port = match (master_port, num("SLURM_JOB_ID")?) {
                (Some(p), _) => p,
                (None, Some(job)) => 20000 + (job % 20000) as u16,
                (None, None) => DEFAULT_PORT,
            };
            JobEnv {
                launcher: Launcher::Slurm,
                rank,
                world_size: world,
                local_rank: num("SLURM_LOCALID")?.unwrap_or(0),
                master_addr: addr,
                master_port: port,
            }
        } else {
            JobEnv {
                launcher: Launcher::Single,
                rank: 0,
                world_size: 1,
                local_rank: 0,
                master_addr: "127.0.0.1".into(),
                master_port: master_port.unwrap_or(DEFAULT_PORT),
            }
        };
        if let Some(port) = port_var("ECGFM_RDZV_PORT")? {
            env.master_port = port;
        }
        if env.world_size == 0 || env.rank >= env.world_size {
            return Err(DistError::Env(format!(
                "rank {} is not in 0..{} (world size)",
                env.rank, env.world_size
            )));
        }
        Ok(env)
    }
}

/// The first host of a SLURM host list: `node[01-04,07],gpu5` gives `node01`,
/// `rack[1-2]-n[3,5]` gives `rack1-n3`.
pub fn first_host(list: &str) -> Result<String, DistError> {
    let bad = || DistError::Env(format!("cannot read the SLURM host list `{list}`"));
    let mut host = String::new();
    let mut chars = list.trim().chars();
    while let Some(c) = chars.next() {
        match c {
            ',' => break,
            '[' => {
                let group: String = chars.by_ref().take_while(|&c| c != ']').collect();
                let first = group.split(',').next().ok_or_else(bad)?;
                let start = first.split('-').next().ok_or_else(bad)?.trim();
                if start.is_empty() || !start.chars().all(|c| c.is_ascii_digit()) {
                    return Err(bad());
                }
                host.push_str(start);
            }
            c => host.push(c),
        }
    }
    if host.is_empty() {
        return Err(bad());
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> Result<JobEnv, DistError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        JobEnv::from_vars(|k| map.get(k).cloned())
    }

    #[test]
    fn slurm_host_lists() {
        assert_eq!(first_host("node[01-04,07],gpu5").unwrap(), "node01");
        assert_eq!(first_host("gpu5,node[1-2]").unwrap(), "gpu5");
        assert_eq!(first_host("rack[1-2]-n[3,5]").unwrap(), "rack1-n3");
        assert_eq!(first_host("localhost").unwrap(), "localhost");
        assert!(first_host("node[a-b]").is_err());
        assert!(first_host("").is_err());
    }

    /// `ECGFM_RDZV_PORT` moves the rendezvous whatever port the launcher gives, and a rank
    /// whose launcher sets no `LOCAL_RANK` is taken to run on a node of its own ranks only
    /// (local rank = rank).
    #[test]
    fn the_rendezvous_port_override_and_the_local_rank_default() {
        let t = env(&[
            ("RANK", "3"),
            ("WORLD_SIZE", "4"),
            ("MASTER_PORT", "1234"),
            ("ECGFM_RDZV_PORT", "4321"),
        ])
        .unwrap();
        assert_eq!((t.local_rank, t.master_port), (3, 4321));
        let s = env(&[
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "1"),
            ("SLURM_JOB_ID", "7"),
            ("ECGFM_RDZV_PORT", "4321"),
        ])
        .unwrap();
        assert_eq!(s.master_port, 4321);
        assert!(env(&[("ECGFM_RDZV_PORT", "http")]).is_err());
    }

    #[test]
    fn each_launcher_gives_rank_world_and_master() {
        let t = env(&[
            ("RANK", "3"),
            ("WORLD_SIZE", "8"),
            ("LOCAL_RANK", "1"),
            ("MASTER_ADDR", "10.0.0.1"),
            ("MASTER_PORT", "1234"),
            ("TORCHELASTIC_USE_AGENT_STORE", "True"),
        ])
        .unwrap();
        assert_eq!(
            (t.launcher, t.rank, t.world_size, t.local_rank),
            (Launcher::Torchrun, 3, 8, 1)
        );
        assert_eq!((t.master_addr.as_str(), t.master_port), ("10.0.0.1", 1235));
        let s = env(&[
            ("SLURM_PROCID", "5"),
            ("SLURM_NTASKS", "16"),
            ("SLURM_LOCALID", "1"),
            ("SLURM_JOB_NODELIST", "gpu[007-010]"),
            ("SLURM_JOB_ID", "123456"),
        ])
        .unwrap();
        assert_eq!(
            (s.launcher, s.rank, s.world_size, s.local_rank),
            (Launcher::Slurm, 5, 16, 1)
        );
        assert_eq!((s.master_addr.as_str(), s.master_port), ("gpu007", 23456));
        let m = env(&[
            ("OMPI_COMM_WORLD_RANK", "1"),
            ("OMPI_COMM_WORLD_SIZE", "2"),
            ("OMPI_COMM_WORLD_LOCAL_RANK", "1"),
        ])
        .unwrap();
        assert_eq!(
            (m.launcher, m.rank, m.world_size),
            (Launcher::OpenMpi, 1, 2)
        );
        assert!(env(&[
            ("OMPI_COMM_WORLD_RANK", "1"),
            ("OMPI_COMM_WORLD_SIZE", "4"),
            ("OMPI_COMM_WORLD_LOCAL_SIZE", "2"),
        ])
        .is_err());
        let single = env(&[]).unwrap();
        assert_eq!((single.launcher, single.world_size), (Launcher::Single, 1));
        assert!(env(&[("RANK", "2"), ("WORLD_SIZE", "2")]).is_err());
        assert!(env(&[("RANK", "x"), ("WORLD_SIZE", "2")]).is_err());
    }
}
