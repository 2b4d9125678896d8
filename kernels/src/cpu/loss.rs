//! Masked reconstruction loss (docs/model.md): mean over masked patches of the per-patch mean
//! squared error against the raw or norm-pix target (unbiased variance, eps 1e-6), and its
//! gradient d loss / d pred = 2 (pred - target) / (M P).

use rayon::prelude::*;

const EPS: f64 = 1e-6;
const ROWS_PER_PARTIAL: usize = 64;

/// The target row as the loss sees it: raw, or normalised with its own mean and unbiased variance.
fn target_value(target: &[f32], norm_pix: bool) -> impl Fn(usize) -> f64 + '_ {
    let p = target.len();
    let (mean, inv_std) = if norm_pix {
        let mean = target.iter().map(|&v| v as f64).sum::<f64>() / p as f64;
        let ss = target
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>();
        (mean, 1.0 / (ss / (p as f64 - 1.0) + EPS).sqrt())
    } else {
        (0.0, 1.0)
    };
    move |k| (target[k] as f64 - mean) * inv_std
}

/// The loss of pred (T_dec, P) against target (M, P) at pred rows `rows` (M).
pub(crate) fn forward(
    pred: &[f32],
    target: &[f32],
    rows: &[u32],
    m: usize,
    p: usize,
    norm_pix: bool,
) -> f64 {
    if m == 0 {
        return 0.0;
    }
    let rows = &rows[..m];
    let partials: Vec<f64> = (0..m.div_ceil(ROWS_PER_PARTIAL))
        .into_par_iter()
        .map(|chunk| {
            let mut acc = 0f64;
            for i in chunk * ROWS_PER_PARTIAL..((chunk + 1) * ROWS_PER_PARTIAL).min(m) {
                let tv = target_value(&target[i * p..(i + 1) * p], norm_pix);
                let r = rows[i] as usize;
                let pr = &pred[r * p..(r + 1) * p];
                acc += pr
                    .iter()
                    .enumerate()
                    .map(|(k, &x)| (x as f64 - tv(k)).powi(2))
                    .sum::<f64>()
                    / p as f64;
            }
            acc
        })
        .collect();
    partials.iter().sum::<f64>() / m as f64
}

/// dpred (T_dec, P) = loss_scale * d loss / d pred, zero on rows not listed; `rows` must be distinct.
pub(crate) fn backward(
    dpred: &mut [f32],
    pred: &[f32],
    target: &[f32],
    rows: &[u32],
    t_dec: usize,
    m: usize,
    p: usize,
    norm_pix: bool,
    loss_scale: f32,
) {
    let dpred = &mut dpred[..t_dec * p];
    dpred.par_chunks_mut(p).for_each(|r| r.fill(0.0));
    if m == 0 {
        return;
    }
    let coef = 2.0 * loss_scale as f64 / (m as f64 * p as f64);
    let mut by_row = vec![u32::MAX; t_dec];
    for (i, &r) in rows[..m].iter().enumerate() {
        assert!(
            (r as usize) < t_dec,
            "masked row {r} beyond the {t_dec} prediction rows"
        );
        assert_eq!(by_row[r as usize], u32::MAX, "masked row {r} listed twice");
        by_row[r as usize] = i as u32;
    }
    dpred
        .par_chunks_mut(p)
        .zip(by_row.par_iter())
        .enumerate()
        .for_each(|(r, (d, &i))| {
            if i == u32::MAX {
                return;
            }
            let i = i as usize;
            let tv = target_value(&target[i * p..(i + 1) * p], norm_pix);
            for (k, d) in d.iter_mut().enumerate() {
                *d = (coef * (pred[r * p + k] as f64 - tv(k))) as f32;
            }
        });
}
