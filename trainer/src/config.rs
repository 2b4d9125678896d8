//! The run configuration: one TOML document with `[model]`, `[data]`, `[optim]` and `[train]`.
//!
//! Resolution order (later wins): built-in defaults, the `--config` file, command-line flags, then
//! `--set key=value` overrides. The `[model]` table names a `preset` (default `nano`); any model
//! field given explicitly overrides the preset's value. The resolved configuration is written to
//! the run directory as `config.toml`, and reading that file back resolves to the same config.

use crate::model::Recompute;
use crate::schedule::LrSchedule;
use crate::{AdamWConfig, ModelConfig, ModelError};
use ecgfm_kernels::Precision;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

mod keys;
mod toml_doc;

pub use keys::check_sections;
use keys::{check_keys, unknown_key_text};
pub use toml_doc::{apply_override, merge, read_toml_file, set_path, upgrade_legacy_keys};

/// Most micro-batches one optimiser step may accumulate: the step keeps a loss per micro-batch,
/// and a mistyped count (1e11) would allocate hundreds of GB before anything ran.
pub const MAX_ACCUM_STEPS: usize = 1 << 16;

/// What a split setting may name (`data.split`, and `--split` of `embed` and `bench loader`).
pub const SPLITS: [&str; 4] = ["train", "val", "test", "all"];

/// Why `n` CPU threads are too many for this process, if they are: more than 4 per core it may
/// use only slows every step (2000 threads took 5 minutes for one nano step on 2 cores, and
/// 100,000 never started). 0 means one per core.
pub fn too_many_threads(n: usize) -> Option<String> {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    (n > 4 * cores).then(|| {
        format!(
            "{n} threads on {cores} cores: give at most {} (4 per core; 0 for one per core)",
            4 * cores
        )
    })
}

/// Errors while reading, overriding or validating a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("override `{0}` must look like key=value (for example optim.lr=3e-4)")]
    BadOverride(String),
    #[error("override `{key}`: `{parent}` is not a table")]
    NotATable { key: String, parent: String },
    #[error("invalid [{section}] configuration: {source}")]
    Invalid {
        section: &'static str,
        source: toml::de::Error,
    },
    #[error("{}", unknown_key_text(.key, .section, .valid))]
    UnknownKey {
        key: String,
        /// The section (`train`), or empty for a top-level key.
        section: &'static str,
        valid: Vec<&'static str>,
    },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("invalid configuration: {0}")]
    Value(String),
}

/// Where training batches come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// `synth` for the built-in synthetic generator, or the URL of an ecgfm dataset
    /// (local path, file://, s3://, gs://, az://, memory://) written by `ecgfm data ingest`.
    pub source: String,
    /// Dataset split to train on (datasets only).
    pub split: String,
    /// Batches prefetched ahead of the training step (datasets only; 0 is taken as 1).
    pub prefetch_batches: usize,
    /// Row groups whose windows are shuffled together: the shuffle's reach, and the loader's
    /// memory (datasets only; part of the sample order, so fixed for a run).
    pub mix_row_groups: usize,
    /// Shuffle the row groups of the whole dataset before cutting mixing windows, so a batch
    /// draws from anywhere (several sources of a merged dataset); otherwise a window's row
    /// groups come from one shard or two (datasets only; part of the sample order).
    pub mix_across_shards: bool,
    /// Threads decoding and cropping batches (datasets only; results do not depend on it).
    pub decode_threads: usize,
    /// Fraction of synthetic records reduced to a single lead (lead II), so the lead-presence
    /// path of the model is exercised (synthetic source only).
    #[serde(serialize_with = "as_written")]
    pub synth_single_lead_fraction: f32,
    /// Each source's weight (a dataset's `source` name, e.g. `ptbxl`): times per epoch each of
    /// its training windows is read, each time with its own crop: `[data.repeat] ptbxl = 4` or
    /// `--set data.repeat.ptbxl=4`; 0 leaves a source out, 0.5 reads half of its windows (a new
    /// half each epoch), 2.5 all of them twice and half again; sources not named are read once
    /// (datasets only; the training split only, validation reads every window once).
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        serialize_with = "weights_as_written"
    )]
    pub repeat: BTreeMap<String, f64>,
}

/// The largest `data.repeat` weight, the loader's (`ecgfm_data::loader::MAX_WEIGHT`).
pub const MAX_SOURCE_WEIGHT: f64 = 10_000.0;

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            source: "synth".into(),
            split: "train".into(),
            prefetch_batches: 4,
            mix_row_groups: 4,
            mix_across_shards: false,
            decode_threads: 2,
            synth_single_lead_fraction: 0.0,
            repeat: BTreeMap::new(),
        }
    }
}

/// Optimiser and learning-rate schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// Peak learning rate, reached at the end of warmup.
    pub lr: f64,
    /// Final learning rate of the cosine decay.
    pub min_lr: f64,
    pub warmup_steps: u64,
    #[serde(serialize_with = "as_written")]
    pub weight_decay: f32,
    #[serde(serialize_with = "as_written")]
    pub beta1: f32,
    #[serde(serialize_with = "as_written")]
    pub beta2: f32,
    #[serde(serialize_with = "as_written")]
    pub eps: f32,
    /// Global-norm gradient clipping threshold; 0 disables clipping.
    #[serde(serialize_with = "as_written")]
    pub clip_norm: f32,
}

impl Default for OptimConfig {
    /// AdamW's settings are the optimiser's own defaults (`AdamWConfig::default`, which
    /// fine-tuning uses too), written once.
    fn default() -> Self {
        let adamw = AdamWConfig::default();
        OptimConfig {
            lr: 1e-3,
            min_lr: 1e-5,
            warmup_steps: 40,
            weight_decay: adamw.weight_decay,
            beta1: adamw.beta1,
            beta2: adamw.beta2,
            eps: adamw.eps,
            clip_norm: 1.0,
        }
    }
}

/// Where a run computes (`train.device`, `--device`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    Cpu,
    /// CUDA device N (`cuda:N`), or with `None` (`cuda`) the process's own: device 0 alone, a
    /// rank's by its local rank (`launch/src/device.rs`).
    Cuda(Option<usize>),
    /// `cuda` when a GPU is usable, else the CPU.
    Auto,
}

impl DeviceChoice {
    pub fn parse(text: &str) -> Result<DeviceChoice, ConfigError> {
        match text {
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(None)),
            "auto" => Ok(DeviceChoice::Auto),
            _ => text
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(|n| DeviceChoice::Cuda(Some(n)))
                .ok_or_else(|| {
                    ConfigError::Value(format!(
                        "train.device must be cpu, cuda, cuda:N or auto, got {text:?}"
                    ))
                }),
        }
    }
}

/// The precision of the matrix products (`train.precision`, `--precision`): `fp32`, `bf16`
/// (ecgfm_kernels::precision), or `auto`: bf16 on a GPU with bf16 tensor cores
/// (`tensor_cores`: compute capability 8.0 or newer), else fp32 (on the CPU bf16 is only
/// emulated, to check its numerics, and is slower).
pub fn parse_precision(text: &str, tensor_cores: bool) -> Result<Precision, ConfigError> {
    match text {
        "auto" if tensor_cores => Ok(Precision::Bf16),
        "auto" => Ok(Precision::Fp32),
        _ => text.parse().map_err(|_| {
            ConfigError::Value(format!(
                "train.precision must be fp32, bf16 or auto, got {text:?}"
            ))
        }),
    }
}

/// Length, batch and bookkeeping of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Optimiser steps in the whole run.
    pub steps: u64,
    /// Samples per micro-batch.
    pub batch_size: usize,
    /// Micro-batches accumulated into one optimiser step.
    pub accum_steps: usize,
    /// Seeds initialisation, masks and the synthetic data.
    pub seed: u64,
    /// Steps between metrics records.
    pub log_every: u64,
    /// Steps between checkpoints (0: only at the end).
    pub checkpoint_every: u64,
    /// Complete checkpoints kept: after each save every one but the newest N is removed (0:
    /// all are kept). Keep two or more where a damaged newest checkpoint must leave one to
    /// resume from.
    pub keep_checkpoints: usize,
    /// CPU threads (0: all cores).
    pub threads: usize,
    /// Steps between validation losses (0: only at the end); see `validation.rs`.
    pub val_every: u64,
    /// Windows of the fixed validation set (0: no validation); a `val` split with fewer windows
    /// is measured whole. Older files' `val_batches = N` reads as N x `batch_size` windows
    /// ([`upgrade_legacy_keys`]).
    pub val_windows: usize,
    /// On a dataset of several sources, also measure `val_windows` windows of each source's
    /// validation rows (`val_loss_by_source` in metrics.jsonl).
    pub val_by_source: bool,
    /// Where the model runs: "cpu", "cuda" (GPU 0 for one process; a data-parallel rank's own
    /// GPU by its local rank), "cuda:N" or "auto" (CUDA when a GPU is
    /// usable, else the CPU). It changes no result beyond rounding, so a resume may change it.
    pub device: String,
    /// What a non-finite loss or gradient does: `skip` the step (the update is dropped on every
    /// rank; three in a row stop the run) or `stop` the run at once.
    pub on_nonfinite: NonFinitePolicy,
    /// Activations rerun in the backward pass instead of kept (`Mae::set_recompute`): `none`,
    /// `pointwise` (each block's LayerNorms and GELU) or `blocks` (each block's whole forward;
    /// `true`, as older files say). Less memory, more work, the same bits, so a resume may
    /// change it.
    pub recompute: Recompute,
    /// Matrix products in `fp32`, `bf16` or `auto` (bf16 on a GPU with bf16 tensor cores, fp32
    /// on the CPU); see [`parse_precision`]. bf16 rounds every product otherwise than fp32, so a
    /// resume keeps fp32 or bf16 (a run whose precision changed midway would match neither).
    /// `auto` resolves on each device: a run resumed with `auto` on another kind of device
    /// changes precision there, which the resume warns of (checkpoints record the precision
    /// they ran in); a resume may name the precision instead (`auto` to `fp32`, or back).
    pub precision: String,
}

/// See `RunConfig::on_nonfinite`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NonFinitePolicy {
    Skip,
    Stop,
}

/// The default run (nano on synthetic ECGs) must learn something in about two minutes on two
/// cores. Its loss sits on a plateau at 74/75 = 0.987 (predicting zero for every norm-pix
/// target) for hundreds of steps. Measured on the development machine: it leaves the plateau
/// after about 550 steps at batch 32 (17,600 samples), about 700 at batch 16 (11,200 samples);
/// a learning rate of 3e-3 leaves it later than 1e-3, mask ratio 0.5 barely earlier. Batch 16
/// for 2400 steps costs what batch 32 does for 1200 and ends near 0.63 instead of 0.83
/// (README, "Two commands on a fresh machine").
impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            steps: 2400,
            batch_size: 16,
            accum_steps: 1,
            seed: 0,
            log_every: 10,
            checkpoint_every: 400,
            keep_checkpoints: 0,
            threads: 0,
            val_every: 100,
            val_windows: DEFAULT_VAL_WINDOWS,
            val_by_source: true,
            device: "auto".into(),
            on_nonfinite: NonFinitePolicy::Skip,
            recompute: Recompute::None,
            precision: "auto".into(),
        }
    }
}

/// `train.val_windows` by default: the size the published sweeps measured on (8 batches of 32),
/// at a few seconds per measurement of the default nano run.
pub const DEFAULT_VAL_WINDOWS: usize = 256;

/// The fully resolved configuration of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    pub preset: String,
    pub model: ModelConfig,
    pub data: DataConfig,
    pub optim: OptimConfig,
    pub train: RunConfig,
}

/// Takes the table `name` out of `doc` and reads it (its defaults where it is absent).
pub(super) fn section<T: serde::de::DeserializeOwned + Default>(
    doc: &mut toml::Table,
    name: &'static str,
) -> Result<T, ConfigError> {
    match doc.remove(name) {
        Some(value) => value.try_into().map_err(|source| ConfigError::Invalid {
            section: name,
            source,
        }),
        None => Ok(T::default()),
    }
}

impl TrainConfig {
    /// Resolves a TOML document (already merged with files, flags and overrides).
    pub fn from_table(mut doc: toml::Table) -> Result<TrainConfig, ConfigError> {
        upgrade_legacy_keys(&mut doc)?;
        // The values' types are checked as each section is read below.
        check_keys(&doc)?;
        let mut model_table = match doc.remove("model") {
            Some(toml::Value::Table(t)) => t,
            Some(_) => return Err(ConfigError::Value("`model` must be a table".into())),
            None => toml::Table::new(),
        };
        let preset = match model_table.remove("preset") {
            Some(toml::Value::String(s)) => s,
            Some(other) => {
                return Err(ConfigError::Value(format!(
                    "model.preset must be a string, got {other}"
                )))
            }
            None => "nano".to_string(),
        };
        let mut resolved = toml::Table::try_from(ModelConfig::preset(&preset)?)
            .map_err(|e| ConfigError::Value(e.to_string()))?;
        resolved.extend(model_table);
        let model: ModelConfig = resolved.try_into().map_err(|source| ConfigError::Invalid {
            section: "model",
            source,
        })?;
        model.validate()?;
        let config = TrainConfig {
            preset,
            model,
            data: section(&mut doc, "data")?,
            optim: section(&mut doc, "optim")?,
            train: section(&mut doc, "train")?,
        };
        config.check()?;
        Ok(config)
    }

    /// The built-in default configuration (nano on the synthetic generator).
    pub fn default_config() -> TrainConfig {
        TrainConfig::from_table(toml::Table::new()).expect("built-in defaults are valid")
    }

    fn check(&self) -> Result<(), ConfigError> {
        let t = &self.train;
        if t.steps == 0 || t.batch_size == 0 || t.accum_steps == 0 || t.log_every == 0 {
            return Err(ConfigError::Value(
                "train.steps, train.batch_size, train.accum_steps and train.log_every must be > 0"
                    .into(),
            ));
        }
        if t.accum_steps > MAX_ACCUM_STEPS {
            return Err(ConfigError::Value(format!(
                "train.accum_steps is {}: at most {MAX_ACCUM_STEPS} micro-batches a step (a larger \
                 global batch comes from a larger train.batch_size or more ranks)",
                t.accum_steps
            )));
        }
        DeviceChoice::parse(&t.device)?;
        parse_precision(&t.precision, false)?;
        if self.model.leads != 12 {
            return Err(ConfigError::Value(format!(
                "model.leads must be 12 (got {}): the synthetic generator and every ingested \
                 dataset give 12 lead slots, an absent lead masked",
                self.model.leads
            )));
        }
        let o = &self.optim;
        // The step computes in f32: a learning rate finite in f64 but not in f32 (1e300) would
        // train on infinities.
        let lr_ok = o.lr > 0.0 && (o.lr as f32).is_finite();
        if !(lr_ok && o.min_lr >= 0.0 && o.min_lr <= o.lr) {
            return Err(ConfigError::Value(format!(
                "optim.lr must be > 0 and at most {:e} (f32), and 0 <= optim.min_lr <= optim.lr \
                 (got lr {}, min_lr {})",
                f32::MAX,
                o.lr,
                o.min_lr
            )));
        }
        for (name, value) in [("weight_decay", o.weight_decay), ("clip_norm", o.clip_norm)] {
            if !(value >= 0.0 && value.is_finite()) {
                return Err(ConfigError::Value(format!(
                    "optim.{name} must be finite and >= 0 (got {value})"
                )));
            }
        }
        let eps_ok = o.eps > 0.0 && o.eps.is_finite();
        if !(0.0..1.0).contains(&o.beta1) || !(0.0..1.0).contains(&o.beta2) || !eps_ok {
            return Err(ConfigError::Value(format!(
                "optim.beta1 and optim.beta2 must be in [0, 1) and optim.eps finite and > 0 (got \
                 beta1 {}, beta2 {}, eps {})",
                o.beta1, o.beta2, o.eps
            )));
        }
        if !SPLITS.contains(&self.data.split.as_str()) {
            return Err(ConfigError::Value(format!(
                "data.split must be one of {} (got {:?})",
                SPLITS.join(", "),
                self.data.split
            )));
        }
        if !(0.0..=1.0).contains(&self.data.synth_single_lead_fraction) {
            return Err(ConfigError::Value(
                "data.synth_single_lead_fraction must be in [0, 1]".into(),
            ));
        }
        let weight_ok = |w: &f64| (0.0..=MAX_SOURCE_WEIGHT).contains(w);
        if let Some((source, w)) = self.data.repeat.iter().find(|(_, w)| !weight_ok(w)) {
            return Err(ConfigError::Value(format!(
                "data.repeat.{source} = {w}: a source's weight must be a number from 0 to \
                 {MAX_SOURCE_WEIGHT} (the loader's limit)"
            )));
        }
        if !self.data.repeat.is_empty() && self.data.source == "synth" {
            return Err(ConfigError::Value(
                "data.repeat repeats sources of a dataset; data.source is the synthetic generator"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Refuses thread counts this machine cannot serve ([`too_many_threads`]). Not part of
    /// [`TrainConfig::from_table`]: a run's saved configuration stays readable on a machine with
    /// fewer cores than the one that trained it (to evaluate or export it), and a resume there
    /// overrides the count (`--threads`).
    pub fn check_threads(&self) -> Result<(), ConfigError> {
        for (name, n, flag) in [
            ("train.threads", self.train.threads, " (--threads sets it)"),
            ("data.decode_threads", self.data.decode_threads, ""),
        ] {
            if let Some(why) = too_many_threads(n) {
                return Err(ConfigError::Value(format!("{name} = {n}{flag}: {why}")));
            }
        }
        Ok(())
    }

    /// What the user should know about this configuration before it trains: a run that ends
    /// inside its warmup never reaches `optim.lr` (a 6-step sweep run under the default warmup
    /// of 40 ended at an eighth of it, unsaid, until 2026-12-06).
    pub fn warning(&self) -> Option<String> {
        let (steps, warmup) = (self.train.steps, self.optim.warmup_steps);
        (warmup >= steps).then(|| {
            let last = self.schedule().lr_at(steps - 1);
            format!(
                "the run ends inside its warmup (optim.warmup_steps = {warmup}, train.steps = \
                 {steps}): its last step's learning rate is {last:.3e}, not optim.lr = {:e}; \
                 set optim.warmup_steps below train.steps",
                self.optim.lr
            )
        })
    }

    /// The model fields whose values differ from the preset's (a sweep's family sizes,
    /// `--set model.KEY=...`); none for an unknown preset.
    pub fn model_fields_over_preset(&self) -> Vec<String> {
        let fields = |m: &ModelConfig| toml::Table::try_from(m).expect("model config serialises");
        let Ok(preset) = ModelConfig::preset(&self.preset) else {
            return Vec::new();
        };
        let (preset, model) = (fields(&preset), fields(&self.model));
        let over = model
            .iter()
            .filter(|(key, value)| preset.get(*key) != Some(value));
        over.map(|(key, _)| key.clone()).collect()
    }

    /// The resolved configuration as a TOML document (what `config.toml` holds).
    pub fn to_table(&self) -> toml::Table {
        let mut model = toml::Table::try_from(&self.model).expect("model config serialises");
        model.insert("preset".into(), toml::Value::String(self.preset.clone()));
        let mut doc = toml::Table::new();
        doc.insert("model".into(), toml::Value::Table(model));
        for (name, value) in [
            ("data", toml::Value::try_from(&self.data)),
            ("optim", toml::Value::try_from(&self.optim)),
            ("train", toml::Value::try_from(&self.train)),
        ] {
            doc.insert(name.into(), value.expect("config section serialises"));
        }
        doc
    }

    pub fn to_toml_string(&self) -> String {
        toml::to_string_pretty(&self.to_table()).expect("config serialises")
    }

    /// AdamW hyper-parameters of the model's optimiser.
    pub fn adamw(&self) -> AdamWConfig {
        AdamWConfig {
            beta1: self.optim.beta1,
            beta2: self.optim.beta2,
            eps: self.optim.eps,
            weight_decay: self.optim.weight_decay,
        }
    }

    /// The learning-rate schedule over the whole run.
    pub fn schedule(&self) -> LrSchedule {
        LrSchedule {
            peak_lr: self.optim.lr,
            min_lr: self.optim.min_lr,
            warmup_steps: self.optim.warmup_steps,
            total_steps: self.train.steps,
        }
    }

    /// Clipping threshold, `None` when disabled.
    pub fn clip_norm(&self) -> Option<f32> {
        (self.optim.clip_norm > 0.0).then_some(self.optim.clip_norm)
    }

    /// Samples per optimiser step.
    pub fn samples_per_step(&self) -> usize {
        self.train.batch_size * self.train.accum_steps
    }
}

/// The f64 of the shortest decimal that reads back to `value` (`0.9`), not the widening of its
/// bits (`0.8999999761581421`): an f32 as a user wrote it, for JSON and TOML files.
pub fn as_written_f64(value: f32) -> f64 {
    value
        .to_string()
        .parse()
        .expect("an f32 prints as a number")
}

/// Writes an f32 setting as written ([`as_written_f64`]).
fn as_written<S: serde::Serializer>(value: &f32, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(as_written_f64(*value))
}

/// Source weights as a user writes them: whole ones as integers (`ptbxl = 4`, not `4.0`).
fn weights_as_written<S: serde::Serializer>(
    weights: &BTreeMap<String, f64>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = serializer.serialize_map(Some(weights.len()))?;
    for (source, &w) in weights {
        if w.fract() == 0.0 && w.abs() < 1e15 {
            map.serialize_entry(source, &(w as i64))?;
        } else {
            map.serialize_entry(source, &w)?;
        }
    }
    map.end()
}
