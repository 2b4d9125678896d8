//! The labelled rhythm/morphology variants the generator can draw, and their `synth:` labels.

use std::fmt;
use std::str::FromStr;

/// One labelled variant of synthetic ECG. The order of [`Condition::all`] is the order of
/// `SynthConfig::condition_weights`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Condition {
    /// Normal sinus rhythm, 50-110 bpm with physiological heart-rate variability.
    Normal,
    /// Atrial fibrillation: irregularly irregular RR, no P waves, fibrillatory f-waves.
    AtrialFibrillation,
    /// Sinus rhythm with premature ventricular beats: early, wide, bizarre, no P wave, followed by
    /// a fully compensatory pause.
    PrematureVentricular,
    /// Sinus rhythm with a bundle-branch-block-like wide QRS (120-170 ms; right- or left-like).
    WideQrs,
    /// Sinus rhythm with ST-segment elevation in an inferior or anterior territory.
    StElevation,
}

/// The text was not one of the `synth:` labels (or their bare codes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown synthetic condition {0:?}; expected one of synth:nsr, synth:afib, synth:pvc, synth:wide_qrs, synth:st_elevation")]
pub struct ParseConditionError(pub String);

impl Condition {
    /// Number of variants (length of `SynthConfig::condition_weights`).
    pub const COUNT: usize = 5;

    /// Every variant, in the order of `SynthConfig::condition_weights`.
    pub fn all() -> [Condition; Self::COUNT] {
        [
            Condition::Normal,
            Condition::AtrialFibrillation,
            Condition::PrematureVentricular,
            Condition::WideQrs,
            Condition::StElevation,
        ]
    }

    /// The dataset label in the `synth:` vocabulary, e.g. `synth:afib`.
    pub fn label(self) -> &'static str {
        match self {
            Condition::Normal => "synth:nsr",
            Condition::AtrialFibrillation => "synth:afib",
            Condition::PrematureVentricular => "synth:pvc",
            Condition::WideQrs => "synth:wide_qrs",
            Condition::StElevation => "synth:st_elevation",
        }
    }

    /// Position in [`Condition::all`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl FromStr for Condition {
    type Err = ParseConditionError;

    /// Accepts the full label (`synth:afib`) or the bare code (`afib`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let code = text.strip_prefix("synth:").unwrap_or(text);
        Condition::all()
            .into_iter()
            .find(|c| &c.label()["synth:".len()..] == code)
            .ok_or_else(|| ParseConditionError(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_and_indices_match_order() {
        for (i, c) in Condition::all().into_iter().enumerate() {
            assert_eq!(c.index(), i);
            assert_eq!(c.label().parse::<Condition>(), Ok(c));
            assert_eq!(c.label()[6..].parse::<Condition>(), Ok(c));
            assert_eq!(c.to_string(), c.label());
        }
    }

    #[test]
    fn unknown_label_is_an_error_naming_it() {
        let err = "synth:vt".parse::<Condition>().unwrap_err();
        assert!(err.to_string().contains("synth:vt"));
        assert!("nsr ".parse::<Condition>().is_err());
    }
}
