//! `ecgfm plan --model M --gpus N`: the cost model of docs/distributed.md, printed before a user
//! books a cluster: memory per GPU, step time, scaling efficiency and the communication share.
//!
//! Compute time is the model's training FLOPs over an assumed sustained rate; the gradient
//! all-reduce (or ZeRO-1's reduce-scatter + all-gather, the same bytes) moves 2(N-1)/N of the
//! f32 gradient over the slowest link's bus bandwidth, and overlaps with the backward pass.

use anyhow::{bail, Result};
use clap::Args;
use ecgfm_trainer::{ModelConfig, ModelStats, ParamLayout};

#[derive(Args, Debug, Clone)]
pub struct PlanArgs {
    /// Model size preset.
    #[arg(long, default_value = "base")]
    pub model: String,
    /// GPUs in the job.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub gpus: usize,
    /// GPU type: h100 or h200.
    #[arg(long, default_value = "h100")]
    pub gpu: String,
    /// GPUs per node (NVLink within a node, InfiniBand across).
    #[arg(long, default_value_t = 8)]
    pub gpus_per_node: usize,
    /// Samples per GPU per micro-batch.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// ZeRO stage (1 shards the AdamW state).
    #[arg(long, default_value_t = 0)]
    pub zero: u8,
}

/// The hardware assumptions (docs/distributed.md says where they come from).
pub struct Hardware {
    pub name: &'static str,
    pub memory_gb: f64,
    /// Dense TF32 tensor-core peak, FLOP/s (f32 storage, TF32 matmuls).
    pub peak_flops: f64,
    /// Fraction of the peak a training step sustains.
    pub utilisation: f64,
    /// NCCL all-reduce bus bandwidth within a node (NVLink), bytes/s.
    pub nvlink_bus: f64,
    /// Bus bandwidth across nodes: one 400 Gb/s InfiniBand NIC per GPU at 90 %, bytes/s.
    pub ib_bus: f64,
}

pub fn hardware(name: &str) -> Result<Hardware> {
    let base = Hardware {
        name: "H100 SXM",
        memory_gb: 80.0,
        peak_flops: 494.7e12,
        utilisation: 0.4,
        nvlink_bus: 360e9,
        ib_bus: 45e9,
    };
    match name.to_ascii_lowercase().as_str() {
        "h100" => Ok(base),
        "h200" => Ok(Hardware {
            name: "H200 SXM",
            memory_gb: 141.0,
            ..base
        }),
        other => bail!("unknown GPU `{other}` (h100 or h200)"),
    }
}

/// Bytes of activations and scratch `Mae` allocates for micro-batches of `b` samples.
pub fn activation_bytes(cfg: &ModelConfig, b: usize) -> f64 {
    let (l, n, k) = (cfg.leads, cfg.patches_per_lead(), cfg.visible_per_lead());
    let (te, td, m) = (b * l * k, b * l * n, b * l * (n - k));
    // Per token of a stack: the saved block activations (8C + 2M + H + 4 per block), the
    // stack's output, norm and scratch (3C + 2), and the shared gradient scratch (6C + 2M).
    let stack = |t: usize, c: usize, mlp: usize, h: usize, depth: usize| {
        t * (depth * (8 * c + 2 * mlp + h + 4) + 3 * c + 2 + 6 * c + 2 * mlp)
    };
    let floats = b * l * cfg.samples
        + te * cfg.patch
        + stack(te, cfg.dim, cfg.mlp_dim(), cfg.heads, cfg.depth)
        + 2 * te * cfg.dec_dim
        + stack(
            td,
            cfg.dec_dim,
            cfg.dec_mlp_dim(),
            cfg.dec_heads,
            cfg.dec_depth,
        )
        + 2 * td * cfg.patch
        + m * cfg.patch;
    let indices = 3 * te + 4 * td + 4 * m + 2 * (b + 1);
    4.0 * (floats + indices) as f64
}

/// One row of the estimate.
pub struct Estimate {
    pub params: usize,
    pub memory_gb: f64,
    pub compute_s: f64,
    pub comm_s: f64,
    pub step_s: f64,
    pub step_no_overlap_s: f64,
    pub efficiency: f64,
    pub exposed_comm_share: f64,
    pub samples_per_s: f64,
}

pub fn estimate(cfg: &ModelConfig, hw: &Hardware, args: &PlanArgs) -> Estimate {
    let params = ParamLayout::new(cfg).total;
    let n = args.gpus as f64;
    let p = params as f64;
    let adam = if args.zero == 1 { 8.0 * p / n } else { 8.0 * p };
    let memory = 4.0 * p + 4.0 * p + adam + activation_bytes(cfg, args.batch_size);
    let flops = ModelStats::new(cfg).train_flops * args.batch_size as f64;
    let compute = flops / (hw.peak_flops * hw.utilisation);
    let bus = if args.gpus <= args.gpus_per_node {
        hw.nvlink_bus
    } else {
        hw.ib_bus
    };
    let comm = if args.gpus > 1 {
        2.0 * (n - 1.0) / n * 4.0 * p / bus
    } else {
        0.0
    };
    // Forward is a third of the compute; the reduction runs under the backward pass.
    let (fwd, bwd) = (compute / 3.0, compute * 2.0 / 3.0);
    let step = fwd + bwd.max(comm);
    Estimate {
        params,
        memory_gb: memory / 1e9,
        compute_s: compute,
        comm_s: comm,
        step_s: step,
        step_no_overlap_s: compute + comm,
        efficiency: compute / step,
        exposed_comm_share: (step - compute) / step,
        samples_per_s: n * args.batch_size as f64 / step,
    }
}

/// Runs `ecgfm plan`.
pub fn run(args: &PlanArgs) -> Result<()> {
    if args.gpus == 0 || args.batch_size == 0 || args.gpus_per_node == 0 {
        bail!("--gpus, --gpus-per-node and --batch-size must be positive");
    }
    let cfg = ModelConfig::preset(&args.model)?;
    let hw = hardware(&args.gpu)?;
    let e = estimate(&cfg, &hw, args);
    let link = if args.gpus <= args.gpus_per_node {
        format!("NVLink, {:.0} GB/s bus bandwidth", hw.nvlink_bus / 1e9)
    } else {
        format!(
            "400 Gb/s InfiniBand per GPU across {} nodes, {:.0} GB/s bus bandwidth",
            args.gpus.div_ceil(args.gpus_per_node),
            hw.ib_bus / 1e9
        )
    };
    println!(
        "{} ({:.1}M parameters) on {} x {} ({link}), micro-batch {} per GPU, ZeRO-{}",
        args.model,
        e.params as f64 / 1e6,
        args.gpus,
        hw.name,
        args.batch_size,
        args.zero
    );
    println!(
        "memory per GPU   {:.2} GB of {:.0} GB (weights, gradients, AdamW{}, activations)",
        e.memory_gb,
        hw.memory_gb,
        if args.zero == 1 { " shard" } else { "" }
    );
    println!(
        "compute          {:.1} ms per step ({:.0}% of {:.0} TFLOP/s TF32)",
        e.compute_s * 1e3,
        hw.utilisation * 100.0,
        hw.peak_flops / 1e12
    );
    println!(
        "gradient comms   {:.1} ms (2(N-1)/N x {:.0} MB of f32 gradients)",
        e.comm_s * 1e3,
        4.0 * e.params as f64 / 1e6
    );
    println!(
        "step             {:.1} ms overlapped with the backward pass ({:.1} ms without)",
        e.step_s * 1e3,
        e.step_no_overlap_s * 1e3
    );
    println!(
        "efficiency       {:.0}% of linear scaling; exposed comms {:.0}% of the step; {:.0} samples/s",
        e.efficiency * 100.0,
        e.exposed_comm_share * 100.0,
        e.samples_per_s
    );
    if e.memory_gb > hw.memory_gb {
        println!("warning: does not fit; lower --batch-size or use --zero 1");
    }
    Ok(())
}
