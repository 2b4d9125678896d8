//! Paired comparison of two downstream results on the same test set: the 95% bootstrap interval
//! of the difference of their macro AUROCs, each resample drawing the test records once and
//! scoring both sides on that same draw.
//!
//! Two sizes of a sweep are scored on the same records, so most of the test set's sampling
//! noise is shared; the difference of two separate intervals (do they overlap?) counts that
//! noise twice and misses real differences. A side evaluated with several seeds counts as the
//! mean of its seeds' AUROCs on each draw: the interval is over test records, given these seeds.

use crate::analysis::TaskAuroc;
use crate::fit::bootstrap::Interval;
use ecgfm_trainer::eval::metrics::{bootstrap_ci, macro_auroc, record_groups};
use ecgfm_trainer::eval::UnitScores;

/// Bootstrap resamples of a paired interval.
const RESAMPLES: usize = 2000;

/// The 95% interval of `b`'s macro AUROC minus `a`'s, resampling their common test records
/// (drawn from `seed`); `None` unless every run of both sides saved its scored units and they
/// are the same units.
pub fn paired_interval(a: &TaskAuroc, b: &TaskAuroc, seed: u64) -> Option<Interval> {
    let first = a.units.first()?;
    let all = || a.units.iter().chain(&b.units);
    if b.units.is_empty() || !all().all(|u| u.same_units(first)) {
        return None;
    }
    let n = first.records.len();
    let k = first.targets.len().checked_div(n)?;
    let targets: Vec<f64> = first.targets.iter().map(|&t| f64::from(t)).collect();
    let widen = |u: &UnitScores| -> Vec<f64> { u.scores.iter().map(|&s| f64::from(s)).collect() };
    let (sa, sb): (Vec<Vec<f64>>, Vec<Vec<f64>>) = (
        a.units.iter().map(widen).collect(),
        b.units.iter().map(widen).collect(),
    );
    if all().any(|u| u.scores.len() != n * k) {
        return None;
    }
    let mean_auroc = |sides: &[Vec<f64>], rows: &[usize]| -> Option<f64> {
        let values: Option<Vec<f64>> = sides
            .iter()
            .map(|s| macro_auroc(s, &targets, k, rows))
            .collect();
        values.map(|v| v.iter().sum::<f64>() / v.len() as f64)
    };
    let groups = record_groups(&first.records);
    let [low, high] = bootstrap_ci(&groups, RESAMPLES, seed, |rows| {
        Some(mean_auroc(&sb, rows)? - mean_auroc(&sa, rows)?)
    })?;
    Some(Interval { low, high })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A side whose score for each of `n` records is `signal` times its label plus noise.
    fn side(n: usize, signal: f64, seed: u64) -> UnitScores {
        let mut rng = ecgfm_trainer::model::rng::SplitMix64::from_words(&[seed]);
        let targets: Vec<u8> = (0..n)
            .flat_map(|i| [u8::from(i % 3 == 0), u8::from(i % 3 != 0)])
            .collect();
        let scores = targets
            .chunks(2)
            .flat_map(|t| {
                let noise = rng.next_f64();
                [
                    signal * f64::from(t[0]) + noise,
                    signal * f64::from(t[1]) + noise,
                ]
            })
            .map(|s| s as f32)
            .collect();
        UnitScores {
            records: (0..n as u32).collect(),
            targets,
            scores,
        }
    }

    fn result(units: Vec<UnitScores>) -> TaskAuroc {
        TaskAuroc {
            task: "t".into(),
            mean: 0.0,
            ci: None,
            runs: units.len(),
            units,
        }
    }

    #[test]
    fn a_real_difference_excludes_zero_and_none_includes_it() {
        let weak = result(vec![side(300, 0.2, 1)]);
        let strong = result(vec![side(300, 0.8, 1)]);
        let ci = paired_interval(&weak, &strong, 7).unwrap();
        assert!(ci.low > 0.0, "{ci:?}");
        let same = paired_interval(&weak, &weak, 7).unwrap();
        assert_eq!((same.low, same.high), (0.0, 0.0));
        let twin = result(vec![side(300, 0.2, 2)]);
        let ci = paired_interval(&weak, &twin, 7).unwrap();
        assert!(ci.low < 0.0 && ci.high > 0.0, "{ci:?}");
    }

    #[test]
    fn other_units_or_missing_scores_give_no_interval() {
        let a = result(vec![side(300, 0.5, 1)]);
        assert!(paired_interval(&a, &result(vec![side(299, 0.5, 1)]), 7).is_none());
        assert!(paired_interval(&a, &result(Vec::new()), 7).is_none());
        let mut relabelled = side(300, 0.5, 1);
        relabelled.targets.swap(0, 1);
        assert!(paired_interval(&a, &result(vec![relabelled]), 7).is_none());
    }
}
