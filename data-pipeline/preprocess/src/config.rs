//! Every preprocessing setting in one serialisable struct (recorded in the dataset manifest),
//! with the defaults the README's `data ingest` gives: 250 Hz, 0.67-40 Hz band-pass, 10-s windows.

use crate::quality::QualityConfig;
use crate::resample::ResamplerConfig;
use crate::standardize::StandardizeConfig;
use crate::windowing::WindowConfig;
use serde::{Deserialize, Serialize};

/// Zero-phase Butterworth band-pass settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BandPassConfig {
    /// Lower edge, Hz.
    pub low_hz: f64,
    /// Upper edge, Hz.
    pub high_hz: f64,
    /// Butterworth order N as in `scipy.signal.butter(N, [low, high], 'bandpass')` (2N poles),
    /// applied forward and backward.
    pub order: usize,
}

impl Default for BandPassConfig {
    fn default() -> Self {
        Self {
            low_hz: 0.67,
            high_hz: 40.0,
            order: 2,
        }
    }
}

/// Every preprocessing setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Output sampling rate, Hz.
    pub target_rate_hz: f64,
    /// Resampling filter.
    pub resampler: ResamplerConfig,
    /// Band-pass at the target rate; `None` disables it.
    pub band_pass: Option<BandPassConfig>,
    /// Standardisation.
    pub standardize: StandardizeConfig,
    /// Windowing.
    pub window: WindowConfig,
    /// Quality thresholds.
    pub quality: QualityConfig,
    /// Leave out windows that fail the hard quality rule (the record is quarantined when all do).
    pub drop_hard_failed_windows: bool,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            target_rate_hz: 250.0,
            resampler: ResamplerConfig::default(),
            band_pass: Some(BandPassConfig::default()),
            standardize: StandardizeConfig::default(),
            window: WindowConfig::default(),
            quality: QualityConfig::default(),
            drop_hard_failed_windows: true,
        }
    }
}
