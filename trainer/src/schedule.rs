//! `LrSchedule`: linear warmup from 0 to the peak learning rate, then cosine decay to `min_lr`.
//!
//! The warmup starts at exactly 0, as timm's MAE recipe does: step 0 (the first optimiser step)
//! moves no weight, it only fills AdamW's moments and spends the first step of their bias
//! correction, and the peak is reached at step `warmup_steps`, not `warmup_steps - 1`. With
//! warmup, a run of `--steps 1` therefore measures the validation loss of the initial weights.

use serde::{Deserialize, Serialize};

/// Learning-rate schedule over optimiser steps (step 0 is the first update).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrSchedule {
    /// Learning rate reached at the end of warmup.
    pub peak_lr: f64,
    /// Learning rate at and after `total_steps`.
    pub min_lr: f64,
    /// Steps of linear warmup.
    pub warmup_steps: u64,
    /// Total steps of the run (warmup included).
    pub total_steps: u64,
}

impl LrSchedule {
    /// The learning rate of optimiser step `step` (from 0): `peak * step / warmup` during warmup
    /// (0 at step 0), then `min + (peak - min) * (1 + cos(pi * progress)) / 2` with progress
    /// going from 0 to 1 over the remaining steps.
    pub fn lr_at(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.peak_lr * step as f64 / self.warmup_steps as f64;
        }
        let decay_steps = self.total_steps.saturating_sub(self.warmup_steps);
        if decay_steps == 0 || step >= self.total_steps {
            return self.min_lr;
        }
        let progress = (step - self.warmup_steps) as f64 / decay_steps as f64;
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        self.min_lr + (self.peak_lr - self.min_lr) * cosine
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine() {
        let s = LrSchedule {
            peak_lr: 1e-3,
            min_lr: 1e-5,
            warmup_steps: 10,
            total_steps: 110,
        };
        assert_eq!(s.lr_at(0), 0.0);
        assert!((s.lr_at(5) - 5e-4).abs() < 1e-12);
        assert!((s.lr_at(10) - 1e-3).abs() < 1e-12);
        assert!((s.lr_at(60) - (1e-5 + 0.5 * (1e-3 - 1e-5))).abs() < 1e-12);
        assert!(s.lr_at(30) > s.lr_at(31));
        assert!((s.lr_at(110) - 1e-5).abs() < 1e-15);
        assert!((s.lr_at(10_000) - 1e-5).abs() < 1e-15);
    }

    /// Without warmup the first step already runs at the peak (not at 0/0), and the cosine
    /// starts there.
    #[test]
    fn no_warmup_starts_at_the_peak() {
        let s = LrSchedule {
            peak_lr: 1e-3,
            min_lr: 0.0,
            warmup_steps: 0,
            total_steps: 4,
        };
        assert_eq!(s.lr_at(0), 1e-3);
        assert!((s.lr_at(2) - 5e-4).abs() < 1e-12);
        assert_eq!(s.lr_at(4), 0.0);
    }
}
