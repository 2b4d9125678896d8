//! `ecgfm launch`: starts the ranks of a data-parallel job on this node, torchrun-style.
//!
//! Each local rank is this same binary running the given command (normally `pretrain ...`)
//! with `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR` and `MASTER_PORT` set (and, when
//! `CUDA_VISIBLE_DEVICES` lists devices, only its own one; without `--threads` each rank gets its
//! share of the cores through `RAYON_NUM_THREADS`). Output lines are prefixed with the
//! rank. SIGINT, SIGTERM and SIGUSR1 are forwarded, SIGHUP (a closed terminal) as SIGTERM, and
//! a rank gets SIGTERM from the kernel if the launcher dies (`PR_SET_PDEATHSIG`), so no rank
//! trains on without it. When a rank fails the others are stopped and the launcher exits 1
//! naming it, or, with `--max-restarts K`, starts all ranks again from the newest complete
//! checkpoint, unless a rank found its data damaged (exit status 65, `damaged_data`: every
//! attempt would read the same bytes); the launcher then exits 65 too. A rank refused its
//! configuration (exit status 78, `bad_config`) is not restarted either, and the launcher exits 78. A rank stopped by a
//! signal sent to it directly (SLURM's warning, preemption) is no failure: the launcher waits
//! for the others to save the same checkpoint, without a restart. When every rank stopped so
//! (exit status 75), forwarded or not, the launcher exits 75 as well (`signals::STOPPED_EXIT`).
//! A fresh `pretrain` into a folder that holds checkpoints is refused before any rank starts.
//! `--master-port 0` binds a free port here and hands the listening socket to rank 0
//! (ecgfm_dist::handoff). `--slurm-script` prints an sbatch script instead (slurm.rs).

use crate::bad_config::{exited_bad_config, RefusedConfig};
use crate::damaged_data::{exited_damaged, DamagedData};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The most ranks one `ecgfm launch` starts: far above any node's GPU or core count, below the
/// process and thread limits a mistyped count would run into.
const MAX_LOCAL_RANKS: usize = 1024;

/// Parses `--nproc-per-node`: 1 to [`MAX_LOCAL_RANKS`].
fn local_ranks(text: &str) -> Result<usize, String> {
    match crate::cli::at_least_one(text)? {
        n if n > MAX_LOCAL_RANKS => Err(format!(
            "{n}: at most {MAX_LOCAL_RANKS} ranks on one node (each is a process with its own \
             threads and buffers)"
        )),
        n => Ok(n),
    }
}

#[derive(Args, Debug, Clone)]
pub struct LaunchArgs {
    /// Ranks (processes) on this node; one GPU each with --device cuda.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = local_ranks)]
    pub nproc_per_node: usize,
    /// Nodes in the job (start one `ecgfm launch` on each).
    #[arg(long, value_name = "M", default_value_t = 1, value_parser = crate::cli::at_least_one)]
    pub nnodes: usize,
    /// This node's index, 0..nnodes (node 0 hosts rank 0).
    #[arg(long, value_name = "R", default_value_t = 0)]
    pub node_rank: usize,
    /// Host of node 0, where the ranks meet.
    #[arg(long, value_name = "HOST", default_value = "127.0.0.1")]
    pub master_addr: String,
    /// Port on node 0 where the ranks meet; 0 picks a free one (one node only).
    #[arg(long, value_name = "PORT", default_value_t = ecgfm_dist::env::DEFAULT_PORT)]
    pub master_port: u16,
    /// Restart all ranks (from the newest complete checkpoint) up to K times after a failure.
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub max_restarts: u32,
    /// Print an sbatch script that runs this job under SLURM (requeued on preemption) and exit.
    #[arg(long)]
    pub slurm_script: bool,
    /// Wall-clock limit written into the SLURM script.
    #[arg(long, value_name = "HH:MM:SS", default_value = "24:00:00", value_parser = crate::slurm::time_limit)]
    pub slurm_time: String,
    /// The command each rank runs, after `--`: `pretrain [flags]`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Sends `sig` to every rank still running.
fn signal_all(children: &[(usize, Option<Child>)], sig: libc::c_int) {
    for child in children.iter().filter_map(|(_, c)| c.as_ref()) {
        crate::signals::send(child, sig);
    }
}

/// The value of `--flag VALUE` or `--flag=VALUE` in a command line.
pub fn flag_value(command: &[String], flag: &str) -> Option<String> {
    let prefix = format!("{flag}=");
    command.iter().enumerate().find_map(|(i, a)| {
        if a == flag {
            command.get(i + 1).cloned()
        } else {
            a.strip_prefix(&prefix).map(str::to_string)
        }
    })
}

/// The command line each rank runs: `command`, with a fixed `--out` when the launcher must know
/// the run directory (restarts) and `--resume` on restarts.
fn rank_command(args: &LaunchArgs, out: Option<&Path>, restart: bool) -> Vec<String> {
    let mut command = args.command.clone();
    if let Some(out) = out.filter(|_| flag_value(&command, "--out").is_none()) {
        command.extend(["--out".into(), out.display().to_string()]);
    }
    let resumable = out.is_some_and(|o| o.join("config.toml").exists());
    if restart && resumable && !command.iter().any(|a| a == "--resume") {
        command.push("--resume".into());
    }
    command
}

/// The run directory the ranks of `pretrain` must share across restarts, and whether it is a
/// timestamped folder made here.
fn fixed_run_dir(args: &LaunchArgs) -> Result<(Option<PathBuf>, bool)> {
    if let Some(out) = flag_value(&args.command, "--out") {
        return Ok((Some(PathBuf::from(out)), false));
    }
    if args.max_restarts == 0 {
        return Ok((None, false)); // rank 0 chooses and tells the others
    }
    if args.nnodes > 1 {
        bail!("--max-restarts on several nodes needs `pretrain --out DIR` (a shared folder)");
    }
    let resume = args.command.iter().any(|a| a == "--resume");
    Ok((Some(crate::pretrain::default_run_dir(resume)?), !resume))
}

/// Copies a rank's output lines to ours, prefixed with the rank.
fn forward_lines(
    rank: usize,
    stream: impl std::io::Read + Send + 'static,
    to_stderr: bool,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(|l| l.ok()) {
            if to_stderr {
                let _ = writeln!(std::io::stderr().lock(), "[rank {rank}] {line}");
            } else {
                let _ = writeln!(std::io::stdout().lock(), "[rank {rank}] {line}");
            }
        }
    })
}

/// How the ranks of one attempt ended.
#[derive(Default)]
struct Attempt {
    /// The failures, first one first.
    failures: Vec<String>,
    /// The first rank that stopped on a signal of its own (preemption, SLURM's warning) after
    /// saving its checkpoint: a clean stop, not a failure.
    stopped: Option<String>,
    /// Every rank exited with status 0 (a signal during the last step still finishes the run).
    finished: bool,
    /// Every rank exited with status 75 (a stop with its checkpoint saved) or 0.
    all_stopped: bool,
    /// A rank exited with status 65: its data was damaged (`damaged_data`).
    damaged: bool,
    /// A rank exited with status 78: its configuration was refused (`bad_config`).
    bad_config: bool,
}

/// One attempt: runs every local rank to its end.
/// `listener`: the socket rank 0 listens on, bound here for `--master-port 0`.
fn run_attempt(
    args: &LaunchArgs,
    command: &[String],
    listener: Option<&TcpListener>,
) -> Result<Attempt> {
    let exe = std::env::current_exe().context("locating the ecgfm binary")?;
    let world = args.nproc_per_node * args.nnodes;
    let devices: Option<Vec<String>> = std::env::var("CUDA_VISIBLE_DEVICES")
        .ok()
        .map(|v| v.split(',').map(|d| d.trim().to_string()).collect());
    let wants_gpu = flag_value(command, "--device").is_some_and(|d| d.starts_with("cuda"));
    // CPU threads per rank when neither --threads nor RAYON_NUM_THREADS says: the cores split.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (cores / args.nproc_per_node).max(1).to_string();
    let port = listener.map_or(Ok(args.master_port), |l| l.local_addr().map(|a| a.port()))?;
    let mut children: Vec<(usize, Option<Child>)> = Vec::new();
    // Where each rank writes its error when it fails (in `children`'s order), in a folder of
    // our own.
    let error_dir = crate::child_error::ErrorDir::create()?;
    let mut error_files = Vec::new();
    let mut forwarders = Vec::new();
    for local in 0..args.nproc_per_node {
        let rank = args.node_rank * args.nproc_per_node + local;
        let mut cmd = Command::new(&exe);
        cmd.args(command)
            .env("RANK", rank.to_string())
            .env("WORLD_SIZE", world.to_string())
            .env("LOCAL_RANK", local.to_string())
            .env("LOCAL_WORLD_SIZE", args.nproc_per_node.to_string())
            .env("MASTER_ADDR", &args.master_addr)
            .env("MASTER_PORT", port.to_string())
            .env("ECGFM_LAUNCH", "1")
            .env(
                "RAYON_NUM_THREADS",
                std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| threads.clone()),
            )
            .env_remove("TORCHELASTIC_USE_AGENT_STORE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match &devices {
            Some(list) if list.len() >= args.nproc_per_node => {
                cmd.env("CUDA_VISIBLE_DEVICES", &list[local]);
            }
            Some(list) if wants_gpu => bail!(
                "CUDA_VISIBLE_DEVICES lists {} device(s); --nproc-per-node {} needs one per rank",
                list.len(),
                args.nproc_per_node
            ),
            None if wants_gpu => {
                cmd.env("CUDA_VISIBLE_DEVICES", local.to_string());
            }
            _ => {}
        }
        crate::signals::stop_with_parent(&mut cmd);
        if let Some(listener) = listener.filter(|_| rank == 0) {
            ecgfm_dist::handoff::pass_to(&mut cmd, listener);
        }
        let error_file = error_dir.new_file();
        cmd.env(crate::child_error::ENV, &error_file);
        error_files.push(error_file);
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                // The ranks already started would wait in the rendezvous for ever.
                for child in children.iter_mut().filter_map(|(_, c)| c.as_mut()) {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                return Err(e).with_context(|| {
                    format!(
                        "starting rank {rank} (the {} ranks started before it were stopped)",
                        children.len()
                    )
                });
            }
        };
        say_err!("launch: rank {rank} started (pid {})", child.id());
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        forwarders.push(forward_lines(rank, stdout, false));
        forwarders.push(forward_lines(rank, stderr, true));
        children.push((rank, Some(child)));
    }
    let mut failures = Vec::new();
    let mut stopped = None;
    let mut finished = true;
    let mut all_stopped = true;
    let mut damaged = false;
    let mut bad_config = false;
    let mut stopping_since: Option<Instant> = None;
    let mut forwarded = 0;
    while children.iter().any(|(_, c)| c.is_some()) {
        let sig = crate::signals::received().unwrap_or(0);
        if sig != 0 && sig != forwarded {
            forwarded = sig;
            signal_all(&children, crate::signals::forwarded_as(sig));
            stopping_since.get_or_insert_with(Instant::now);
        }
        // Ranks found ended in this poll; a rank killed by a signal is listed first, as the
        // others usually fail because of it (their connection to it closed).
        let mut ended: Vec<(bool, String)> = Vec::new();
        for ((rank, slot), error_file) in children.iter_mut().zip(&error_files) {
            let Some(child) = slot.as_mut() else { continue };
            if let Some(status) = child.try_wait().context("waiting for a rank")? {
                let why = crate::child_error::take(error_file);
                finished &= status.success();
                let clean_stop = status.code() == Some(i32::from(crate::signals::STOPPED_EXIT));
                all_stopped &= clean_stop || status.success();
                damaged |= exited_damaged(status);
                bad_config |= exited_bad_config(status);
                if clean_stop && stopping_since.is_none() {
                    let why = why.unwrap_or_else(|| "stopped by a signal".into());
                    stopped.get_or_insert_with(|| format!("rank {rank} {why}"));
                } else if !status.success() && stopping_since.is_none() {
                    use std::os::unix::process::ExitStatusExt;
                    let by_signal = status.signal().is_some();
                    let why = why.map_or(String::new(), |e| format!(" ({e})"));
                    ended.push((
                        !by_signal,
                        format!("rank {rank} {}{why}", crate::child_error::describe(status)),
                    ));
                }
                *slot = None;
            }
        }
        ended.sort_by_key(|(by_exit, _)| *by_exit);
        failures.extend(ended.into_iter().map(|(_, text)| text));
        if stopped.is_some() && stopping_since.is_none() {
            // A rank was signalled directly (SLURM signals every task): the ranks agree on
            // the stop at every step, so the others are saving the same checkpoint. Signalling
            // them now would be a second signal, which ends a rank without it.
            stopping_since = Some(Instant::now());
        }
        if !failures.is_empty() && stopping_since.is_none() {
            // One rank failed: stop the others (they would wait for it until their timeout);
            // SIGCONT lets a stopped (hung) rank receive the SIGTERM.
            signal_all(&children, libc::SIGTERM);
            signal_all(&children, libc::SIGCONT);
            stopping_since = Some(Instant::now());
        }
        // Ranks stopped by a signal first save a checkpoint; failed jobs just end.
        let stop = forwarded != 0 || stopped.is_some();
        let grace = Duration::from_secs(if stop { 300 } else { 10 });
        if stopping_since.is_some_and(|t| t.elapsed() > grace) {
            signal_all(&children, libc::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for f in forwarders {
        let _ = f.join();
    }
    Ok(Attempt {
        failures,
        stopped,
        finished,
        all_stopped,
        damaged,
        bad_config,
    })
}

/// For `--master-port 0`: a socket listening on a free port, kept for every attempt (restarts
/// meet on the same port) and handed to rank 0, so no other process can take the port between
/// the pick and rank 0's listen. None for a job of one rank, which meets no one.
fn free_listener(args: &LaunchArgs) -> Result<Option<TcpListener>> {
    if args.master_port != 0 || args.nproc_per_node * args.nnodes == 1 {
        return Ok(None);
    }
    if args.nnodes > 1 {
        bail!("--master-port 0 (a free port) works on one node only: the other nodes must know the port; give one");
    }
    let listener =
        TcpListener::bind(("0.0.0.0", 0)).context("binding a free port for the ranks")?;
    let port = listener.local_addr()?.port();
    say_err!("launch: the ranks meet on port {port} (free, picked by --master-port 0)");
    Ok(Some(listener))
}

/// Runs `ecgfm launch`.
pub fn run(args: &LaunchArgs) -> Result<()> {
    if args.node_rank >= args.nnodes {
        return Err(RefusedConfig(format!(
            "--node-rank {} is not a node of --nnodes {} (0..{})",
            args.node_rank, args.nnodes, args.nnodes
        ))
        .into());
    }
    let command = args.command.first().map_or("", String::as_str);
    if command != "pretrain" {
        // Any other command would run once per rank, side by side: `plan` printed N times, N
        // sweeps or evaluations writing the same files.
        bail!(
            "ecgfm launch starts the ranks of `pretrain` (`ecgfm launch ... -- pretrain [flags]`); \
             `{command}` is not a data-parallel command: run `ecgfm {command} ...` directly"
        );
    }
    if args.slurm_script {
        say_inline!("{}", crate::slurm::script(args)?);
        return Ok(());
    }
    crate::signals::catch(&crate::signals::STOPS);
    let (out, made_here) = fixed_run_dir(args)?;
    if let Some(out) = out.as_deref() {
        if !args.command.iter().any(|a| a == "--resume") {
            // The ranks refuse this too, but a restart (which resumes) would then continue the
            // run whose checkpoints these are.
            ecgfm_trainer::train::refuse_fresh_start_over_checkpoints(out)?;
        }
    }
    let supervised = supervise(args, out.as_deref());
    if let Some(out) = out.filter(|_| made_here && supervised.is_err()) {
        // A job refused before its ranks wrote anything leaves no empty timestamped folder
        // behind (`remove_dir` takes only an empty one), as `pretrain` alone does.
        let _ = std::fs::remove_dir(out);
    }
    supervised
}

/// What an attempt's end means for the job.
enum Outcome {
    /// Every rank finished the run.
    Finished,
    /// The job ends with this error (its kind sets the exit status: `main`).
    End(anyhow::Error),
    /// Restart every rank; the attempt's failures, for the message.
    Restart(String),
}

/// What `attempt` means, `signal` being the one this launcher received (if any) and `restarts`
/// the restarts spent of `max_restarts`: a stop every rank saved exits 75 (a stop where some
/// rank failed is a plain failure), damaged data 65 and a refused configuration 78, none of
/// them restarted; any other failure restarts while restarts are left.
fn outcome(attempt: &Attempt, signal: Option<i32>, max_restarts: u32, restarts: u32) -> Outcome {
    if attempt.finished {
        return Outcome::Finished;
    }
    // Asked to stop (preemption, a time limit): restarting would defeat that. A stop every
    // rank saved exits 75, so a wrapper can tell it from a failure.
    let stopped = match (signal, &attempt.stopped) {
        (Some(sig), _) => Some(format!("stopped by signal {sig} (forwarded to every rank)")),
        (None, stopped) => stopped.clone(),
    };
    if let Some(stopped) = stopped {
        return Outcome::End(match attempt.all_stopped {
            true => crate::signals::Stopped(stopped).into(),
            false => anyhow::anyhow!(
                "{stopped}; not every rank saved its checkpoint (see their errors above)"
            ),
        });
    }
    let cause = attempt.failures.join("; then ");
    if attempt.damaged {
        // Another attempt would read the same bytes and stop at the same step.
        let note = match max_restarts {
            0 => "",
            _ => {
                "; not restarted: the data is damaged, and every attempt would read the \
                  same bytes (repair it, then run the same command with --resume)"
            }
        };
        return Outcome::End(DamagedData(format!("{cause}{note}")).into());
    }
    if attempt.bad_config {
        let note = match max_restarts {
            0 => "",
            _ => "; not restarted: the configuration was refused, as it would be again",
        };
        return Outcome::End(RefusedConfig(format!("{cause}{note}")).into());
    }
    match restarts >= max_restarts {
        true => Outcome::End(anyhow::anyhow!("{cause}")),
        false => Outcome::Restart(cause),
    }
}

/// Runs the job's ranks until they finish, restarting them after a failure as
/// `--max-restarts` allows; `out` is the run directory they share, when fixed here.
fn supervise(args: &LaunchArgs, out: Option<&Path>) -> Result<()> {
    let listener = free_listener(args)?;
    let mut restarts = 0;
    loop {
        let command = rank_command(args, out, restarts > 0);
        let attempt = run_attempt(args, &command, listener.as_ref())?;
        let signal = crate::signals::received();
        let cause = match outcome(&attempt, signal, args.max_restarts, restarts) {
            Outcome::Finished => return Ok(()),
            Outcome::End(err) => return Err(err),
            Outcome::Restart(cause) => cause,
        };
        restarts += 1;
        say_err!(
            "launch: {cause}; restarting every rank from the newest complete checkpoint \
             (restart {restarts} of {})",
            args.max_restarts
        );
    }
}

#[cfg(test)]
mod tests;
