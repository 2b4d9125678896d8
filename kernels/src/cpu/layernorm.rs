//! LayerNorm over rows (eps 1e-6, biased variance) and its backward.
//! Forward: xhat = (x - mean) * rstd, rstd = 1 / sqrt(mean((x - mean)^2) + eps),
//! out = xhat * weight + bias. Backward with g = dout * weight:
//! dx += rstd * (g - mean(g) - xhat * mean(g * xhat)), dweight += sum dout * xhat, dbias += sum dout.

use super::par::{for_col_blocks, SendPtr, COL_BLOCK};
use rayon::prelude::*;

pub(crate) const EPS: f32 = 1e-6;

/// out (T, C), mean (T), rstd (T) from inp (T, C), weight (C), bias (C).
pub(crate) fn forward(
    out: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
    inp: &[f32],
    weight: &[f32],
    bias: &[f32],
    t: usize,
    c: usize,
) {
    let (weight, bias) = (&weight[..c], &bias[..c]);
    out[..t * c]
        .par_chunks_mut(c)
        .zip(mean[..t].par_iter_mut())
        .zip(rstd[..t].par_iter_mut())
        .zip(inp[..t * c].par_chunks(c))
        .for_each(|(((o, m), r), x)| (*m, *r) = row(o, x, weight, bias));
}

/// res (T, C) = a + (b + b_bias), then `forward` of res: each row added and normalised in one
/// pass (`b_bias` (C), when given, on every row).
pub(crate) fn add_forward(
    res: &mut [f32],
    (out, mean, rstd): (&mut [f32], &mut [f32], &mut [f32]),
    (a, b, b_bias): (&[f32], &[f32], Option<&[f32]>),
    (weight, bias): (&[f32], &[f32]),
    t: usize,
    c: usize,
) {
    let (weight, bias) = (&weight[..c], &bias[..c]);
    res[..t * c]
        .par_chunks_mut(c)
        .zip(out[..t * c].par_chunks_mut(c))
        .zip(mean[..t].par_iter_mut().zip(rstd[..t].par_iter_mut()))
        .zip(a[..t * c].par_chunks(c).zip(b[..t * c].par_chunks(c)))
        .for_each(|(((x, o), (m, r)), (a, b))| {
            match b_bias {
                Some(bb) => super::elementwise::add_biased_row(x, a, b, &bb[..c]),
                None => x
                    .iter_mut()
                    .zip(a)
                    .zip(b)
                    .for_each(|((x, &a), &b)| *x = a + b),
            }
            (*m, *r) = row(o, x, weight, bias);
        });
}

/// One row: o (C) = LayerNorm of x (C); returns (mean, rstd).
fn row(o: &mut [f32], x: &[f32], weight: &[f32], bias: &[f32]) -> (f32, f32) {
    let c = x.len() as f32;
    let mu = x.iter().sum::<f32>() / c;
    let var = x.iter().map(|&v| (v - mu) * (v - mu)).sum::<f32>() / c;
    let rs = 1.0 / (var + EPS).sqrt();
    for (((o, &x), &w), &b) in o.iter_mut().zip(x).zip(weight).zip(bias) {
        *o = (x - mu) * rs * w + b;
    }
    (mu, rs)
}

/// Accumulates dinp (T, C), dweight (C), dbias (C) from dout (T, C) and the saved statistics.
pub(crate) fn backward(
    dinp: &mut [f32],
    dweight: &mut [f32],
    dbias: &mut [f32],
    dout: &[f32],
    inp: &[f32],
    weight: &[f32],
    mean: &[f32],
    rstd: &[f32],
    t: usize,
    c: usize,
) {
    let (dout, inp, weight) = (&dout[..t * c], &inp[..t * c], &weight[..c]);
    let (mean, rstd) = (&mean[..t], &rstd[..t]);
    dinp[..t * c]
        .par_chunks_mut(c)
        .enumerate()
        .for_each(|(r, dx)| {
            let (x, dy) = (&inp[r * c..(r + 1) * c], &dout[r * c..(r + 1) * c]);
            let (mu, rs) = (mean[r], rstd[r]);
            let mut g_mean = 0f32;
            let mut gx_mean = 0f32;
            for ((&x, &dy), &w) in x.iter().zip(dy).zip(weight) {
                let g = dy * w;
                g_mean += g;
                gx_mean += g * (x - mu) * rs;
            }
            g_mean /= c as f32;
            gx_mean /= c as f32;
            for (((dx, &x), &dy), &w) in dx.iter_mut().zip(x).zip(dy).zip(weight) {
                let xhat = (x - mu) * rs;
                *dx += rs * (dy * w - g_mean - xhat * gx_mean);
            }
        });
    let (dw_ptr, db_ptr) = (SendPtr(dweight.as_mut_ptr()), SendPtr(dbias.as_mut_ptr()));
    assert!(
        dweight.len() >= c && dbias.len() >= c,
        "layernorm grads shorter than width"
    );
    for_col_blocks(c, |c0, c1| {
        let mut dw = [0f64; COL_BLOCK];
        let mut db = [0f64; COL_BLOCK];
        for r in 0..t {
            let (mu, rs) = (mean[r], rstd[r]);
            let x = &inp[r * c + c0..r * c + c1];
            let dy = &dout[r * c + c0..r * c + c1];
            for j in 0..c1 - c0 {
                dw[j] += (dy[j] * ((x[j] - mu) * rs)) as f64;
                db[j] += dy[j] as f64;
            }
        }
        for j in 0..c1 - c0 {
            // SAFETY: column blocks are disjoint and within c (asserted above).
            unsafe {
                *dw_ptr.get().add(c0 + j) += dw[j] as f32;
                *db_ptr.get().add(c0 + j) += db[j] as f32;
            }
        }
    });
}
