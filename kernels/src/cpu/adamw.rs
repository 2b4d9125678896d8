//! AdamW exactly as torch.optim.AdamW (single-tensor path): decoupled decay p *= 1 - lr wd, then
//! m = lerp(m, g, 1 - b1), v = b2 v + (1 - b2) g^2, p -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps)
//! with bc_i = 1 - b_i^step.

use super::par::CHUNK;
use crate::backend::AdamW;
use rayon::prelude::*;

/// The f32 constants of one update, computed in f64 (shared with the CUDA backend, so both apply
/// the same f32 arithmetic).
pub(crate) struct StepConstants {
    /// lr / (1 - beta1^step).
    pub step_size: f32,
    /// sqrt(1 - beta2^step).
    pub bc2_sqrt: f32,
    /// 1 - lr weight_decay, or 1 without decay.
    pub decay_factor: f32,
}

impl StepConstants {
    pub(crate) fn new(hp: &AdamW, decay: bool) -> Self {
        assert!(hp.step >= 1, "AdamW step counts from 1");
        let bc1 = 1.0 - (hp.beta1 as f64).powi(hp.step as i32);
        let bc2 = 1.0 - (hp.beta2 as f64).powi(hp.step as i32);
        StepConstants {
            step_size: (hp.lr as f64 / bc1) as f32,
            bc2_sqrt: bc2.sqrt() as f32,
            decay_factor: if decay {
                (1.0 - hp.lr as f64 * hp.weight_decay as f64) as f32
            } else {
                1.0
            },
        }
    }
}

/// One update of param, m, v (n) from grad (n).
pub(crate) fn step(
    param: &mut [f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    hp: &AdamW,
    decay: bool,
) {
    let StepConstants {
        step_size,
        bc2_sqrt,
        decay_factor,
    } = StepConstants::new(hp, decay);
    let (b1, b2, eps) = (hp.beta1, hp.beta2, hp.eps);
    param
        .par_chunks_mut(CHUNK)
        .zip(grad.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .for_each(|(((p, g), m), v)| {
            for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                *p *= decay_factor;
                *m += (g - *m) * (1.0 - b1);
                *v = *v * b2 + (1.0 - b2) * (g * g);
                let denom = v.sqrt() / bc2_sqrt + eps;
                *p -= step_size * (*m / denom);
            }
        });
}
