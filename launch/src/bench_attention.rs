//! `ecgfm bench attention`: our packed varlen attention, forward + backward, on the shapes of a
//! model preset (encoder: B samples of 12 leads x K visible patches; decoder: B x 12 x N tokens),
//! against PyTorch's `F.scaled_dot_product_attention` on the same shapes (bench/torch_attention.py,
//! in the dense (B, H, T, hd) layout a PyTorch user has). Our precision is `--precision` (bf16
//! on a GPU by default, fp32 on the CPU, resolved as `bench step` does); PyTorch's defaults to the
//! same (fp32 on the CPU always), and a ratio across different precisions is printed with a
//! warning. FLOPs count the four attention matmuls forward and ten backward (FlashAttention's
//! convention). The last line printed is one JSON object.

use anyhow::{Context, Result};
use clap::Args;
use ecgfm_kernels::{bf16_attention_head, AttnDims, Backend, CpuBackend, Precision, View};
use ecgfm_trainer::config::parse_precision;
use ecgfm_trainer::ModelConfig;
use serde_json::json;
use std::time::Instant;

use crate::device::Opened;
use crate::pretrain::thread_pool;
use crate::python_bench::TorchSide;

#[derive(Args, Debug, Clone)]
pub struct BenchAttentionArgs {
    /// Model size preset whose encoder and decoder attention shapes are timed.
    #[arg(long, default_value = "base")]
    pub model: String,
    /// Samples per timed call (one attention sequence each: the tokens of all its leads).
    #[arg(long, default_value_t = 32, value_parser = crate::cli::at_least_one)]
    pub batch_size: usize,
    /// cpu, cuda or cuda:N (PyTorch runs on the same device).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// CPU threads for both sides (default: all cores).
    #[arg(long, value_parser = crate::cli::cpu_threads)]
    pub threads: Option<usize>,
    /// Timed iterations (the median is reported).
    #[arg(long, default_value_t = 20, value_parser = crate::cli::at_least_one)]
    pub steps: usize,
    /// Untimed warm-up iterations.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Our attention's precision: fp32, bf16 (tensor cores on a GPU at head sizes 16-128 in
    /// steps of 16; emulated on the CPU) or auto (bf16 on a GPU that has bf16 tensor cores,
    /// fp32 otherwise).
    #[arg(long, default_value = "auto", value_parser = ["auto", "bf16", "fp32"])]
    pub precision: String,
    /// PyTorch's precision on a GPU: bf16, tf32 or fp32 (default: the same as ours; the CPU
    /// runs fp32).
    #[arg(long, value_parser = ["bf16", "tf32", "fp32"])]
    pub torch_precision: Option<String>,
    #[command(flatten)]
    pub torch: TorchSide,
}

/// One attention shape: `seqs` sequences of `len` tokens, `width` wide in `heads` heads.
#[derive(Clone, Copy, Debug)]
struct Shape {
    name: &'static str,
    seqs: usize,
    len: usize,
    width: usize,
    heads: usize,
}

impl Shape {
    /// Forward + backward FLOPs: 4 S^2 C per sequence forward, 2.5 times that backward.
    fn flops(&self) -> f64 {
        14.0 * (self.seqs * self.len * self.len * self.width) as f64
    }
}

/// The encoder's and the decoder's attention shapes of `config` at `batch` samples.
fn shapes(config: &ModelConfig, batch: usize) -> [Shape; 2] {
    [
        Shape {
            name: "encoder",
            seqs: batch,
            len: config.leads * config.visible_per_lead(),
            width: config.dim,
            heads: config.heads,
        },
        Shape {
            name: "decoder",
            seqs: batch,
            len: config.leads * config.patches_per_lead(),
            width: config.dec_dim,
            heads: config.dec_heads,
        },
    ]
}

/// Median milliseconds of one forward + backward of `shape` on `be` (each iteration ends by
/// reading one value back, so device work is timed to completion).
fn time_ours<B: Backend>(be: &B, shape: Shape, args: &BenchAttentionArgs) -> f64 {
    let Shape {
        seqs, len, width, ..
    } = shape;
    let tokens = seqs * len;
    let dims = AttnDims {
        seqs,
        tokens,
        width,
        heads: shape.heads,
    };
    // qkv and out are stored as the model stores them: matrix-product operands (bf16 on a bf16
    // GPU backend) at head sizes the bf16 attention supports.
    let operand = bf16_attention_head(width / shape.heads);
    let alloc = |n: usize| match operand {
        true => be.alloc_operand(n),
        false => be.alloc(n),
    };
    let filled = |mut buf: B::Buf, n: usize, seed: usize| {
        let host: Vec<f32> = (0..n)
            .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.5 - 1.0) * 0.5)
            .collect();
        be.upload(&host, (&mut buf).into());
        buf
    };
    let qkv = filled(alloc(tokens * 3 * width), tokens * 3 * width, 1);
    let dout = filled(be.alloc(tokens * width), tokens * width, 2);
    let (mut out, mut lse, mut dqkv) = (
        alloc(tokens * width),
        be.alloc(tokens * shape.heads),
        be.alloc(tokens * 3 * width),
    );
    let offsets: Vec<u32> = (0..=seqs).map(|b| (b * len) as u32).collect();
    let mut cu = be.alloc_idx(seqs + 1);
    be.upload_idx(&offsets, (&mut cu).into());
    let mut times = Vec::with_capacity(args.steps);
    let mut probe = [0.0f32];
    for i in 0..args.warmup + args.steps {
        let start = Instant::now();
        be.attention_forward(
            (&mut out).into(),
            (&mut lse).into(),
            (&qkv).into(),
            (&cu).into(),
            dims,
        );
        be.attention_backward(
            (&mut dqkv).into(),
            (&dout).into(),
            (&qkv).into(),
            (&out).into(),
            (&lse).into(),
            (&cu).into(),
            dims,
        );
        be.download(View::new(&dqkv, 0), &mut probe);
        if i >= args.warmup {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// The precision our attention runs `shape` in on a backend of `precision`: bf16 only at the
/// head sizes the bf16 kernels support.
fn ours_at(precision: Precision, shape: &Shape) -> Precision {
    match bf16_attention_head(shape.width / shape.heads) {
        true => precision,
        false => Precision::Fp32,
    }
}

/// PyTorch's precision: fp32 on the CPU; on a GPU `--torch-precision`, by default ours.
fn torch_precision(args: &BenchAttentionArgs, ours: Precision, gpu: bool) -> String {
    match (gpu, &args.torch_precision) {
        (false, _) => "fp32".into(),
        (true, Some(p)) => p.clone(),
        (true, None) => ours.name().into(),
    }
}

/// PyTorch's SDPA on the same shapes in `precision`: its JSON result, or `None` when skipped.
fn time_torch(
    args: &BenchAttentionArgs,
    shapes: &[Shape],
    threads: usize,
    gpu: bool,
    precision: &str,
) -> Result<Option<serde_json::Value>> {
    let spec = |s: &Shape| format!("{}:{}:{}:{}:{}", s.name, s.seqs, s.len, s.width, s.heads);
    let flags = vec![
        (
            "--shapes",
            shapes.iter().map(spec).collect::<Vec<_>>().join(","),
        ),
        (
            "--device",
            if gpu {
                args.device.clone()
            } else {
                "cpu".into()
            },
        ),
        ("--precision", precision.to_string()),
        ("--threads", threads.to_string()),
        ("--steps", args.steps.to_string()),
        ("--warmup", args.warmup.to_string()),
    ];
    args.torch
        .run(&["torch2"], "torch_attention.py", &flags, &[])
}

/// Times every shape on `be`, then PyTorch, and prints both with the ratio.
fn run_on<B: Backend>(
    be: &B,
    args: &BenchAttentionArgs,
    config: &ModelConfig,
    threads: usize,
    gpu: bool,
) -> Result<()> {
    let shapes = shapes(config, args.batch_size);
    let precision = be.precision();
    let torch_precision = torch_precision(args, precision, gpu);
    let ours: Vec<f64> = shapes.iter().map(|&s| time_ours(be, s, args)).collect();
    let torch = time_torch(args, &shapes, threads, gpu, &torch_precision)?;
    let mut rows = Vec::new();
    for (shape, &ms) in shapes.iter().zip(&ours) {
        let tflops = shape.flops() / (ms / 1e3) / 1e12;
        let ours = ours_at(precision, shape).name();
        say!(
            "ecgfm   {} {}: {} x {} tokens, width {}, {} heads | {ours} fwd+bwd {ms:.3} ms | {tflops:.2} TFLOP/s",
            args.model, shape.name, shape.seqs, shape.len, shape.width, shape.heads
        );
        let mut row = json!({
            "shape": shape.name, "seqs": shape.seqs, "len": shape.len, "width": shape.width,
            "heads": shape.heads, "precision": ours, "ms_median": ms, "tflops": tflops,
        });
        if let Some(torch) = &torch {
            let torch_ms = torch["ms_median"][shape.name]
                .as_f64()
                .with_context(|| format!("PyTorch JSON has no ms_median.{}", shape.name))?;
            let same = ours == torch_precision;
            if !same {
                say_err!(
                    "WARNING: {} {}: ecgfm runs {ours} and PyTorch {torch_precision}: the ratio \
                     compares different precisions (give --precision and --torch-precision alike)",
                    args.model,
                    shape.name
                );
            }
            say!(
                "pytorch {} {}: SDPA {torch_precision} fwd+bwd {torch_ms:.3} ms | {:.2} TFLOP/s | ratio ({ours} vs {torch_precision}{}): ecgfm is {:.2}x the speed of PyTorch",
                args.model,
                shape.name,
                shape.flops() / (torch_ms / 1e3) / 1e12,
                if same { "" } else { ", DIFFERENT PRECISIONS" },
                torch_ms / ms
            );
            row["torch_precision"] = json!(torch_precision);
            row["torch_ms_median"] = json!(torch_ms);
            row["speedup_vs_torch"] = json!(torch_ms / ms);
            row["same_precision"] = json!(same);
        }
        rows.push(row);
    }
    let result = json!({
        "model": args.model,
        "batch_size": args.batch_size,
        "device": args.device,
        "precision": precision.name(),
        "torch_precision": torch.as_ref().map(|_| &torch_precision),
        "torch_version": torch.as_ref().map(|t| t["torch_version"].clone()),
        "shapes": rows,
    });
    say!("{result}");
    Ok(())
}

/// Runs `ecgfm bench attention`.
pub fn run(args: &BenchAttentionArgs) -> Result<()> {
    let config = ModelConfig::preset(&args.model)?;
    match crate::device::open(&args.device)? {
        Opened::Cpu => {
            let precision = parse_precision(&args.precision, false)?;
            let pool = thread_pool(args.threads.unwrap_or(0))?;
            let threads = pool.current_num_threads();
            let be = CpuBackend::with_precision(precision);
            pool.install(|| run_on(&be, args, &config, threads, false))
        }
        Opened::Cuda(be) => {
            say!("device  {}", crate::device::describe(be.device().info()));
            let precision = crate::device::gpu_precision(&args.precision, be.device().info())?;
            let be = crate::device::cuda_with_precision(*be, precision);
            run_on(&be, args, &config, 1, true)
        }
    }
}
