//! `ecgfm plan --model M --gpus N`: the cost model of docs/distributed.md, printed before a user
//! books a cluster: memory per GPU, step time, scaling efficiency and the communication share.
//!
//! Compute time is the model's training FLOPs over an assumed sustained rate; the gradient
//! all-reduce (or ZeRO-1's reduce-scatter + all-gather, the same bytes) moves 2(N-1)/N of the
//! f32 gradient over the slowest link's bus bandwidth, and overlaps with the backward pass.

use anyhow::{bail, Result};
use clap::Args;
use ecgfm_kernels::Precision;
use ecgfm_trainer::device_memory::step_bytes;
use ecgfm_trainer::model::{MaeMemory, Recompute};
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

/// One row of the estimate.
pub struct Estimate {
    pub params: usize,
    /// GPU memory of a step in fp32 (what the compute estimate assumes) and in bf16.
    pub memory_gb: f64,
    pub memory_bf16_gb: f64,
    pub compute_s: f64,
    pub comm_s: f64,
    pub step_s: f64,
    pub step_no_overlap_s: f64,
    pub efficiency: f64,
    pub exposed_comm_share: f64,
    pub samples_per_s: f64,
}

pub fn estimate(cfg: &ModelConfig, hw: &Hardware, args: &PlanArgs) -> Result<Estimate> {
    let params = ParamLayout::new(cfg).total;
    let n = args.gpus as f64;
    let p = params as f64;
    // The memory a rank allocates, counted as the CUDA backend allocates it (a ZeRO-1 rank
    // keeps AdamW state for its shard only).
    let memory = |precision| {
        let memory = MaeMemory {
            recompute: Recompute::None,
            optimizer_shard: (args.zero == 1).then(|| 0..params.div_ceil(args.gpus)),
        };
        step_bytes(cfg, args.batch_size, precision, memory).map(|b| b as f64)
    };
    let (memory, memory_bf16) = (memory(Precision::Fp32)?, memory(Precision::Bf16)?);
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
    Ok(Estimate {
        params,
        memory_gb: memory / 1e9,
        memory_bf16_gb: memory_bf16 / 1e9,
        compute_s: compute,
        comm_s: comm,
        step_s: step,
        step_no_overlap_s: compute + comm,
        efficiency: compute / step,
        exposed_comm_share: (step - compute) / step,
        samples_per_s: n * args.batch_size as f64 / step,
    })
}

/// Runs `ecgfm plan`.
pub fn run(args: &PlanArgs) -> Result<()> {
    if args.gpus == 0 || args.batch_size == 0 || args.gpus_per_node == 0 {
        bail!("--gpus, --gpus-per-node and --batch-size must be positive");
    }
    let cfg = ModelConfig::preset(&args.model)?;
    let hw = hardware(&args.gpu)?;
    let e = estimate(&cfg, &hw, args)?;
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
        "memory per GPU   {:.2} GB of {:.0} GB in fp32 (weights, gradients, AdamW{}, activations, \
         workspaces, as ecgfm allocates them); {:.2} GB in bf16",
        e.memory_gb,
        hw.memory_gb,
        if args.zero == 1 { " shard" } else { "" },
        e.memory_bf16_gb
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
        println!("warning: does not fit in fp32; lower --batch-size, use --zero 1 or bf16");
    }
    Ok(())
}
