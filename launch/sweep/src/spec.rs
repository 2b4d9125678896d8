//! The sweep file (TOML): which sizes, seeds, data fractions, datasets and budgets to train, the
//! learning rate of each size, and the evaluation tasks run after each run. `SweepSpec::parse`
//! reads and validates it; `expand.rs` turns it into runs.
//!
//! ```toml
//! name = "demo"
//! seeds = [0, 1]
//! ranks = 1                         # data-parallel ranks per run (`ecgfm launch`)
//! data_fractions = [1.0]            # equal-steps only: each run trains fraction x steps
//! datasets = ["synth"]              # or { name = "ptbxl", url = "data/ptbxl" }
//! [sizes]
//! presets = ["nano", "tiny"]        # or: family = { depths = [1, 2, 4], aspect_ratio = 32 }
//! [lr]
//! rule = "inverse-width"            # lr = base * base_width / width; or "constant", "table"
//! base = 1e-3
//! base_width = 64
//! [budget]
//! kind = "iso-flops"                # or kind = "equal-steps", steps = 300
//! flops = [1e13, 3e13]
//! [base]                            # pretrain settings every run shares ([base.train], ...)
//! train = { batch_size = 32, val_every = 50 }
//! [[eval]]
//! task = "synth"                    # the vocabulary `ecgfm eval --labels` takes
//! data = "synth"                    # generated once per sweep, a dataset URL, or @name:
//! [ingest.ptbxl]                    # `ecgfm data ingest` once into DIR/data/ptbxl; "@ptbxl"
//! source = "../shared/data/ptbxl-500"   # in datasets or eval data refers to it
//! format = "ptbxl"
//! [merge.all]                       # `ecgfm data merge` of ingested datasets (or URLs) into
//! datasets = ["@ptbxl", "@cinc"]    # DIR/data/all, once; "@all" refers to it
//! ```

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Errors of a sweep file.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read sweep file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("sweep file {path} is not a valid sweep: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("sweep file {path}: {reason}")]
    Invalid { path: String, reason: String },
}

/// A dataset the sizes are pretrained on: `"synth"`, a URL, or a named URL.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum DatasetEntry {
    Url(String),
    Named { name: String, url: String },
}

impl DatasetEntry {
    /// The short name used in run names and reports.
    pub fn name(&self) -> String {
        match self {
            DatasetEntry::Named { name, .. } => name.clone(),
            DatasetEntry::Url(url) => url
                .trim_start_matches('@')
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or(url)
                .to_string(),
        }
    }

    /// What `data.source` of each run is set to.
    pub fn url(&self) -> &str {
        match self {
            DatasetEntry::Url(url) | DatasetEntry::Named { url, .. } => url,
        }
    }
}

/// Model sizes: named presets, or a family generated from one descriptor.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SizesSpec {
    pub presets: Option<Vec<String>>,
    pub family: Option<FamilySpec>,
}

/// A family at a fixed aspect ratio: for each depth, width = aspect_ratio x depth rounded to a
/// multiple of `head_dim` (heads = width / head_dim). N grows as depth^3, so depths 1..4 span
/// N over 64x.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FamilySpec {
    pub depths: Vec<usize>,
    pub aspect_ratio: f64,
    #[serde(default = "default_head_dim")]
    pub head_dim: usize,
    /// The preset the family's other settings (input shape, decoder, MLP ratio) come from.
    #[serde(default = "default_base_preset")]
    pub base_preset: String,
}

fn default_base_preset() -> String {
    "nano".into()
}

fn default_head_dim() -> usize {
    32
}

/// Learning rate of each size.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrSpec {
    /// `constant` (every size `base`), `inverse-width` (`base * base_width / width`) or
    /// `table` (`table[size name]`).
    pub rule: String,
    pub base: Option<f64>,
    pub base_width: Option<usize>,
    pub table: Option<BTreeMap<String, f64>>,
}

/// How long each run trains.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetSpec {
    /// `equal-steps` (every size `steps` optimiser steps at the same global batch) or `iso-flops`
    /// (each size steps = C / FLOPs per step for every C in `flops`).
    pub kind: String,
    pub steps: Option<u64>,
    pub flops: Option<Vec<f64>>,
    /// Iso-FLOPs: a (size, budget) pair with fewer steps than this is left out (too short to
    /// mean anything) and named in the plan's warnings.
    #[serde(default = "default_min_steps")]
    pub min_steps: u64,
    /// Warmup of each run as a fraction of its steps (overrides `optim.warmup_steps`), so short
    /// and long runs warm up alike.
    pub warmup_fraction: Option<f64>,
}

fn default_min_steps() -> u64 {
    20
}

/// One downstream evaluation run after every pretraining run (`ecgfm eval`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSpec {
    /// The label vocabulary (`synth`, `ptbxl_superclass`, `cinc2017`, `snomed`).
    pub task: String,
    /// `synth` (a labelled synthetic dataset written once into the sweep folder) or a URL.
    pub data: String,
    /// Records of the generated synthetic dataset.
    #[serde(default = "default_synth_records")]
    pub synth_records: usize,
    /// Protocols run after every run: `probe` (the report's verdict uses it), `finetune`.
    #[serde(default = "default_protocols")]
    pub protocols: Vec<String>,
    /// Also train each size from scratch (first seed) as the baseline of the AUROC plot.
    #[serde(default)]
    pub scratch: bool,
    /// Extra arguments passed to `ecgfm eval` as they are (e.g. `["--epochs", "2"]`).
    #[serde(default)]
    pub args: Vec<String>,
}

fn default_protocols() -> Vec<String> {
    vec!["probe".into()]
}

/// The generator seed of a sweep's synthetic evaluation datasets (`data = "synth"`): one no run
/// pretrains with (`seeds` may not hold it), so no run was pretrained on them. Until
/// 2026-12-07 they were written with seed 0, the first run seed's stream, whose samples the
/// runs had pretrained on.
pub const EVAL_SYNTH_SEED: u64 = 0xE7A1_5EED;

fn default_synth_records() -> usize {
    600
}

/// A dataset the sweep ingests once (`ecgfm data ingest SOURCE --format F --out DIR/data/NAME
/// ARGS...`), referred to as `@NAME`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSpec {
    pub source: String,
    pub format: String,
    #[serde(default)]
    pub args: Vec<String>,
}

/// Datasets the sweep merges once (`ecgfm data merge INPUTS... --out DIR/data/NAME`), referred
/// to as `@NAME`: each input an ingested `@NAME` or a URL.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeSpec {
    pub datasets: Vec<String>,
}

/// A whole sweep file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    pub name: String,
    pub sizes: SizesSpec,
    pub lr: LrSpec,
    pub budget: BudgetSpec,
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    #[serde(default = "default_fractions")]
    pub data_fractions: Vec<f64>,
    #[serde(default = "default_datasets")]
    pub datasets: Vec<DatasetEntry>,
    /// Pretrain settings every run shares: a config document (`[base.model]`, `[base.data]`,
    /// `[base.optim]`, `[base.train]`) as `ecgfm pretrain --config` reads it.
    #[serde(default)]
    pub base: toml::Table,
    #[serde(default)]
    pub eval: Vec<EvalSpec>,
    #[serde(default)]
    pub ingest: BTreeMap<String, IngestSpec>,
    #[serde(default)]
    pub merge: BTreeMap<String, MergeSpec>,
    /// Data-parallel ranks of every run (`ecgfm launch --nproc-per-node`); the global batch is
    /// ranks x batch size x accumulation.
    #[serde(default = "default_ranks")]
    pub ranks: usize,
}

fn default_ranks() -> usize {
    1
}

fn default_seeds() -> Vec<u64> {
    vec![0]
}

fn default_fractions() -> Vec<f64> {
    vec![1.0]
}

fn default_datasets() -> Vec<DatasetEntry> {
    vec![DatasetEntry::Url("synth".into())]
}

/// The model fields a size sets; the base config may not set them.
const SIZE_FIELDS: [&str; 4] = ["dim", "depth", "heads", "preset"];

impl SweepSpec {
    /// Reads and validates the sweep file at `path`.
    pub fn read(path: &Path) -> Result<SweepSpec, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.display().to_string(),
            source,
        })?;
        SweepSpec::parse(&text, &path.display().to_string())
    }

    /// Parses and validates a sweep file's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<SweepSpec, SpecError> {
        let spec: SweepSpec = toml::from_str(text).map_err(|source| SpecError::Parse {
            path: origin.to_string(),
            source,
        })?;
        spec.validate().map_err(|reason| SpecError::Invalid {
            path: origin.to_string(),
            reason,
        })?;
        Ok(spec)
    }

    /// The URL `reference` stands for: `@NAME` is the sweep's ingested or merged `data_dir/NAME`.
    pub fn resolve_data(reference: &str, data_dir: &Path) -> String {
        match reference.strip_prefix('@') {
            Some(name) => data_dir.join(name).display().to_string(),
            None => reference.to_string(),
        }
    }

    /// Whether the budget is iso-FLOPs.
    pub fn iso_flops(&self) -> bool {
        self.budget.kind == "iso-flops"
    }

    fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() || !self.name.chars().all(safe_name_char) {
            return Err(format!(
                "name {:?} must be non-empty letters, digits, '-', '_' or '.'",
                self.name
            ));
        }
        if self.ranks == 0 {
            return Err("ranks must be at least 1".into());
        }
        self.validate_sizes()?;
        self.validate_lr()?;
        self.validate_budget()?;
        if self.seeds.is_empty() {
            return Err("seeds must list at least one seed".into());
        }
        if has_duplicates(&self.seeds) {
            return Err(format!("seeds {:?} repeat a seed", self.seeds));
        }
        if self.seeds.contains(&EVAL_SYNTH_SEED) {
            return Err(format!(
                "seeds may not hold {EVAL_SYNTH_SEED}, the seed of the synthetic evaluation \
                 datasets (a run pretrained on it would be evaluated on its own samples)"
            ));
        }
        if self.data_fractions.is_empty()
            || self.data_fractions.iter().any(|&f| !(f > 0.0 && f <= 1.0))
        {
            return Err(format!(
                "data_fractions {:?} must be non-empty, each in (0, 1]",
                self.data_fractions
            ));
        }
        if self.iso_flops() && self.data_fractions != [1.0] {
            return Err(
                "data_fractions apply to equal-steps budgets only: under iso-flops \
                 D = C / (FLOPs per sample) already varies with N"
                    .into(),
            );
        }
        if self.datasets.is_empty() {
            return Err("datasets must list at least one dataset (\"synth\" or a URL)".into());
        }
        let names: Vec<String> = self.datasets.iter().map(DatasetEntry::name).collect();
        if names
            .iter()
            .any(|n| n.is_empty() || !n.chars().all(safe_name_char))
        {
            return Err(format!(
                "dataset names {names:?} must be letters, digits, '-', '_' or '.' (give \
                 {{ name = \"...\", url = \"...\" }} for URLs that end otherwise)"
            ));
        }
        if has_duplicates(&names) {
            return Err(format!("datasets {names:?} repeat a name"));
        }
        if let Some(toml::Value::Table(model)) = self.base.get("model") {
            if let Some(field) = SIZE_FIELDS.iter().find(|f| model.contains_key(**f)) {
                return Err(format!(
                    "base.model.{field} is set by each size: take it out of [base.model] \
                     (the family's base preset is [sizes.family] base_preset)"
                ));
            }
        }
        // What the sweep sets for each run would be dropped silently (`base.optim.lr` was,
        // until 2026-12-06).
        let warmup = self
            .budget
            .warmup_fraction
            .map(|_| "budget.warmup_fraction");
        let set_by_sweep = [
            ("train", "steps", Some("the budget")),
            ("train", "seed", Some("seeds")),
            ("optim", "lr", Some("[lr]")),
            ("optim", "warmup_steps", warmup),
        ];
        for (section, key, by) in set_by_sweep {
            let Some(by) = by else { continue };
            if let Some(toml::Value::Table(table)) = self.base.get(section) {
                if table.contains_key(key) {
                    return Err(format!(
                        "base.{section}.{key} is set by the sweep ({by}): take it out"
                    ));
                }
            }
        }
        for (i, e) in self.eval.iter().enumerate() {
            if e.task.is_empty() || e.data.is_empty() {
                return Err("each [[eval]] needs a task (label vocabulary) and data".into());
            }
            if self.eval[..i].iter().any(|earlier| earlier.task == e.task) {
                return Err(format!(
                    "[[eval]] task {:?} appears twice: each task is evaluated once per run (its \
                     result files are named by task and protocol); list its protocols in one \
                     [[eval]]",
                    e.task
                ));
            }
            if let Some(p) = e
                .protocols
                .iter()
                .find(|p| !["probe", "finetune"].contains(&p.as_str()))
            {
                return Err(format!(
                    "eval protocol {p:?} is not \"probe\" or \"finetune\" (the from-scratch \
                     baseline is scratch = true)"
                ));
            }
        }
        let references = self
            .datasets
            .iter()
            .map(DatasetEntry::url)
            .chain(self.eval.iter().map(|e| e.data.as_str()));
        for reference in references {
            if let Some(name) = reference.strip_prefix('@') {
                if !self.ingest.contains_key(name) && !self.merge.contains_key(name) {
                    return Err(format!(
                        "{reference} names no [ingest.{name}] or [merge.{name}] table"
                    ));
                }
            }
        }
        let names = self.ingest.keys().chain(self.merge.keys());
        if let Some(name) = names.clone().find(|n| !n.chars().all(safe_name_char)) {
            return Err(format!(
                "ingest or merge name {name:?} must be letters, digits, '-', '_' or '.'"
            ));
        }
        if let Some(name) = self.merge.keys().find(|n| self.ingest.contains_key(*n)) {
            return Err(format!("{name:?} is both an [ingest] and a [merge] table"));
        }
        self.validate_merges()
    }

    fn validate_merges(&self) -> Result<(), String> {
        for (name, merge) in &self.merge {
            if merge.datasets.len() < 2 {
                return Err(format!("[merge.{name}] needs two or more datasets"));
            }
            for input in &merge.datasets {
                if let Some(ingested) = input.strip_prefix('@') {
                    if !self.ingest.contains_key(ingested) {
                        return Err(format!(
                            "[merge.{name}]: {input} names no [ingest.{ingested}] table (a merge \
                             takes ingested datasets or URLs)"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn validate_sizes(&self) -> Result<(), String> {
        match (&self.sizes.presets, &self.sizes.family) {
            (Some(_), Some(_)) | (None, None) => {
                Err("[sizes] needs exactly one of presets = [...] or family = {...}".into())
            }
            (Some(presets), None) => {
                if presets.is_empty() {
                    return Err("sizes.presets is empty".into());
                }
                if has_duplicates(presets) {
                    return Err(format!("sizes.presets {presets:?} repeat a size"));
                }
                Ok(())
            }
            (None, Some(f)) => {
                if f.depths.is_empty() || f.depths.contains(&0) {
                    return Err("sizes.family.depths must list positive depths".into());
                }
                if has_duplicates(&f.depths) {
                    return Err(format!("sizes.family.depths {:?} repeat a depth", f.depths));
                }
                if !(f.aspect_ratio.is_finite() && f.aspect_ratio > 0.0) {
                    return Err("sizes.family.aspect_ratio must be > 0 (width / depth)".into());
                }
                if f.head_dim < 2 || f.head_dim % 2 != 0 {
                    return Err("sizes.family.head_dim must be even and >= 2".into());
                }
                Ok(())
            }
        }
    }

    fn validate_lr(&self) -> Result<(), String> {
        let lr = &self.lr;
        let positive = |v: Option<f64>, what: &str| match v {
            Some(v) if v.is_finite() && v > 0.0 => Ok(()),
            Some(v) => Err(format!("lr.{what} must be finite and > 0, got {v}")),
            None => Err(format!("lr.rule = \"{}\" needs lr.{what}", lr.rule)),
        };
        match lr.rule.as_str() {
            "constant" => positive(lr.base, "base"),
            "inverse-width" => {
                positive(lr.base, "base")?;
                positive(lr.base_width.map(|w| w as f64), "base_width")
            }
            "table" => {
                let table = lr
                    .table
                    .as_ref()
                    .ok_or("lr.rule = \"table\" needs [lr.table]")?;
                match table.iter().find(|(_, &v)| !(v.is_finite() && v > 0.0)) {
                    Some((size, v)) => {
                        Err(format!("lr.table.{size} must be finite and > 0, got {v}"))
                    }
                    None => Ok(()),
                }
            }
            other => Err(format!(
                "lr.rule {other:?} is not one of \"constant\", \"inverse-width\", \"table\""
            )),
        }
    }

    fn validate_budget(&self) -> Result<(), String> {
        let b = &self.budget;
        if let Some(f) = b.warmup_fraction {
            if !(0.0..1.0).contains(&f) {
                return Err(format!("budget.warmup_fraction must be in [0, 1), got {f}"));
            }
        }
        match b.kind.as_str() {
            "equal-steps" => match (b.steps, &b.flops) {
                (Some(s), None) if s > 0 => Ok(()),
                (_, Some(_)) => Err("budget.flops belongs to kind = \"iso-flops\"".into()),
                _ => Err("budget kind = \"equal-steps\" needs steps > 0".into()),
            },
            "iso-flops" => {
                if b.steps.is_some() {
                    return Err("budget.steps belongs to kind = \"equal-steps\"".into());
                }
                let flops = b
                    .flops
                    .as_ref()
                    .ok_or("budget kind = \"iso-flops\" needs flops = [C_1, C_2, ...]")?;
                if flops.is_empty() || flops.iter().any(|c| !(c.is_finite() && *c > 0.0)) {
                    return Err(format!("budget.flops {flops:?} must be positive numbers"));
                }
                if flops.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(format!(
                        "budget.flops {flops:?} must increase: C_1 < C_2 < ..."
                    ));
                }
                Ok(())
            }
            other => Err(format!(
                "budget.kind {other:?} is not \"equal-steps\" or \"iso-flops\""
            )),
        }
    }
}

fn safe_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

fn has_duplicates<T: PartialEq>(items: &[T]) -> bool {
    items
        .iter()
        .enumerate()
        .any(|(i, a)| items[..i].contains(a))
}
