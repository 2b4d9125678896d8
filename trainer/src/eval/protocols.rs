//! Running the protocols: the linear probe (frozen pretrained encoder, logistic regression on
//! its features with the L2 strength picked on validation), fine-tuning, training from scratch,
//! and the probe of the randomly initialised encoder (the probe's baseline), each at every label
//! fraction, each scored on the test split.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::time::Instant;

use ecgfm_kernels::Backend;
use serde::Serialize;

use super::batches::{features, scores, WindowSource};
use super::finetune::{finetune, FinetuneSettings};
use super::fractions::stratified_subset;
use super::logistic::{FitData, Logistic};
use super::progress::EvalProgress;
use super::report::{interval_noise, test_metrics, Protocol, ProtocolResult, TestRows, UnitScores};
use super::scoring::{targets_of, ScoreBy, Scored, Validation};
use super::task::{Part, Task};
use super::units::{UnitOutcome, UnitStore};
use super::EvalError;
use crate::model::{Encoder, HeadSpec, ModelConfig, Pooling};

/// The fewest bootstrap resamples that give a 95% interval (0 gives none).
pub const MIN_BOOTSTRAP: usize = 200;

/// Everything the protocols can be told.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalSettings {
    pub protocols: Vec<Protocol>,
    /// Label fractions in (0, 1].
    pub fractions: Vec<f64>,
    /// Seeds the label fractions, head and scratch initialisation, batch order and bootstrap.
    pub seed: u64,
    pub pooling: Pooling,
    /// Windows per encoder batch.
    pub batch_size: usize,
    pub finetune: FinetuneSettings,
    /// L2 strengths the probe tries (the best validation macro AUROC wins).
    pub l2_grid: Vec<f64>,
    /// Bootstrap resamples of the test set.
    pub bootstrap: usize,
    /// What validation and test score: each window, or each record (its windows' mean scores).
    pub score_by: ScoreBy,
}

impl EvalSettings {
    /// Refuses settings no protocol can run with, before any data is read: a batch of no
    /// windows, a label fraction outside (0, 1] or given twice, 1 to 199 bootstrap resamples, no
    /// epoch for the protocols that train.
    pub fn check(&self) -> Result<(), EvalError> {
        let bad = |reason: String| Err(EvalError::Task(reason));
        if self.batch_size == 0 {
            return bad("--batch-size must be at least 1".into());
        }
        if let Some(fraction) = self.fractions.iter().find(|f| !(**f > 0.0 && **f <= 1.0)) {
            return bad(format!("label fraction {fraction} is not in (0, 1]"));
        }
        if let Some((i, fraction)) =
            (self.fractions.iter().enumerate()).find(|(i, f)| self.fractions[..*i].contains(f))
        {
            return bad(format!(
                "label fraction {fraction} is given twice (--fractions entry {})",
                i + 1
            ));
        }
        if (1..MIN_BOOTSTRAP).contains(&self.bootstrap) {
            return bad(format!(
                "--bootstrap must be 0 (no intervals) or at least {MIN_BOOTSTRAP}, got {}: fewer \
                 resamples give 95% intervals that need not even contain the estimate",
                self.bootstrap
            ));
        }
        let ft = &self.finetune;
        if !(ft.lr > 0.0 && ft.lr.is_finite()) {
            return bad(format!("--lr must be finite and > 0, got {}", ft.lr));
        }
        if !(ft.layer_decay > 0.0 && ft.layer_decay <= 1.0) {
            return bad(format!(
                "--layer-decay must be in (0, 1] (1: none), got {}",
                ft.layer_decay
            ));
        }
        let trains = |p: &Protocol| matches!(p, Protocol::Finetune | Protocol::Scratch);
        if self.finetune.epochs == 0 && self.protocols.iter().any(trains) {
            return bad(
                "--epochs must be at least 1 for fine-tuning and training from scratch".into(),
            );
        }
        if self.finetune.patience == 0 && self.protocols.iter().any(trains) {
            return bad(
                "--patience must be at least 1: the epochs without a better validation macro \
                 AUROC before fine-tuning stops"
                    .into(),
            );
        }
        Ok(())
    }
}

impl Default for EvalSettings {
    fn default() -> Self {
        EvalSettings {
            protocols: Protocol::ALL.to_vec(),
            fractions: vec![1.0],
            seed: 0,
            pooling: Pooling::Mean,
            batch_size: 32,
            finetune: FinetuneSettings::default(),
            l2_grid: vec![10.0, 1.0, 0.1, 1e-2, 1e-3, 1e-4],
            bootstrap: 1000,
            score_by: ScoreBy::Window,
        }
    }
}

/// The pretrained encoder, the task and its windows.
pub struct EvalInputs<'a> {
    pub model: &'a ModelConfig,
    /// The checkpoint's encoder tensors (`ParamLayout::encoder` order).
    pub encoder_params: &'a [f32],
    pub task: &'a Task,
    pub source: &'a dyn WindowSource,
}

/// Fewer labelled records than this in validation or test earn a warning (the bootstrap
/// resamples records, or patients, not windows).
const SMALL_SPLIT: usize = 30;

/// The warnings a task deserves before any number is read: small splits, classes that a split
/// cannot score.
pub fn task_warnings(task: &Task) -> Vec<String> {
    let mut warnings = Vec::new();
    warnings.extend(task.outside_classes_note());
    for part in [Part::Val, Part::Test] {
        let n = task.rows(part).len();
        let records = task.records_in(part);
        if records < SMALL_SPLIT {
            warnings.push(format!(
                "the {} split has only {records} labelled records ({n} windows): its metrics \
                 and intervals say little",
                part.name()
            ));
        }
        for (class, positives) in task.classes.iter().zip(task.positives(part)) {
            if positives == 0 || positives == n {
                let what = if positives == 0 {
                    "no positive"
                } else {
                    "no negative"
                };
                let threshold = match (part, positives) {
                    (Part::Val, 0) => {
                        "; no F1 threshold can be picked for it, so its test F1 is null and left \
                         out of the thresholded macro F1"
                    }
                    _ => "",
                };
                warnings.push(format!(
                    "class {class} has {what} window in the {} split: its AUROC there is \
                     undefined and left out of the macro averages{threshold}",
                    part.name()
                ));
            }
        }
    }
    warnings
}

/// Runs every protocol at every fraction, one after the other on `backend` (each builds its
/// encoder on it and hands it back). `progress` receives log lines and the windows done; `store`
/// keeps each unit (protocol at fraction) as it finishes, and gives back those an interrupted
/// run of the same evaluation finished, which are scored as they are instead of run again.
pub fn run_protocols<B: Backend>(
    backend: B,
    inputs: &EvalInputs<'_>,
    settings: &EvalSettings,
    progress: &mut dyn EvalProgress,
    store: &mut dyn UnitStore,
) -> Result<Vec<ProtocolResult>, EvalError> {
    settings.check()?;
    let task = inputs.task;
    let head = HeadSpec {
        pooling: settings.pooling,
        classes: task.k(),
        multi_label: task.multi_label,
    };
    let all_train = task.rows(Part::Train);
    let validation = Validation::new(task, task.rows(Part::Val), settings.score_by);
    let mut probe_features: BTreeMap<Protocol, Vec<f64>> = BTreeMap::new();
    let mut results = Vec::new();
    let mut backend = backend;
    for &fraction in &settings.fractions {
        let train = stratified_subset(
            &all_train,
            &task.targets,
            task.k(),
            &task.records,
            fraction,
            settings.seed,
        );
        for &protocol in &settings.protocols {
            if let Some(kept) = store.finished(protocol, fraction) {
                progress.line(format!(
                    "{} at label fraction {fraction}: kept from an interrupted run of this \
                     evaluation",
                    protocol.name()
                ));
                let result = score(protocol, fraction, &train, kept, &validation, settings);
                results.push(result);
                continue;
            }
            let started = Instant::now();
            progress.line(format!(
                "{} at label fraction {fraction}: {} training windows of {} records",
                protocol.name(),
                train.len(),
                task.records_among(&train)
            ));
            let mut outcome = match protocol {
                Protocol::Probe | Protocol::RandomProbe => {
                    // The features of every window, once per probe whatever the fraction.
                    let x = match probe_features.entry(protocol) {
                        Entry::Occupied(cached) => cached.into_mut(),
                        Entry::Vacant(slot) => {
                            let encoder = encoder_for(backend, protocol, head, inputs, settings)?;
                            let (f, be) = all_features(encoder, protocol, inputs, progress)?;
                            backend = be;
                            slot.insert(f)
                        }
                    };
                    let width = head.pooling.features(inputs.model);
                    probe(x, width, &train, &validation, settings, progress)
                }
                Protocol::Finetune | Protocol::Scratch => {
                    let encoder = encoder_for(backend, protocol, head, inputs, settings)?;
                    let (outcome, be) = train_end_to_end(
                        encoder,
                        inputs,
                        &train,
                        &validation,
                        settings,
                        fraction,
                        progress,
                    )?;
                    backend = be;
                    outcome
                }
            };
            outcome.seconds = started.elapsed().as_secs_f64();
            store.keep(protocol, fraction, &outcome)?;
            let result = score(protocol, fraction, &train, outcome, &validation, settings);
            progress.line(format!(
                "{} at {fraction}: test macro AUROC {}",
                protocol.name(),
                result
                    .test
                    .macro_auroc
                    .map_or("undefined".into(), |a| format!("{a:.4}"))
            ));
            results.push(result);
        }
    }
    Ok(results)
}

/// The encoder `protocol` starts from, built on `be` (forward-only for a probe): initialised
/// with the evaluation's seed, the checkpoint's encoder loaded where the protocol is pretrained.
fn encoder_for<B: Backend>(
    be: B,
    protocol: Protocol,
    head: HeadSpec,
    inputs: &EvalInputs<'_>,
    settings: &EvalSettings,
) -> Result<Encoder<B>, EvalError> {
    let (model, batch) = (inputs.model.clone(), settings.batch_size);
    let mut encoder = match protocol.trains_encoder() {
        true => Encoder::with_recompute(be, model, head, batch, settings.finetune.recompute)?,
        false => Encoder::forward_only(be, model, head, batch)?,
    };
    encoder.init_params(settings.seed);
    if protocol.pretrained() {
        encoder.load_encoder(inputs.encoder_params)?;
    }
    Ok(encoder)
}

/// The features (in f64) of every window of the task, and the backend back.
fn all_features<B: Backend>(
    mut encoder: Encoder<B>,
    protocol: Protocol,
    inputs: &EvalInputs<'_>,
    progress: &mut dyn EvalProgress,
) -> Result<(Vec<f64>, B), EvalError> {
    let windows = &inputs.task.windows;
    let total = windows.len();
    progress.line(format!("{}: features of {total} windows", protocol.name()));
    let f = features(&mut encoder, inputs.source, windows, &mut |done| {
        progress.windows("features", done, total)
    })?;
    Ok((
        f.into_iter().map(f64::from).collect(),
        encoder.into_backend(),
    ))
}

/// The linear probe over features `x` (rows of the task, F each).
fn probe(
    x: &[f64],
    f: usize,
    train: &[usize],
    validation: &Validation<'_>,
    settings: &EvalSettings,
    progress: &mut dyn EvalProgress,
) -> UnitOutcome {
    let task = validation.task();
    let (val, test) = (validation.rows(), task.rows(Part::Test));
    let data = FitData {
        x,
        features: f,
        targets: &task.targets,
        classes: task.k(),
        multi_label: task.multi_label,
        rows: train,
    };
    let mut best: Option<(Logistic, f64, Option<f64>)> = None;
    let mut warm: Option<Logistic> = None;
    let mut grid = settings.l2_grid.clone();
    grid.sort_by(|a, b| b.total_cmp(a));
    for l2 in grid {
        let model = Logistic::fit(&data, l2, warm.as_ref());
        let auroc = validation.macro_auroc(&model.predict(x, val));
        progress.line(format!(
            "probe: l2 {l2:e}: val macro AUROC {}",
            auroc.map_or("undefined".into(), |a| format!("{a:.4}"))
        ));
        let better = match (&best, auroc) {
            (None, _) => true,
            (Some((_, _, Some(b))), Some(a)) => a > *b,
            (Some((_, _, None)), Some(_)) => true,
            _ => false,
        };
        if better {
            best = Some((model.clone(), l2, auroc));
        }
        warm = Some(model);
    }
    let (model, l2, val_auroc) = best.expect("the L2 grid is not empty");
    UnitOutcome {
        val_scores: model.predict(x, val),
        test_scores: model.predict(x, &test),
        val_macro_auroc: val_auroc,
        selected: BTreeMap::from([("l2".to_string(), l2)]),
        seconds: 0.0,
    }
}

/// Fine-tuning or training from scratch (the encoder arrives initialised accordingly); hands
/// the backend back.
fn train_end_to_end<B: Backend>(
    encoder: Encoder<B>,
    inputs: &EvalInputs<'_>,
    train: &[usize],
    validation: &Validation<'_>,
    settings: &EvalSettings,
    fraction: f64,
    progress: &mut dyn EvalProgress,
) -> Result<(UnitOutcome, B), EvalError> {
    let task = inputs.task;
    let test = task.rows(Part::Test);
    let seed = settings.seed ^ fraction.to_bits();
    let mut done = finetune(
        encoder,
        inputs.source,
        train,
        validation,
        &settings.finetune,
        seed,
        progress,
    )?;
    let windows = |rows: &[usize]| rows.iter().map(|&r| task.windows[r]).collect::<Vec<_>>();
    let mut scored = |what: &str, rows: &[usize]| {
        let (windows, total) = (windows(rows), rows.len());
        scores(&mut done.encoder, inputs.source, &windows, &mut |n| {
            progress.windows(what, n, total)
        })
    };
    let outcome = UnitOutcome {
        val_scores: scored("validation", validation.rows())?,
        test_scores: scored("test", &test)?,
        val_macro_auroc: done.best_val_macro_auroc,
        selected: BTreeMap::from([
            ("best_epoch".to_string(), done.best_epoch as f64),
            ("epochs_run".to_string(), done.epochs_run as f64),
        ]),
        seconds: 0.0,
    };
    Ok((outcome, done.encoder.into_backend()))
}

/// The result of one protocol run: test metrics with intervals, the counts used.
fn score(
    protocol: Protocol,
    fraction: f64,
    train: &[usize],
    outcome: UnitOutcome,
    validation: &Validation<'_>,
    settings: &EvalSettings,
) -> ProtocolResult {
    let task = validation.task();
    let test = task.rows(Part::Test);
    let test_windows = test.len();
    let val_scores = validation.unit_scores(&outcome.val_scores);
    let test_rows = Scored::new(task, test, outcome.test_scores, settings.score_by);
    let test_classes: Vec<u32> = match task.multi_label {
        true => Vec::new(),
        false => test_rows.rows.iter().map(|&r| task.class_of[r]).collect(),
    };
    let test_targets = targets_of(task, &test_rows.rows);
    let scored_records: Vec<u32> = test_rows.rows.iter().map(|&r| task.records[r]).collect();
    let scored_patients: Vec<u32> = test_rows.rows.iter().map(|&r| task.patients[r]).collect();
    // The metrics are computed from the scores as the result file keeps them (f32), so every
    // figure of the file, and a paired comparison's point difference, follows from its units.
    let kept_scores: Vec<f64> = test_rows
        .scores
        .iter()
        .map(|&s| f64::from(s as f32))
        .collect();
    let rows = TestRows {
        scores: &kept_scores,
        targets: &test_targets,
        classes: &test_classes,
        records: &scored_records,
        patients: &scored_patients,
    };
    let test_units = UnitScores::new(&rows);
    let metrics = test_metrics(
        task,
        (&val_scores, validation.targets()),
        rows,
        settings.bootstrap,
        settings.seed,
    );
    let k = task.k();
    let train_positives = task
        .classes
        .iter()
        .enumerate()
        .map(|(c, name)| {
            let n = train
                .iter()
                .filter(|&&r| task.targets[r * k + c] > 0.5)
                .count();
            (name.clone(), n)
        })
        .collect();
    let train_records = task.records_among(train);
    let train_positive_records = (task.classes.iter().enumerate())
        .map(|(c, name)| {
            let with: Vec<usize> = (train.iter().copied())
                .filter(|&r| task.targets[r * k + c] > 0.5)
                .collect();
            (name.clone(), task.records_among(&with))
        })
        .collect();
    ProtocolResult {
        protocol,
        fraction,
        train_windows: train.len(),
        train_records,
        achieved_fraction: train_records as f64 / task.records_in(Part::Train).max(1) as f64,
        val_windows: validation.rows().len(),
        test_windows,
        test_records: task.records_in(Part::Test),
        test_patients: task.patients_in(Part::Test),
        train_positives,
        train_positive_records,
        val_macro_auroc: outcome.val_macro_auroc,
        selected: outcome.selected,
        test: metrics,
        interval_noise: interval_noise(protocol, fraction),
        test_units,
        seconds: outcome.seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::task::{LabelledWindow, Vocabulary};

    #[test]
    fn classes_a_split_cannot_score_are_warned_about() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (norm, mi) = (l(&["ptbxl_superclass:NORM"]), l(&["ptbxl_superclass:MI"]));
        let windows = [
            LabelledWindow {
                split: "train",
                labels: &norm,
                record: ("test", "r0"),
                patient: "test:p0",
            },
            LabelledWindow {
                split: "train",
                labels: &mi,
                record: ("test", "r1"),
                patient: "test:p1",
            },
            LabelledWindow {
                split: "val",
                labels: &mi,
                record: ("test", "r2"),
                patient: "test:p2",
            },
            LabelledWindow {
                split: "val",
                labels: &norm,
                record: ("test", "r3"),
                patient: "test:p3",
            },
            LabelledWindow {
                split: "test",
                labels: &norm,
                record: ("test", "r4"),
                patient: "test:p4",
            },
        ];
        let task = Task::build(Vocabulary::PtbxlSuperclass, &windows, 1).unwrap();
        let warnings = task_warnings(&task);
        let test_mi = warnings
            .iter()
            .any(|w| w.contains("class MI has no positive") && w.contains("test split"));
        let test_norm = warnings
            .iter()
            .any(|w| w.contains("class NORM has no negative") && w.contains("test split"));
        assert!(test_mi && test_norm, "{warnings:?}");
        assert!(warnings
            .iter()
            .any(|w| w.contains("class HYP") && w.contains("val split")));
    }

    /// A single-label test split of one class: that class has no negative; a split of two
    /// records cut into many windows is small (the bootstrap resamples records); a class
    /// without a validation positive gets no F1 threshold.
    #[test]
    fn single_label_splits_of_one_class_and_few_records_are_warned() {
        let l = |v: &str| vec![format!("synth:{v}")];
        let labels = [
            l("nsr"),
            l("afib"),
            l("pvc"),
            l("wide_qrs"),
            l("st_elevation"),
        ];
        let mut windows = Vec::new();
        for (i, label) in labels.iter().enumerate() {
            for split in ["train", "val"] {
                if !(split == "val" && i == 2) {
                    windows.extend((0..10).map(|_| LabelledWindow {
                        split,
                        labels: label,
                        record: ("s", split),
                        patient: "p",
                    }));
                }
            }
        }
        let ids = ["t0", "t1"];
        for id in ids {
            windows.extend((0..20).map(|_| LabelledWindow {
                split: "test",
                labels: &labels[0],
                record: ("s", id),
                patient: id,
            }));
        }
        let task = Task::build(Vocabulary::Synth, &windows, 1).unwrap();
        let warnings = task_warnings(&task);
        let has = |text: &str| warnings.iter().any(|w| w.contains(text));
        assert!(
            has("class nsr has no negative window in the test split"),
            "{warnings:#?}"
        );
        assert!(has(
            "the test split has only 2 labelled records (40 windows)"
        ));
        assert!(has("class pvc has no positive window in the val split"));
        assert!(has(
            "its test F1 is null and left out of the thresholded macro F1"
        ));
    }

    #[test]
    fn patience_0_is_refused_where_a_protocol_trains() {
        let mut settings = EvalSettings::default();
        settings.finetune.patience = 0;
        let err = settings.check().unwrap_err().to_string();
        assert!(err.contains("--patience must be at least 1"), "{err}");
        settings.protocols = vec![Protocol::Probe];
        assert!(settings.check().is_ok());
    }
}
