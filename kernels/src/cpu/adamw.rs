//! AdamW exactly as torch.optim.AdamW (single-tensor path): decoupled decay p *= 1 - lr wd, then
//! m = lerp(m, g, 1 - b1), v = b2 v + (1 - b2) g^2, p -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps)
//! with bc_i = 1 - b_i^step.

use super::par::CHUNK;
use crate::backend::AdamW;
use rayon::prelude::*;

/// One update of param, m, v (n) from grad (n).
pub(crate) fn step(
    param: &mut [f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    hp: &AdamW,
    decay: bool,
) {
    assert!(hp.step >= 1, "AdamW step counts from 1");
    let bc1 = 1.0 - (hp.beta1 as f64).powi(hp.step as i32);
    let bc2 = 1.0 - (hp.beta2 as f64).powi(hp.step as i32);
    let step_size = (hp.lr as f64 / bc1) as f32;
    let bc2_sqrt = bc2.sqrt() as f32;
    let decay_factor = if decay {
        (1.0 - hp.lr as f64 * hp.weight_decay as f64) as f32
    } else {
        1.0
    };
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
