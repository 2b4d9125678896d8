//! `DIR/sweep.jsonl`: one JSON line per finished run of a sweep, with what the report needs:
//! the run's size (N, total parameters), data (D in samples and tokens), compute (C), final
//! losses, downstream results with their intervals, and wall time. Lines are appended as runs
//! finish; a run recorded twice (a sweep re-run by hand) counts with its last line.

use crate::expand::RunPlan;
use ecgfm_trainer::eval::UnitScores;
use ecgfm_trainer::ModelConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One downstream result of a run (`ecgfm eval` on one task).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalResult {
    /// The label vocabulary, e.g. `synth`.
    pub task: String,
    /// `probe`, `finetune` or `scratch`.
    pub protocol: String,
    /// Fraction of the train labels used.
    pub fraction: f64,
    pub macro_auroc: f64,
    /// 95% bootstrap interval over the test set, when the result file gives one.
    pub macro_auroc_ci: Option<[f64; 2]>,
    /// Macro AUROC on the validation split (what the report picks a best size by, so that the
    /// test set judges the choice without having made it); absent in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_macro_auroc: Option<f64>,
    /// The scored test units, for paired comparisons: read from the run's result file by the
    /// report (`read_result_files`), never written to sweep.jsonl.
    #[serde(skip)]
    pub units: Option<UnitScores>,
}

/// The result file `ecgfm eval` writes for a sweep's run on `task` under `protocol`.
pub fn eval_file(run_dir: &Path, task: &str, protocol: &str) -> PathBuf {
    run_dir.join(format!("eval-{task}-{protocol}.json"))
}

/// A run's result file on a task under a protocol, as the report read it from the run folder.
#[derive(Clone, Debug)]
pub struct ResultFile {
    pub run: String,
    pub task: String,
    pub protocol: String,
    /// Where it was read.
    pub path: PathBuf,
    /// Its contents, or why they could not be read.
    pub json: Result<serde_json::Value, String>,
}

/// Where the result files of run `r` of the sweep in `dir` lie: its run folder, or where that
/// is absent and `dir` is a published `results/` folder (or holds one), `results/RUN/`.
pub fn result_dir(dir: &Path, r: &SweepRecord) -> PathBuf {
    let run_dir = dir.join(&r.run_dir);
    if run_dir.is_dir() {
        return run_dir;
    }
    [
        dir.join(&r.run),
        dir.join(crate::results::FOLDER).join(&r.run),
    ]
    .into_iter()
    .find(|d| d.is_dir())
    .unwrap_or(run_dir)
}

/// Reads the result files of `records` (run folders under `dir`, or `results/RUN/`:
/// `result_dir`), each once, and gives each downstream result its scored test units from its
/// file where the file holds them (files written before ecgfm saved them do not: those results
/// are compared by their intervals only). Returns the files read, which the report publishes
/// (`results::write`). A result without its validation AUROC (a record of before 2026-12-07)
/// takes the file's.
pub fn read_result_files(records: &mut [SweepRecord], dir: &Path) -> Vec<ResultFile> {
    let mut files = Vec::new();
    for r in records.iter_mut() {
        let run_dir = result_dir(dir, r);
        let mut keys: Vec<(String, String)> = Vec::new();
        for e in &r.eval {
            let key = (e.task.clone(), e.protocol.clone());
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        for (task, protocol) in keys {
            let path = eval_file(&run_dir, &task, &protocol);
            let json = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|text| {
                    serde_json::from_str(&text).map_err(|e| format!("invalid JSON: {e}"))
                });
            if let Ok(json) = &json {
                let found = parse_eval_file(json, &task);
                let same = |e: &&mut EvalResult| e.task == task && e.protocol == protocol;
                for e in r.eval.iter_mut().filter(same) {
                    let file = (found.iter())
                        .find(|f| f.protocol == e.protocol && f.fraction == e.fraction);
                    e.units = file.and_then(|f| f.units.clone());
                    // Records written before sweep.jsonl kept it have it in the file.
                    e.val_macro_auroc = e.val_macro_auroc.or(file.and_then(|f| f.val_macro_auroc));
                }
            }
            files.push(ResultFile {
                run: r.run.clone(),
                task,
                protocol,
                path,
                json,
            });
        }
    }
    files
}

/// One finished run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepRecord {
    pub run: String,
    pub dataset: String,
    pub size: String,
    /// Iso-FLOPs budget C this run belongs to (`None`: equal steps).
    pub budget: Option<f64>,
    pub fraction: f64,
    pub seed: u64,
    pub dim: usize,
    pub depth: usize,
    /// Non-embedding encoder parameters N.
    pub n: usize,
    /// Every parameter, encoder and decoder.
    pub params: usize,
    pub steps: u64,
    pub batch: usize,
    pub lr: f64,
    /// D: samples seen.
    pub samples: u64,
    /// Patches seen (samples x leads x patches per lead).
    pub tokens: u64,
    /// Training FLOPs C as planned (the dataset's mean sample cost by present leads, see
    /// `expand`).
    pub flops: f64,
    /// Training FLOPs the run did, counted from the leads its batches had (`flops` of its last
    /// metrics record). Absent in records of older sweeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flops_done: Option<f64>,
    pub final_train_loss: Option<f64>,
    pub final_val_loss: Option<f64>,
    /// Each source's final validation loss, on a dataset of several sources (`val_by_source`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub final_val_loss_by_source: BTreeMap<String, f64>,
    /// The loss of the trivial solution (`trivial_loss`); absent in records of older sweeps,
    /// where the report reads it from the run's `config.toml`.
    #[serde(default)]
    pub trivial_loss: Option<f64>,
    /// Seconds of training (across resumes) and of evaluation.
    /// Windows one epoch of the pretraining split reads (`data.repeat` weights counted); absent
    /// for the synthetic generator (it never repeats) and in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch_windows: Option<f64>,
    /// The definition of the validation set `final_val_loss` was measured on
    /// (`ecgfm_trainer::validation::VALIDATION_VERSION`, from the run's last checkpoint): losses
    /// compare only on one set. Absent for runs whose checkpoints predate it (2026-12-04, when the
    /// set still followed the run's seed and reading order) and in records of older sweeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_version: Option<u32>,
    pub train_s: f64,
    pub eval_s: f64,
    /// The run directory, relative to the sweep folder.
    pub run_dir: String,
    pub eval: Vec<EvalResult>,
}

impl SweepRecord {
    /// The record of `run` before its results are filled in.
    pub fn planned(run: &RunPlan, run_dir: &str) -> SweepRecord {
        let c = &run.config;
        SweepRecord {
            run: run.name.clone(),
            dataset: run.dataset.clone(),
            size: run.size.clone(),
            budget: run.budget,
            fraction: run.fraction,
            seed: run.seed,
            dim: c.model.dim,
            depth: c.model.depth,
            n: run.n(),
            params: run.total_params(),
            steps: run.steps(),
            batch: run.global_batch(),
            lr: c.optim.lr,
            samples: run.samples(),
            tokens: run.tokens(),
            flops: run.flops(),
            flops_done: None,
            final_train_loss: None,
            final_val_loss: None,
            final_val_loss_by_source: BTreeMap::new(),
            trivial_loss: trivial_loss(&c.model),
            epoch_windows: run.epoch_windows,
            validation_version: None,
            train_s: 0.0,
            eval_s: 0.0,
            run_dir: run_dir.to_string(),
            eval: Vec::new(),
        }
    }

    /// Passes over the pretraining data: samples seen over the windows of an epoch (`None`
    /// for the synthetic generator).
    pub fn passes(&self) -> Option<f64> {
        self.epoch_windows
            .filter(|&w| w > 0.0)
            .map(|w| self.samples as f64 / w)
    }

    /// Training FLOPs per step: as done where counted, else as planned.
    pub fn flops_per_step_done(&self) -> f64 {
        self.flops_done.unwrap_or(self.flops) / self.steps.max(1) as f64
    }

    /// The result of `task` under `protocol` at label fraction 1 (or the largest present).
    pub fn eval_result(&self, task: &str, protocol: &str) -> Option<&EvalResult> {
        self.eval
            .iter()
            .filter(|e| e.task == task && e.protocol == protocol)
            .max_by(|a, b| a.fraction.total_cmp(&b.fraction))
    }
}

/// The masked reconstruction loss of predicting zero for every norm-pix target, i.e. each
/// masked patch's mean: (P - 1) / P, the targets being normalised by the unbiased variance
/// (docs/model.md). Training sits on this plateau before it learns anything. `None` without
/// norm-pix targets, where it depends on the data.
pub fn trivial_loss(model: &ModelConfig) -> Option<f64> {
    model
        .norm_pix
        .then(|| (model.patch - 1) as f64 / model.patch as f64)
}

/// Appends `record` as one line (one write, so concurrent array tasks do not interleave).
pub fn append(path: &Path, record: &SweepRecord) -> std::io::Result<()> {
    let mut line = serde_json::to_string(record).map_err(std::io::Error::other)?;
    line.push('\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(line.as_bytes())?;
    file.sync_data()
}

/// Every record of `path`, the last line of each run winning, in first-seen order. Lines that
/// do not parse (a torn last line) are counted in the second value.
pub fn read(path: &Path) -> std::io::Result<(Vec<SweepRecord>, usize)> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let mut records: Vec<SweepRecord> = Vec::new();
    let mut bad = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<SweepRecord>(line) {
            Ok(r) => match records.iter_mut().find(|old| old.run == r.run) {
                Some(old) => *old = r,
                None => records.push(r),
            },
            Err(_) => bad += 1,
        }
    }
    Ok((records, bad))
}

/// The results in an `ecgfm eval` result file: every JSON object holding `macro_auroc`, with its
/// `protocol` and label `fraction` (1 when absent) and `macro_auroc_ci`.
pub fn parse_eval_file(json: &serde_json::Value, task: &str) -> Vec<EvalResult> {
    let mut out = Vec::new();
    collect(json, task, &mut out);
    out
}

fn collect(value: &serde_json::Value, task: &str, out: &mut Vec<EvalResult>) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(auroc) = map.get("macro_auroc").and_then(|v| v.as_f64()) {
                let ci = map
                    .get("macro_auroc_ci")
                    .and_then(|v| v.as_array())
                    .and_then(|a| Some([a.first()?.as_f64()?, a.get(1)?.as_f64()?]));
                out.push(EvalResult {
                    task: task.to_string(),
                    protocol: map
                        .get("protocol")
                        .and_then(|v| v.as_str())
                        .unwrap_or("probe")
                        .to_string(),
                    fraction: map
                        .get("fraction")
                        .or_else(|| map.get("label_fraction"))
                        .and_then(|v| v.as_f64())
                        .unwrap_or(1.0),
                    macro_auroc: auroc,
                    macro_auroc_ci: ci,
                    val_macro_auroc: map.get("val_macro_auroc").and_then(|v| v.as_f64()),
                    units: map
                        .get("test_units")
                        .and_then(|u| serde_json::from_value(u.clone()).ok()),
                });
                return;
            }
            map.values().for_each(|v| collect(v, task, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect(v, task, out)),
        _ => {}
    }
}
