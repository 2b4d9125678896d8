//! Amplitude standardisation of a whole record: none, z-score per lead, or one z-score over all
//! present leads. Missing samples are left out of the statistics, and the standard deviation is
//! floored at `min_std` so flat leads are never divided by (almost) zero.

use crate::error::PreprocessError;
use serde::{Deserialize, Serialize};

/// Which statistics a z-score uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Standardization {
    /// Keep physical units (mV).
    None,
    /// Each lead minus its own mean, over its own standard deviation.
    PerLead,
    /// All present leads minus the record mean, over the record standard deviation.
    PerRecord,
}

/// Standardisation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StandardizeConfig {
    /// The mode.
    pub mode: Standardization,
    /// Floor of the standard deviation, in signal units (mV).
    pub min_std: f64,
}

impl Default for StandardizeConfig {
    fn default() -> Self {
        Self {
            mode: Standardization::None,
            min_std: 0.01,
        }
    }
}

impl StandardizeConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), PreprocessError> {
        if self.min_std > 0.0 && self.min_std.is_finite() {
            Ok(())
        } else {
            Err(PreprocessError::InvalidConfig(format!(
                "standardize.min_std must be positive, got {}",
                self.min_std
            )))
        }
    }
}

/// Count, mean and sum of squared deviations of the non-missing samples (two-pass, merged with
/// Chan's formula, so large offsets do not cancel precision away).
#[derive(Default, Clone, Copy)]
struct Moments {
    count: f64,
    mean: f64,
    m2: f64,
}

impl Moments {
    fn of(signal: &[f64], missing: Option<&[bool]>) -> Self {
        let kept = |i: usize| !missing.is_some_and(|mask| mask[i]);
        let values = || {
            signal
                .iter()
                .enumerate()
                .filter(|(i, _)| kept(*i))
                .map(|(_, v)| *v)
        };
        let count = values().count() as f64;
        if count == 0.0 {
            return Self::default();
        }
        let mean = values().sum::<f64>() / count;
        let m2 = values().map(|v| (v - mean) * (v - mean)).sum();
        Self { count, mean, m2 }
    }

    fn merge(self, other: Self) -> Self {
        let count = self.count + other.count;
        if count == 0.0 {
            return Self::default();
        }
        let delta = other.mean - self.mean;
        Self {
            count,
            mean: self.mean + delta * other.count / count,
            m2: self.m2 + other.m2 + delta * delta * self.count * other.count / count,
        }
    }

    /// (mean, floored standard deviation); (0, 1) when nothing was counted.
    fn mean_std(self, min_std: f64) -> (f64, f64) {
        if self.count == 0.0 {
            return (0.0, 1.0);
        }
        (self.mean, (self.m2 / self.count).sqrt().max(min_std))
    }
}

/// Standardises `signals` in place; `missing[i]` marks the missing samples of `signals[i]`.
pub fn standardize(
    signals: &mut [Vec<f64>],
    missing: &[Option<Vec<bool>>],
    config: &StandardizeConfig,
) {
    let moments: Vec<Moments> = signals
        .iter()
        .zip(missing)
        .map(|(s, m)| Moments::of(s, m.as_deref()))
        .collect();
    let record = moments
        .iter()
        .fold(Moments::default(), |acc, &m| acc.merge(m));
    for (signal, lead) in signals.iter_mut().zip(moments) {
        let (mean, std) = match config.mode {
            Standardization::None => return,
            Standardization::PerLead => lead.mean_std(config.min_std),
            Standardization::PerRecord => record.mean_std(config.min_std),
        };
        signal.iter_mut().for_each(|v| *v = (*v - mean) / std);
    }
}
