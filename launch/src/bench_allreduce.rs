//! `ecgfm bench allreduce --ranks N --mb M`: the CPU collective's all-reduce between N local
//! ranks (threads, over loopback TCP), as bus bandwidth (2(N-1)/N x bytes / time), against the
//! link it runs on (one point-to-point transfer of the same bytes between two ranks: the ring
//! bound says the bus bandwidth cannot exceed it) and against torch.distributed's gloo backend on
//! the same machine. The last line printed is one JSON object.

use anyhow::{bail, Context, Result};
use clap::Args;
use ecgfm_dist::{on_threads, Collective, CpuCollective, Timeouts};
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::python_bench::run_comparison;

#[derive(Args, Debug, Clone)]
pub struct BenchAllreduceArgs {
    /// Ranks (threads on this machine).
    #[arg(long, default_value_t = 2, value_parser = ranks)]
    pub ranks: usize,
    /// MiB of f32 values all-reduced per call.
    #[arg(long, default_value_t = 64.0)]
    pub mb: f64,
    /// Timed calls (the median is reported).
    #[arg(long, default_value_t = 10, value_parser = crate::cli::at_least_one)]
    pub iters: usize,
    /// Python interpreter that has torch (for the gloo comparison).
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// The gloo script to compare with.
    #[arg(long, value_name = "FILE")]
    pub gloo_script: Option<PathBuf>,
    /// Skip the gloo comparison.
    #[arg(long)]
    pub no_torch: bool,
}

/// Connects `world` ranks (threads) and runs `f` on each; returns rank 0's result.
pub fn on_local_ranks<T: Send>(
    world: usize,
    f: impl Fn(CpuCollective) -> Result<T> + Sync,
) -> Result<T> {
    let timeouts = Timeouts {
        rendezvous: Duration::from_secs(60),
        collective: Duration::from_secs(300),
    };
    let mut results = on_threads(world, timeouts, f)?;
    results.swap_remove(0)?
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median seconds of `iters` calls of `op` on every rank (timed on rank 0, after a barrier).
fn time_calls(
    world: usize,
    elems: usize,
    iters: usize,
    op: impl Fn(&mut CpuCollective, &mut [f32]) -> Result<()> + Sync,
) -> Result<f64> {
    on_local_ranks(world, |mut c| {
        let mut buf = vec![1.0f32; elems];
        for _ in 0..2 {
            op(&mut c, &mut buf)?;
        }
        let mut times = Vec::with_capacity(iters);
        for _ in 0..iters {
            c.barrier()?;
            let start = Instant::now();
            op(&mut c, &mut buf)?;
            times.push(start.elapsed().as_secs_f64());
        }
        Ok(median(times))
    })
}

/// Parses `--ranks`: 2 to 1024 threads (one rank reduces with no one: there is nothing to time).
fn ranks(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n @ 2..=1024) => Ok(n),
        Ok(n) => Err(format!(
            "{n} ranks: give 2 to 1024 (an all-reduce is between ranks)"
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs `ecgfm bench allreduce`.
pub fn run(args: &BenchAllreduceArgs) -> Result<()> {
    // Every rank holds its own buffer: 64 GiB in all is more than any machine this runs on.
    let total_mib = args.mb * args.ranks as f64;
    if !(args.mb > 0.0 && total_mib <= 65536.0) {
        bail!(
            "--mb {} x --ranks {}: each rank's buffer must be > 0 MiB and all of them at most \
             64 GiB",
            args.mb,
            args.ranks
        );
    }
    let elems = ((args.mb * 1024.0 * 1024.0 / 4.0) as usize).max(1);
    let bytes = (elems * 4) as f64;
    let (n, iters) = (args.ranks, args.iters);
    let allreduce = time_calls(n, elems, iters, |c, buf| Ok(c.all_reduce(buf)?))
        .context("timing the all-reduce")?;
    let link = time_calls(2, elems, iters, |c, buf| Ok(c.broadcast(buf, 0)?))
        .context("timing a point-to-point transfer")?;
    let bus = 2.0 * (n as f64 - 1.0) / n as f64 * bytes / allreduce / 1e9;
    let link_gbs = bytes / link / 1e9;
    say!(
        "ecgfm   all-reduce {} MiB over {n} CPU ranks (loopback TCP): {:.2} ms (median of {iters}) | \
         algorithm bandwidth {:.2} GB/s | bus bandwidth {bus:.2} GB/s",
        args.mb,
        allreduce * 1e3,
        bytes / allreduce / 1e9
    );
    say!(
        "link    one rank to another, same bytes: {:.2} ms = {link_gbs:.2} GB/s; bus / link = {:.2} \
         (the ring bound is 1.00)",
        link * 1e3,
        bus / link_gbs
    );
    let mut result = json!({
        "ranks": n,
        "mb": args.mb,
        "allreduce_ms_median": allreduce * 1e3,
        "bus_gb_per_s": bus,
        "link_gb_per_s": link_gbs,
        "bus_over_link": bus / link_gbs,
    });
    if !args.no_torch {
        let flags = [
            ("--ranks", n.to_string()),
            ("--mb", args.mb.to_string()),
            ("--iters", iters.to_string()),
        ];
        let gloo = run_comparison(
            &args.python,
            &["torch"],
            args.gloo_script.as_deref(),
            "allreduce_gloo.py",
            &flags,
            &[],
        )?;
        if let Some(gloo) = gloo {
            let ms = gloo["allreduce_ms_median"]
                .as_f64()
                .context("gloo JSON has no allreduce_ms_median")?;
            say!(
                "gloo    all-reduce {} MiB over {n} ranks: {ms:.2} ms | bus bandwidth {:.2} GB/s (torch {})",
                args.mb,
                gloo["bus_gb_per_s"].as_f64().unwrap_or(0.0),
                gloo["torch_version"].as_str().unwrap_or("?")
            );
            say!(
                "ratio: ecgfm is {:.2}x the speed of gloo",
                ms / (allreduce * 1e3)
            );
            result["gloo_ms_median"] = json!(ms);
            result["speedup_vs_gloo"] = json!(ms / (allreduce * 1e3));
        }
    }
    say!("{result}");
    Ok(())
}
