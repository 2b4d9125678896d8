//! How the test metrics choose and resample: each class's threshold is the documented cut on
//! validation (the highest of equally good cuts, never inside a run of tied scores), the test
//! metrics use the validation thresholds, not the test set's own, and the intervals resample
//! patients with all their windows.

use ecgfm_trainer::eval::metrics::{macro_f1, pick_thresholds};
use ecgfm_trainer::eval::report::{test_metrics, TestRows};
use ecgfm_trainer::eval::{Task, Vocabulary};

/// A multi-label task of one class `x` (only its classes matter to `test_metrics`).
fn one_class_task() -> Task {
    Task::without_windows(Vocabulary::Own("own".into()), vec!["x".into()], true)
}

/// Two cuts of equal F1: above 0.9 (TP 1, FP 0 of 2 positives: 2/3) and above 0.6 (TP 2,
/// FP 2: 4/6). The documented choice is the highest such cut, the midpoint (0.9 + 0.8) / 2.
#[test]
fn of_equally_good_cuts_the_highest_is_picked() {
    let scores = [0.9, 0.8, 0.7, 0.6, 0.1];
    let targets = [1.0, 0.0, 0.0, 1.0, 0.0];
    let rows = [0, 1, 2, 3, 4];
    let f1_at = |t: f64| macro_f1(&scores, &targets, 1, &rows, &[t]).unwrap();
    assert!(
        (f1_at(0.85) - f1_at(0.35)).abs() < 1e-12,
        "the two cuts tie"
    );
    let t = pick_thresholds(&scores, &targets, 1, &rows)[0];
    assert!(
        (t - 0.85).abs() < 1e-12,
        "picked {t}, want the higher cut 0.85"
    );
}

/// Tied scores are predicted together: a cut cannot fall between the positive and the two
/// negatives that all score 0.7 (listed first, so a cut inside the tie would look perfect).
/// The valid cuts are below the 0.7s (F1 2/4) or below 0.2 (2/5): the threshold is the
/// midpoint (0.7 + 0.2) / 2.
#[test]
fn a_cut_never_splits_tied_scores() {
    let scores = [0.7, 0.7, 0.7, 0.2];
    let targets = [1.0, 0.0, 0.0, 0.0];
    let rows = [0, 1, 2, 3];
    let t = pick_thresholds(&scores, &targets, 1, &rows);
    assert!((t[0] - 0.45).abs() < 1e-12, "picked {t:?}, want 0.45");
    assert_eq!(macro_f1(&scores, &targets, 1, &rows, &t), Some(0.5));
}

/// Validation's best cut (positives 0.9, 0.4; negatives 0.6, 0.1: above 0.4, F1 4/5) is 0.25;
/// the test set's own would be 0.5 (positives 0.95, 0.7 above negatives 0.3, 0.2). The test
/// metrics report and use validation's: at 0.25 the test F1 is 4/5 (0.3 a false positive).
#[test]
fn test_metrics_use_the_validation_thresholds() {
    let task = one_class_task();
    let (val_scores, val_targets) = ([0.9, 0.6, 0.4, 0.1], [1.0, 0.0, 1.0, 0.0]);
    let (scores, targets) = ([0.95, 0.7, 0.3, 0.2], [1.0, 1.0, 0.0, 0.0]);
    let units = [0, 1, 2, 3];
    let rows = TestRows {
        scores: &scores,
        targets: &targets,
        classes: &[],
        records: &units,
        patients: &units,
    };
    let m = test_metrics(&task, (&val_scores, &val_targets), rows, 10, 1);
    let t = m.thresholds["x"].unwrap();
    assert!(
        (t - 0.25).abs() < 1e-12,
        "threshold {t}, want validation's 0.25"
    );
    let f1 = m.per_class_f1["x"].unwrap();
    assert!((f1 - 0.8).abs() < 1e-12, "{f1}");
}

/// Each of 20 patients has 4 identical windows (each its own record, a patient's windows not
/// adjacent). Resampling patients with all their windows weighs every resample's patients
/// alike, so the intervals are exactly those of one window per patient (same seed: the same
/// patients drawn), not the ~2 times narrower ones of resampling the 80 windows.
#[test]
fn the_intervals_resample_patients_with_all_their_windows() {
    let task = one_class_task();
    let patients = 20;
    let target = |p: usize| f64::from(u8::from(p % 3 != 1));
    let score = |p: usize| ((p * 7) % 20) as f64 / 20.0 + 0.3 * target(p);
    let metrics = |copies: usize| {
        let n = patients * copies;
        let patient: Vec<u32> = (0..n).map(|i| (i % patients) as u32).collect();
        let records: Vec<u32> = (0..n as u32).collect();
        let scores: Vec<f64> = patient.iter().map(|&p| score(p as usize)).collect();
        let targets: Vec<f64> = patient.iter().map(|&p| target(p as usize)).collect();
        let rows = TestRows {
            scores: &scores,
            targets: &targets,
            classes: &[],
            records: &records,
            patients: &patient,
        };
        let val = ([0.9, 0.6, 0.4, 0.1], [1.0, 0.0, 1.0, 0.0]);
        test_metrics(&task, (&val.0, &val.1), rows, 500, 4)
    };
    let (single, replicated) = (metrics(1), metrics(4));
    let (a, b) = (
        single.macro_auroc_ci.unwrap(),
        replicated.macro_auroc_ci.unwrap(),
    );
    assert!(a[1] - a[0] > 0.1, "a real interval: {a:?}");
    for i in 0..2 {
        assert!(
            (a[i] - b[i]).abs() < 1e-9,
            "AUROC: one window {a:?}, four {b:?}"
        );
    }
    let f1 = |m: &ecgfm_trainer::eval::report::TestMetrics| m.macro_f1_ovr_thresholded.ci;
    assert_eq!(f1(&single), f1(&replicated), "F1 interval");
}
