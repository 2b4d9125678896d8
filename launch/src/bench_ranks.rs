//! `ecgfm bench step --ranks N`: data-parallel scaling on this machine. The cores are split
//! between N CPU ranks (threads with their own thread pools, connected over loopback); their
//! samples/s are compared with N times one rank on its share of the cores, and the time each
//! step waits for the gradient reduction is measured with and without overlapping it with the
//! backward pass: the share of the reduction the overlap hides. The last line is one JSON object.

use anyhow::{anyhow, Result};
use ecgfm_kernels::CpuBackend;
use ecgfm_trainer::data::{BatchSource, SyntheticSource};
use ecgfm_trainer::data_parallel::{DataParallel, DpOptions};
use ecgfm_trainer::{AdamWConfig, HostBatch, Mae, MaskSampler, ModelConfig};
use serde_json::json;
use std::time::Instant;

use crate::bench_allreduce::on_local_ranks;
use crate::cli::BenchStepArgs;
use crate::pretrain::thread_pool;

/// Median step time and median reduction wait (seconds) of one configuration.
struct Timing {
    step_s: f64,
    wait_s: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Rank `rank`'s model and its micro-batch (disjoint from the other ranks').
fn prepared(
    config: &ModelConfig,
    batch: usize,
    rank: usize,
    world: usize,
) -> Result<(Mae<CpuBackend>, HostBatch)> {
    let mut model = Mae::new(CpuBackend::new(), config.clone(), batch)?;
    model.init_params(0);
    let mut hb = HostBatch::new(config, batch);
    SyntheticSource::new(config, 0, 0.0)
        .for_rank(rank, world)
        .next_batch(&mut hb)
        .map_err(|e| anyhow!("synthetic batch: {e}"))?;
    MaskSampler::new(config).fill(0, 0, (rank * batch) as u64, &mut hb);
    Ok((model, hb))
}

/// Times `world` ranks with `threads` threads each (one rank: no communication at all).
fn time_ranks(
    args: &BenchStepArgs,
    config: &ModelConfig,
    world: usize,
    threads: usize,
    overlap: bool,
) -> Result<Timing> {
    let opt = AdamWConfig::default();
    if world == 1 {
        let pool = thread_pool(threads)?;
        return pool.install(|| {
            let (mut model, batch) = prepared(config, args.batch_size, 0, 1)?;
            let mut times = Vec::new();
            for i in 0..args.warmup + args.steps {
                let start = Instant::now();
                model.zero_grads();
                model.forward_backward(&batch, 1.0)?;
                model.grad_sumsq();
                model.apply_update(&opt, 1e-4, Some(1.0));
                if i >= args.warmup {
                    times.push(start.elapsed().as_secs_f64());
                }
            }
            Ok(Timing {
                step_s: median(times),
                wait_s: 0.0,
            })
        });
    }
    on_local_ranks(world, |collective| {
        let pool = thread_pool(threads)?;
        pool.install(|| {
            let (mut model, batch) =
                prepared(config, args.batch_size, collective_rank(&collective), world)?;
            let total = model.layout().total;
            let options = DpOptions {
                overlap,
                ..DpOptions::default()
            };
            let mut dp = DataParallel::over_cpu(Box::new(collective), total, options)?;
            let (mut steps, mut waits) = (Vec::new(), Vec::new());
            for i in 0..args.warmup + args.steps {
                let start = Instant::now();
                model.zero_grads();
                model.stage(&batch)?;
                dp.forward_backward(&mut model, 1.0 / world as f32, true)?;
                dp.finish_gradients(&mut model)?;
                model.grad_sumsq();
                model.apply_update(&opt, 1e-4, Some(1.0));
                if i >= args.warmup {
                    steps.push(start.elapsed().as_secs_f64());
                    waits.push(dp.last_wait().as_secs_f64());
                }
            }
            Ok(Timing {
                step_s: median(steps),
                wait_s: median(waits),
            })
        })
    })
}

fn collective_rank(c: &ecgfm_dist::CpuCollective) -> usize {
    use ecgfm_dist::Collective;
    c.rank()
}

/// The shortest exposed reduction wait whose hidden share is printed: below it the two waits
/// are at the timer's and the scheduler's noise level.
const MEASURABLE_WAIT_S: f64 = 1e-3;

/// Runs `ecgfm bench step --ranks N`.
pub fn run(args: &BenchStepArgs, ranks: usize) -> Result<()> {
    let cores = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let per_rank = (cores / ranks).max(1);
    let config = ModelConfig::preset(&args.model)?;
    let one = time_ranks(args, &config, 1, per_rank, true)?;
    let overlapped = time_ranks(args, &config, ranks, per_rank, true)?;
    let serial = time_ranks(args, &config, ranks, per_rank, false)?;
    let b = args.batch_size as f64;
    let one_sps = b / one.step_s;
    let many_sps = ranks as f64 * b / overlapped.step_s;
    let efficiency = many_sps / (ranks as f64 * one_sps);
    // A share of a wait at the timer's noise level, or a negative one, says nothing.
    let hidden = (serial.wait_s >= MEASURABLE_WAIT_S)
        .then(|| 1.0 - overlapped.wait_s / serial.wait_s)
        .filter(|&h| h >= 0.0);
    let hidden_text = match hidden {
        Some(h) => format!("the overlap hides {:.0}%", h * 100.0),
        None if serial.wait_s < MEASURABLE_WAIT_S => format!(
            "overlap share n/a (exposed wait below {:.0} ms, the timer's noise)",
            MEASURABLE_WAIT_S * 1e3
        ),
        None => "the overlap hides none of it".to_string(),
    };
    say!(
        "1 rank x {per_rank} thread(s): step {:.2} ms, {one_sps:.1} samples/s ({} batch {})",
        one.step_s * 1e3,
        args.model,
        args.batch_size
    );
    say!(
        "{ranks} ranks x {per_rank} thread(s): step {:.2} ms, {many_sps:.1} samples/s; scaling efficiency {:.1}% of {ranks} x one rank",
        overlapped.step_s * 1e3,
        efficiency * 100.0
    );
    say!(
        "gradient reduction: {:.2} ms exposed when run after the backward pass, {:.2} ms when overlapped with it: {hidden_text} (step {:.2} -> {:.2} ms)",
        serial.wait_s * 1e3,
        overlapped.wait_s * 1e3,
        serial.step_s * 1e3,
        overlapped.step_s * 1e3
    );
    say!(
        "{}",
        json!({
            "model": args.model,
            "batch_size": args.batch_size,
            "ranks": ranks,
            "threads_per_rank": per_rank,
            "one_rank_samples_per_s": one_sps,
            "ranks_samples_per_s": many_sps,
            "scaling_efficiency": efficiency,
            "exposed_wait_ms_serial": serial.wait_s * 1e3,
            "exposed_wait_ms_overlapped": overlapped.wait_s * 1e3,
            "overlap_hidden_share": hidden,
        })
    );
    Ok(())
}
