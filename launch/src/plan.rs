//! `ecgfm plan --model M --gpus N`: the cost model of docs/distributed.md, printed before a user
//! books a cluster: memory per GPU, step time, scaling efficiency and the communication share.
//!
//! Compute time is the model's training FLOPs over a sustained fraction (MFU) of the GPU's peak in
//! the run's precision (bf16 tensor cores, or fp32 without tensor cores as our fp32 GEMMs run);
//! the gradient all-reduce (or ZeRO-1's reduce-scatter + all-gather, the same bytes) moves
//! 2(N-1)/N of the f32 gradient over the slowest link's bus bandwidth, and overlaps with the
//! backward pass.

use crate::device::{peak_bf16_tflops, peak_fp32_tflops};
use anyhow::{bail, Context, Result};
use clap::Args;
use ecgfm_kernels::Precision;
use ecgfm_sweep::expand::sample_flops;
use ecgfm_trainer::device_memory::{full_batch_bytes, step_bytes};
use ecgfm_trainer::model::{MaeMemory, Recompute};
use ecgfm_trainer::{ModelConfig, ModelStats, ParamLayout};
use std::collections::BTreeMap;

#[derive(Args, Debug, Clone)]
pub struct PlanArgs {
    /// Model size preset.
    #[arg(long, default_value = "base")]
    pub model: String,
    /// GPUs in the job.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = crate::cli::at_least_one)]
    pub gpus: usize,
    /// GPU type: h100, h200 or b200.
    #[arg(long, default_value = "h100")]
    pub gpu: String,
    /// GPUs per node (NVLink within a node, InfiniBand across).
    #[arg(long, default_value_t = 8, value_parser = crate::cli::at_least_one)]
    pub gpus_per_node: usize,
    /// Samples per GPU per micro-batch.
    #[arg(long, default_value_t = 64, value_parser = crate::cli::at_least_one)]
    pub batch_size: usize,
    /// ZeRO stage (1 shards the AdamW state).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub zero: u8,
    /// Matrix products of the run: bf16 (tensor cores; the GPU default) or fp32 (true fp32, no
    /// tensor cores, as ecgfm's fp32 GEMMs run).
    #[arg(long, default_value = "bf16")]
    pub precision: Precision,
    /// Fraction of the peak a training step sustains (default: 0.35 in bf16, 0.5 in fp32;
    /// assumed: `ecgfm bench step --device cuda` prints yours).
    #[arg(long, value_name = "FRACTION", value_parser = crate::cli::fraction)]
    pub mfu: Option<f64>,
    /// The dataset to pretrain on: its train split's samples by present leads set a step's
    /// FLOPs (the model packs only present leads; default: every sample with 12 leads).
    #[arg(long, value_name = "URL")]
    pub data: Option<String>,
    /// With --data: a source weighted W (read W times per epoch), as `data.repeat.SOURCE=W`
    /// trains (repeatable; 0 leaves the source out, 0.5 reads half of it).
    #[arg(long, value_name = "SOURCE=W", requires = "data", value_parser = parse_repeat)]
    pub repeat: Vec<(String, f64)>,
}

/// `SOURCE=W` of `--repeat`.
fn parse_repeat(text: &str) -> Result<(String, f64), String> {
    let (source, weight) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not SOURCE=W (for example ptbxl=4 or cinc=0.5)"))?;
    let max = ecgfm_data::loader::MAX_WEIGHT;
    match weight.parse::<f64>() {
        Ok(w) if (0.0..=max).contains(&w) => Ok((source.to_string(), w)),
        _ => Err(format!(
            "{text:?}: {weight:?} is not a weight from 0 to {max} (reads per epoch)"
        )),
    }
}

impl PlanArgs {
    /// The MFU the estimate assumes: `--mfu`, or the default of the precision.
    fn mfu(&self) -> f64 {
        self.mfu.unwrap_or(match self.precision {
            Precision::Bf16 => 0.35,
            Precision::Fp32 => 0.5,
        })
    }
}

/// The hardware assumptions (docs/distributed.md says where they come from).
pub struct Hardware {
    pub name: &'static str,
    pub memory_gb: f64,
    /// Dense bf16 tensor-core peak (f32 accumulation), FLOP/s.
    pub bf16_peak: f64,
    /// fp32 peak without tensor cores, FLOP/s.
    pub fp32_peak: f64,
    /// NCCL all-reduce bus bandwidth within a node (NVLink), bytes/s.
    pub nvlink_bus: f64,
    /// Bus bandwidth across nodes: one 400 Gb/s InfiniBand NIC per GPU at 90 %, bytes/s.
    pub ib_bus: f64,
}

pub fn hardware(name: &str) -> Result<Hardware> {
    // The peaks of the GPU tables `bench step` computes MFU with.
    let peak = |table: fn(&str) -> Option<f64>, gpu: &str| {
        table(gpu)
            .map(|t| t * 1e12)
            .with_context(|| format!("no peak of the {gpu}"))
    };
    let base = Hardware {
        name: "H100 SXM",
        memory_gb: 80.0,
        bf16_peak: peak(peak_bf16_tflops, "H100")?,
        fp32_peak: peak(peak_fp32_tflops, "H100")?,
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
        "b200" => Ok(Hardware {
            name: "B200 (HGX)",
            memory_gb: 180.0,
            bf16_peak: peak(peak_bf16_tflops, "B200")?,
            fp32_peak: peak(peak_fp32_tflops, "B200")?,
            // NVLink 5 moves twice NVLink 4's bytes per direction.
            nvlink_bus: 2.0 * base.nvlink_bus,
            ..base
        }),
        other => bail!("unknown GPU `{other}` (h100, h200 or b200)"),
    }
}

/// One row of the estimate.
pub struct Estimate {
    pub params: usize,
    /// GPU memory of a step in fp32 and in bf16.
    pub memory_gb: f64,
    pub memory_bf16_gb: f64,
    /// The peak FLOP/s of the run's precision and the fraction of it assumed sustained.
    pub peak_flops: f64,
    pub mfu: f64,
    pub compute_s: f64,
    pub comm_s: f64,
    pub step_s: f64,
    pub step_no_overlap_s: f64,
    pub efficiency: f64,
    pub exposed_comm_share: f64,
    pub samples_per_s: f64,
}

/// The estimate for samples of `sample_flops` training FLOPs each.
pub fn estimate(
    cfg: &ModelConfig,
    hw: &Hardware,
    args: &PlanArgs,
    sample_flops: f64,
) -> Result<Estimate> {
    let params = ParamLayout::new(cfg).total;
    let n = args.gpus as f64;
    let p = params as f64;
    // Counting a step's memory builds one batch of input here: refuse one this machine cannot
    // hold (the allocation would abort).
    let input = full_batch_bytes(cfg, args.batch_size);
    if let Some(available) = crate::held_windows::available_memory().filter(|&a| input > a) {
        bail!(
            "--batch-size {}: counting its memory builds one input batch of {:.1} GiB here, more \
             than the {:.1} GiB this machine has free; plan a smaller micro-batch",
            args.batch_size,
            ecgfm_kernels::gib(input),
            ecgfm_kernels::gib(available)
        );
    }
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
    let flops = sample_flops * args.batch_size as f64;
    let peak_flops = match args.precision {
        Precision::Bf16 => hw.bf16_peak,
        Precision::Fp32 => hw.fp32_peak,
    };
    let mfu = args.mfu();
    let compute = flops / (peak_flops * mfu);
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
        peak_flops,
        mfu,
        compute_s: compute,
        comm_s: comm,
        step_s: step,
        step_no_overlap_s: compute + comm,
        efficiency: compute / step,
        exposed_comm_share: (step - compute) / step,
        samples_per_s: n * args.batch_size as f64 / step,
    })
}

/// A time of the estimate: milliseconds to a tenth, or microseconds below a millisecond (a
/// small model's step on a GPU).
fn duration(seconds: f64) -> String {
    match seconds < 1e-3 {
        true => format!("{:.1} us", seconds * 1e6),
        false => format!("{:.1} ms", seconds * 1e3),
    }
}

/// Why the dataset at `url` gives no mix of train windows by present leads: no train windows,
/// weights that read none, or a manifest from before ecgfm counted them.
fn no_mix_reason(url: &str, repeat: &BTreeMap<String, f64>) -> Result<String> {
    let shown = ecgfm_data::store::redact_url(url);
    let (store, root) = ecgfm_data::store::open_url(url)?;
    let manifest = ecgfm_data::manifest::Manifest::load(store.as_ref(), &root)?;
    let train = manifest.counts.splits.get("train").copied().unwrap_or(0);
    Ok(if train == 0 {
        format!("{shown} has no train windows to plan with")
    } else if !repeat.is_empty() && manifest.leads_by_source("train").is_some() {
        format!("the --repeat weights leave none of the {train} train windows of {shown}")
    } else {
        format!(
            "the manifest of {shown} does not count its train rows by present leads{} (ingested \
             or merged before ecgfm counted them): ingest it again",
            if repeat.is_empty() { "" } else { " per source" }
        )
    })
}

/// Runs `ecgfm plan`.
pub fn run(args: &PlanArgs) -> Result<()> {
    let cfg = ModelConfig::preset(&args.model)?;
    let hw = hardware(&args.gpu)?;
    let full = ModelStats::new(&cfg).train_flops;
    let sample_flops = match &args.data {
        None => full,
        Some(url) => {
            let repeat = args.repeat.iter().cloned().collect();
            let mix = match crate::lead_mix::read(url, "train", &repeat)? {
                Some(mix) => mix,
                None => bail!(no_mix_reason(url, &repeat)?),
            };
            let flops = sample_flops(&cfg, Some(&mix));
            let rows: f64 = mix.values().sum();
            let leads: f64 = mix.iter().map(|(&n, w)| f64::from(n) * w).sum::<f64>() / rows;
            say!(
                "data             {rows:.0} train windows per epoch with {leads:.1} leads on average: {:.1} \
                 MFLOPs per sample, {:.1}x less than a 12-lead sample",
                flops / 1e6,
                full / flops
            );
            flops
        }
    };
    let e = estimate(&cfg, &hw, args, sample_flops)?;
    let link = if args.gpus <= args.gpus_per_node {
        format!("NVLink, {:.0} GB/s bus bandwidth", hw.nvlink_bus / 1e9)
    } else {
        format!(
            "400 Gb/s InfiniBand per GPU across {} nodes, {:.0} GB/s bus bandwidth",
            args.gpus.div_ceil(args.gpus_per_node),
            hw.ib_bus / 1e9
        )
    };
    say!(
        "{} ({:.1}M parameters) on {} x {} ({link}), micro-batch {} per GPU, ZeRO-{}",
        args.model,
        e.params as f64 / 1e6,
        args.gpus,
        hw.name,
        args.batch_size,
        args.zero
    );
    let precision = args.precision;
    let (memory, other, other_name) = match precision {
        Precision::Bf16 => (e.memory_bf16_gb, e.memory_gb, Precision::Fp32),
        Precision::Fp32 => (e.memory_gb, e.memory_bf16_gb, Precision::Bf16),
    };
    say!(
        "memory per GPU   {memory:.2} GB of {:.0} GB in {precision} (weights, gradients, AdamW{}, \
         activations, workspaces, as ecgfm allocates them); {other:.2} GB in {other_name}",
        hw.memory_gb,
        if args.zero == 1 { " shard" } else { "" },
    );
    let assumed = match args.mfu {
        Some(_) => "",
        None => ", assumed: `ecgfm bench step --device cuda` measures yours, pass it as --mfu",
    };
    say!(
        "compute          {} per step ({:.0}% of {:.0} TFLOP/s dense {precision}{assumed})",
        duration(e.compute_s),
        e.mfu * 100.0,
        e.peak_flops / 1e12
    );
    let gradient_mb = 4.0 * e.params as f64 / 1e6;
    say!(
        "gradient comms   {} (2(N-1)/N x {} MB of f32 gradients)",
        duration(e.comm_s),
        match gradient_mb < 1.0 {
            true => format!("{gradient_mb:.2}"),
            false => format!("{gradient_mb:.0}"),
        }
    );
    say!(
        "step             {} overlapped with the backward pass ({} without)",
        duration(e.step_s),
        duration(e.step_no_overlap_s)
    );
    say!(
        "efficiency       {:.0}% of linear scaling; exposed comms {:.0}% of the step; {:.0} samples/s",
        e.efficiency * 100.0,
        e.exposed_comm_share * 100.0,
        e.samples_per_s
    );
    if e.exposed_comm_share > 0.0 {
        // The backward pass (2/3 of the compute) must last as long as the exchange.
        let factor = e.comm_s / (e.compute_s * 2.0 / 3.0);
        say!(
            "hint             the exchange hides under the backward pass from about {:.0} samples \
             per GPU between reductions: a larger --batch-size, or train.accum_steps = {:.0} \
             (gradients are reduced once per accumulated step)",
            (args.batch_size as f64 * factor).ceil(),
            factor.ceil()
        );
    }
    if memory > hw.memory_gb {
        say!("warning: does not fit in {precision}; {}", fit_hints(args));
    }
    Ok(())
}

/// What would lower the memory a step needs, of what the plan does not already use (the hint
/// named --zero 1 and bf16 where they were in use until 2026-12-06).
fn fit_hints(args: &PlanArgs) -> String {
    let mut hints = vec!["lower --batch-size"];
    if args.zero != 1 {
        hints.push("use --zero 1");
    }
    if args.precision != Precision::Bf16 {
        hints.push("--precision bf16");
    }
    hints.push("train.recompute when training (this estimate keeps every activation)");
    hints.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fit_hint_names_only_what_the_plan_does_not_use() {
        let mut plan = args("fp32", 8, None);
        let hint = fit_hints(&plan);
        assert!(
            hint.contains("--zero 1") && hint.contains("--precision bf16"),
            "{hint}"
        );
        plan.zero = 1;
        plan.precision = Precision::Bf16;
        let hint = fit_hints(&plan);
        assert!(
            !hint.contains("--zero 1") && !hint.contains("bf16"),
            "{hint}"
        );
        assert!(hint.starts_with("lower --batch-size"), "{hint}");
    }

    fn args(precision: &str, gpus: usize, mfu: Option<f64>) -> PlanArgs {
        PlanArgs {
            model: "base".into(),
            gpus,
            gpu: "h100".into(),
            gpus_per_node: 8,
            batch_size: 8,
            zero: 0,
            precision: precision.parse().unwrap(),
            mfu,
            data: None,
            repeat: Vec::new(),
        }
    }

    #[test]
    fn the_config_and_the_loader_allow_the_same_weights() {
        assert_eq!(
            ecgfm_trainer::config::MAX_SOURCE_WEIGHT,
            ecgfm_data::loader::MAX_WEIGHT
        );
        assert_eq!(parse_repeat("cinc=0.25"), Ok(("cinc".into(), 0.25)));
        assert!(parse_repeat("cinc=10001").is_err());
    }

    fn plan(precision: &str, gpus: usize, mfu: Option<f64>) -> Estimate {
        let cfg = ModelConfig::preset("base").unwrap();
        let flops = ModelStats::new(&cfg).train_flops;
        estimate(
            &cfg,
            &hardware("h100").unwrap(),
            &args(precision, gpus, mfu),
            flops,
        )
        .unwrap()
    }

    #[test]
    fn a_b200_computes_faster_and_exchanges_faster_within_a_node() {
        let cfg = ModelConfig::preset("base").unwrap();
        let flops = ModelStats::new(&cfg).train_flops;
        let on = |gpu: &str| {
            let hw = hardware(gpu).unwrap();
            estimate(&cfg, &hw, &args("bf16", 8, None), flops).unwrap()
        };
        let (hopper, blackwell) = (on("h100"), on("B200"));
        assert!((hopper.compute_s / blackwell.compute_s - 2250.0 / 989.0).abs() < 1e-9);
        assert!((hopper.comm_s / blackwell.comm_s - 2.0).abs() < 1e-9);
        assert!(hardware("b300").is_err());
    }

    /// Under ZeRO-1 a rank keeps AdamW state for 1/N of the parameters, N the GPUs of the
    /// whole job (not of a node): the estimate's memory is `step_bytes` with that shard, and
    /// it shrinks from one node of 8 to 64 GPUs.
    #[test]
    fn a_zero_one_rank_keeps_adamw_state_for_its_share_of_every_gpu() {
        let cfg = ModelConfig::preset("base").unwrap();
        let flops = ModelStats::new(&cfg).train_flops;
        let at = |gpus| {
            let plan_args = PlanArgs {
                zero: 1,
                ..args("bf16", gpus, None)
            };
            estimate(&cfg, &hardware("h100").unwrap(), &plan_args, flops).unwrap()
        };
        let (node, job) = (at(8), at(64));
        assert!(job.memory_bf16_gb < node.memory_bf16_gb);
        let params = ParamLayout::new(&cfg).total;
        let memory = MaeMemory {
            recompute: Recompute::None,
            optimizer_shard: Some(0..params.div_ceil(64)),
        };
        let bytes = step_bytes(&cfg, 8, Precision::Bf16, memory).unwrap();
        assert_eq!(job.memory_bf16_gb, bytes as f64 / 1e9);
    }

    #[test]
    fn bf16_computes_faster_so_the_gradient_exchange_weighs_more() {
        let (bf16, fp32) = (plan("bf16", 64, None), plan("fp32", 64, None));
        assert!(bf16.compute_s < fp32.compute_s / 5.0);
        assert_eq!(bf16.comm_s, fp32.comm_s);
        assert!(bf16.efficiency < fp32.efficiency);
        assert!(bf16.memory_bf16_gb < bf16.memory_gb);
    }

    /// The expected-scaling table of docs/distributed.md is what `estimate` gives (to the
    /// table's rounding): model, GPUs, memory in bf16 and fp32, compute, all-reduce, step,
    /// efficiency, exposed share, samples/s.
    #[test]
    fn the_table_of_docs_distributed_md_is_the_estimate() {
        let doc = include_str!("../../docs/distributed.md");
        let rows = ecgfm_test_support::markdown::table(doc, "| model | GPUs |");
        assert_eq!(rows.len(), 4);
        let number = ecgfm_test_support::markdown::leading_number;
        for row in rows {
            let (model, _) = row[0].split_once(' ').unwrap();
            let gpus = number(&row[1]) as usize;
            let cfg = ModelConfig::preset(model).unwrap();
            let flops = ModelStats::new(&cfg).train_flops;
            let plan_args = PlanArgs {
                model: model.into(),
                batch_size: 64,
                ..args("bf16", gpus, None)
            };
            let e = estimate(&cfg, &hardware("h100").unwrap(), &plan_args, flops).unwrap();
            let (bf16, fp32) = row[2].split_once(';').unwrap();
            let shown = [
                (format!("{:.1}M", e.params as f64 / 1e6), row[0].to_string()),
                (
                    format!("{:.1}", e.memory_bf16_gb),
                    format!("{:.1}", number(bf16)),
                ),
                (
                    format!("{:.1}", e.memory_gb),
                    format!("{:.1}", number(fp32.trim())),
                ),
                (duration(e.compute_s), row[3].to_string()),
                (duration(e.comm_s), row[4].to_string()),
                (duration(e.step_s), row[5].to_string()),
                (format!("{:.0} %", e.efficiency * 100.0), row[6].to_string()),
                (
                    format!("{:.0} %", e.exposed_comm_share * 100.0),
                    row[7].to_string(),
                ),
                // Samples/s to three significant figures.
                (
                    format!("{:.0}", e.samples_per_s / 100.0),
                    format!("{:.0}", number(&row[8]) / 100.0),
                ),
            ];
            for (ours, documented) in shown {
                assert!(
                    documented.contains(&ours),
                    "{}: {ours} against {documented}",
                    row[0]
                );
            }
        }
    }

    #[test]
    fn the_mfu_scales_the_compute_and_is_checked() {
        let (half, quarter) = (plan("bf16", 1, Some(0.5)), plan("bf16", 1, Some(0.25)));
        let ratio = quarter.compute_s / half.compute_s;
        assert!((ratio - 2.0).abs() < 1e-12, "{ratio}");
        assert!((plan("bf16", 1, None).mfu - 0.35).abs() < 1e-12);
        // `--mfu` takes (0, 1] (`cli::fraction`).
        for outside in ["1.5", "0", "-0.1", "NaN"] {
            assert!(crate::cli::fraction(outside).is_err(), "{outside}");
        }
        assert_eq!(crate::cli::fraction("1"), Ok(1.0));
    }
}
