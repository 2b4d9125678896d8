//! One unit of an evaluation, a protocol at a label fraction, as it stands before scoring: the
//! class probabilities on validation and test and what validation chose. Scoring is a pure
//! function of it (the bootstrap draws from the evaluation's seed), so a caller that keeps each
//! finished unit (`UnitStore`) can go on after an interruption with the units it has and get the
//! results of an evaluation never interrupted. Units travel as JSON lines with every f64 as its
//! bits, so a kept unit reads back bit for bit.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::report::Protocol;
use super::EvalError;

/// What one protocol at one label fraction produced, and how long it took.
#[derive(Clone, Debug, PartialEq)]
pub struct UnitOutcome {
    /// (validation units, K) class probabilities.
    pub val_scores: Vec<f64>,
    /// (test windows, K) class probabilities.
    pub test_scores: Vec<f64>,
    pub val_macro_auroc: Option<f64>,
    /// What validation chose (`l2`, or `best_epoch` and `epochs_run`).
    pub selected: BTreeMap<String, f64>,
    /// Seconds the unit took when it ran.
    pub seconds: f64,
}

/// Where an evaluation keeps its finished units and finds those an interrupted run of it kept.
pub trait UnitStore {
    /// The unit of `protocol` at `fraction` an earlier, interrupted run finished, if any.
    fn finished(&self, protocol: Protocol, fraction: f64) -> Option<UnitOutcome>;
    /// Keeps a unit just finished.
    fn keep(
        &mut self,
        protocol: Protocol,
        fraction: f64,
        unit: &UnitOutcome,
    ) -> Result<(), EvalError>;
}

/// A store that keeps nothing: every unit runs.
pub struct NoStore;

impl UnitStore for NoStore {
    fn finished(&self, _: Protocol, _: f64) -> Option<UnitOutcome> {
        None
    }

    fn keep(&mut self, _: Protocol, _: f64, _: &UnitOutcome) -> Result<(), EvalError> {
        Ok(())
    }
}

/// A unit as one JSON line: its protocol's name, and every f64 as its bits.
#[derive(Serialize, Deserialize)]
struct UnitLine {
    protocol: String,
    fraction: u64,
    val_scores: Vec<u64>,
    test_scores: Vec<u64>,
    val_macro_auroc: Option<u64>,
    selected: BTreeMap<String, u64>,
    seconds: u64,
}

/// `unit` of `protocol` at `fraction` as one line of JSON (no newline).
pub fn unit_to_line(protocol: Protocol, fraction: f64, unit: &UnitOutcome) -> String {
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect();
    let line = UnitLine {
        protocol: protocol.name().to_string(),
        fraction: fraction.to_bits(),
        val_scores: bits(&unit.val_scores),
        test_scores: bits(&unit.test_scores),
        val_macro_auroc: unit.val_macro_auroc.map(f64::to_bits),
        selected: (unit.selected.iter())
            .map(|(k, v)| (k.clone(), v.to_bits()))
            .collect(),
        seconds: unit.seconds.to_bits(),
    };
    serde_json::to_string(&line).expect("a unit serialises")
}

/// The protocol, fraction and unit of a line `unit_to_line` wrote; `None` for any other text (a
/// line cut short when the process died).
pub fn unit_from_line(text: &str) -> Option<(Protocol, f64, UnitOutcome)> {
    let line: UnitLine = serde_json::from_str(text).ok()?;
    let protocol = Protocol::ALL
        .into_iter()
        .find(|p| p.name() == line.protocol)?;
    let floats = |v: Vec<u64>| v.into_iter().map(f64::from_bits).collect();
    let unit = UnitOutcome {
        val_scores: floats(line.val_scores),
        test_scores: floats(line.test_scores),
        val_macro_auroc: line.val_macro_auroc.map(f64::from_bits),
        selected: (line.selected.into_iter())
            .map(|(k, v)| (k, f64::from_bits(v)))
            .collect(),
        seconds: f64::from_bits(line.seconds),
    };
    Some((protocol, f64::from_bits(line.fraction), unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_reads_back_bit_for_bit_and_a_cut_line_does_not_read() {
        let unit = UnitOutcome {
            val_scores: vec![0.1 + 0.2, 1.0 / 3.0, f64::MIN_POSITIVE],
            test_scores: vec![std::f64::consts::PI, 1e-300],
            val_macro_auroc: Some(0.8765432109876543),
            selected: BTreeMap::from([("l2".to_string(), 1e-4)]),
            seconds: 12.5,
        };
        let line = unit_to_line(Protocol::Finetune, 0.1, &unit);
        let (protocol, fraction, back) = unit_from_line(&line).unwrap();
        assert_eq!((protocol, fraction), (Protocol::Finetune, 0.1));
        assert_eq!(back, unit);
        assert!(unit_from_line(&line[..line.len() - 3]).is_none());
    }
}
