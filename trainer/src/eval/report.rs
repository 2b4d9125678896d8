//! What `ecgfm eval` reports: one `ProtocolResult` per protocol and label fraction (test-set
//! metrics with 95% bootstrap intervals, the validation choice, the counts used), assembled into
//! the JSON result file, a terminal table, and TensorBoard scalars.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::metrics::{
    accuracy, argmax_class_f1, bootstrap, bootstrap_ci, challenge_f1, defined_classes,
    mean_defined, mean_over, per_class_auroc, per_class_f1, pick_thresholds, record_groups,
};
use super::paired::{against_scratch, seed_dependent, IntervalNoise, Resample, ScoredResult};
use super::task::{Part, Task, Vocabulary};
use crate::tensorboard::EventWriter;

/// The evaluation protocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Frozen pretrained encoder, logistic regression on its pooled features.
    Probe,
    /// Pretrained encoder and head trained end to end.
    Finetune,
    /// The same network and recipe from a random initialisation.
    Scratch,
    /// The probe on the randomly initialised encoder: what the probe gives without pretraining.
    #[serde(rename = "random_probe")]
    RandomProbe,
}

impl Protocol {
    pub const ALL: [Protocol; 4] = [
        Protocol::Probe,
        Protocol::Finetune,
        Protocol::Scratch,
        Protocol::RandomProbe,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Probe => "probe",
            Protocol::Finetune => "finetune",
            Protocol::Scratch => "scratch",
            Protocol::RandomProbe => "random_probe",
        }
    }

    /// Whether the protocol starts from the checkpoint's encoder (else from a random one).
    pub fn pretrained(self) -> bool {
        matches!(self, Protocol::Probe | Protocol::Finetune)
    }

    /// Whether the protocol trains the encoder (else only runs its forward pass).
    pub fn trains_encoder(self) -> bool {
        matches!(self, Protocol::Finetune | Protocol::Scratch)
    }

    /// The protocol `name` names (`probe`, `finetune`, `scratch`, `random_probe`).
    pub fn parse(name: &str) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.name() == name)
    }

    /// `probe`, `finetune`, `scratch`, `random_probe`, or `all` (the four).
    pub fn parse_list(text: &str) -> Result<Vec<Protocol>, String> {
        if text == "all" {
            return Ok(Protocol::ALL.to_vec());
        }
        text.split(',')
            .map(|p| {
                Protocol::parse(p.trim()).ok_or_else(|| {
                    format!(
                        "unknown protocol `{p}` (probe, finetune, scratch, random_probe or all)"
                    )
                })
            })
            .collect()
    }
}

/// A metric on the test split with its 95% bootstrap interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WithCi {
    pub value: Option<f64>,
    pub ci: Option<[f64; 2]>,
}

/// The test-set metrics of one set of scores.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TestMetrics {
    pub macro_auroc: Option<f64>,
    /// [low, high], 95% percentile bootstrap over the test patients (all windows of every record
    /// of a drawn patient; one window per patient makes it the bootstrap over windows). A
    /// resample counts only where every class with a test AUROC keeps one; `null` when fewer
    /// than 90% of the resamples do (`metrics::MIN_KEPT_SHARE`).
    pub macro_auroc_ci: Option<[f64; 2]>,
    /// Bootstrap resamples the macro AUROC interval kept (of `bootstrap_resamples`).
    pub bootstrap_kept: usize,
    /// Per class; `null` where the test split has no positive or no negative of the class.
    pub per_class_auroc: BTreeMap<String, Option<f64>>,
    /// One-vs-rest thresholded macro F1: each class predicted wherever its score reaches its own
    /// threshold (picked on validation to maximise that class's F1), so a unit may be predicted
    /// as several classes or none; not the CinC 2017 challenge's F1 (`cinc2017_f1`).
    pub macro_f1_ovr_thresholded: WithCi,
    /// Per class, at those thresholds; `null` for a class with neither a test positive nor a
    /// unit predicted positive, or without a validation positive (no threshold could be
    /// picked), and left out of the macro; a class predicted where the test set lacks it scores
    /// 0 and counts (`metrics::class_f1`, as scikit-learn's).
    pub per_class_f1: BTreeMap<String, Option<f64>>,
    /// Macro F1 of argmax predictions, each unit exactly one class (single-label tasks only).
    pub macro_f1_argmax: Option<WithCi>,
    /// The CinC 2017 challenge's F1: argmax predictions, the mean F1 of N, A and O (`cinc2017`
    /// only).
    pub cinc2017_f1: Option<WithCi>,
    /// Each class's decision threshold, picked on validation to maximise its F1; `null` for a
    /// class without a validation positive, where none could be picked.
    pub thresholds: BTreeMap<String, Option<f64>>,
    /// Top-1 accuracy (single-label tasks only).
    pub accuracy: Option<WithCi>,
}

/// The test rows `test_metrics` scores, each (n, K) or (n).
pub struct TestRows<'a> {
    pub scores: &'a [f64],
    pub targets: &'a [f64],
    /// Class of each row (single-label tasks; empty otherwise).
    pub classes: &'a [u32],
    /// Record of each row.
    pub records: &'a [u32],
    /// Patient of each row: the intervals resample patients, each with all its rows.
    pub patients: &'a [u32],
}

/// Computes the test metrics from class probabilities on validation (`val`: scores and
/// targets, (n, K)) and test; the intervals from `resamples` bootstrap resamples of the test
/// patients (each with all its records' rows), drawn from `seed`.
pub fn test_metrics(
    task: &Task,
    val: (&[f64], &[f64]),
    test: TestRows<'_>,
    resamples: usize,
    seed: u64,
) -> TestMetrics {
    let k = task.k();
    let (val_scores, val_targets) = val;
    let TestRows {
        scores,
        targets,
        classes,
        patients,
        ..
    } = test;
    let val_rows: Vec<usize> = (0..val_scores.len() / k).collect();
    let rows: Vec<usize> = (0..scores.len() / k).collect();
    let groups = record_groups(patients);
    let thresholds = pick_thresholds(val_scores, val_targets, k, &val_rows);
    let named = |values: Vec<Option<f64>>| -> BTreeMap<String, Option<f64>> {
        task.classes.iter().cloned().zip(values).collect()
    };
    // Every resample averages the classes the full test set defines, or is not counted.
    let auroc_classes = defined_classes(&per_class_auroc(scores, targets, k, &rows));
    let auroc = bootstrap(&groups, resamples, seed, |r| {
        mean_over(&per_class_auroc(scores, targets, k, r), &auroc_classes)
    });
    // A class without a validation positive has no threshold of its own (0.5 would be
    // arbitrary): its thresholded F1 is null and out of the macro.
    let val_positive: Vec<bool> = (0..k)
        .map(|c| val_rows.iter().any(|&r| val_targets[r * k + c] > 0.5))
        .collect();
    let thresholded_f1 = |r: &[usize]| -> Vec<Option<f64>> {
        let f1 = per_class_f1(scores, targets, k, r, &thresholds);
        (f1.into_iter().zip(&val_positive))
            .map(|(f, &has)| f.filter(|_| has))
            .collect()
    };
    let class_f1 = thresholded_f1(&rows);
    let f1_classes = defined_classes(&class_f1);
    let f1 = WithCi {
        value: mean_defined(&class_f1),
        ci: bootstrap_ci(&groups, resamples, seed, |r| {
            mean_over(&thresholded_f1(r), &f1_classes)
        }),
    };
    let with_ci = |statistic: &dyn Fn(&[usize]) -> Option<f64>| WithCi {
        value: statistic(&rows),
        ci: bootstrap_ci(&groups, resamples, seed, statistic),
    };
    // Argmax F1 over the classes present or predicted in the rows scored (a class predicted
    // where it is absent scores 0, as in scikit-learn's macro F1).
    let argmax_f1 = |r: &[usize]| argmax_class_f1(scores, classes, k, r);
    let f1_argmax = (!task.multi_label).then(|| {
        let scored = defined_classes(&argmax_f1(&rows));
        with_ci(&|r: &[usize]| mean_over(&argmax_f1(r), &scored))
    });
    let challenge = (task.vocabulary == Vocabulary::Cinc2017).then(|| {
        // N, A, O: the vocabulary's first three classes.
        with_ci(&|r: &[usize]| challenge_f1(scores, classes, k, r, &[0, 1, 2]))
    });
    let acc = (!task.multi_label).then(|| WithCi {
        value: accuracy(scores, classes, k, &rows),
        ci: bootstrap_ci(&groups, resamples, seed, |r| {
            accuracy(scores, classes, k, r)
        }),
    });
    TestMetrics {
        macro_auroc: mean_defined(&per_class_auroc(scores, targets, k, &rows)),
        macro_auroc_ci: auroc.ci,
        bootstrap_kept: auroc.kept,
        per_class_auroc: named(per_class_auroc(scores, targets, k, &rows)),
        macro_f1_ovr_thresholded: f1,
        per_class_f1: named(class_f1),
        macro_f1_argmax: f1_argmax,
        cinc2017_f1: challenge,
        thresholds: (task.classes.iter().cloned())
            .zip(thresholds.iter().zip(&val_positive))
            .map(|(class, (&t, &has))| (class, has.then_some(t)))
            .collect(),
        accuracy: acc,
    }
}

/// One protocol at one label fraction.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProtocolResult {
    pub protocol: Protocol,
    /// Fraction of the training labels used.
    pub fraction: f64,
    /// Windows used: training (after the fraction), validation, test.
    pub train_windows: usize,
    /// Records the training windows come from (what the label fraction draws).
    pub train_records: usize,
    /// `train_records` over all the training records: what the fraction drew (at least one
    /// record per stratum, rounded up, so small fractions come out above `fraction`).
    pub achieved_fraction: f64,
    pub val_windows: usize,
    pub test_windows: usize,
    /// Records the test windows come from.
    pub test_records: usize,
    /// Patients those records come from (what the bootstrap resamples).
    pub test_patients: usize,
    /// Positive training windows per class (after the fraction).
    pub train_positives: BTreeMap<String, usize>,
    /// Training records with the class, per class (after the fraction).
    pub train_positive_records: BTreeMap<String, usize>,
    /// Validation macro AUROC of the chosen setting (L2 strength or epoch).
    pub val_macro_auroc: Option<f64>,
    /// What validation chose: `l2` for the probe; `best_epoch`, `epochs_run` when training.
    pub selected: BTreeMap<String, f64>,
    #[serde(flatten)]
    pub test: TestMetrics,
    /// What the intervals resample: the test records only, so where the result depends on the
    /// seed (`paired::seed_dependent`) they leave out the variation between training seeds
    /// (`test_set_only`).
    pub interval_noise: IntervalNoise,
    /// Every scored test unit with its scores and patient: what a paired comparison of two
    /// evaluations on the same test set resamples (a sweep's sizes, pretrained against from
    /// scratch, `ecgfm compare`).
    pub test_units: UnitScores,
    pub seconds: f64,
}

/// The scored test units (windows, or records with `--score-by record`) in dataset order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UnitScores {
    /// Record of each unit, numbered from 0 in the dataset's order (a paired comparison
    /// resamples these where the units give no patients).
    pub records: Vec<u32>,
    /// (n, K): 1 where the unit has the class.
    pub targets: Vec<u8>,
    /// (n, K): the class probabilities, rounded to f32 (the test metrics are computed from these).
    pub scores: Vec<f32>,
    /// Patient of each unit, numbered from 0 in the dataset's order: a paired comparison
    /// resamples patients, each with all its units, where every side has the same. Empty in
    /// result files written before ecgfm kept them (records are resampled then).
    #[serde(default)]
    pub patients: Vec<u32>,
}

impl UnitScores {
    pub fn new(rows: &TestRows<'_>) -> UnitScores {
        UnitScores {
            records: rows.records.to_vec(),
            targets: rows.targets.iter().map(|&t| u8::from(t > 0.5)).collect(),
            scores: rows.scores.iter().map(|&s| s as f32).collect(),
            patients: rows.patients.to_vec(),
        }
    }

    /// Whether `other` scores the same units (records and targets), so the two pair up.
    pub fn same_units(&self, other: &UnitScores) -> bool {
        self.records == other.records && self.targets == other.targets
    }
}

/// The whole result file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalReport {
    pub ecgfm_version: String,
    /// The checkpoint folder evaluated and its step.
    pub checkpoint: String,
    pub step: u64,
    /// SHA-256 of the checkpoint's weights file (`checkpoint::weights_sha256`): which weights
    /// these numbers belong to, wherever the folder is later moved.
    pub weights_sha256: String,
    /// What the encoder was pretrained on (dataset, split, source weights, steps): whether the
    /// test records could have been seen in pretraining.
    pub pretraining: super::Pretraining,
    /// The dataset URL (credentials redacted).
    pub data: String,
    pub vocabulary: String,
    pub classes: Vec<String>,
    pub multi_label: bool,
    pub pooling: String,
    /// Where the encoder ran (`cpu`, or the GPU's name, memory and compute capability) and the
    /// precision of its matrix products (fp32, bf16).
    pub device: String,
    pub precision: String,
    pub seed: u64,
    pub bootstrap_resamples: usize,
    /// What the test metrics score: `window` or `record`.
    pub scored_by: super::ScoreBy,
    /// Labelled windows per split, positives per class per split, windows skipped and why.
    pub counts: Counts,
    /// Everything that makes a number less than it seems (classes without test positives, ...).
    pub warnings: Vec<String>,
    pub finetune_settings: super::finetune::FinetuneSettings,
    pub results: Vec<ProtocolResult>,
    /// Each pretrained result against `scratch` at its fraction: the paired interval of the
    /// macro AUROC difference over the test records of this one evaluation seed.
    pub against_scratch: Vec<ScratchDifference>,
}

/// A pretrained result's macro AUROC minus scratch's, with its paired 95% interval.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScratchDifference {
    pub protocol: String,
    pub fraction: f64,
    pub macro_auroc_diff: f64,
    pub interval: [f64; 2],
    /// `test_set_only`: scratch's training seed was not resampled, so the interval supports no
    /// verdict (`ecgfm compare` over several seeds' files, `--resample seeds-and-records`, does).
    pub noise: IntervalNoise,
}

impl ScratchDifference {
    /// Every pretrained result of `results` against scratch (`paired::against_scratch`).
    pub fn of(results: &[ProtocolResult], resamples: usize, seed: u64) -> Vec<ScratchDifference> {
        let scored: Vec<ScoredResult> = results.iter().map(ScoredResult::from).collect();
        against_scratch(&scored, resamples, seed)
            .into_iter()
            .map(|x| ScratchDifference {
                protocol: x.result.protocol.clone(),
                fraction: x.result.fraction,
                macro_auroc_diff: x.diff,
                interval: x.interval,
                noise: x.noise,
            })
            .collect()
    }
}

/// The noise of a result's own intervals, which resample the test records only.
pub fn interval_noise(protocol: Protocol, fraction: f64) -> IntervalNoise {
    IntervalNoise::of(Resample::Records, seed_dependent(protocol.name(), fraction))
}

/// Window counts of the task.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Counts {
    pub windows: BTreeMap<String, usize>,
    /// Records the windows of each split come from.
    pub records: BTreeMap<String, usize>,
    /// Patients those records come from.
    pub patients: BTreeMap<String, usize>,
    pub positives: BTreeMap<String, BTreeMap<String, usize>>,
    pub skipped_unlabelled: usize,
    /// Windows kept as negatives of every class (`Task::no_scored_class`); absent in older
    /// files.
    #[serde(default)]
    pub no_scored_class: usize,
    pub skipped_ambiguous: usize,
    pub skipped_split: usize,
}

impl Counts {
    pub fn of(task: &Task) -> Counts {
        Counts {
            windows: Part::ALL
                .iter()
                .map(|&p| (p.name().to_string(), task.rows(p).len()))
                .collect(),
            records: Part::ALL
                .iter()
                .map(|&p| (p.name().to_string(), task.records_in(p)))
                .collect(),
            patients: Part::ALL
                .iter()
                .map(|&p| (p.name().to_string(), task.patients_in(p)))
                .collect(),
            positives: Part::ALL
                .iter()
                .map(|&p| {
                    let per_class = task
                        .classes
                        .iter()
                        .cloned()
                        .zip(task.positives(p))
                        .collect();
                    (p.name().to_string(), per_class)
                })
                .collect(),
            skipped_unlabelled: task.skipped_unlabelled,
            no_scored_class: task.no_scored_class,
            skipped_ambiguous: task.skipped_ambiguous,
            skipped_split: task.skipped_split,
        }
    }
}

fn fmt_opt(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}"))
}

fn fmt_ci(ci: Option<[f64; 2]>) -> String {
    ci.map_or_else(
        || "n/a".to_string(),
        |[lo, hi]| format!("[{lo:.3}, {hi:.3}]"),
    )
}

impl EvalReport {
    /// The terminal table: one line per protocol and fraction.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{} ({} classes: {}) on {} | checkpoint step {}\n",
            self.vocabulary,
            self.classes.len(),
            self.classes.join(", "),
            self.data,
            self.step
        );
        out += &format!(
            "{:<13} {:>8} {:>8} {:>6} {:>11} {:>16} {:>10} {:>16} {:>9} {:>8} {:>9}\n",
            "protocol",
            "fraction",
            "achieved",
            "train",
            "macro AUROC",
            "95% CI",
            "F1 ovr-thr",
            "95% CI",
            "F1 argmax",
            "CinC F1",
            "accuracy"
        );
        let value = |m: &Option<WithCi>| m.as_ref().map_or("-".to_string(), |m| fmt_opt(m.value));
        for r in &self.results {
            let star = match r.interval_noise.label() {
                Some(_) => "*",
                None => "",
            };
            out += &format!(
                "{:<13} {:>8} {:>8} {:>6} {:>11} {:>16} {:>10} {:>16} {:>9} {:>8} {:>9}\n",
                format!("{}{star}", r.protocol.name()),
                format!("{}", r.fraction),
                format!("{:.4}", r.achieved_fraction),
                r.train_windows,
                fmt_opt(r.test.macro_auroc),
                fmt_ci(r.test.macro_auroc_ci),
                fmt_opt(r.test.macro_f1_ovr_thresholded.value),
                fmt_ci(r.test.macro_f1_ovr_thresholded.ci),
                value(&r.test.macro_f1_argmax),
                value(&r.test.cinc2017_f1),
                value(&r.test.accuracy),
            );
        }
        out += "achieved: training records kept over all training records; train: windows\n";
        out +=
            "F1 ovr-thr: one-vs-rest, each class at its own validation threshold (a unit may get \
                several classes or none); F1 argmax: one class a unit; CinC F1: the CinC 2017 \
                challenge's (argmax, mean of N, A, O)\n";
        for x in &self.against_scratch {
            let [low, high] = x.interval;
            let noise = x.noise.label().map_or(String::new(), |l| format!(" ({l})"));
            out += &format!(
                "{} against scratch with {}% of the labels: {:+.3} AUROC, paired 95% interval \
                 over the test patients [{low:+.3}, {high:+.3}]{noise}\n",
                x.protocol,
                (x.fraction * 1e4).round() / 1e2,
                x.macro_auroc_diff
            );
        }
        if self
            .results
            .iter()
            .any(|r| r.interval_noise.label().is_some())
        {
            out += "* intervals of finetune, scratch, random_probe and of fractions below 1: \
                    test-set noise only; training seed not resampled\n";
        }
        for w in &self.warnings {
            out += &format!("warning: {w}\n");
        }
        out
    }

    /// Writes the metrics as TensorBoard scalars (`eval/<vocabulary>/<protocol>/<fraction>/...`)
    /// at the checkpoint's step into a new event file in `dir`, beside the earlier evaluations'.
    pub fn write_tensorboard(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut events = EventWriter::create(dir, None)?;
        for r in &self.results {
            let prefix = format!(
                "eval/{}/{}/{}",
                self.vocabulary,
                r.protocol.name(),
                r.fraction
            );
            let mut scalars: Vec<(String, f32)> = Vec::new();
            let mut push = |name: &str, value: Option<f64>| {
                if let Some(v) = value {
                    scalars.push((format!("{prefix}/{name}"), v as f32));
                }
            };
            push("macro_auroc", r.test.macro_auroc);
            push(
                "macro_f1_ovr_thresholded",
                r.test.macro_f1_ovr_thresholded.value,
            );
            push(
                "macro_f1_argmax",
                r.test.macro_f1_argmax.as_ref().and_then(|f| f.value),
            );
            push(
                "cinc2017_f1",
                r.test.cinc2017_f1.as_ref().and_then(|f| f.value),
            );
            push("accuracy", r.test.accuracy.as_ref().and_then(|a| a.value));
            for (class, value) in &r.test.per_class_auroc {
                push(&format!("auroc/{class}"), *value);
            }
            let pairs: Vec<(&str, f32)> = scalars.iter().map(|(t, v)| (t.as_str(), *v)).collect();
            events.scalars(self.step, &pairs)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::task::LabelledWindow;

    /// A synth task (five classes, single-label) of one window per split and class.
    fn synth_task() -> Task {
        let labels: Vec<Vec<String>> = ["nsr", "afib", "pvc", "wide_qrs", "st_elevation"]
            .iter()
            .map(|c| vec![format!("synth:{c}")])
            .collect();
        let names: Vec<String> = (0..15).map(|i| format!("r{i}")).collect();
        let windows: Vec<LabelledWindow<'_>> = (0..15)
            .map(|i| LabelledWindow {
                split: ["train", "val", "test"][i / 5],
                labels: &labels[i % 5],
                record: ("s", names[i].as_str()),
                patient: names[i].as_str(),
            })
            .collect();
        Task::build(Vocabulary::Synth, &windows, 1).unwrap()
    }

    /// 40 test units, class 4 present once: a third of the resamples lose it, so the macro
    /// AUROC interval (which would average four classes there, five elsewhere) is withheld and
    /// the resamples kept are counted. Class 3 has no validation positive: its F1 and threshold
    /// are null.
    #[test]
    fn a_rare_class_withholds_the_interval_and_a_class_without_threshold_its_f1() {
        let task = synth_task();
        let classes: Vec<u32> = (0..40).map(|i| if i == 0 { 4 } else { i % 4 }).collect();
        let onehot = |c: &[u32]| -> Vec<f64> {
            c.iter()
                .flat_map(|&y| (0..5).map(move |k| f64::from(u8::from(k == y))))
                .collect()
        };
        let targets = onehot(&classes);
        let scores: Vec<f64> = (targets.iter().enumerate())
            .map(|(i, t)| 0.3 * t + 0.7 * ((i * 7919 % 97) as f64 / 97.0))
            .collect();
        let val_classes = [0, 1, 2, 4, 0, 1];
        let val_targets = onehot(&val_classes);
        let units: Vec<u32> = (0..40).collect();
        let rows = TestRows {
            scores: &scores,
            targets: &targets,
            classes: &classes,
            records: &units,
            patients: &units,
        };
        let m = test_metrics(&task, (&val_targets, &val_targets), rows, 1000, 3);
        assert!(m.macro_auroc.is_some());
        assert_eq!(m.macro_auroc_ci, None);
        assert!(
            m.bootstrap_kept > 500 && m.bootstrap_kept < 900,
            "{}",
            m.bootstrap_kept
        );
        let wide_qrs = &task.classes[3];
        assert_eq!(m.per_class_f1[wide_qrs], None);
        assert_eq!(
            m.thresholds[wide_qrs], None,
            "no threshold picked, none shown"
        );
        assert_eq!(m.thresholds.values().flatten().count(), 4);
        let defined: Vec<f64> = m.per_class_f1.values().flatten().copied().collect();
        assert_eq!(defined.len(), 4);
        let mean = defined.iter().sum::<f64>() / 4.0;
        assert_eq!(m.macro_f1_ovr_thresholded.value, Some(mean));
    }
}
