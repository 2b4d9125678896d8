//! Tests' measure of a tone in a generated signal: the amplitude of one frequency.

use std::f64::consts::TAU;

/// Amplitude of the `hz` component of `x` sampled at `fs` Hz (a single-bin DFT).
pub(crate) fn tone_amplitude(x: &[f32], hz: f64, fs: f64) -> f64 {
    let (mut re, mut im) = (0.0, 0.0);
    for (n, &v) in x.iter().enumerate() {
        let angle = TAU * hz * n as f64 / fs;
        re += v as f64 * angle.cos();
        im += v as f64 * angle.sin();
    }
    2.0 * (re * re + im * im).sqrt() / x.len() as f64
}
