//! Cutting a resampled record into fixed-length windows.
//!
//! Windows start every `stride` samples while they fit entirely. A record shorter than one window
//! gives exactly one window holding all its samples (`n_valid < window`, the rest zero padding):
//! short records are never dropped. The samples after the last full window (the "trailing part")
//! follow [`TrailingPolicy`].

use crate::error::PreprocessError;
use serde::{Deserialize, Serialize};

/// What to do with the samples after the last full window of a record longer than one window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case", deny_unknown_fields)]
pub enum TrailingPolicy {
    /// Never emit a partial trailing window.
    Drop,
    /// Emit a zero-padded window at the next stride position when it holds at least
    /// `min_fraction` × window valid samples.
    KeepIfAtLeast {
        /// Fraction of a window, in (0, 1].
        min_fraction: f64,
    },
    /// Emit one more full window ending exactly at the record's end (it overlaps the previous one).
    AlignEnd,
}

/// Window settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WindowConfig {
    /// Samples per window at the target rate.
    pub window_samples: usize,
    /// Samples between window starts; `None` means `window_samples` (no overlap).
    pub stride_samples: Option<usize>,
    /// Trailing-part policy.
    pub trailing: TrailingPolicy,
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self {
            window_samples: 2500,
            stride_samples: None,
            trailing: TrailingPolicy::KeepIfAtLeast { min_fraction: 0.5 },
        }
    }
}

impl WindowConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), PreprocessError> {
        let bad = |why: &str| Err(PreprocessError::InvalidConfig(format!("window: {why}")));
        if self.window_samples == 0 {
            return bad("window_samples must be > 0");
        }
        if self.stride_samples == Some(0) {
            return bad("stride_samples must be > 0");
        }
        if let TrailingPolicy::KeepIfAtLeast { min_fraction } = self.trailing {
            if !(min_fraction > 0.0 && min_fraction <= 1.0) {
                return bad("trailing min_fraction must be in (0, 1]");
            }
        }
        Ok(())
    }

    /// The effective stride.
    pub fn stride(&self) -> usize {
        self.stride_samples.unwrap_or(self.window_samples)
    }
}

/// Where one window lies in the resampled record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpan {
    /// First sample.
    pub start: usize,
    /// Valid samples from `start` (the rest of the window is padding).
    pub n_valid: usize,
}

/// The windows of a record of `n` samples (none when `n == 0`).
pub fn window_spans(n: usize, config: &WindowConfig) -> Vec<WindowSpan> {
    let (w, stride) = (config.window_samples, config.stride());
    if n == 0 {
        return Vec::new();
    }
    if n <= w {
        return vec![WindowSpan {
            start: 0,
            n_valid: n,
        }];
    }
    let full = (n - w) / stride + 1;
    let mut spans: Vec<WindowSpan> = (0..full)
        .map(|i| WindowSpan {
            start: i * stride,
            n_valid: w,
        })
        .collect();
    let covered = (full - 1) * stride + w;
    if covered < n {
        let next = full * stride;
        match config.trailing {
            TrailingPolicy::Drop => {}
            TrailingPolicy::KeepIfAtLeast { min_fraction } => {
                let n_valid = n.saturating_sub(next);
                if n_valid > 0 && n_valid as f64 >= min_fraction * w as f64 {
                    spans.push(WindowSpan {
                        start: next,
                        n_valid,
                    });
                }
            }
            TrailingPolicy::AlignEnd => spans.push(WindowSpan {
                start: n - w,
                n_valid: w,
            }),
        }
    }
    spans
}
