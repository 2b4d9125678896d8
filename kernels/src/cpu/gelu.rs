//! Exact (erf) GELU: y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2));
//! dy/dx = Phi(x) + x * phi(x), phi(x) = exp(-x^2 / 2) / sqrt(2 pi).

use super::par::CHUNK;
use rayon::prelude::*;

const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2))
}

fn gelu_grad(x: f32) -> f32 {
    let cdf = 0.5 * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2));
    cdf + x * FRAC_1_SQRT_2PI * (-0.5 * x * x).exp()
}

/// out (n) = gelu(inp).
pub(crate) fn forward(out: &mut [f32], inp: &[f32], n: usize) {
    out[..n]
        .par_chunks_mut(CHUNK)
        .zip(inp[..n].par_chunks(CHUNK))
        .for_each(|(o, x)| o.iter_mut().zip(x).for_each(|(o, &x)| *o = gelu(x)));
}

/// dinp (n) += dout * gelu'(inp).
pub(crate) fn backward(dinp: &mut [f32], inp: &[f32], dout: &[f32], n: usize) {
    dinp[..n]
        .par_chunks_mut(CHUNK)
        .zip(inp[..n].par_chunks(CHUNK))
        .zip(dout[..n].par_chunks(CHUNK))
        .for_each(|((dx, x), dy)| {
            for ((dx, &x), &dy) in dx.iter_mut().zip(x).zip(dy) {
                *dx += dy * gelu_grad(x);
            }
        });
}
