//! `ecgfm bench step`: times a full training step (forward, backward, AdamW) on the CPU or a GPU
//! (`--device`) and, on the CPU, runs the PyTorch script of the same model with the same threads
//! and batch, printing the ratio. On a GPU it reports samples/s and the MFU against the device's
//! fp32 peak (the step runs in true fp32). The last line printed is one JSON object.

use crate::cli::BenchStepArgs;
use crate::device::Opened;
use crate::pretrain::thread_pool;
use crate::python_bench::run_comparison;
use anyhow::{bail, Context, Result};
use ecgfm_kernels::{Backend, CpuBackend, CudaBackend};
use ecgfm_trainer::data::{BatchSource, SyntheticSource};
use ecgfm_trainer::model::{Mae, ProfiledBackend};
use ecgfm_trainer::{AdamWConfig, HostBatch, MaskSampler, ModelConfig, ModelStats};
use serde_json::json;
use std::time::Instant;

/// Median of a list of durations in milliseconds.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// A model with seeded weights and one synthetic, masked, all-leads batch.
fn prepared<B: Backend>(
    args: &BenchStepArgs,
    config: &ModelConfig,
    backend: B,
) -> Result<(Mae<B>, HostBatch)> {
    let mut model = Mae::new(backend, config.clone(), args.batch_size)?;
    model.init_params(0);
    let mut batch = HostBatch::new(config, args.batch_size);
    SyntheticSource::new(config, 0, 0.0)
        .next_batch(&mut batch)
        .map_err(|e| anyhow::anyhow!("synthetic batch: {e}"))?;
    MaskSampler::new(config).fill(0, 0, 0, &mut batch);
    Ok((model, batch))
}

/// One full training step: zero gradients, forward, backward, clipped AdamW update.
fn train_step<B: Backend>(model: &mut Mae<B>, batch: &HostBatch) -> Result<()> {
    model.zero_grads();
    model.forward_backward(batch, 1.0)?;
    model.optimizer_step(&AdamWConfig::default(), 1e-4, Some(1.0));
    let loss = model.loss_sum();
    if !loss.is_finite() {
        bail!("loss is {loss} during the benchmark");
    }
    Ok(())
}

/// Times `steps` training steps after `warmup` untimed ones; returns the median in ms. Each
/// step ends by reading its loss back, so GPU steps are timed to completion.
fn time_ecgfm<B: Backend>(args: &BenchStepArgs, config: &ModelConfig, backend: B) -> Result<f64> {
    let (mut model, batch) = prepared(args, config, backend)?;
    let mut times = Vec::with_capacity(args.steps);
    for i in 0..args.warmup + args.steps {
        let start = Instant::now();
        train_step(&mut model, &batch)?;
        if i >= args.warmup {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(median(&mut times))
}

/// Runs one profiled step (after a warm-up step) and prints where its time went, op by op.
fn print_profile(args: &BenchStepArgs, config: &ModelConfig) -> Result<()> {
    let (mut model, batch) = prepared(args, config, ProfiledBackend::new(CpuBackend::new()))?;
    train_step(&mut model, &batch)?;
    model.backend().reset();
    train_step(&mut model, &batch)?;
    println!("{}", model.backend().render());
    Ok(())
}

/// Runs the PyTorch script and returns its last-line JSON object (`None`: skipped, and why).
fn time_torch(args: &BenchStepArgs, threads: usize) -> Result<Option<serde_json::Value>> {
    let flags = [
        ("--model", args.model.clone()),
        ("--batch-size", args.batch_size.to_string()),
        ("--threads", threads.to_string()),
        ("--steps", args.steps.to_string()),
        ("--warmup", args.warmup.to_string()),
    ];
    run_comparison(
        &args.python,
        &["torch", "numpy"],
        args.torch_script.as_deref(),
        "torch_step.py",
        &flags,
    )
}

/// Runs `ecgfm bench step`.
pub fn run(args: &BenchStepArgs) -> Result<()> {
    if let Some(ranks) = args.ranks.filter(|&r| r > 1) {
        return crate::bench_ranks::run(args, ranks);
    }
    let config = ModelConfig::preset(&args.model)?;
    match crate::device::open(&args.device)? {
        Opened::Cpu => run_cpu(args, &config),
        Opened::Cuda(be) => run_cuda(args, &config, *be),
    }
}

/// The GPU benchmark: step time, samples/s, SGEMM throughput and the MFU.
fn run_cuda(args: &BenchStepArgs, config: &ModelConfig, backend: CudaBackend) -> Result<()> {
    let info = backend.device().info().clone();
    let gflops = ecgfm_kernels::sgemm_gflops(&backend, 4096, 768, 768, 5);
    let ms = time_ecgfm(args, config, backend)?;
    let sps = args.batch_size as f64 / (ms / 1e3);
    let flops = ModelStats::new(config).train_flops * args.batch_size as f64 / (ms / 1e3);
    let peak = args
        .peak_tflops
        .or_else(|| crate::device::peak_fp32_tflops(&info.name));
    let mfu = peak.map(|p| flops / (p * 1e12));
    println!("device  {}", crate::device::describe(&info));
    println!(
        "ecgfm   {}: batch {} | step {ms:.2} ms (median of {}) | {sps:.1} samples/s | {:.2} TFLOP/s{}",
        args.model,
        args.batch_size,
        args.steps,
        flops / 1e12,
        mfu.map(|m| format!(" | MFU {:.1}% of {:.1} fp32 TFLOP/s", 100.0 * m, peak.unwrap_or(0.0)))
            .unwrap_or_else(|| " | MFU unknown (pass --peak-tflops)".into())
    );
    println!("ecgfm   cuBLAS SGEMM 4096x768x768: {gflops:.1} GFLOP/s");
    println!("pytorch comparison skipped: bench/torch_step.py times the CPU only");
    let result = json!({
        "model": args.model,
        "batch_size": args.batch_size,
        "device": info.name,
        "step_ms_median": ms,
        "samples_per_s": sps,
        "train_tflops": flops / 1e12,
        "peak_fp32_tflops": peak,
        "mfu": mfu,
        "sgemm_gflops": gflops,
    });
    println!("{result}");
    Ok(())
}

/// The CPU benchmark, side by side with PyTorch.
fn run_cpu(args: &BenchStepArgs, config: &ModelConfig) -> Result<()> {
    let pool = thread_pool(args.threads.unwrap_or(0))?;
    let threads = pool.current_num_threads();
    let (ecgfm_ms, gflops) = pool.install(|| -> Result<(f64, f64)> {
        let ms = time_ecgfm(args, config, CpuBackend::new())?;
        if args.profile {
            print_profile(args, config)?;
        }
        let gflops = ecgfm_kernels::sgemm_gflops(&CpuBackend::new(), 4096, 768, 768, 5);
        Ok((ms, gflops))
    })?;
    let ecgfm_sps = args.batch_size as f64 / (ecgfm_ms / 1e3);
    println!(
        "ecgfm   {}: batch {} | {} threads | step {:.2} ms (median of {}) | {:.1} samples/s",
        args.model, args.batch_size, threads, ecgfm_ms, args.steps, ecgfm_sps
    );
    println!("ecgfm   SGEMM 4096x768x768: {gflops:.1} GFLOP/s");
    let mut result = json!({
        "model": args.model,
        "batch_size": args.batch_size,
        "threads": threads,
        "step_ms_median": ecgfm_ms,
        "samples_per_s": ecgfm_sps,
        "sgemm_gflops": gflops,
    });
    let torch = match args.no_torch {
        true => None,
        false => time_torch(args, threads)?,
    };
    if let Some(torch) = torch {
        let torch_ms = torch["step_ms_median"]
            .as_f64()
            .context("PyTorch JSON has no step_ms_median")?;
        println!(
            "pytorch {}: batch {} | {} threads | step {:.2} ms | {:.1} samples/s (torch {})",
            args.model,
            args.batch_size,
            threads,
            torch_ms,
            args.batch_size as f64 / (torch_ms / 1e3),
            torch["torch_version"].as_str().unwrap_or("?")
        );
        println!(
            "ratio: ecgfm is {:.2}x the speed of PyTorch",
            torch_ms / ecgfm_ms
        );
        result["torch_step_ms_median"] = json!(torch_ms);
        result["speedup_vs_torch"] = json!(torch_ms / ecgfm_ms);
    }
    println!("{result}");
    Ok(())
}
