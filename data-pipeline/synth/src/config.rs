//! Generator settings ([`SynthConfig`], [`NoiseConfig`]) with serde support, defaults and validation.

use crate::condition::Condition;

/// Why a configuration was rejected: the offending field and the reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SynthError {
    #[error("invalid synth config: `{field}` {reason}")]
    InvalidConfig { field: &'static str, reason: String },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> SynthError {
    SynthError::InvalidConfig {
        field,
        reason: reason.into(),
    }
}

/// Interference and artefact levels. Each record draws its own level of every component uniformly
/// between 0.5x and 1.5x the configured value (so the configured value is the record's average),
/// and each lead then takes a share of it (mains and muscle 0.5-1x, the respiration tone 0.3-1x,
/// the two slow drifts 0-0.7x), so a lead's level is below the record's: the muscle noise's RMS
/// averages about 0.77x `muscle_mv` over leads and records. 0 disables the component.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NoiseConfig {
    /// Peak amplitude (mV) of baseline wander: a respiration-rate sinusoid plus slow drift.
    pub baseline_wander_mv: f32,
    /// Peak amplitude (mV) of mains interference.
    pub powerline_mv: f32,
    /// Mains frequency, typically 50 or 60 Hz. At or above the Nyquist frequency the component is
    /// left out, as a recorder's anti-aliasing filter would remove it.
    pub powerline_hz: f32,
    /// RMS (mV) of band-limited, burst-modulated muscle (EMG) noise.
    pub muscle_mv: f32,
}

impl Default for NoiseConfig {
    fn default() -> Self {
        NoiseConfig {
            baseline_wander_mv: 0.1,
            powerline_mv: 0.02,
            powerline_hz: 50.0,
            muscle_mv: 0.015,
        }
    }
}

impl NoiseConfig {
    /// No noise at all: the clean dipole projection.
    pub fn none() -> Self {
        NoiseConfig {
            baseline_wander_mv: 0.0,
            powerline_mv: 0.0,
            powerline_hz: 50.0,
            muscle_mv: 0.0,
        }
    }
}

/// Everything that shapes a synthetic record besides `(seed, index)`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SynthConfig {
    /// Output sampling rate in Hz, 100 to 10000 (default 250).
    pub sampling_rate: f32,
    /// Samples per lead (default 2500, 10 s at 250 Hz).
    pub samples: usize,
    /// Noise levels.
    pub noise: NoiseConfig,
    /// Relative frequency of each condition, in the order of [`Condition::all`]
    /// (normal, AF, PVC, wide QRS, ST elevation). Non-negative, positive sum; need not sum to 1.
    pub condition_weights: [f32; Condition::COUNT],
    /// Range `[low, high]` in bpm of the mean sinus rate (all conditions but AF, whose ventricular
    /// response is drawn from 70-140 bpm). Default 50-110.
    pub heart_rate_bpm: [f32; 2],
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            sampling_rate: 250.0,
            samples: 2500,
            noise: NoiseConfig::default(),
            condition_weights: [0.4, 0.15, 0.15, 0.15, 0.15],
            heart_rate_bpm: [50.0, 110.0],
        }
    }
}

impl SynthConfig {
    /// The default configuration producing only `condition`.
    pub fn only(condition: Condition) -> Self {
        let mut weights = [0.0; Condition::COUNT];
        weights[condition.index()] = 1.0;
        SynthConfig {
            condition_weights: weights,
            ..SynthConfig::default()
        }
    }

    /// Record duration in seconds.
    pub fn duration_s(&self) -> f64 {
        self.samples as f64 / self.sampling_rate as f64
    }

    /// Checks every field; `generate` panics on a configuration this rejects.
    pub fn validate(&self) -> Result<(), SynthError> {
        let fs = self.sampling_rate;
        if !(fs.is_finite() && (100.0..=10_000.0).contains(&fs)) {
            return Err(invalid(
                "sampling_rate",
                format!("must be in 100..=10000 Hz, got {fs}"),
            ));
        }
        if self.samples == 0 {
            return Err(invalid("samples", "must be at least 1"));
        }
        let n = &self.noise;
        for (field, level) in [
            ("noise.baseline_wander_mv", n.baseline_wander_mv),
            ("noise.powerline_mv", n.powerline_mv),
            ("noise.muscle_mv", n.muscle_mv),
        ] {
            if !(level.is_finite() && level >= 0.0) {
                return Err(invalid(
                    field,
                    format!("must be a finite level >= 0, got {level}"),
                ));
            }
        }
        if !(n.powerline_hz.is_finite() && n.powerline_hz > 0.0) {
            return Err(invalid(
                "noise.powerline_hz",
                format!("must be a positive frequency, got {}", n.powerline_hz),
            ));
        }
        let weights = &self.condition_weights;
        if weights.iter().any(|w| !(w.is_finite() && *w >= 0.0)) {
            return Err(invalid(
                "condition_weights",
                format!("must be finite and >= 0, got {weights:?}"),
            ));
        }
        if weights.iter().sum::<f32>() <= 0.0 {
            return Err(invalid("condition_weights", "must have a positive sum"));
        }
        let [low, high] = self.heart_rate_bpm;
        if !(low.is_finite() && high.is_finite() && 30.0 <= low && low <= high && high <= 200.0) {
            return Err(invalid(
                "heart_rate_bpm",
                format!("must satisfy 30 <= low <= high <= 200, got [{low}, {high}]"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert_eq!(SynthConfig::default().validate(), Ok(()));
        assert_eq!(SynthConfig::only(Condition::WideQrs).validate(), Ok(()));
    }

    #[test]
    fn bad_fields_are_named() {
        let field_of = |cfg: SynthConfig| match cfg.validate() {
            Err(SynthError::InvalidConfig { field, .. }) => field,
            Ok(()) => "accepted",
        };
        let base = SynthConfig::default();
        assert_eq!(
            field_of(SynthConfig {
                samples: 0,
                ..base.clone()
            }),
            "samples"
        );
        assert_eq!(
            field_of(SynthConfig {
                sampling_rate: f32::NAN,
                ..base.clone()
            }),
            "sampling_rate"
        );
        assert_eq!(
            field_of(SynthConfig {
                condition_weights: [0.0; 5],
                ..base.clone()
            }),
            "condition_weights"
        );
        assert_eq!(
            field_of(SynthConfig {
                condition_weights: [1.0, -1.0, 0.0, 0.0, 0.0],
                ..base.clone()
            }),
            "condition_weights"
        );
        assert_eq!(
            field_of(SynthConfig {
                heart_rate_bpm: [90.0, 60.0],
                ..base.clone()
            }),
            "heart_rate_bpm"
        );
        let mut noisy = base.clone();
        noisy.noise.muscle_mv = -0.1;
        assert_eq!(field_of(noisy), "noise.muscle_mv");
        let mut mains = base.clone();
        mains.noise.powerline_hz = 0.0;
        assert_eq!(field_of(mains.clone()), "noise.powerline_hz");
        mains.sampling_rate = 100.0;
        mains.noise.powerline_hz = 50.0;
        assert_eq!(field_of(mains), "accepted");
    }

    /// The documented ranges are inclusive at both ends: 100 and 10000 Hz, and a rate range may
    /// be a single rate anywhere in 30..=200 bpm.
    #[test]
    fn range_bounds_are_inclusive() {
        let valid = |sampling_rate: f32, heart_rate_bpm: [f32; 2]| {
            SynthConfig {
                sampling_rate,
                heart_rate_bpm,
                ..SynthConfig::default()
            }
            .validate()
            .is_ok()
        };
        assert!(valid(100.0, [30.0, 200.0]));
        assert!(valid(10_000.0, [72.0, 72.0]));
        assert!(valid(250.0, [30.0, 30.0]) && valid(250.0, [200.0, 200.0]));
        assert!(!valid(99.9, [60.0, 70.0]) && !valid(10_000.5, [60.0, 70.0]));
        assert!(!valid(250.0, [29.9, 70.0]) && !valid(250.0, [60.0, 200.5]));
    }

    #[test]
    fn serde_round_trips_fills_defaults_and_rejects_unknown_fields() {
        let cfg = SynthConfig {
            samples: 1000,
            heart_rate_bpm: [60.0, 70.0],
            ..SynthConfig::only(Condition::StElevation)
        };
        let text = serde_json::to_string(&cfg).unwrap();
        assert_eq!(serde_json::from_str::<SynthConfig>(&text).unwrap(), cfg);
        let partial: SynthConfig =
            serde_json::from_str(r#"{"samples": 5000, "noise": {"powerline_hz": 60.0}}"#).unwrap();
        assert_eq!(partial.samples, 5000);
        assert_eq!(partial.sampling_rate, 250.0);
        assert_eq!(partial.noise.powerline_hz, 60.0);
        assert_eq!(partial.noise.muscle_mv, NoiseConfig::default().muscle_mv);
        let typo = serde_json::from_str::<SynthConfig>(r#"{"sample": 5000}"#).unwrap_err();
        assert!(typo.to_string().contains("sample"), "{typo}");
    }
}
