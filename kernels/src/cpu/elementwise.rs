//! Elementwise helpers: fill, copy, residual add, in-place add, scale, and the fixed-order sum of
//! squares used for the global gradient norm.

use super::par::CHUNK;
use rayon::prelude::*;

pub(crate) fn fill(dst: &mut [f32], value: f32) {
    dst.par_chunks_mut(CHUNK).for_each(|d| d.fill(value));
}

pub(crate) fn copy(dst: &mut [f32], src: &[f32]) {
    dst.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(d, s)| d.copy_from_slice(s));
}

/// out = a + b.
pub(crate) fn add(out: &mut [f32], a: &[f32], b: &[f32]) {
    out.par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK))
        .zip(b.par_chunks(CHUNK))
        .for_each(|((o, a), b)| {
            for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
                *o = a + b;
            }
        });
}

/// out (T, C) = a + (b + bias), bias (C) on every row.
pub(crate) fn add_bias(out: &mut [f32], a: &[f32], b: &[f32], bias: &[f32], c: usize) {
    let rows = (CHUNK / c).max(1) * c;
    out.par_chunks_mut(rows)
        .zip(a.par_chunks(rows).zip(b.par_chunks(rows)))
        .for_each(|(o, (a, b))| {
            let rows = o.chunks_mut(c).zip(a.chunks(c).zip(b.chunks(c)));
            rows.for_each(|(o, (a, b))| add_biased_row(o, a, b, &bias[..c]));
        });
}

/// One row of `add_bias`: out = a + (b + bias).
pub(crate) fn add_biased_row(out: &mut [f32], a: &[f32], b: &[f32], bias: &[f32]) {
    for (((o, &a), &b), &bb) in out.iter_mut().zip(a).zip(b).zip(bias) {
        *o = a + (b + bb);
    }
}

/// dst += src.
pub(crate) fn add_assign(dst: &mut [f32], src: &[f32]) {
    dst.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(d, s)| d.iter_mut().zip(s).for_each(|(d, &s)| *d += s));
}

/// dst *= factor.
pub(crate) fn scale(dst: &mut [f32], factor: f32) {
    dst.par_chunks_mut(CHUNK)
        .for_each(|d| d.iter_mut().for_each(|d| *d *= factor));
}

/// sum(src^2) in f64: per fixed chunk in order, then the chunk partials in order.
pub(crate) fn sum_squares(src: &[f32]) -> f64 {
    let partials: Vec<f64> = src
        .par_chunks(CHUNK)
        .map(|s| s.iter().map(|&v| v as f64 * v as f64).sum::<f64>())
        .collect();
    partials.iter().sum()
}
