//! Test helpers shared by the kernel tests: a seeded generator, padded buffers (so every op is
//! exercised at a non-zero view offset) and the finite-difference gradient comparison.

#![allow(dead_code)] // each test binary uses a different subset of these helpers

use ecgfm_kernels::{View, ViewMut};

/// Elements placed before every tensor in its buffer, so view offsets are really exercised.
pub const PAD: usize = 5;

/// SplitMix64: small, seeded, reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform() * scale).collect()
    }
}

/// A buffer holding `data` after PAD garbage elements.
pub fn padded(data: &[f32]) -> Vec<f32> {
    let mut v = vec![f32::NAN; PAD];
    v.extend_from_slice(data);
    v.extend_from_slice(&[f32::NAN; 3]);
    v
}

/// An index buffer holding `data` after PAD elements.
pub fn padded_idx(data: &[u32]) -> Vec<u32> {
    let mut v = vec![u32::MAX; PAD];
    v.extend_from_slice(data);
    v
}

pub fn v(buf: &Vec<f32>) -> View<'_, Vec<f32>> {
    View::new(buf, PAD)
}

pub fn vm(buf: &mut Vec<f32>) -> ViewMut<'_, Vec<f32>> {
    ViewMut::new(buf, PAD)
}

pub fn vi(buf: &Vec<u32>) -> View<'_, Vec<u32>> {
    View::new(buf, PAD)
}

/// The n tensor elements of a padded buffer.
pub fn body(buf: &[f32], n: usize) -> &[f32] {
    &buf[PAD..PAD + n]
}

/// sum_i out[i] * weights[i] in f64: the scalar objective whose gradient is checked.
pub fn dot(out: &[f32], weights: &[f32]) -> f64 {
    out.iter()
        .zip(weights)
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum()
}

/// Central-difference check of `analytic` = d objective / d x at up to `max_checks` evenly spread
/// entries of `x`. Fails when ||numeric - analytic|| / ||numeric|| exceeds `tol`, or when the
/// numeric gradient is identically zero (a check that could not fail).
pub fn check_grad(
    name: &str,
    x: &[f32],
    analytic: &[f32],
    max_checks: usize,
    step: f32,
    tol: f64,
    mut objective: impl FnMut(&[f32]) -> f64,
) {
    assert_eq!(x.len(), analytic.len(), "{name}: gradient length");
    let stride = x.len().div_ceil(max_checks).max(1);
    let mut xp = x.to_vec();
    let (mut err2, mut num2) = (0f64, 0f64);
    for i in (0..x.len()).step_by(stride) {
        xp[i] = x[i] + step;
        let up = objective(&xp);
        xp[i] = x[i] - step;
        let down = objective(&xp);
        xp[i] = x[i];
        let numeric = (up - down) / (2.0 * step as f64);
        err2 += (numeric - analytic[i] as f64).powi(2);
        num2 += numeric.powi(2);
    }
    assert!(
        num2 > 0.0,
        "{name}: numeric gradient is zero, the check proves nothing"
    );
    let rel = (err2 / num2).sqrt();
    assert!(
        rel < tol,
        "{name}: relative gradient error {rel:.3e} >= {tol:.1e}"
    );
}
