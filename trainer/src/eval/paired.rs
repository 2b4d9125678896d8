//! Paired comparison of two evaluations on the same test set: the 95% bootstrap interval of
//! the difference of their macro AUROCs (or macro F1s at each evaluation's own thresholds),
//! each resample drawing the test records once and scoring both sides on that same draw
//! (`ecgfm compare`, and a sweep's sizes in its report).
//!
//! Two encoders scored on the same records share most of the test set's sampling noise; the
//! overlap of their two separate intervals counts that noise twice and misses real
//! differences. A side given as several evaluations (seeds) counts as the mean of their values
//! on each draw: the interval is over test records, given those seeds ([`Resample::Records`]);
//! or each draw also picks each side's seeds again, with replacement ([`Resample::SeedsAndRecords`]),
//! so the interval widens by how much the encoders of one recipe differ from seed to seed.
//!
//! A result that depends on the evaluation's seed (a protocol that trains, or starts from a
//! random encoder, or a label fraction below 1, whose training records the seed draws) varies
//! from seed to seed as well; an interval over the test records alone leaves that out
//! ([`IntervalNoise::TestSetOnly`]), so it is labelled as such and supports no verdict.

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::metrics::{
    bootstrap_ci, defined_classes, mean_over, per_class_auroc, per_class_f1, record_groups,
};
use super::report::{ProtocolResult, UnitScores, WithCi};
use crate::model::rng::SplitMix64;

/// What each draw of a paired bootstrap picks anew.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resample {
    /// The test records: the interval is given the evaluations (seeds) each side has.
    Records,
    /// Each side's evaluations as well (as many as it has, with replacement, independently per
    /// side: seeds are not paired across sides), then the test records, the hierarchical
    /// bootstrap. Needs two or more evaluations a side; with few seeds it is coarse (two seeds
    /// give three different draws a side).
    SeedsAndRecords,
}

/// What the resamples of an interval vary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntervalNoise {
    /// The test records only, while a value it bounds depends on the evaluation's seed
    /// ([`seed_dependent`]) and the seeds were not resampled: how much that value moves from
    /// seed to seed is not in the interval, so an interval excluding 0 is no verdict.
    TestSetOnly,
    /// The test records, and each side's seeds where a value depends on them
    /// ([`Resample::SeedsAndRecords`]), or nothing depends on the seed.
    Complete,
}

impl IntervalNoise {
    /// The noise of an interval resampled `over`, where some value it bounds is
    /// `seed_dependent` or not.
    pub fn of(over: Resample, seed_dependent: bool) -> IntervalNoise {
        match (over, seed_dependent) {
            (Resample::Records, true) => IntervalNoise::TestSetOnly,
            _ => IntervalNoise::Complete,
        }
    }

    /// What a table prints beside such an interval (`None`: nothing to qualify).
    pub fn label(self) -> Option<&'static str> {
        match self {
            IntervalNoise::TestSetOnly => Some("test-set noise only; training seed not resampled"),
            IntervalNoise::Complete => None,
        }
    }

    /// Whether an interval excluding 0 may be stated as a difference.
    pub fn supports_verdict(self) -> bool {
        self == IntervalNoise::Complete
    }
}

/// Whether `protocol` at label `fraction` gives another result under another evaluation seed:
/// `finetune` and `scratch` (initialisation, batch order, the epoch kept), `random_probe` (the
/// random encoder), and any protocol below a fraction of 1 (the training records drawn). The
/// probe of the pretrained encoder on every label is a convex fit on fixed features: the seed
/// does not move it.
pub fn seed_dependent(protocol: &str, fraction: f64) -> bool {
    protocol != "probe" || fraction < 1.0
}

/// One entry of a result file's `results`, as a paired comparison reads it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ScoredResult {
    pub protocol: String,
    pub fraction: f64,
    pub macro_auroc: Option<f64>,
    /// The one-vs-rest thresholded macro F1 (`macro_f1_ovr_thresholded`; `macro_f1` in files
    /// written before it was renamed). Absent (no value) where a result file leaves it out.
    #[serde(default, rename = "macro_f1_ovr_thresholded", alias = "macro_f1")]
    pub macro_f1: WithCi,
    /// Each class's thresholded F1, `null` where it is left out of the macro (neither a test
    /// positive nor a unit predicted positive, or no validation positive to pick a threshold
    /// on; a class predicted where the test set lacks it scores 0 and counts); empty in older
    /// files.
    #[serde(default)]
    pub per_class_f1: BTreeMap<String, Option<f64>>,
    /// Each class's decision threshold (picked on validation), by class name, `null` where
    /// none could be picked (no validation positive); empty where a result file leaves them out
    /// (no F1 comparison then).
    #[serde(default)]
    pub thresholds: BTreeMap<String, Option<f64>>,
    /// Absent in result files written before ecgfm kept the scored units.
    #[serde(default)]
    pub test_units: Option<UnitScores>,
}

impl ScoredResult {
    /// Whether another evaluation seed would give another result ([`seed_dependent`]).
    pub fn seed_dependent(&self) -> bool {
        seed_dependent(&self.protocol, self.fraction)
    }

    /// The thresholds in the order of `classes`, each `None` where the file leaves the class
    /// out of its macro F1 (`per_class_f1` null), as the paired F1 interval must too; `None`
    /// when a class has no threshold.
    pub fn thresholds_of(&self, classes: &[String]) -> Option<Vec<Option<f64>>> {
        classes
            .iter()
            .map(|c| {
                let threshold = *self.thresholds.get(c)?;
                let left_out = matches!(self.per_class_f1.get(c), Some(None));
                Some(threshold.filter(|_| !left_out))
            })
            .collect()
    }
}

impl From<&ProtocolResult> for ScoredResult {
    fn from(r: &ProtocolResult) -> Self {
        ScoredResult {
            protocol: r.protocol.name().to_string(),
            fraction: r.fraction,
            macro_auroc: r.test.macro_auroc,
            macro_f1: r.test.macro_f1_ovr_thresholded.clone(),
            per_class_f1: r.test.per_class_f1.clone(),
            thresholds: r.test.thresholds.clone(),
            test_units: Some(r.test_units.clone()),
        }
    }
}

/// A pretrained result (probe, fine-tuned) against the `scratch` result at its label fraction.
pub struct AgainstScratch<'a> {
    pub result: &'a ScoredResult,
    /// Its macro AUROC minus scratch's.
    pub diff: f64,
    /// The paired 95% interval of that difference, over the test records of one evaluation.
    pub interval: [f64; 2],
    /// Always [`IntervalNoise::TestSetOnly`]: scratch depends on the seed, which one
    /// evaluation does not resample.
    pub noise: IntervalNoise,
}

/// Every pretrained result of `results` (one evaluation's) against its `scratch` result, where
/// both have an AUROC and scored units and the interval is defined.
pub fn against_scratch(
    results: &[ScoredResult],
    resamples: usize,
    seed: u64,
) -> Vec<AgainstScratch<'_>> {
    let scratch = |fraction: f64| {
        results
            .iter()
            .find(|r| r.protocol == "scratch" && r.fraction == fraction)
    };
    results
        .iter()
        .filter(|r| r.protocol == "probe" || r.protocol == "finetune")
        .filter_map(|result| {
            let base = scratch(result.fraction)?;
            let diff = result.macro_auroc? - base.macro_auroc?;
            let (a, b) = (base.test_units.as_ref()?, result.test_units.as_ref()?);
            let interval =
                paired_auroc_interval(&[a], &[b], Resample::Records, resamples, seed).ok()??;
            Some(AgainstScratch {
                result,
                diff,
                interval,
                noise: IntervalNoise::of(Resample::Records, base.seed_dependent()),
            })
        })
        .collect()
}

/// Why two sides cannot be compared pairwise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairError {
    #[error("a side has no evaluation")]
    Empty,
    #[error(
        "the evaluations were scored on different test units (another dataset, split, label \
         vocabulary or --score-by)"
    )]
    OtherUnits,
    #[error("a result's scores do not match its units ({scores} scores for {units} units)")]
    Malformed { scores: usize, units: usize },
    #[error("a result has {given} thresholds for {classes} classes")]
    Thresholds { given: usize, classes: usize },
    #[error("resampling seeds needs two or more evaluations a side (here {a} and {b})")]
    OneSeed { a: usize, b: usize },
}

/// The 95% interval of the macro AUROC of `b` (mean over its evaluations) minus that of `a`,
/// over `resamples` resamples (`over`: of their common test units, or of seeds and units)
/// drawn from `seed`; units are drawn by patient, each with all its units, where every
/// evaluation gives the same patients ([`UnitScores::patients`]), else by record.
/// `Ok(None)` when too few resamples define both AUROCs (a class with no positive).
pub fn paired_auroc_interval(
    a: &[&UnitScores],
    b: &[&UnitScores],
    over: Resample,
    resamples: usize,
    seed: u64,
) -> Result<Option<[f64; 2]>, PairError> {
    paired_interval(
        a,
        b,
        over,
        (resamples, seed),
        |_, scores, targets, k, rows| per_class_auroc(scores, targets, k, rows),
    )
}

/// The 95% interval of the macro F1 of `b` minus that of `a`, each evaluation at its own
/// per-class thresholds (`(units, thresholds in class order)`, `None` for a class the
/// evaluation leaves out of its macro F1), as [`paired_auroc_interval`] does for the AUROC.
pub fn paired_f1_interval(
    a: &[(&UnitScores, &[Option<f64>])],
    b: &[(&UnitScores, &[Option<f64>])],
    over: Resample,
    resamples: usize,
    seed: u64,
) -> Result<Option<[f64; 2]>, PairError> {
    let thresholds: Vec<&[Option<f64>]> = a.iter().chain(b).map(|e| e.1).collect();
    // A class left out gets any threshold; its F1 is dropped after.
    let cutoffs: Vec<Vec<f64>> = (thresholds.iter())
        .map(|t| t.iter().map(|c| c.unwrap_or(0.5)).collect())
        .collect();
    for (units, given) in a.iter().chain(b) {
        let classes = units
            .targets
            .len()
            .checked_div(units.records.len())
            .unwrap_or(0);
        if given.len() != classes {
            return Err(PairError::Thresholds {
                given: given.len(),
                classes,
            });
        }
    }
    let units_a: Vec<&UnitScores> = a.iter().map(|e| e.0).collect();
    let units_b: Vec<&UnitScores> = b.iter().map(|e| e.0).collect();
    paired_interval(
        &units_a,
        &units_b,
        over,
        (resamples, seed),
        |i, scores, targets, k, rows| {
            let f1 = per_class_f1(scores, targets, k, rows, &cutoffs[i]);
            (f1.into_iter().zip(thresholds[i]))
                .map(|(f, t)| f.filter(|_| t.is_some()))
                .collect()
        },
    )
}

/// Whether a paired interval over `units` draws patients (each with all its units): every
/// evaluation gives the same patient for each unit. Else it draws records.
pub fn by_patient(units: &[&UnitScores]) -> bool {
    let Some(first) = units.first() else {
        return false;
    };
    first.patients.len() == first.records.len()
        && units.iter().all(|u| u.patients == first.patients)
}

/// The paired interval of the macro mean of `per_class` (the per-class values of evaluation `i`
/// of `a` then `b`, from its scores, the targets, the class count and the resampled rows): `b`'s
/// mean minus `a`'s on each of `resamples` resamples drawn from `seed`, of the patients of the
/// units where every evaluation gives the same, else of their records. A resample counts only
/// where every class the whole test set defines (for every evaluation) stays defined, as
/// `report::test_metrics`'s intervals.
fn paired_interval(
    a: &[&UnitScores],
    b: &[&UnitScores],
    over: Resample,
    (resamples, seed): (usize, u64),
    per_class: impl Fn(usize, &[f64], &[f64], usize, &[usize]) -> Vec<Option<f64>>,
) -> Result<Option<[f64; 2]>, PairError> {
    let (Some(first), false) = (a.first(), b.is_empty()) else {
        return Err(PairError::Empty);
    };
    let all = || a.iter().chain(b);
    if !all().all(|u| u.same_units(first)) {
        return Err(PairError::OtherUnits);
    }
    let n = first.records.len();
    let k = first.targets.len().checked_div(n).unwrap_or(0);
    if let Some(bad) = all().find(|u| u.scores.len() != n * k || k * n != first.targets.len()) {
        return Err(PairError::Malformed {
            scores: bad.scores.len(),
            units: n,
        });
    }
    let targets: Vec<f64> = first.targets.iter().map(|&t| f64::from(t)).collect();
    let scores: Vec<Vec<f64>> = all()
        .map(|u| u.scores.iter().map(|&s| f64::from(s)).collect())
        .collect();
    let every: Vec<usize> = (0..n).collect();
    let classes: Vec<Vec<usize>> = (0..scores.len())
        .map(|i| defined_classes(&per_class(i, &scores[i], &targets, k, &every)))
        .collect();
    let mean = |evaluations: &[usize], rows: &[usize]| -> Option<f64> {
        let values: Option<Vec<f64>> = evaluations
            .iter()
            .map(|&i| mean_over(&per_class(i, &scores[i], &targets, k, rows), &classes[i]))
            .collect();
        values.map(|v| v.iter().sum::<f64>() / evaluations.len() as f64)
    };
    let groups = record_groups(match by_patient(&all().copied().collect::<Vec<_>>()) {
        true => &first.patients,
        false => &first.records,
    });
    let (na, nb) = (a.len(), b.len());
    if over == Resample::SeedsAndRecords && (na < 2 || nb < 2) {
        return Err(PairError::OneSeed { a: na, b: nb });
    }
    let (all_a, all_b): (Vec<usize>, Vec<usize>) = ((0..na).collect(), (na..na + nb).collect());
    let seeds = RefCell::new(SplitMix64::from_words(&[seed, 0x5EED_D2A3]));
    let redraw = |side: &[usize]| -> Vec<usize> {
        let mut rng = seeds.borrow_mut();
        let count = side.len() as u64;
        side.iter()
            .map(|_| side[rng.below(count) as usize])
            .collect()
    };
    Ok(bootstrap_ci(&groups, resamples, seed, |rows| {
        let (pick_a, pick_b) = match over {
            Resample::Records => (all_a.clone(), all_b.clone()),
            Resample::SeedsAndRecords => (redraw(&all_a), redraw(&all_b)),
        };
        Some(mean(&pick_b, rows)? - mean(&pick_a, rows)?)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::rng::SplitMix64;

    /// `n` records of two classes; each score is `signal` times the label plus noise.
    fn side(n: usize, signal: f64, seed: u64) -> UnitScores {
        let mut rng = SplitMix64::from_words(&[seed]);
        let targets: Vec<u8> = (0..n)
            .flat_map(|i| [u8::from(i % 3 == 0), u8::from(i % 3 != 0)])
            .collect();
        let scores = targets
            .chunks(2)
            .flat_map(|t| {
                let noise = rng.next_f64();
                [f64::from(t[0]), f64::from(t[1])].map(|y| (signal * y + noise) as f32)
            })
            .collect();
        UnitScores {
            records: (0..n as u32).collect(),
            targets,
            scores,
            patients: Vec::new(),
        }
    }

    fn interval(a: &UnitScores, b: &UnitScores) -> [f64; 2] {
        paired_auroc_interval(&[a], &[b], Resample::Records, 1000, 7)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn a_real_difference_excludes_zero_and_none_includes_it() {
        let (weak, strong) = (side(300, 0.2, 1), side(300, 0.8, 1));
        let [low, _] = interval(&weak, &strong);
        assert!(low > 0.0, "{low}");
        assert_eq!(interval(&weak, &weak), [0.0, 0.0]);
        let [low, high] = interval(&weak, &side(300, 0.2, 2));
        assert!(low < 0.0 && high > 0.0, "{low} {high}");
    }

    /// A class with one positive among 30 units is gone from about a third of the resamples:
    /// averaging whichever classes each resample holds mixes two macro means, so no interval.
    #[test]
    fn resamples_that_lose_a_class_are_not_counted() {
        let mut rare = side(30, 0.8, 1);
        rare.targets = (0..30)
            .flat_map(|i| [u8::from(i % 2 == 0), u8::from(i == 0)])
            .collect();
        let other = side(30, 0.2, 2);
        let mut b = other.clone();
        b.targets = rare.targets.clone();
        assert_eq!(
            paired_auroc_interval(&[&rare], &[&b], Resample::Records, 1000, 7),
            Ok(None)
        );
    }

    #[test]
    fn several_seeds_count_as_their_mean() {
        let (a, b, c) = (side(300, 0.2, 1), side(300, 0.2, 2), side(300, 0.8, 3));
        let pooled = paired_auroc_interval(&[&a, &b], &[&c], Resample::Records, 1000, 7)
            .unwrap()
            .unwrap();
        let (one, two) = (interval(&a, &c), interval(&b, &c));
        for end in 0..2 {
            let (lo, hi) = (one[end].min(two[end]), one[end].max(two[end]));
            assert!(
                pooled[end] > lo - 0.02 && pooled[end] < hi + 0.02,
                "{pooled:?}"
            );
        }
    }

    #[test]
    fn f1_differences_are_paired_at_each_sides_thresholds() {
        let (weak, strong) = (side(300, 0.2, 1), side(300, 0.8, 1));
        let (at_weak, at_strong) = ([Some(0.6); 2], [Some(0.9); 2]);
        let f1 = |a: (&UnitScores, &[Option<f64>]), b: (&UnitScores, &[Option<f64>])| {
            paired_f1_interval(&[a], &[b], Resample::Records, 1000, 7)
                .unwrap()
                .unwrap()
        };
        let [low, _] = f1((&weak, &at_weak), (&strong, &at_strong));
        assert!(low > 0.0, "{low}");
        assert_eq!(f1((&weak, &at_weak), (&weak, &at_weak)), [0.0, 0.0]);
        // The same scores at a worse threshold: a difference of thresholds alone.
        let [_, high] = f1((&strong, &at_strong), (&strong, &[Some(1.5); 2]));
        assert!(high < 0.0, "{high}");
        // A class the evaluations leave out (no validation positive) is out of the difference:
        // the interval is that of class 0 alone.
        let class_0 = |u: &UnitScores| UnitScores {
            targets: u.targets.iter().step_by(2).copied().collect(),
            scores: u.scores.iter().step_by(2).copied().collect(),
            ..u.clone()
        };
        assert_eq!(
            f1((&weak, &[Some(0.6), None]), (&strong, &[Some(0.9), None])),
            f1(
                (&class_0(&weak), &[Some(0.6)]),
                (&class_0(&strong), &[Some(0.9)])
            )
        );
        assert_eq!(
            paired_f1_interval(
                &[(&weak, &[Some(0.5)])],
                &[(&strong, &at_strong)],
                Resample::Records,
                10,
                7
            ),
            Err(PairError::Thresholds {
                given: 1,
                classes: 2
            })
        );
    }

    #[test]
    fn other_units_or_malformed_scores_are_refused() {
        let a = side(300, 0.5, 1);
        let pair = |b: &UnitScores| paired_auroc_interval(&[&a], &[b], Resample::Records, 100, 7);
        assert_eq!(pair(&side(299, 0.5, 1)), Err(PairError::OtherUnits));
        let mut relabelled = side(300, 0.5, 1);
        relabelled.targets.swap(0, 1);
        assert_eq!(pair(&relabelled), Err(PairError::OtherUnits));
        let mut short = side(300, 0.5, 1);
        short.scores.pop();
        assert!(matches!(pair(&short), Err(PairError::Malformed { .. })));
        assert_eq!(
            paired_auroc_interval(&[&a], &[], Resample::Records, 100, 7),
            Err(PairError::Empty)
        );
        assert_eq!(
            paired_auroc_interval(&[&a, &a], &[&a], Resample::SeedsAndRecords, 100, 7),
            Err(PairError::OneSeed { a: 2, b: 1 })
        );
    }

    /// 300 units of 10 patients, each patient's units identical: resampling units as if
    /// independent gives a far narrower interval than resampling the patients.
    #[test]
    fn patients_are_resampled_with_all_their_units() {
        let patients: Vec<u32> = (0..300).map(|i| i % 10).collect();
        let copies = |u: UnitScores| {
            let mut c = u.clone();
            for i in 0..300 {
                let j = i % 10;
                c.scores[i * 2..i * 2 + 2].copy_from_slice(&u.scores[j * 2..j * 2 + 2]);
                c.targets[i * 2..i * 2 + 2].copy_from_slice(&u.targets[j * 2..j * 2 + 2]);
            }
            c
        };
        let (a, b) = (copies(side(300, 0.2, 1)), copies(side(300, 0.5, 2)));
        let by_unit = interval(&a, &b);
        let with_patients = |u: &UnitScores, patients: &[u32]| UnitScores {
            patients: patients.to_vec(),
            ..u.clone()
        };
        let (pa, pb) = (with_patients(&a, &patients), with_patients(&b, &patients));
        let by_patient = interval(&pa, &pb);
        let width = |ci: [f64; 2]| ci[1] - ci[0];
        assert!(
            width(by_patient) > 2.0 * width(by_unit),
            "{by_patient:?} {by_unit:?}"
        );
        // Sides that do not give the same patients are drawn by record.
        let mut other: Vec<u32> = patients.clone();
        other.swap(0, 5);
        assert_eq!(interval(&pa, &with_patients(&b, &other)), by_unit);
        assert_eq!(interval(&pa, &b), by_unit);
    }

    #[test]
    fn an_interval_over_one_seed_of_a_trained_protocol_is_test_set_noise_only() {
        assert!(seed_dependent("finetune", 1.0) && seed_dependent("scratch", 1.0));
        assert!(seed_dependent("random_probe", 1.0) && seed_dependent("probe", 0.1));
        assert!(!seed_dependent("probe", 1.0));
        let only = IntervalNoise::of(Resample::Records, true);
        assert_eq!(only, IntervalNoise::TestSetOnly);
        assert!(!only.supports_verdict());
        assert_eq!(
            only.label(),
            Some("test-set noise only; training seed not resampled")
        );
        let complete = IntervalNoise::of(Resample::SeedsAndRecords, true);
        assert!(complete.supports_verdict() && complete.label().is_none());
        assert!(IntervalNoise::of(Resample::Records, false).supports_verdict());
        let result = |protocol: &str, fraction| ScoredResult {
            protocol: protocol.into(),
            fraction,
            macro_auroc: Some(0.5),
            macro_f1: WithCi::default(),
            per_class_f1: BTreeMap::new(),
            thresholds: BTreeMap::new(),
            test_units: Some(side(60, 0.5, 1)),
        };
        let results = [result("probe", 1.0), result("scratch", 1.0)];
        let paired = against_scratch(&results, 200, 7);
        assert_eq!(paired.len(), 1);
        assert_eq!(paired[0].noise, IntervalNoise::TestSetOnly);
    }

    #[test]
    fn resampling_seeds_widens_the_interval_by_their_spread() {
        // B's two seeds disagree: one strong encoder, one as weak as A's two.
        let a = [side(300, 0.2, 1), side(300, 0.2, 2)];
        let b = [side(300, 0.8, 3), side(300, 0.2, 4)];
        let (a, b): (Vec<&UnitScores>, Vec<&UnitScores>) = (a.iter().collect(), b.iter().collect());
        let over = |how| {
            paired_auroc_interval(&a, &b, how, 1000, 7)
                .unwrap()
                .unwrap()
        };
        let records = over(Resample::Records);
        let seeds = over(Resample::SeedsAndRecords);
        // Given these seeds, B is better; a quarter of the draws pick B's weak seed twice, so
        // over seeds too the interval reaches down to no difference.
        assert!(records[0] > 0.05, "{records:?}");
        assert!(
            seeds[0] < 0.02 && seeds[1] > records[1] - 0.02,
            "{seeds:?} {records:?}"
        );
        assert_eq!(seeds, over(Resample::SeedsAndRecords), "not deterministic");
        // Seeds that agree leave it about as it was.
        let twins = [side(300, 0.2, 1), side(300, 0.2, 1)];
        let strong = [side(300, 0.8, 3), side(300, 0.8, 3)];
        let (t, s): (Vec<&UnitScores>, Vec<&UnitScores>) =
            (twins.iter().collect(), strong.iter().collect());
        let pair = |how| {
            paired_auroc_interval(&t, &s, how, 1000, 7)
                .unwrap()
                .unwrap()
        };
        assert_eq!(pair(Resample::SeedsAndRecords), pair(Resample::Records));
    }

    /// A result of `protocol` at label `fraction` with macro AUROC `auroc` and scored units.
    fn scored(protocol: &str, fraction: f64, auroc: f64) -> ScoredResult {
        ScoredResult {
            protocol: protocol.into(),
            fraction,
            macro_auroc: Some(auroc),
            macro_f1: WithCi::default(),
            per_class_f1: BTreeMap::new(),
            thresholds: BTreeMap::new(),
            test_units: Some(side(60, auroc, 1)),
        }
    }

    /// Each pretrained result, probe and fine-tuned alike, is set against the scratch result of
    /// its own label fraction; one with no scratch result at its fraction is left out.
    #[test]
    fn against_scratch_pairs_each_result_with_scratch_at_its_fraction() {
        let results = [
            scored("scratch", 0.1, 0.6),
            scored("scratch", 1.0, 0.8),
            scored("probe", 0.1, 0.7),
            scored("finetune", 1.0, 0.9),
            scored("probe", 0.01, 0.5),
        ];
        let paired: Vec<(&str, f64, f64)> = against_scratch(&results, 200, 7)
            .iter()
            .map(|p| (p.result.protocol.as_str(), p.result.fraction, p.diff))
            .collect();
        assert_eq!(paired.len(), 2, "{paired:?}");
        assert_eq!((paired[0].0, paired[0].1), ("probe", 0.1));
        assert!((paired[0].2 - 0.1).abs() < 1e-12, "{paired:?}");
        assert_eq!((paired[1].0, paired[1].1), ("finetune", 1.0));
        assert!((paired[1].2 - 0.1).abs() < 1e-12, "{paired:?}");
    }

    /// A class the result file leaves out of its macro F1 (`per_class_f1` null) gets no
    /// threshold in the paired F1 either, though the file gives it one; a class the file has
    /// no threshold entry for leaves the result out of the F1 comparison.
    #[test]
    fn thresholds_leave_out_the_classes_the_file_leaves_out() {
        let result = ScoredResult {
            thresholds: BTreeMap::from([
                ("A".to_string(), Some(0.3)),
                ("B".to_string(), Some(0.6)),
                ("C".to_string(), None),
            ]),
            per_class_f1: BTreeMap::from([
                ("A".to_string(), Some(0.7)),
                ("B".to_string(), None),
                ("C".to_string(), None),
            ]),
            ..scored("probe", 1.0, 0.5)
        };
        let classes = |names: &[&str]| names.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        assert_eq!(
            result.thresholds_of(&classes(&["B", "A", "C"])),
            Some(vec![None, Some(0.3), None])
        );
        assert_eq!(result.thresholds_of(&classes(&["A", "D"])), None);
    }
}
