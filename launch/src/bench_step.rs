//! `ecgfm bench step`: times a full training step (forward, backward, AdamW) on the CPU or a GPU
//! (`--device`) and runs the PyTorch script of the same model side by side, printing the ratio:
//! on the CPU with the same threads and batch (float32), on a GPU as a PyTorch user tuning for
//! speed would (autocast in our precision unless `--torch-precision` says otherwise,
//! torch.compile, fused AdamW). On a GPU it also
//! prints each side's MFU against the device's dense bf16 peak (and, for an fp32 step of ours,
//! against the fp32 peak) and GPU memory. Our precision is `--precision` (bf16 on a GPU by
//! default). Our step does more than PyTorch's: it also clips the gradient norm at 1.0 (as the
//! trainer does) and reads the norm back with the loss to check both are finite, so the ratio is
//! conservative. A ratio across different work (precisions, recompute modes) comes with a
//! warning. The last line printed is one JSON object.

use crate::cli::BenchStepArgs;
use crate::device::Opened;
use crate::gpu_memory;
use crate::pretrain::thread_pool;
use anyhow::{bail, Context, Result};
use ecgfm_kernels::{gib, Backend, CpuBackend, CudaBackend, Precision, View, ViewMut};
use ecgfm_trainer::config::parse_precision;
use ecgfm_trainer::data::{BatchSource, SyntheticSource};
use ecgfm_trainer::model::{Mae, MaeMemory, ProfiledBackend, Recompute};
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
    let memory = MaeMemory {
        recompute: args.recompute,
        optimizer_shard: None,
    };
    let mut model = Mae::with_memory(backend, config.clone(), args.batch_size, memory)?;
    model.init_params(0);
    let mut batch = HostBatch::new(config, args.batch_size);
    SyntheticSource::new(config, 0, 0.0)
        .next_batch(&mut batch)
        .map_err(|e| anyhow::anyhow!("synthetic batch: {e}"))?;
    MaskSampler::new(config).fill(0, 0, 0, &mut batch);
    Ok((model, batch))
}

/// One full training step in the trainer's order (trainer/src/train/step.rs): forward and
/// backward of the staged batch, the loss and the gradient's sum of squares into `scalars` (2
/// floats on the device), the next batch (`batch` again) staged while the device still runs this
/// step, one read of both scalars, then the clipped AdamW update.
fn train_step<B: Backend>(
    model: &mut Mae<B>,
    batch: &HostBatch,
    scalars: &mut B::Buf,
) -> Result<()> {
    if !model.is_staged() {
        model.stage(batch)?;
    }
    model.zero_grads();
    model.forward_backward_staged(1.0, &mut |_, _, _| {})?;
    model.loss_sum_into(ViewMut::new(scalars, 0));
    model.grad_sumsq_into(ViewMut::new(scalars, 1));
    model.stage(batch)?;
    let mut host = [0.0f32; 2];
    model.backend().download(View::new(scalars, 0), &mut host);
    if !host.iter().all(|v| v.is_finite()) {
        bail!(
            "loss {} / gradient sum of squares {} during the benchmark",
            host[0],
            host[1]
        );
    }
    model.apply_update(&AdamWConfig::default(), 1e-4, Some(1.0));
    Ok(())
}

/// What `time_ecgfm` measured.
struct Timed {
    /// Median step time in ms.
    ms: f64,
    /// Device memory in use after the steps (GPU).
    mem: Option<u64>,
    /// Activations kept from the forward to the backward pass (`Mae::activation_bytes`).
    activation_bytes: u64,
}

/// Times `steps` training steps after `warmup` untimed ones. Each step reads its loss back
/// before its update, so a GPU step's time includes its forward and backward passes to the end.
/// `after` looks at the backend once the steps are done.
fn time_ecgfm<B: Backend>(
    args: &BenchStepArgs,
    config: &ModelConfig,
    backend: B,
    after: impl FnOnce(&B),
) -> Result<Timed> {
    let (mut model, batch) = prepared(args, config, backend)?;
    let mut scalars = model.backend().alloc(2);
    let mut times = Vec::with_capacity(args.steps);
    for i in 0..args.warmup + args.steps {
        let start = Instant::now();
        train_step(&mut model, &batch, &mut scalars)?;
        if i >= args.warmup {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    after(model.backend());
    Ok(Timed {
        ms: median(&mut times),
        mem: model.backend().memory_in_use(),
        activation_bytes: model.activation_bytes(),
    })
}

/// Prints the activation memory of our step.
fn print_activations(args: &BenchStepArgs, bytes: u64) {
    say!(
        "ecgfm   activations kept for the backward pass: {:.1} MiB{}",
        bytes as f64 / (1u64 << 20) as f64,
        match args.recompute {
            Recompute::None => String::new(),
            mode => format!(" ({})", mode.describe()),
        }
    );
}

/// Runs one profiled step (after a warm-up step) and prints where its time went, op by op.
fn print_profile<B: Backend>(
    args: &BenchStepArgs,
    config: &ModelConfig,
    profiled: ProfiledBackend<B>,
) -> Result<()> {
    let (mut model, batch) = prepared(args, config, profiled)?;
    let mut scalars = model.backend().alloc(2);
    train_step(&mut model, &batch, &mut scalars)?;
    model.backend().reset();
    train_step(&mut model, &batch, &mut scalars)?;
    say!("{}", model.backend().render());
    Ok(())
}

/// Runs the PyTorch script and returns its last-line JSON object (`None`: skipped, and why).
/// On a GPU (`gpu`: PyTorch's precision there): `--device`, the precision and torch.compile
/// unless `--torch-no-compile`.
fn time_torch(
    args: &BenchStepArgs,
    threads: usize,
    gpu: Option<&str>,
) -> Result<Option<serde_json::Value>> {
    let mut flags = vec![
        ("--model", args.model.clone()),
        ("--batch-size", args.batch_size.to_string()),
        ("--threads", threads.to_string()),
        ("--steps", args.steps.to_string()),
        ("--warmup", args.warmup.to_string()),
    ];
    if let Some(precision) = gpu {
        flags.push(("--device", args.device.clone()));
        flags.push(("--precision", precision.to_string()));
    }
    let mut switches = Vec::new();
    if gpu.is_some() && !args.torch_no_compile {
        switches.push("--compile");
    }
    if args.recompute == Recompute::Blocks {
        switches.push("--recompute");
    }
    args.torch
        .run(&["torch2", "numpy"], "torch_step.py", &flags, &switches)
}

/// How the two sides' work differs in ways the ratio does not account for (empty: the same),
/// given our precision and PyTorch's.
fn different_work(args: &BenchStepArgs, ours: Precision, torch: &str) -> Vec<String> {
    let mut differ = Vec::new();
    if ours.name() != torch {
        differ.push(format!("ecgfm {ours}, PyTorch {torch}"));
    }
    if args.recompute == Recompute::Pointwise {
        differ.push("ecgfm recomputes LayerNorms and GELU, PyTorch keeps them".into());
    }
    differ
}

/// Prints the ratio `torch_ms / ms`, naming both precisions, with a warning when the two sides
/// did different work, and what our step does beyond PyTorch's.
fn print_ratio(args: &BenchStepArgs, ours: Precision, torch: &str, torch_ms: f64, ms: f64) {
    let differ = different_work(args, ours, torch);
    if !differ.is_empty() {
        say_err!(
            "WARNING: the ratio compares different work: {}",
            differ.join("; ")
        );
    }
    say!(
        "ratio ({ours} vs {torch}{}): ecgfm is {:.2}x the speed of PyTorch",
        match differ.is_empty() {
            true => String::new(),
            false => format!(", DIFFERENT WORK: {}", differ.join("; ")),
        },
        torch_ms / ms
    );
    say!(
        "  (ecgfm's step also clips the gradient norm at 1.0 and reads it back with the loss; \
         PyTorch's does neither)"
    );
}

/// Runs `ecgfm bench step`.
pub fn run(args: &BenchStepArgs) -> Result<()> {
    if let Some(ranks) = args.ranks.filter(|&r| r > 1) {
        return crate::bench_ranks::run(args, ranks);
    }
    let config = ModelConfig::preset(&args.model)?;
    match crate::device::open(&args.device)? {
        Opened::Cpu => run_cpu(args, &config, parse_precision(&args.precision, false)?),
        Opened::Cuda(be) => {
            let precision = crate::device::gpu_precision(&args.precision, be.device().info())?;
            let memory = MaeMemory {
                recompute: args.recompute,
                optimizer_shard: None,
            };
            let fit = gpu_memory::check(&be, &config, args.batch_size, precision, memory)?;
            say!("GPU memory: {}", fit.note);
            let be = crate::device::cuda_with_precision(*be, precision);
            run_cuda(args, &config, be, fit.bytes)
        }
    }
}

/// MFU of `tflops` against `peak`, as a percentage text ("unknown" without a peak).
fn mfu_text(tflops: f64, peak: Option<f64>, kind: &str) -> String {
    match peak {
        Some(p) => format!("MFU {:.1}% of {p:.0} {kind} TFLOP/s", 100.0 * tflops / p),
        None => format!("MFU unknown (pass --peak-{kind}-tflops)"),
    }
}

/// The GPU benchmark: step time, samples/s, MFU and memory, ours then PyTorch's, and the ratio.
/// `predicted`: the GPU memory the step was counted to need before it ran (`gpu_memory`).
fn run_cuda(
    args: &BenchStepArgs,
    config: &ModelConfig,
    backend: CudaBackend,
    predicted: u64,
) -> Result<()> {
    let info = backend.device().info().clone();
    if args.profile {
        let profiled = ProfiledBackend::with_sync(
            crate::device::cuda_with_precision(
                CudaBackend::new(info.ordinal)?,
                backend.precision(),
            ),
            Box::new(|be: &CudaBackend| be.device().synchronize()),
        );
        say!("per-op GPU time of one step (the device waited for around every op):");
        print_profile(args, config, profiled)?;
    }
    let precision = backend.precision();
    let gflops = ecgfm_kernels::sgemm_gflops(&backend, 4096, 768, 768, 5);
    let mem_before = backend.device().memory_used();
    let mut epilogues = (0, 0);
    let timed = time_ecgfm(args, config, backend, |be| {
        epilogues = be.device().gemm_epilogue_shapes()
    })?;
    let ms = timed.ms;
    let mem = timed
        .mem
        .map(|after| after.saturating_sub(mem_before as u64));
    let sps = args.batch_size as f64 / (ms / 1e3);
    let flops_per_step = ModelStats::new(config).train_flops * args.batch_size as f64;
    let tflops = flops_per_step / (ms / 1e3) / 1e12;
    let peak32 = args
        .peak_tflops
        .or_else(|| crate::device::peak_fp32_tflops(&info.name));
    let peak16 = args
        .peak_bf16_tflops
        .or_else(|| crate::device::peak_bf16_tflops(&info.name));
    say!("device  {}", crate::device::describe(&info));
    let mfu32 = match precision {
        Precision::Fp32 => format!(" | {}", mfu_text(tflops, peak32, "fp32")),
        Precision::Bf16 => String::new(),
    };
    say!(
        "ecgfm   {} {precision}: batch {} | step {ms:.2} ms (median of {}) | {sps:.1} samples/s | {tflops:.2} TFLOP/s{mfu32} | {} | GPU memory {}",
        args.model,
        args.batch_size,
        args.steps,
        mfu_text(tflops, peak16, "bf16"),
        mem.map_or("unknown".into(), |b| format!("{:.2} GiB device-wide (cudaMemGetInfo used, after the steps less before: model, activations, optimizer, workspaces; allocated up front)", gib(b)))
    );
    say!("ecgfm   cuBLAS {precision} GEMM 4096x768x768: {gflops:.1} GFLOP/s");
    if precision == Precision::Bf16 {
        say!(
            "ecgfm   GEMM shapes with the bias in a cuBLASLt epilogue: {} (cuBLASLt had none for {})",
            epilogues.0, epilogues.1
        );
    }
    print_activations(args, timed.activation_bytes);
    let mut result = json!({
        "model": args.model,
        "batch_size": args.batch_size,
        "device": info.name,
        "precision": precision.name(),
        "step_ms_median": ms,
        "samples_per_s": sps,
        "train_tflops": tflops,
        "peak_fp32_tflops": peak32,
        "peak_bf16_tflops": peak16,
        "mfu_fp32_peak": peak32.filter(|_| precision == Precision::Fp32).map(|p| tflops / p),
        "mfu_bf16_peak": peak16.map(|p| tflops / p),
        "gpu_mem_bytes": mem,
        "gpu_mem_predicted_bytes": predicted,
        "activation_bytes": timed.activation_bytes,
        "recompute": args.recompute.to_string(),
        "sgemm_gflops": gflops,
        "gemm_epilogue_shapes": epilogues.0,
        "gemm_epilogue_refused_shapes": epilogues.1,
    });
    let torch_precision = (args.torch_precision.clone()).unwrap_or(precision.name().to_string());
    let torch = time_torch(args, 1, Some(&torch_precision))?;
    if let Some(torch) = torch {
        let torch_ms = torch["step_ms_median"]
            .as_f64()
            .context("PyTorch JSON has no step_ms_median")?;
        let torch_tflops = flops_per_step / (torch_ms / 1e3) / 1e12;
        let torch_mem = torch["peak_mem_bytes"].as_u64();
        let reserved = torch["peak_reserved_bytes"].as_u64();
        say!(
            "pytorch {} {}{}: batch {} | step {torch_ms:.2} ms | {:.1} samples/s | {torch_tflops:.2} TFLOP/s | {} | peak GPU memory {} (torch {})",
            args.model,
            torch_precision,
            if args.torch_no_compile { "" } else { " + torch.compile" },
            args.batch_size,
            args.batch_size as f64 / (torch_ms / 1e3),
            mfu_text(torch_tflops, peak16, "bf16"),
            torch_mem.map_or("unknown".into(), |b| format!(
                "{:.2} GiB (max_memory_allocated: tensors only), {} reserved (caching allocator; neither counts the CUDA context)",
                gib(b),
                reserved.map_or("unknown".into(), |r| format!("{:.2} GiB", gib(r)))
            )),
            torch["torch_version"].as_str().unwrap_or("?")
        );
        print_ratio(args, precision, &torch_precision, torch_ms, ms);
        result["torch"] = torch.clone();
        result["torch_step_ms_median"] = json!(torch_ms);
        result["torch_mfu_bf16_peak"] = json!(peak16.map(|p| torch_tflops / p));
        result["speedup_vs_torch"] = json!(torch_ms / ms);
    }
    say!("{result}");
    Ok(())
}

/// The CPU benchmark, side by side with PyTorch.
fn run_cpu(args: &BenchStepArgs, config: &ModelConfig, precision: Precision) -> Result<()> {
    let pool = thread_pool(args.threads.unwrap_or(0))?;
    let threads = pool.current_num_threads();
    let backend = CpuBackend::with_precision(precision);
    let (timed, gflops) = pool.install(|| -> Result<(Timed, f64)> {
        let timed = time_ecgfm(args, config, backend, |_| {})?;
        if args.profile {
            print_profile(args, config, ProfiledBackend::new(backend))?;
        }
        let gflops = ecgfm_kernels::sgemm_gflops(&backend, 4096, 768, 768, 5);
        Ok((timed, gflops))
    })?;
    let ecgfm_ms = timed.ms;
    let ecgfm_sps = args.batch_size as f64 / (ecgfm_ms / 1e3);
    say!(
        "ecgfm   {} {precision}{}: batch {} | {} threads | step {:.2} ms (median of {}) | {:.1} samples/s",
        args.model,
        match precision {
            Precision::Bf16 => " (emulated on the CPU: a numerics check, not a speed-up)",
            Precision::Fp32 => "",
        },
        args.batch_size,
        threads,
        ecgfm_ms,
        args.steps,
        ecgfm_sps
    );
    say!("ecgfm   {precision} GEMM 4096x768x768: {gflops:.1} GFLOP/s");
    print_activations(args, timed.activation_bytes);
    let mut result = json!({
        "model": args.model,
        "batch_size": args.batch_size,
        "threads": threads,
        "precision": precision.name(),
        "step_ms_median": ecgfm_ms,
        "samples_per_s": ecgfm_sps,
        "activation_bytes": timed.activation_bytes,
        "recompute": args.recompute.to_string(),
        "sgemm_gflops": gflops,
    });
    let torch = time_torch(args, threads, None)?;
    if let Some(torch) = torch {
        let torch_ms = torch["step_ms_median"]
            .as_f64()
            .context("PyTorch JSON has no step_ms_median")?;
        say!(
            "pytorch {}: batch {} | {} threads | step {:.2} ms | {:.1} samples/s (torch {})",
            args.model,
            args.batch_size,
            threads,
            torch_ms,
            args.batch_size as f64 / (torch_ms / 1e3),
            torch["torch_version"].as_str().unwrap_or("?")
        );
        print_ratio(args, precision, "fp32", torch_ms, ecgfm_ms);
        result["torch"] = torch.clone();
        result["torch_step_ms_median"] = json!(torch_ms);
        result["speedup_vs_torch"] = json!(torch_ms / ecgfm_ms);
    }
    say!("{result}");
    Ok(())
}
