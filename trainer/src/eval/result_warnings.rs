//! The warnings the results themselves earn, once every protocol has run: an interval withheld
//! because too many bootstrap resamples lost a class, a label fraction that drew well above the
//! share asked for, classes with very few training records at a fraction, and a probe's L2
//! strength picked at the edge of its grid (the best may lie beyond it).

use super::metrics::enough_kept;
use super::protocols::EvalSettings;
use super::report::{Protocol, ProtocolResult};

/// Above the requested fraction by more than this share of it earns a warning.
const FRACTION_SLACK: f64 = 0.25;

/// Fewer training records of a class than this at a fraction earn a warning.
const FEW_POSITIVES: usize = 5;

/// The warnings of `results` (in run order) under `settings`.
pub fn result_warnings(results: &[ProtocolResult], settings: &EvalSettings) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut fractions_seen: Vec<f64> = Vec::new();
    for r in results {
        let at = format!("{} at label fraction {}", r.protocol.name(), r.fraction);
        if settings.bootstrap > 0 && !enough_kept(r.test.bootstrap_kept, settings.bootstrap) {
            warnings.push(format!(
                "{at}: only {} of {} bootstrap resamples keep every class of the test set \
                 scorable, so the macro AUROC has no interval (averaging different classes in \
                 different resamples would mix unlike means)",
                r.test.bootstrap_kept, settings.bootstrap
            ));
        }
        if let Some(note) = l2_at_edge(r, &settings.l2_grid) {
            warnings.push(format!("{at}: {note}"));
        }
        if fractions_seen.contains(&r.fraction) {
            continue;
        }
        fractions_seen.push(r.fraction);
        if r.achieved_fraction > r.fraction * (1.0 + FRACTION_SLACK) {
            warnings.push(format!(
                "label fraction {} drew {} training records, {:.2}% of them, not {}% (at least \
                 one record per stratum, rounded up): the low-label results use more labels \
                 than their fraction says",
                r.fraction,
                r.train_records,
                100.0 * r.achieved_fraction,
                100.0 * r.fraction
            ));
        }
        let few: Vec<String> = (r.train_positive_records.iter())
            .filter(|(_, &n)| n < FEW_POSITIVES)
            .map(|(class, n)| format!("{class} {n}"))
            .collect();
        if !few.is_empty() {
            warnings.push(format!(
                "at label fraction {} some classes have fewer than {FEW_POSITIVES} training \
                 records ({}): their test AUROC and F1 rest on almost no training labels",
                r.fraction,
                few.join(", ")
            ));
        }
    }
    warnings
}

/// A note when a probe's validation chose the strongest or weakest L2 strength of `grid`.
fn l2_at_edge(r: &ProtocolResult, grid: &[f64]) -> Option<String> {
    if !matches!(r.protocol, Protocol::Probe | Protocol::RandomProbe) || grid.len() < 2 {
        return None;
    }
    let l2 = *r.selected.get("l2")?;
    let weakest = grid.iter().copied().fold(f64::INFINITY, f64::min);
    let strongest = grid.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let edge = match l2 {
        x if x == weakest => "weakest",
        x if x == strongest => "strongest",
        _ => return None,
    };
    Some(format!(
        "validation picked the {edge} L2 strength of the probe's grid ({l2:e}): a better one \
         may lie beyond the grid"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::paired::IntervalNoise;
    use crate::eval::report::{TestMetrics, UnitScores, WithCi};
    use std::collections::BTreeMap;

    fn result(protocol: Protocol, fraction: f64, achieved: f64, kept: usize) -> ProtocolResult {
        let l2 = match protocol {
            Protocol::Probe => 1e-4,
            _ => 0.1,
        };
        ProtocolResult {
            protocol,
            fraction,
            train_windows: 7,
            train_records: 7,
            achieved_fraction: achieved,
            val_windows: 70,
            test_windows: 70,
            test_records: 70,
            test_patients: 70,
            train_positives: BTreeMap::new(),
            train_positive_records: BTreeMap::from([("CD".into(), 1), ("NORM".into(), 5)]),
            val_macro_auroc: None,
            selected: BTreeMap::from([("l2".into(), l2)]),
            test: TestMetrics {
                macro_auroc: Some(0.7),
                macro_auroc_ci: None,
                bootstrap_kept: kept,
                per_class_auroc: BTreeMap::new(),
                macro_f1_ovr_thresholded: WithCi::default(),
                per_class_f1: BTreeMap::new(),
                macro_f1_argmax: None,
                cinc2017_f1: None,
                thresholds: BTreeMap::new(),
                accuracy: None,
            },
            interval_noise: IntervalNoise::Complete,
            test_units: UnitScores::default(),
            seconds: 0.0,
        }
    }

    #[test]
    fn withheld_intervals_overdrawn_fractions_rare_classes_and_grid_edges_are_warned() {
        let settings = EvalSettings {
            bootstrap: 1000,
            ..EvalSettings::default()
        };
        let results = [
            result(Protocol::Probe, 0.01, 0.0199, 899),
            result(Protocol::RandomProbe, 0.01, 0.0199, 950),
            result(Protocol::Probe, 0.1, 0.12, 1000),
        ];
        let w = result_warnings(&results[..2], &settings);
        assert_eq!(w.len(), 4, "{w:#?}");
        assert!(w[0].contains("probe at label fraction 0.01: only 899 of 1000"));
        assert!(w[1].contains("weakest L2 strength") && w[1].contains("1e-4"));
        assert!(w[2].contains("drew 7 training records, 1.99% of them, not 1%"));
        assert!(w[3].contains("fewer than 5 training records (CD 1)"));
        // 12% for 10% is within a quarter of the request; random_probe's L2 is inside the grid.
        let w = result_warnings(&results[2..], &settings);
        assert_eq!(w.len(), 2, "{w:#?}");
        let none = EvalSettings {
            bootstrap: 0,
            ..settings
        };
        assert_eq!(result_warnings(&results[1..2], &none).len(), 2);
    }

    /// A fraction drawn more than a quarter above its request is warned: 13% for 10% is, 12%
    /// is not.
    #[test]
    fn a_fraction_drawn_over_a_quarter_above_its_request_is_warned() {
        let settings = EvalSettings::default();
        let overdrawn = |achieved: f64| {
            let r = result(Protocol::Finetune, 0.1, achieved, settings.bootstrap);
            (result_warnings(&[r], &settings).iter()).any(|w| w.contains("drew 7 training records"))
        };
        assert!(overdrawn(0.13));
        assert!(!overdrawn(0.12));
    }
}
