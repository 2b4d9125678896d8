//! Expanding a sweep file into runs: every (dataset, size, budget, data fraction, seed) becomes an
//! ordinary pretrain configuration with its own run directory name.
//!
//! - N is the encoder's non-embedding parameter count (its transformer blocks and final norm):
//!   what a sweep varies. Patch and lead embeddings and the decoder are left out; the decoder is
//!   the same for every size of a family or of the presets past nano.
//! - FLOPs per step = the mean training FLOPs (forward + backward) of one of the dataset's
//!   samples x global batch (ranks x batch size x accumulation). The model packs only present
//!   leads, so a sample's cost follows its lead count: the mean is taken over the pretraining
//!   split's rows by present leads (`LeadMix`, from the manifest; the synthetic generator's
//!   single-lead fraction), or is a full 12-lead sample's where the mix is unknown.
//!   Iso-FLOPs: steps = round(C / FLOPs per step).
//! - D counts samples seen (steps x global batch) and tokens seen (samples x leads x patches).

use crate::spec::{SpecError, SweepSpec};
use ecgfm_trainer::config::{self, TrainConfig};
use ecgfm_trainer::model::FlopCounter;
use ecgfm_trainer::{ModelConfig, ModelStats, ParamLayout};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Samples by number of present leads (weights need not sum to one).
pub type LeadMix = BTreeMap<u8, f64>;

/// The lead mix of a dataset's split, `(url, split, data.repeat)`, where it is known.
pub type LeadMixOf<'a> = &'a dyn Fn(&str, &str, &BTreeMap<String, f64>) -> Option<LeadMix>;

/// One model size of the sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct Size {
    /// Preset name, or `d{depth}w{width}` for a family member.
    pub name: String,
    /// The `[model]` fields that make this size.
    pub model: toml::Table,
}

/// One pretraining run of the sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct RunPlan {
    /// Unique, filesystem-safe: `{dataset}-{size}-{budget}-f{fraction}-s{seed}`.
    pub name: String,
    pub dataset: String,
    pub size: String,
    /// The iso-FLOPs budget C this run belongs to (`None` for equal-steps).
    pub budget: Option<f64>,
    pub fraction: f64,
    pub seed: u64,
    pub config: TrainConfig,
    /// Data-parallel ranks the run trains on (`ecgfm launch --nproc-per-node`).
    pub ranks: usize,
    /// Mean training FLOPs of one of its dataset's samples.
    pub sample_flops: f64,
    /// Windows one epoch of its dataset's split reads (`data.repeat` weights counted); `None`
    /// for the synthetic generator, which never repeats a sample, or a dataset not yet ingested.
    pub epoch_windows: Option<f64>,
}

impl RunPlan {
    /// Non-embedding encoder parameters N.
    pub fn n(&self) -> usize {
        non_embedding_params(&self.config.model)
    }

    pub fn total_params(&self) -> usize {
        ModelStats::new(&self.config.model).total_params()
    }

    pub fn flops_per_step(&self) -> f64 {
        self.sample_flops * self.global_batch() as f64
    }

    /// Samples of one optimiser step over every rank.
    pub fn global_batch(&self) -> usize {
        self.config.samples_per_step() * self.ranks
    }

    pub fn steps(&self) -> u64 {
        self.config.train.steps
    }

    /// Samples seen by the end of the run.
    pub fn samples(&self) -> u64 {
        self.steps() * self.global_batch() as u64
    }

    /// Patches (tokens of the full input) seen by the end of the run.
    pub fn tokens(&self) -> u64 {
        let m = &self.config.model;
        self.samples() * (m.leads * m.patches_per_lead()) as u64
    }

    /// Training FLOPs C of the whole run.
    pub fn flops(&self) -> f64 {
        self.flops_per_step() * self.steps() as f64
    }
}

/// A sweep file expanded.
#[derive(Clone, Debug)]
pub struct SweepPlan {
    pub spec: SweepSpec,
    pub sizes: Vec<Size>,
    pub runs: Vec<RunPlan>,
    /// What the expansion left out or finds doubtful (too-short runs, a narrow N span).
    pub warnings: Vec<String>,
    /// The sizes a budget left out (their warnings' too-short runs), for the report.
    pub left_out: Vec<LeftOut>,
}

/// A size a budget would train too few steps (`budget.min_steps`): left out of the sweep there.
/// `sweep run` keeps them in the folder's [`LEFT_OUT_FILE`], so the report names them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeftOut {
    pub dataset: String,
    pub size: String,
    pub budget: f64,
    pub steps: u64,
    pub min_steps: u64,
}

impl LeftOut {
    /// "d3w96 (19 steps, fewer than min_steps 30)".
    pub fn describe(&self) -> String {
        format!(
            "{} ({} steps, fewer than min_steps {})",
            self.size, self.steps, self.min_steps
        )
    }
}

/// The sweep folder's record of the sizes left out (a JSON list of [`LeftOut`]).
pub const LEFT_OUT_FILE: &str = "left-out.json";

/// Encoder parameters outside the embeddings: the blocks `enc.*` and `enc_norm`.
pub fn non_embedding_params(model: &ModelConfig) -> usize {
    ParamLayout::new(model)
        .entries
        .iter()
        .filter(|e| e.name.starts_with("enc.") || e.name.starts_with("enc_norm."))
        .map(|e| e.len())
        .sum()
}

/// The lead mix `config` pretrains on: the synthetic generator's, or `lead_mix_of` its dataset's
/// split (`None` when unknown).
pub fn lead_mix(config: &TrainConfig, lead_mix_of: LeadMixOf<'_>) -> Option<LeadMix> {
    let data = &config.data;
    if data.source == "synth" {
        let single = f64::from(data.synth_single_lead_fraction);
        let leads = config.model.leads as u8;
        return Some(BTreeMap::from([(1, single), (leads, 1.0 - single)]));
    }
    lead_mix_of(&data.source, &data.split, &data.repeat)
}

/// Mean training FLOPs of a sample of `model` under `mix` (a full sample's when the mix is
/// unknown).
pub fn sample_flops(model: &ModelConfig, mix: Option<&LeadMix>) -> f64 {
    match mix {
        Some(mix) => FlopCounter::new(model).mean_sample_flops(mix),
        None => ModelStats::new(model).train_flops,
    }
}

/// The sizes named by the sweep file, in its order.
pub fn sizes(spec: &SweepSpec) -> Vec<Size> {
    if let Some(presets) = &spec.sizes.presets {
        return presets
            .iter()
            .map(|p| Size {
                name: p.clone(),
                model: table(&[("preset", toml::Value::String(p.clone()))]),
            })
            .collect();
    }
    let family = spec
        .sizes
        .family
        .as_ref()
        .expect("validated: presets or family");
    family
        .depths
        .iter()
        .map(|&depth| {
            let heads = ((family.aspect_ratio * depth as f64 / family.head_dim as f64).round()
                as usize)
                .max(1);
            let width = heads * family.head_dim;
            Size {
                name: format!("d{depth}w{width}"),
                model: table(&[
                    ("preset", toml::Value::String(family.base_preset.clone())),
                    ("dim", toml::Value::Integer(width as i64)),
                    ("depth", toml::Value::Integer(depth as i64)),
                    ("heads", toml::Value::Integer(heads as i64)),
                ]),
            }
        })
        .collect()
}

fn table(entries: &[(&str, toml::Value)]) -> toml::Table {
    entries
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// `1e13` -> `C1e13`, `3.2e13` -> `C3.2e13`.
fn budget_label(c: f64) -> String {
    let exp = c.log10().floor() as i32;
    let mantissa = c / 10f64.powi(exp);
    let m = format!("{:.2}", mantissa);
    let m = m.trim_end_matches('0').trim_end_matches('.');
    format!("C{m}e{exp}")
}

fn fraction_label(f: f64) -> String {
    let s = format!("{f}");
    s.replace('.', "p")
}

/// An error naming two runs of one name: a name is a run's folder and its key in
/// `sweep.jsonl`, so the second would silently be taken for the first.
fn unique_names(runs: &[RunPlan]) -> Result<(), String> {
    for (i, run) in runs.iter().enumerate() {
        let Some(other) = runs[..i].iter().find(|r| r.name == run.name) else {
            continue;
        };
        let budgets = |r: &RunPlan| {
            r.budget
                .map_or("equal steps".into(), |c| format!("C = {c:e}"))
        };
        return Err(format!(
            "two grid points have the run name {} ({}, fraction {}, seed {} and {}, fraction {}, \
             seed {}): budgets must differ in their first three significant digits, and sizes, \
             fractions and seeds must be distinct",
            run.name,
            budgets(other),
            other.fraction,
            other.seed,
            budgets(run),
            run.fraction,
            run.seed
        ));
    }
    Ok(())
}

impl SweepPlan {
    /// Expands `spec`; `origin` names the sweep file in errors, `data_dir` holds the datasets
    /// the sweep ingests (`@NAME`), `lead_mix_of` tells their lead mixes (a dataset whose mix
    /// is unknown, e.g. not ingested yet, is planned with full 12-lead samples and a warning).
    pub fn expand(
        spec: &SweepSpec,
        origin: &str,
        data_dir: &Path,
        lead_mix_of: LeadMixOf<'_>,
    ) -> Result<SweepPlan, SpecError> {
        let invalid = |reason: String| SpecError::Invalid {
            path: origin.to_string(),
            reason,
        };
        let sizes = sizes(spec);
        let budgets: Vec<Option<f64>> = match &spec.budget.flops {
            Some(flops) if spec.iso_flops() => flops.iter().map(|&c| Some(c)).collect(),
            _ => vec![None],
        };
        let mut runs = Vec::new();
        let (mut warnings, mut left_out) = (Vec::new(), Vec::new());
        for dataset in &spec.datasets {
            let url = SweepSpec::resolve_data(dataset.url(), data_dir);
            let mut mix: Option<Option<LeadMix>> = None;
            for size in &sizes {
                // The size at one step, to learn its FLOPs per step and width.
                let probe = resolve(spec, &url, size, 1, spec.seeds[0], None)
                    .map_err(|e| invalid(format!("size {}: {e}", size.name)))?;
                // The dataset's mix, read once (every size pretrains on the same data).
                let mix = mix.get_or_insert_with(|| {
                    let known = lead_mix(&probe, lead_mix_of);
                    if known.is_none() {
                        warnings.push(format!(
                            "dataset {}: its rows by present leads are unknown (not ingested \
                             yet, or ingested before ecgfm counted them): C is planned with \
                             full 12-lead samples",
                            dataset.name()
                        ));
                    }
                    known
                });
                let sample_flops = sample_flops(&probe.model, mix.as_ref());
                let epoch_windows = match probe.data.source.as_str() {
                    "synth" => None,
                    _ => mix.as_ref().map(|m| m.values().sum::<f64>()),
                };
                let per_step = sample_flops * (probe.samples_per_step() * spec.ranks) as f64;
                let lr = learning_rate(spec, &size.name, probe.model.dim).map_err(invalid)?;
                for &budget in &budgets {
                    for &fraction in &spec.data_fractions {
                        let steps = match budget {
                            Some(c) => (c / per_step).round() as u64,
                            None => {
                                let steps = spec.budget.steps.expect("validated");
                                ((steps as f64 * fraction).round() as u64).max(1)
                            }
                        };
                        if let Some(c) = budget {
                            if c / per_step > i64::MAX as f64 {
                                return Err(invalid(format!(
                                    "{} at C = {c:.3e} would train {:.3e} steps, more than a \
                                     run can count",
                                    size.name,
                                    c / per_step
                                )));
                            }
                            if steps == 0 || steps < spec.budget.min_steps {
                                let why = if steps == 0 {
                                    "no run trains 0 steps".to_string()
                                } else {
                                    format!("< min_steps {}", spec.budget.min_steps)
                                };
                                warnings.push(format!(
                                    "size {} at C = {c:.3e} would train {steps} steps ({why}): \
                                     left out",
                                    size.name
                                ));
                                left_out.push(LeftOut {
                                    dataset: dataset.name(),
                                    size: size.name.clone(),
                                    budget: c,
                                    steps,
                                    min_steps: spec.budget.min_steps,
                                });
                                continue;
                            }
                        }
                        for &seed in &spec.seeds {
                            let config = resolve(spec, &url, size, steps, seed, Some(lr))
                                .map_err(|e| invalid(format!("size {}: {e}", size.name)))?;
                            // A size that ends inside its warmup never trains at its peak
                            // learning rate, nor decays from it: no fair comparison.
                            if let Some(warning) = config.warning() {
                                return Err(invalid(format!(
                                    "size {} ({steps} steps): {warning}; in a sweep every run \
                                     must leave its warmup: set budget.warmup_fraction (each \
                                     run warms up over that fraction of its steps)",
                                    size.name
                                )));
                            }
                            let budget_part = budget.map_or("steps".to_string(), budget_label);
                            runs.push(RunPlan {
                                name: format!(
                                    "{}-{}-{budget_part}-f{}-s{seed}",
                                    dataset.name(),
                                    size.name,
                                    fraction_label(fraction)
                                ),
                                dataset: dataset.name(),
                                size: size.name.clone(),
                                budget,
                                fraction,
                                seed,
                                config,
                                ranks: spec.ranks,
                                sample_flops,
                                epoch_windows,
                            });
                        }
                    }
                }
            }
        }
        if runs.is_empty() {
            return Err(invalid(format!(
                "the sweep expands to no run: {}",
                warnings.join("; ")
            )));
        }
        unique_names(&runs).map_err(invalid)?;
        let ns: Vec<usize> = runs.iter().map(RunPlan::n).collect();
        let (lo, hi) = (ns.iter().min().unwrap(), ns.iter().max().unwrap());
        if (*hi as f64) < 10.0 * *lo as f64 {
            warnings.push(format!(
                "N spans {lo} to {hi} ({:.1}x), less than a decade: fitted exponents will be \
                 loose",
                *hi as f64 / (*lo).max(1) as f64
            ));
        }
        Ok(SweepPlan {
            spec: spec.clone(),
            sizes,
            runs,
            warnings,
            left_out,
        })
    }
}

/// The learning rate the sweep file gives `size` (of encoder width `width`).
fn learning_rate(spec: &SweepSpec, size: &str, width: usize) -> Result<f64, String> {
    let lr = &spec.lr;
    match lr.rule.as_str() {
        "constant" => Ok(lr.base.expect("validated")),
        "inverse-width" => Ok(lr.base.expect("validated")
            * lr.base_width.expect("validated") as f64
            / width as f64),
        _ => lr
            .table
            .as_ref()
            .and_then(|t| t.get(size).copied())
            .ok_or_else(|| format!("lr.table has no learning rate for size {size}")),
    }
}

/// One run's configuration: the base document, the size's model fields, the dataset, the steps,
/// the seed and (when known) the learning rate.
fn resolve(
    spec: &SweepSpec,
    url: &str,
    size: &Size,
    steps: u64,
    seed: u64,
    lr: Option<f64>,
) -> Result<TrainConfig, config::ConfigError> {
    let mut doc = spec.base.clone();
    let mut overlay = toml::Table::new();
    overlay.insert("model".into(), toml::Value::Table(size.model.clone()));
    config::merge(&mut doc, overlay);
    let int = |v: u64| toml::Value::Integer(v as i64);
    config::set_path(&mut doc, "train.steps", int(steps))?;
    config::set_path(&mut doc, "train.seed", int(seed))?;
    config::set_path(
        &mut doc,
        "data.source",
        toml::Value::String(url.to_string()),
    )?;
    if let Some(lr) = lr {
        config::set_path(&mut doc, "optim.lr", toml::Value::Float(lr))?;
    }
    if let Some(fraction) = spec.budget.warmup_fraction {
        let warmup = (steps as f64 * fraction).round() as u64;
        config::set_path(&mut doc, "optim.warmup_steps", int(warmup))?;
    }
    TrainConfig::from_table(doc)
}
