//! Shared helpers for the preprocess integration tests: deterministic synthetic ECG-like signals.

#![allow(dead_code)]

use std::f64::consts::PI;

/// A small deterministic generator (test-support's SplitMix64).
pub struct Rng(ecgfm_test_support::Draws);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(ecgfm_test_support::Draws::new(seed))
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.uniform().max(1e-300);
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (2.0 * PI * v).cos()
    }
}

/// An ECG-like trace in mV: P, QRS and T waves as Gaussians at 72 bpm, scaled by `gain`.
pub fn ecg_like(n: usize, rate: f64, gain: f64) -> Vec<f64> {
    let beat = 60.0 / 72.0;
    let waves = [
        (0.15, 0.025, 0.12),
        (0.32, 0.010, -0.15),
        (0.35, 0.012, 1.20),
        (0.38, 0.010, -0.25),
        (0.60, 0.040, 0.30),
    ];
    (0..n)
        .map(|i| {
            let t = i as f64 / rate;
            let phase = t % beat;
            let v: f64 = waves
                .iter()
                .map(|&(centre, width, amp)| {
                    let d = phase - centre;
                    amp * (-(d * d) / (2.0 * width * width)).exp()
                })
                .sum();
            gain * v
        })
        .collect()
}

/// A sine of `freq` Hz and amplitude `amp` sampled at `rate`.
pub fn sine(n: usize, rate: f64, freq: f64, amp: f64) -> Vec<f64> {
    (0..n)
        .map(|i| amp * (2.0 * PI * freq * i as f64 / rate).sin())
        .collect()
}
