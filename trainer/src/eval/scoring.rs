//! What a score stands for: one window, or one record (the mean of its windows' class
//! probabilities, as the CinC challenges score). `ScoreBy` is the choice, `Scored` turns window
//! scores into the chosen unit, and `Validation` makes the protocols' choices on validation (the
//! probe's L2 strength, fine-tuning's best epoch, the F1 thresholds) in that same unit, so that
//! what is picked is what the test split is then scored on.

use std::borrow::Cow;

use serde::Serialize;

use super::metrics::{macro_auroc, mean_per_group, record_groups};
use super::task::Task;

/// The unit validation and test are scored in. The bootstrap resamples patients (each with all
/// its records' units) either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScoreBy {
    #[default]
    Window,
    /// The mean of a record's window scores stands for the record: validation choices, F1
    /// thresholds and test metrics are all made on records.
    Record,
}

impl std::str::FromStr for ScoreBy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "window" => Ok(ScoreBy::Window),
            "record" => Ok(ScoreBy::Record),
            _ => Err(format!("--score-by must be window or record, got {text:?}")),
        }
    }
}

/// Scores (n, K) of task rows: one per window, or one per record (`rows` then names the first
/// window of each record, which carries the record's labels).
pub struct Scored {
    pub rows: Vec<usize>,
    pub scores: Vec<f64>,
}

impl Scored {
    /// `scores` (one row per window of `rows`) in the unit `by` asks for.
    pub fn new(task: &Task, rows: Vec<usize>, scores: Vec<f64>, by: ScoreBy) -> Scored {
        match by {
            ScoreBy::Window => Scored { rows, scores },
            ScoreBy::Record => {
                let (groups, firsts) = records_of(task, &rows);
                Scored {
                    rows: firsts,
                    scores: mean_per_group(&scores, task.k(), &groups),
                }
            }
        }
    }
}

/// The positions in `rows` of each record's windows (records in order of first appearance),
/// and each record's first window (a task row, carrying the record's labels).
fn records_of(task: &Task, rows: &[usize]) -> (Vec<Vec<usize>>, Vec<usize>) {
    let records: Vec<u32> = rows.iter().map(|&r| task.records[r]).collect();
    let groups = record_groups(&records);
    let firsts = groups.iter().map(|g| rows[g[0]]).collect();
    (groups, firsts)
}

/// The targets (n, K) of task rows `rows`.
pub(crate) fn targets_of(task: &Task, rows: &[usize]) -> Vec<f64> {
    let k = task.k();
    rows.iter()
        .flat_map(|&r| task.targets[r * k..(r + 1) * k].iter().copied())
        .collect()
}

/// The validation split's windows and how a candidate's scores on them are judged; built once
/// per evaluation and shared by every protocol's choices and by the thresholds of its scoring.
pub struct Validation<'a> {
    task: &'a Task,
    /// Task rows, one per window, in the order a candidate's scores come in.
    rows: Vec<usize>,
    /// Each record's positions in `rows` when scoring by record.
    groups: Option<Vec<Vec<usize>>>,
    /// Targets (n, K) of the scored unit (windows or records).
    targets: Vec<f64>,
    /// `0..n`: every scored unit, as the metrics take rows.
    units: Vec<usize>,
}

impl<'a> Validation<'a> {
    pub fn new(task: &'a Task, rows: Vec<usize>, by: ScoreBy) -> Self {
        let (groups, unit) = match by {
            ScoreBy::Window => (None, rows.clone()),
            ScoreBy::Record => {
                let (groups, firsts) = records_of(task, &rows);
                (Some(groups), firsts)
            }
        };
        Validation {
            task,
            targets: targets_of(task, &unit),
            units: (0..unit.len()).collect(),
            rows,
            groups,
        }
    }

    pub fn task(&self) -> &'a Task {
        self.task
    }

    /// The validation windows (task rows) a candidate scores.
    pub fn rows(&self) -> &[usize] {
        &self.rows
    }

    /// Targets (n, K) of the scored unit, in the order of `unit_scores`.
    pub fn targets(&self) -> &[f64] {
        &self.targets
    }

    /// `scores` (one row per window of `rows()`) in the chosen unit.
    pub fn unit_scores<'s>(&self, scores: &'s [f64]) -> Cow<'s, [f64]> {
        match &self.groups {
            Some(groups) => Cow::Owned(mean_per_group(scores, self.task.k(), groups)),
            None => Cow::Borrowed(scores),
        }
    }

    /// Macro AUROC of `scores` (one row per window of `rows()`) in the chosen unit.
    pub fn macro_auroc(&self, scores: &[f64]) -> Option<f64> {
        let unit = self.unit_scores(scores);
        macro_auroc(&unit, &self.targets, self.task.k(), &self.units)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::task::{Part, Vocabulary};

    /// One class; validation windows of records 0, 1, 0, 2, 1 (interleaved), record 0 and 2
    /// positive.
    fn task() -> Task {
        Task {
            vocabulary: Vocabulary::Synth,
            classes: vec!["X".into()],
            multi_label: true,
            windows: (0..5).collect(),
            parts: vec![Part::Val; 5],
            targets: vec![1.0, 0.0, 1.0, 1.0, 0.0],
            class_of: Vec::new(),
            records: vec![0, 1, 0, 2, 1],
            patients: vec![0, 1, 0, 2, 1],
            skipped_unlabelled: 0,
            no_scored_class: 0,
            outside_classes: Default::default(),
            skipped_ambiguous: 0,
            skipped_split: 0,
        }
    }

    #[test]
    fn validation_judges_windows_or_records() {
        let task = task();
        let scores = [0.9, 0.4, 0.1, 0.5, 0.4];
        let rows: Vec<usize> = (0..5).collect();
        // Windows: positives 0.9, 0.1, 0.5 against negatives 0.4, 0.4: 4 of 6 pairs ordered.
        let by_window = Validation::new(&task, rows.clone(), ScoreBy::Window);
        let auroc = by_window.macro_auroc(&scores).unwrap();
        assert!((auroc - 4.0 / 6.0).abs() < 1e-12, "{auroc}");
        // Records: 0 -> (0.9 + 0.1) / 2 = 0.5, 1 -> 0.4, 2 -> 0.5: both positives above.
        let by_record = Validation::new(&task, rows, ScoreBy::Record);
        assert_eq!(
            by_record.rows().len(),
            5,
            "a candidate still scores every window"
        );
        assert_eq!(by_record.macro_auroc(&scores), Some(1.0));
    }

    #[test]
    fn scored_by_record_is_each_records_mean_at_its_first_window() {
        let task = task();
        let rows = vec![4, 3, 2, 1, 0];
        let scored = Scored::new(&task, rows, vec![0.4, 0.5, 0.1, 0.4, 0.9], ScoreBy::Record);
        assert_eq!(scored.rows, vec![4, 3, 2]);
        assert_eq!(scored.scores, vec![0.4, 0.5, 0.5]);
        let same = Scored::new(&task, vec![1, 0], vec![0.3, 0.7], ScoreBy::Window);
        assert_eq!((same.rows, same.scores), (vec![1, 0], vec![0.3, 0.7]));
    }
}
