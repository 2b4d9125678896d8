//! A labelled task: a label vocabulary of the dataset (`ptbxl_superclass`, `cinc2017`, `snomed`,
//! `synth`, or a team's own, `hosp:` codes from a label CSV) turned into classes and per-window
//! targets, with the dataset's train / val / test splits. Windows without a label of the
//! vocabulary are skipped and counted.

use std::collections::{BTreeMap, HashMap};

use super::EvalError;

/// A label vocabulary `ecgfm eval --labels` knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Vocabulary {
    /// PTB-XL diagnostic superclasses NORM, MI, STTC, CD, HYP (multi-label).
    PtbxlSuperclass,
    /// CinC 2017 rhythm: N (normal), A (AF), O (other), ~ (noisy) (single-label).
    Cinc2017,
    /// SNOMED-CT codes of CinC 2020/2021 `# Dx` headers, the classes with enough positives
    /// (multi-label).
    Snomed,
    /// The synthetic generator's conditions (single-label).
    Synth,
    /// Any other vocabulary a dataset's labels use (`hosp:af`, from `data ingest --label-csv`):
    /// its classes come from the data, as SNOMED's do (multi-label).
    Own(String),
}

impl Vocabulary {
    /// The names of the vocabularies ecgfm knows the classes or the source of.
    pub const NAMES: [&'static str; 4] = ["ptbxl_superclass", "cinc2017", "snomed", "synth"];

    /// One of `NAMES`, or any other name a label's `vocabulary:` part may be (letters, digits,
    /// `_`, `-`, `.`): a vocabulary of the dataset's own (`Own`).
    pub fn parse(name: &str) -> Result<Vocabulary, EvalError> {
        match name {
            "ptbxl_superclass" => Ok(Vocabulary::PtbxlSuperclass),
            "cinc2017" => Ok(Vocabulary::Cinc2017),
            "snomed" => Ok(Vocabulary::Snomed),
            "synth" => Ok(Vocabulary::Synth),
            own if !own.is_empty()
                && own
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) =>
            {
                Ok(Vocabulary::Own(own.to_string()))
            }
            other => Err(EvalError::Task(format!(
                "`{other}` is not a label vocabulary: give one of {}, or the `vocabulary` part \
                 of the dataset's own `vocabulary:code` labels (letters, digits, _, -, .)",
                Self::NAMES.join(", ")
            ))),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Vocabulary::PtbxlSuperclass => "ptbxl_superclass",
            Vocabulary::Cinc2017 => "cinc2017",
            Vocabulary::Snomed => "snomed",
            Vocabulary::Synth => "synth",
            Vocabulary::Own(name) => name,
        }
    }

    /// Why a dataset whose labels are `labels` holds none of this vocabulary (`no \`cinc2017:\`
    /// label (its label vocabularies: synth)`); `None` when it holds one.
    pub fn missing_from<'a>(&self, labels: impl IntoIterator<Item = &'a str>) -> Option<String> {
        let prefix = format!("{}:", self.name());
        let mut held: Vec<&str> = Vec::new();
        for label in labels {
            if label.starts_with(&prefix) {
                return None;
            }
            held.extend(label.split_once(':').map(|(vocabulary, _)| vocabulary));
        }
        held.sort_unstable();
        held.dedup();
        let held = match held.is_empty() {
            true => "none".to_string(),
            false => held.join(", "),
        };
        Some(format!(
            "no `{prefix}` label (its label vocabularies: {held})"
        ))
    }

    /// Whether a window may carry several classes at once.
    pub fn multi_label(&self) -> bool {
        matches!(
            self,
            Vocabulary::PtbxlSuperclass | Vocabulary::Snomed | Vocabulary::Own(_)
        )
    }

    /// The fixed classes (codes after `name:`), or `None` when they come from the data.
    fn fixed_classes(&self) -> Option<&'static [&'static str]> {
        match self {
            Vocabulary::PtbxlSuperclass => Some(&["NORM", "MI", "STTC", "CD", "HYP"]),
            Vocabulary::Cinc2017 => Some(&["N", "A", "O", "~"]),
            Vocabulary::Synth => Some(&["nsr", "afib", "pvc", "wide_qrs", "st_elevation"]),
            Vocabulary::Snomed | Vocabulary::Own(_) => None,
        }
    }
}

/// One of the dataset's splits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    Train,
    Val,
    Test,
}

impl Part {
    pub const ALL: [Part; 3] = [Part::Train, Part::Val, Part::Test];

    pub fn name(self) -> &'static str {
        match self {
            Part::Train => "train",
            Part::Val => "val",
            Part::Test => "test",
        }
    }

    fn parse(split: &str) -> Option<Part> {
        Part::ALL.into_iter().find(|p| p.name() == split)
    }
}

/// What `Task::build` reads of each window: its split, labels and record.
pub struct LabelledWindow<'a> {
    pub split: &'a str,
    pub labels: &'a [String],
    /// The record the window was cut from, (source, record id): windows of one record are not
    /// independent.
    pub record: (&'a str, &'a str),
    /// The record's patient (the dataset's `patient_id`): one patient's records are not
    /// independent either, so the bootstrap resamples patients, each with all its records.
    pub patient: &'a str,
}

/// The task over a dataset's windows.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub vocabulary: Vocabulary,
    /// Class codes, e.g. `NORM`, `A`, `426783006`.
    pub classes: Vec<String>,
    pub multi_label: bool,
    /// For each labelled window kept: its index among the dataset's windows.
    pub windows: Vec<usize>,
    /// Split of each kept window.
    pub parts: Vec<Part>,
    /// (kept, K): 1 where the window has the class.
    pub targets: Vec<f64>,
    /// Class of each kept window (single-label tasks; empty otherwise).
    pub class_of: Vec<u32>,
    /// Record of each kept window, numbered from 0 in order of first appearance.
    pub records: Vec<u32>,
    /// Patient of each kept window, numbered from 0 in order of first appearance.
    pub patients: Vec<u32>,
    /// Windows with no label of the vocabulary (or, of a fixed vocabulary, only codes outside
    /// its classes), skipped.
    pub skipped_unlabelled: usize,
    /// Windows of a vocabulary whose classes come from the data (SNOMED, a label CSV's own)
    /// whose labels are all codes too rare to be classes: kept, negative for every class, as
    /// the CinC 2020/2021 scoring keeps a recording whose diagnoses it does not score (until
    /// 2026-12-07 they were skipped as unlabelled).
    pub no_scored_class: usize,
    /// Windows of a single-label task with two different classes, skipped.
    pub skipped_ambiguous: usize,
    /// Windows whose split is none of train, val, test, skipped.
    pub skipped_split: usize,
    /// Of a vocabulary with fixed classes, the codes of its labels that are none of them (a
    /// label CSV's `ptbxl_superclass:AFIB` or `:norm`), each with its windows: they count as no
    /// label, and `protocols::task_warnings` names them.
    pub outside_classes: BTreeMap<String, usize>,
}

impl Task {
    /// A task of these classes that holds no window yet.
    pub fn without_windows(
        vocabulary: Vocabulary,
        classes: Vec<String>,
        multi_label: bool,
    ) -> Task {
        Task {
            vocabulary,
            classes,
            multi_label,
            windows: Vec::new(),
            parts: Vec::new(),
            targets: Vec::new(),
            class_of: Vec::new(),
            records: Vec::new(),
            patients: Vec::new(),
            skipped_unlabelled: 0,
            no_scored_class: 0,
            skipped_ambiguous: 0,
            skipped_split: 0,
            outside_classes: BTreeMap::new(),
        }
    }

    /// Builds the task of `vocabulary` over `windows`. SNOMED classes are the codes with at
    /// least `min_positives` positive windows in the train split. Fails, naming what is
    /// missing, when the dataset has no label of the vocabulary or a split has no labelled
    /// window.
    pub fn build(
        vocabulary: Vocabulary,
        windows: &[LabelledWindow<'_>],
        min_positives: usize,
    ) -> Result<Task, EvalError> {
        let prefix = format!("{}:", vocabulary.name());
        let codes = |w: &LabelledWindow<'_>| -> Vec<String> {
            let mut c: Vec<String> = w
                .labels
                .iter()
                .filter_map(|l| l.strip_prefix(&prefix))
                .map(str::to_string)
                .collect();
            c.sort();
            c.dedup();
            c
        };
        let classes: Vec<String> = match vocabulary.fixed_classes() {
            Some(fixed) => fixed.iter().map(|s| s.to_string()).collect(),
            None => {
                let mut counts: BTreeMap<String, usize> = BTreeMap::new();
                for w in windows.iter().filter(|w| w.split == "train") {
                    for code in codes(w) {
                        *counts.entry(code).or_default() += 1;
                    }
                }
                counts
                    .into_iter()
                    .filter(|&(_, n)| n >= min_positives)
                    .map(|(code, _)| code)
                    .collect()
            }
        };
        let labels = windows.iter().flat_map(|w| w.labels.iter());
        if let Some(why) = vocabulary.missing_from(labels.map(String::as_str)) {
            return Err(EvalError::Task(format!("the dataset has {why}")));
        }
        if classes.is_empty() {
            return Err(EvalError::Task(format!(
                "no `{prefix}` class has {min_positives} positive windows in the train split"
            )));
        }
        let k = classes.len();
        let multi_label = vocabulary.multi_label();
        let fixed = vocabulary.fixed_classes().is_some();
        let mut task = Task::without_windows(vocabulary, classes, multi_label);
        // Classes taken from the data, several a window: a window whose codes are all too
        // rare to be classes is a negative of each (`no_scored_class`).
        let keeps_negatives = multi_label && !fixed;
        let mut record_ids: HashMap<(&str, &str), u32> = HashMap::new();
        let mut patient_ids: HashMap<&str, u32> = HashMap::new();
        for (i, w) in windows.iter().enumerate() {
            let mut hits: Vec<usize> = Vec::new();
            let window_codes = codes(w);
            let has_codes = !window_codes.is_empty();
            for code in window_codes {
                match task.classes.iter().position(|k| *k == code) {
                    Some(class) => hits.push(class),
                    None if fixed => *task.outside_classes.entry(code).or_default() += 1,
                    None => {}
                }
            }
            let Some(part) = Part::parse(w.split) else {
                task.skipped_split += 1;
                continue;
            };
            if hits.is_empty() {
                if !(keeps_negatives && has_codes) {
                    task.skipped_unlabelled += 1;
                    continue;
                }
                task.no_scored_class += 1;
            }
            if !multi_label && hits.len() > 1 {
                task.skipped_ambiguous += 1;
                continue;
            }
            let mut row = vec![0.0; k];
            for &h in &hits {
                row[h] = 1.0;
            }
            task.targets.extend(row);
            if !multi_label {
                task.class_of.push(hits[0] as u32);
            }
            let next = record_ids.len() as u32;
            task.records
                .push(*record_ids.entry(w.record).or_insert(next));
            let next = patient_ids.len() as u32;
            task.patients
                .push(*patient_ids.entry(w.patient).or_insert(next));
            task.windows.push(i);
            task.parts.push(part);
        }
        for part in Part::ALL {
            if task.rows(part).is_empty() {
                return Err(EvalError::Task(format!(
                    "no window of the {} split has a `{prefix}` label of the classes {}{}",
                    part.name(),
                    task.classes.join(", "),
                    task.outside_classes_note()
                        .map_or(String::new(), |note| format!(" ({note})"))
                )));
            }
        }
        Ok(task)
    }

    /// Names the codes of `outside_classes`, when there are any.
    pub fn outside_classes_note(&self) -> Option<String> {
        let name = self.vocabulary.name();
        let codes: Vec<String> = (self.outside_classes.iter())
            .map(|(code, windows)| format!("{name}:{code} ({windows} windows)"))
            .collect();
        let first = self.outside_classes.keys().next()?;
        Some(format!(
            "labels `{}` are none of its classes {}: windows with only those count as \
             unlabelled (skipped); a label CSV of other codes needs a vocabulary of its own \
             (`hosp:{first}`, then `--labels hosp`)",
            codes.join("`, `"),
            self.classes.join(", "),
        ))
    }

    /// Classes K.
    pub fn k(&self) -> usize {
        self.classes.len()
    }

    /// Distinct records among the rows of `part`.
    pub fn records_in(&self, part: Part) -> usize {
        self.records_among(&self.rows(part))
    }

    /// Distinct records among `rows`.
    pub fn records_among(&self, rows: &[usize]) -> usize {
        distinct(rows.iter().map(|&r| self.records[r]))
    }

    /// Distinct patients among the rows of `part`.
    pub fn patients_in(&self, part: Part) -> usize {
        distinct(self.rows(part).iter().map(|&r| self.patients[r]))
    }

    /// Indices (into the kept windows) of the rows of `part`, in dataset order.
    pub fn rows(&self, part: Part) -> Vec<usize> {
        (0..self.parts.len())
            .filter(|&r| self.parts[r] == part)
            .collect()
    }

    /// Positive rows of each class in `part`.
    pub fn positives(&self, part: Part) -> Vec<usize> {
        let k = self.k();
        let mut counts = vec![0; k];
        for r in self.rows(part) {
            for (c, n) in counts.iter_mut().enumerate() {
                *n += usize::from(self.targets[r * k + c] > 0.5);
            }
        }
        counts
    }
}

fn distinct(ids: impl Iterator<Item = u32>) -> usize {
    let mut ids: Vec<u32> = ids.collect();
    ids.sort_unstable();
    ids.dedup();
    ids.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Labels as a window holds them.
    fn l(labels: &[&str]) -> Vec<String> {
        labels.iter().map(|s| s.to_string()).collect()
    }

    fn window<'a>(split: &'a str, labels: &'a [String]) -> LabelledWindow<'a> {
        LabelledWindow {
            split,
            labels,
            record: ("test", "one record"),
            patient: "test:one patient",
        }
    }

    #[test]
    fn single_label_task_skips_unlabelled_and_ambiguous_windows() {
        let (a, n, both, none) = (
            l(&["cinc2017:A"]),
            l(&["cinc2017:N"]),
            l(&["cinc2017:A", "cinc2017:N"]),
            l(&["scp:NORM"]),
        );
        let windows = [
            window("train", &a),
            window("train", &none),
            window("val", &n),
            window("test", &both),
            window("test", &a),
            window("other", &a),
        ];
        let task = Task::build(Vocabulary::Cinc2017, &windows, 1).unwrap();
        assert_eq!(task.windows, vec![0, 2, 4]);
        assert_eq!(task.class_of, vec![1, 0, 1]);
        assert_eq!(
            (
                task.skipped_unlabelled,
                task.skipped_ambiguous,
                task.skipped_split
            ),
            (1, 1, 1)
        );
        assert_eq!(task.positives(Part::Test), vec![0, 1, 0, 0]);
        let err = Task::build(Vocabulary::Synth, &windows, 1)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no `synth:` label") && err.contains("cinc2017, scp"),
            "{err}"
        );
        let err = Task::build(Vocabulary::Cinc2017, &windows[..2], 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("val split"), "{err}");
    }

    #[test]
    fn snomed_classes_need_enough_train_positives() {
        let (x, xy) = (l(&["snomed:1"]), l(&["snomed:1", "snomed:2"]));
        let windows = [
            window("train", &x),
            window("train", &xy),
            window("val", &xy),
            window("test", &x),
        ];
        let task = Task::build(Vocabulary::Snomed, &windows, 2).unwrap();
        assert_eq!(task.classes, vec!["1"]);
        assert_eq!(task.targets, vec![1.0; 4]);
        let err = Task::build(Vocabulary::Snomed, &windows, 3)
            .unwrap_err()
            .to_string();
        assert!(err.contains("3 positive windows"), "{err}");
    }

    #[test]
    fn a_vocabulary_of_the_dataset_s_own_takes_its_classes_from_the_data() {
        let (af, both, other) = (l(&["hosp:af"]), l(&["hosp:af", "hosp:lbbb"]), l(&["x:1"]));
        let windows = [
            window("train", &af),
            window("train", &both),
            window("val", &af),
            window("test", &both),
            window("test", &other),
        ];
        let hosp = Vocabulary::parse("hosp").unwrap();
        assert_eq!(hosp, Vocabulary::Own("hosp".into()));
        let task = Task::build(hosp, &windows, 1).unwrap();
        assert_eq!(task.classes, ["af", "lbbb"]);
        assert!(task.multi_label);
        assert_eq!(task.targets, [1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0]);
        assert_eq!(task.skipped_unlabelled, 1);
        assert!(
            task.outside_classes.is_empty(),
            "classes come from the data"
        );
        for bad in ["", "icd 10", "a:b"] {
            assert!(Vocabulary::parse(bad).is_err(), "{bad:?}");
        }
    }

    /// A window whose SNOMED codes are all too rare to be classes is a negative of every class
    /// (the CinC 2020/2021 scoring keeps such recordings), not an unlabelled window: dropping
    /// it would leave only windows with a scored diagnosis, an easier test set.
    #[test]
    fn a_window_of_only_rare_codes_is_kept_as_a_negative_of_every_class() {
        let (af, rare, none) = (l(&["snomed:164889003"]), l(&["snomed:426177001"]), l(&[]));
        let windows = [
            window("train", &af),
            window("train", &af),
            window("train", &rare),
            window("val", &af),
            window("val", &rare),
            window("test", &rare),
            window("test", &af),
            window("test", &none),
        ];
        let task = Task::build(Vocabulary::Snomed, &windows, 2).unwrap();
        assert_eq!(task.classes, ["164889003"]);
        assert_eq!(task.windows, [0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(task.targets, [1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
        assert_eq!((task.no_scored_class, task.skipped_unlabelled), (3, 1));
    }

    #[test]
    fn codes_outside_a_fixed_vocabulary_are_counted_and_named() {
        let (norm, afib, lower) = (
            l(&["ptbxl_superclass:NORM"]),
            l(&["ptbxl_superclass:AFIB"]),
            l(&["ptbxl_superclass:norm", "ptbxl_superclass:MI"]),
        );
        let windows = [
            window("train", &norm),
            window("train", &afib),
            window("val", &lower),
            window("test", &norm),
            window("test", &afib),
        ];
        let task = Task::build(Vocabulary::PtbxlSuperclass, &windows, 1).unwrap();
        let outside: Vec<(&str, usize)> = (task.outside_classes.iter())
            .map(|(c, n)| (c.as_str(), *n))
            .collect();
        assert_eq!(outside, [("AFIB", 2), ("norm", 1)]);
        assert_eq!(task.skipped_unlabelled, 2);
        let note = task.outside_classes_note().unwrap();
        assert!(
            note.starts_with(
                "labels `ptbxl_superclass:AFIB (2 windows)`, `ptbxl_superclass:norm (1 windows)` \
                 are none of its classes NORM, MI, STTC, CD, HYP"
            ),
            "{note}"
        );
    }
}
