//! Classification metrics on host arrays, in f64: AUROC per class and macro, one-vs-rest F1 at
//! per-class thresholds picked on validation (a row may be predicted as several classes or
//! none), F1 of single-label argmax predictions (each row exactly one class: the CinC 2017
//! challenge's way), accuracy, and seeded bootstrap confidence intervals.
//!
//! Conventions: `scores` and `targets` are (n, K) row-major; a target is 1.0 (positive) or 0.0.
//! A class whose test set holds no positive or no negative has no AUROC (`None`, never NaN); it
//! is left out of the macro AUROC, and the caller warns about it. A class's F1 is undefined only
//! where it is neither present nor predicted: predicted where it is absent, it scores 0 (every
//! prediction a false positive) and counts in the macro F1, as scikit-learn's does.

use crate::model::rng::SplitMix64;
use std::collections::HashMap;

/// Area under the ROC curve of `scores` for binary `positive` flags: the probability that a
/// random positive scores above a random negative, ties counting one half (Mann-Whitney U with
/// average ranks; equal to scikit-learn's `roc_auc_score`). `None` without both kinds.
pub fn auroc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let n_pos = positive.iter().filter(|&&p| p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the positives' ranks (1-based), tied scores sharing their average rank.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let average_rank = (i + j) as f64 / 2.0 + 1.0;
        let positives = order[i..=j].iter().filter(|&&r| positive[r]).count();
        rank_sum += average_rank * positives as f64;
        i = j + 1;
    }
    let (p, q) = (n_pos as f64, n_neg as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * q))
}

/// Column `class` of an (n, K) matrix, over the rows `rows`.
fn column<'a>(
    matrix: &'a [f64],
    k: usize,
    class: usize,
    rows: &'a [usize],
) -> impl Iterator<Item = f64> + 'a {
    rows.iter().map(move |&r| matrix[r * k + class])
}

/// Per-class AUROC over `rows` of (n, K) scores and targets.
pub fn per_class_auroc(
    scores: &[f64],
    targets: &[f64],
    k: usize,
    rows: &[usize],
) -> Vec<Option<f64>> {
    (0..k)
        .map(|c| {
            let s: Vec<f64> = column(scores, k, c, rows).collect();
            let y: Vec<bool> = column(targets, k, c, rows).map(|t| t > 0.5).collect();
            auroc(&s, &y)
        })
        .collect()
}

/// The mean of the defined values (`None` when there is none).
pub fn mean_defined(values: &[Option<f64>]) -> Option<f64> {
    let defined: Vec<f64> = values.iter().flatten().copied().collect();
    (!defined.is_empty()).then(|| defined.iter().sum::<f64>() / defined.len() as f64)
}

/// The mean of `values` over `classes`, `None` when one of them is undefined: what a bootstrap
/// resample scores, so that every resample averages the same classes as the full test set.
pub fn mean_over(values: &[Option<f64>], classes: &[usize]) -> Option<f64> {
    let picked: Option<Vec<f64>> = classes.iter().map(|&c| values[c]).collect();
    picked
        .filter(|v| !v.is_empty())
        .map(|v| v.iter().sum::<f64>() / v.len() as f64)
}

/// The classes whose value is defined.
pub fn defined_classes(values: &[Option<f64>]) -> Vec<usize> {
    (0..values.len()).filter(|&c| values[c].is_some()).collect()
}

/// Macro AUROC over `rows`: the mean of the defined per-class AUROCs.
pub fn macro_auroc(scores: &[f64], targets: &[f64], k: usize, rows: &[usize]) -> Option<f64> {
    mean_defined(&per_class_auroc(scores, targets, k, rows))
}

/// F1 of one class: 2 TP / (2 TP + FP + FN), predicting positive where score >= threshold.
/// `None` when the rows hold no positive of the class and none is predicted.
fn class_f1(
    scores: &[f64],
    targets: &[f64],
    k: usize,
    c: usize,
    rows: &[usize],
    t: f64,
) -> Option<f64> {
    let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
    for (s, y) in column(scores, k, c, rows).zip(column(targets, k, c, rows)) {
        match (s >= t, y > 0.5) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fn_ += 1,
            (false, false) => {}
        }
    }
    (tp + fp + fn_ > 0).then(|| 2.0 * tp as f64 / (2 * tp + fp + fn_) as f64)
}

/// Per-class F1 over `rows` at one threshold per class.
pub fn per_class_f1(
    scores: &[f64],
    targets: &[f64],
    k: usize,
    rows: &[usize],
    thresholds: &[f64],
) -> Vec<Option<f64>> {
    (0..k)
        .map(|c| class_f1(scores, targets, k, c, rows, thresholds[c]))
        .collect()
}

/// One-vs-rest thresholded macro F1 over `rows`: the mean of the per-class F1 (each class
/// predicted wherever its score reaches its own threshold) of the classes present or predicted.
pub fn macro_f1(
    scores: &[f64],
    targets: &[f64],
    k: usize,
    rows: &[usize],
    thresholds: &[f64],
) -> Option<f64> {
    mean_defined(&per_class_f1(scores, targets, k, rows, thresholds))
}

/// For each class, the threshold that maximises its F1 over `rows` (the validation set): the
/// midpoint between the lowest score predicted positive and the next lower score (the highest
/// such cut among equally good ones); 0.5 for a class without positives there.
pub fn pick_thresholds(scores: &[f64], targets: &[f64], k: usize, rows: &[usize]) -> Vec<f64> {
    (0..k)
        .map(|c| {
            let mut pairs: Vec<(f64, bool)> = column(scores, k, c, rows)
                .zip(column(targets, k, c, rows).map(|t| t > 0.5))
                .collect();
            let total_pos = pairs.iter().filter(|p| p.1).count();
            if total_pos == 0 {
                return 0.5;
            }
            // Descending scores: predicting positive for the first i rows.
            pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
            let (mut tp, mut fp) = (0usize, 0usize);
            let (mut best_f1, mut best_at) = (-1.0, 0usize);
            for i in 0..pairs.len() {
                if pairs[i].1 {
                    tp += 1;
                } else {
                    fp += 1;
                }
                let tied_with_next = i + 1 < pairs.len() && pairs[i + 1].0 == pairs[i].0;
                if tied_with_next {
                    continue;
                }
                let f1 = 2.0 * tp as f64 / (tp + fp + total_pos) as f64;
                if f1 > best_f1 {
                    best_f1 = f1;
                    best_at = i;
                }
            }
            match pairs.get(best_at + 1) {
                Some(next) => (pairs[best_at].0 + next.0) / 2.0,
                None => pairs[best_at].0,
            }
        })
        .collect()
}

/// Fraction of `rows` whose highest score is their class (single-label tasks; ties go to the
/// lower class index).
pub fn accuracy(scores: &[f64], classes: &[u32], k: usize, rows: &[usize]) -> Option<f64> {
    if rows.is_empty() {
        return None;
    }
    let hits = rows
        .iter()
        .filter(|&&r| {
            let row = &scores[r * k..(r + 1) * k];
            let best = (0..k).fold(0, |b, c| if row[c] > row[b] { c } else { b });
            best == classes[r] as usize
        })
        .count();
    Some(hits as f64 / rows.len() as f64)
}

/// Per-class F1 of single-label argmax predictions over `rows` (each row predicted as its
/// highest-scoring class, ties to the lower index; `classes[r]` its true class):
/// 2 TP / (predicted + true), `None` for a class neither predicted nor present.
pub fn argmax_class_f1(
    scores: &[f64],
    classes: &[u32],
    k: usize,
    rows: &[usize],
) -> Vec<Option<f64>> {
    let (mut tp, mut predicted, mut present) = (vec![0usize; k], vec![0usize; k], vec![0usize; k]);
    for &r in rows {
        let row = &scores[r * k..(r + 1) * k];
        let best = (0..k).fold(0, |b, c| if row[c] > row[b] { c } else { b });
        let truth = classes[r] as usize;
        predicted[best] += 1;
        present[truth] += 1;
        tp[best] += usize::from(best == truth);
    }
    (0..k)
        .map(|c| {
            let denominator = predicted[c] + present[c];
            (denominator > 0).then(|| 2.0 * tp[c] as f64 / denominator as f64)
        })
        .collect()
}

/// The CinC 2017 challenge's F1 over `rows`: the mean of the argmax F1 of `counted` (N, A and O;
/// noisy `~` is not counted); `None` where one of them is neither predicted nor present.
pub fn challenge_f1(
    scores: &[f64],
    classes: &[u32],
    k: usize,
    rows: &[usize],
    counted: &[usize],
) -> Option<f64> {
    let f1 = argmax_class_f1(scores, classes, k, rows);
    let values: Option<Vec<f64>> = counted.iter().map(|&c| f1[c]).collect();
    values.map(|v| v.iter().sum::<f64>() / v.len() as f64)
}

/// Fewest resamples of a bootstrap, as a share of those drawn, that must define the statistic
/// (every class of the full test set still scorable) for an interval to be given.
pub const MIN_KEPT_SHARE: f64 = 0.9;

/// A bootstrap's interval and how many of its resamples defined the statistic.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bootstrap {
    /// [low, high]; `None` when fewer than [`MIN_KEPT_SHARE`] of the resamples were kept.
    pub ci: Option<[f64; 2]>,
    /// Resamples where the statistic was defined (the interval's percentiles are of these).
    pub kept: usize,
}

/// Whether `kept` of `resamples` resamples are enough for an interval ([`MIN_KEPT_SHARE`]).
pub fn enough_kept(kept: usize, resamples: usize) -> bool {
    resamples > 0 && kept as f64 >= MIN_KEPT_SHARE * resamples as f64
}

/// 95% percentile bootstrap of `statistic` over `resamples` resamples of `groups` (each a set
/// of rows that are not independent, such as the windows of one patient): a resample draws as
/// many groups as there are, with replacement, and takes all their rows (the cluster bootstrap;
/// with one row per group, the plain bootstrap of the rows). Drawn from `seed`. Resamples where
/// the statistic is undefined are left out and counted; no interval when fewer than
/// [`MIN_KEPT_SHARE`] of them are kept (the kept ones would be a biased subset).
pub fn bootstrap(
    groups: &[Vec<usize>],
    resamples: usize,
    seed: u64,
    statistic: impl Fn(&[usize]) -> Option<f64>,
) -> Bootstrap {
    if groups.is_empty() || resamples == 0 {
        return Bootstrap { ci: None, kept: 0 };
    }
    let mut rng = SplitMix64::from_words(&[seed, 0xB007_57A9]);
    let mut sample = Vec::new();
    let mut values = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        sample.clear();
        for _ in 0..groups.len() {
            sample.extend(&groups[rng.below(groups.len() as u64) as usize]);
        }
        if let Some(v) = statistic(&sample) {
            values.push(v);
        }
    }
    let kept = values.len();
    if !enough_kept(kept, resamples) {
        return Bootstrap { ci: None, kept };
    }
    values.sort_by(f64::total_cmp);
    Bootstrap {
        ci: Some([percentile(&values, 2.5), percentile(&values, 97.5)]),
        kept,
    }
}

/// The interval of [`bootstrap`] alone.
pub fn bootstrap_ci(
    groups: &[Vec<usize>],
    resamples: usize,
    seed: u64,
    statistic: impl Fn(&[usize]) -> Option<f64>,
) -> Option<[f64; 2]> {
    bootstrap(groups, resamples, seed, statistic).ci
}

/// The rows `0..records.len()` grouped by `records` (the record of each row), groups in order
/// of first appearance: what [`bootstrap_ci`] resamples.
pub fn record_groups(records: &[u32]) -> Vec<Vec<usize>> {
    let mut slot: HashMap<u32, usize> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (row, record) in records.iter().enumerate() {
        let next = groups.len();
        let g = *slot.entry(*record).or_insert(next);
        if g == next {
            groups.push(Vec::new());
        }
        groups[g].push(row);
    }
    groups
}

/// The scores (n, K) of rows averaged over each group of `groups` (`record_groups`): one row
/// (m, K) per record, in the groups' order.
pub fn mean_per_group(scores: &[f64], k: usize, groups: &[Vec<usize>]) -> Vec<f64> {
    let mut out = vec![0.0; groups.len() * k];
    for (dst, group) in out.chunks_exact_mut(k).zip(groups) {
        for &row in group {
            for (d, s) in dst.iter_mut().zip(&scores[row * k..(row + 1) * k]) {
                *d += s;
            }
        }
        dst.iter_mut().for_each(|d| *d /= group.len() as f64);
    }
    out
}

/// Linear-interpolation percentile of sorted values (numpy's default).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_counts_ties_as_half() {
        let y = [true, false, true, false];
        assert_eq!(auroc(&[0.9, 0.1, 0.8, 0.2], &y), Some(1.0));
        assert_eq!(auroc(&[0.1, 0.9, 0.2, 0.8], &y), Some(0.0));
        assert_eq!(auroc(&[0.5, 0.5, 0.5, 0.5], &y), Some(0.5));
        assert_eq!(auroc(&[0.5, 0.5, 0.9, 0.1], &y), Some(0.875));
        assert_eq!(auroc(&[0.5, 0.4], &[true, true]), None);
    }

    #[test]
    fn thresholds_maximise_validation_f1() {
        // Class 0: positives score 0.9, 0.7; negatives 0.8, 0.2 -> best F1 predicts >= 0.7.
        let scores = [0.9, 0.7, 0.8, 0.2];
        let targets = [1.0, 1.0, 0.0, 0.0];
        let rows = [0, 1, 2, 3];
        let t = pick_thresholds(&scores, &targets, 1, &rows);
        assert!((t[0] - 0.45).abs() < 1e-12, "{t:?}");
        assert_eq!(macro_f1(&scores, &targets, 1, &rows, &t), Some(0.8));
        assert_eq!(pick_thresholds(&scores, &[0.0; 4], 1, &rows), vec![0.5]);
    }

    /// Rows (true class, argmax): (0,0) (0,1) (1,1) (2,0) (3,3), K = 4.
    #[test]
    fn argmax_f1_assigns_each_row_one_class() {
        let classes = [0, 0, 1, 2, 3];
        let argmax = [0, 1, 1, 0, 3];
        let scores: Vec<f64> = argmax
            .iter()
            .flat_map(|&a| (0..4).map(move |c| if c == a { 0.9 } else { 0.1 }))
            .collect();
        let rows = [0, 1, 2, 3, 4];
        let f1 = argmax_class_f1(&scores, &classes, 4, &rows);
        // Class 0: TP 1, predicted 2, present 2 -> 0.5; 1: TP 1, 2 + 1 -> 2/3; 2: 0; 3: 1.
        assert_eq!(f1, vec![Some(0.5), Some(2.0 / 3.0), Some(0.0), Some(1.0)]);
        // Rows 0, 1, 4: class 1 predicted where absent scores 0; class 2 is neither (undefined).
        let f1 = argmax_class_f1(&scores, &classes, 4, &[0, 1, 4]);
        assert_eq!(f1, vec![Some(2.0 / 3.0), Some(0.0), None, Some(1.0)]);
        let challenge = challenge_f1(&scores, &classes, 4, &rows, &[0, 1, 2]).unwrap();
        assert!((challenge - (0.5 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
        // Without class 2 (neither present nor predicted) the challenge's F1 is undefined.
        assert_eq!(
            challenge_f1(&scores, &classes, 4, &[0, 1, 2, 4], &[0, 1, 2]),
            None
        );
    }

    #[test]
    fn bootstrap_is_seeded_and_brackets_the_estimate() {
        let rows: Vec<Vec<usize>> = (0..200).map(|r| vec![r]).collect();
        let stat = |r: &[usize]| Some(r.iter().sum::<usize>() as f64 / r.len() as f64);
        let a = bootstrap_ci(&rows, 1000, 7, stat).unwrap();
        assert_eq!(Some(a), bootstrap_ci(&rows, 1000, 7, stat));
        assert_ne!(Some(a), bootstrap_ci(&rows, 1000, 8, stat));
        assert!(a[0] < 99.5 && 99.5 < a[1], "{a:?}");
        assert_eq!(bootstrap_ci(&rows, 100, 7, |_| None), None);
    }

    /// An interval needs 90% of the resamples to define the statistic; the kept are counted.
    #[test]
    fn the_bootstrap_counts_its_kept_resamples() {
        let rows: Vec<Vec<usize>> = (0..100).map(|r| vec![r]).collect();
        // Defined unless row 0 is drawn: kept in about (99/100)^100 = 37% of the resamples.
        let without_0 = |r: &[usize]| (!r.contains(&0)).then_some(r.len() as f64);
        let b = bootstrap(&rows, 1000, 7, without_0);
        assert_eq!(b.ci, None);
        assert!(b.kept > 300 && b.kept < 450, "{}", b.kept);
        let all = bootstrap(&rows, 1000, 7, |r| Some(r.len() as f64));
        assert_eq!((all.ci, all.kept), (Some([100.0, 100.0]), 1000));
        assert!(enough_kept(900, 1000) && !enough_kept(899, 1000));
        assert_eq!(mean_over(&[Some(1.0), None, Some(3.0)], &[0, 2]), Some(2.0));
        assert_eq!(mean_over(&[Some(1.0), None, Some(3.0)], &[0, 1]), None);
    }

    /// Ten records of ten identical windows each: resampling windows as if independent gives an
    /// interval about sqrt(10) times too narrow; resampling records gives the interval of ten
    /// independent values.
    #[test]
    fn the_bootstrap_resamples_records_not_their_windows() {
        let value = |row: usize| (row / 10) as f64;
        let mean = |r: &[usize]| Some(r.iter().map(|&i| value(i)).sum::<f64>() / r.len() as f64);
        let records: Vec<u32> = (0..100).map(|i| (i / 10) as u32).collect();
        let groups = record_groups(&records);
        assert_eq!(groups.len(), 10);
        assert_eq!(groups[3], (30..40).collect::<Vec<_>>());
        let by_record = bootstrap_ci(&groups, 2000, 1, mean).unwrap();
        let rows: Vec<Vec<usize>> = (0..100).map(|r| vec![r]).collect();
        let by_window = bootstrap_ci(&rows, 2000, 1, mean).unwrap();
        let ten: Vec<Vec<usize>> = (0..10).map(|r| vec![r * 10]).collect();
        let independent = bootstrap_ci(&ten, 2000, 1, mean).unwrap();
        let width = |ci: [f64; 2]| ci[1] - ci[0];
        assert!(
            width(by_window) * 2.5 < width(by_record),
            "{by_window:?} {by_record:?}"
        );
        assert!((width(by_record) / width(independent) - 1.0).abs() < 0.1);
        let singles = record_groups(&[4, 9, 1]);
        assert_eq!(singles, vec![vec![0], vec![1], vec![2]]);
    }

    #[test]
    fn a_record_scores_the_mean_of_its_windows() {
        let scores = [0.2, 0.8, 0.6, 0.4, 1.0, 0.0, 0.4, 0.6];
        let groups = record_groups(&[7, 3, 7, 7]);
        assert_eq!(groups, vec![vec![0, 2, 3], vec![1]]);
        let mean = mean_per_group(&scores, 2, &groups);
        let want = [(0.2 + 1.0 + 0.4) / 3.0, (0.8 + 0.0 + 0.6) / 3.0, 0.6, 0.4];
        assert_eq!(mean, want);
    }

    /// The percentile is numpy's default (linear interpolation between the two nearest ranks,
    /// at position q / 100 * (n - 1)): the value between ranks is interpolated, not snapped to
    /// one of them.
    #[test]
    fn percentiles_interpolate_linearly_as_numpys() {
        let four = [0.0, 1.0, 2.0, 3.0];
        // Position 0.5 * 3 = 1.5: halfway between 1 and 2.
        assert_eq!(percentile(&four, 50.0), 1.5);
        // Positions 0.075 and 2.925 (the 95% interval's ends).
        assert!((percentile(&four, 2.5) - 0.075).abs() < 1e-12);
        assert!((percentile(&four, 97.5) - 2.925).abs() < 1e-12);
        let five = [10.0, 20.0, 30.0, 40.0, 50.0];
        // Position 0.1 * 4 = 0.4: 10 + 0.4 * 10; position 1 falls on a rank exactly.
        assert!((percentile(&five, 10.0) - 14.0).abs() < 1e-12);
        assert_eq!(percentile(&five, 25.0), 20.0);
        assert_eq!(
            (percentile(&five, 0.0), percentile(&five, 100.0)),
            (10.0, 50.0)
        );
    }

    /// A resample draws its groups uniformly with replacement from all of them: over many
    /// resamples every group, the first and the last included, is drawn about 1 / n of the
    /// time (within 5 standard deviations of a fair draw's count).
    #[test]
    fn the_bootstrap_draws_every_group_equally_often() {
        let n = 5;
        let groups: Vec<Vec<usize>> = (0..n).map(|g| vec![g]).collect();
        let counts = std::cell::RefCell::new(vec![0usize; n]);
        let resamples = 4000;
        bootstrap(&groups, resamples, 11, |rows| {
            rows.iter().for_each(|&r| counts.borrow_mut()[r] += 1);
            Some(0.0)
        });
        let draws = (resamples * n) as f64;
        let (expected, p) = (draws / n as f64, 1.0 / n as f64);
        let sigma = (draws * p * (1.0 - p)).sqrt();
        for (g, &c) in counts.borrow().iter().enumerate() {
            assert!(
                (c as f64 - expected).abs() < 5.0 * sigma,
                "group {g} drawn {c} times, expected {expected} +- {sigma:.0}: {:?}",
                counts.borrow()
            );
        }
    }

    /// A row whose highest score two classes share is predicted as the lower of them, as
    /// `accuracy` and numpy's argmax do, in the per-class argmax F1 too.
    #[test]
    fn argmax_ties_go_to_the_lower_class() {
        // Row 0: classes 0 and 1 tie at 0.5, truth 0; row 1: classes 1 and 2 tie at 0.4, truth 2.
        let scores = [0.5, 0.5, 0.0, 0.2, 0.4, 0.4];
        let classes = [0, 2];
        let rows = [0, 1];
        // Predicted 0 and 1: class 0 right once; class 1 predicted where absent; 2 missed.
        assert_eq!(
            argmax_class_f1(&scores, &classes, 3, &rows),
            vec![Some(1.0), Some(0.0), Some(0.0)]
        );
        assert_eq!(accuracy(&scores, &classes, 3, &rows), Some(0.5));
    }

    /// The interval's ends are the 2.5th and 97.5th percentiles of the resamples' values: a
    /// statistic that gives each of 1000 resamples its own index makes them numpy's
    /// percentiles of 0..=999, 24.975 and 974.025, whatever the draws.
    #[test]
    fn the_interval_is_the_central_95_percent_of_the_resamples() {
        let groups: Vec<Vec<usize>> = (0..10).map(|g| vec![g]).collect();
        let resample = std::cell::Cell::new(0.0);
        let ci = bootstrap_ci(&groups, 1000, 3, |_| {
            let index = resample.get();
            resample.set(index + 1.0);
            Some(index)
        });
        let [low, high] = ci.unwrap();
        assert!((low - 24.975).abs() < 1e-9, "{low}");
        assert!((high - 974.025).abs() < 1e-9, "{high}");
    }
}
