//! Classification-head ops for evaluation: mean pooling of packed token rows per sequence, softmax
//! cross-entropy (single-label) and binary cross-entropy with logits (multi-label), each forward
//! beside its backward. Sums run in f64 in a fixed order, so results ignore the thread count.

use rayon::prelude::*;

/// Rows of the loss computed per f64 partial (fixed, so the summation order is too).
const ROWS_PER_PARTIAL: usize = 64;

/// The token rows of each sequence: (start, end) from cu_seqlens (B + 1 offsets).
fn spans(cu_seqlens: &[u32], seqs: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
    cu_seqlens[..=seqs]
        .windows(2)
        .map(|w| (w[0] as usize, w[1] as usize))
}

/// out (B, C) = per-sequence mean of inp (T, C) rows; zero for an empty sequence.
pub(crate) fn mean_pool_forward(
    out: &mut [f32],
    inp: &[f32],
    cu_seqlens: &[u32],
    seqs: usize,
    c: usize,
) {
    let spans: Vec<(usize, usize)> = spans(cu_seqlens, seqs).collect();
    out[..seqs * c]
        .par_chunks_mut(c.max(1))
        .zip(spans.par_iter())
        .for_each(|(o, &(start, end))| {
            let inv = if end > start {
                1.0 / (end - start) as f64
            } else {
                0.0
            };
            for (j, o) in o.iter_mut().enumerate() {
                let sum: f64 = (start..end).map(|t| inp[t * c + j] as f64).sum();
                *o = (sum * inv) as f32;
            }
        });
}

/// dinp (T, C) += `dout[b] / len_b` on the rows of sequence b.
pub(crate) fn mean_pool_backward(
    dinp: &mut [f32],
    dout: &[f32],
    cu_seqlens: &[u32],
    seqs: usize,
    c: usize,
) {
    // Split dinp into each sequence's rows (sequences own disjoint, consecutive row ranges).
    let mut parts = Vec::with_capacity(seqs);
    let mut rest = &mut dinp[..cu_seqlens[seqs] as usize * c];
    let mut at = 0usize;
    for (b, (start, end)) in spans(cu_seqlens, seqs).enumerate() {
        assert!(start >= at && end >= start, "cu_seqlens must not decrease");
        let (_, tail) = std::mem::take(&mut rest).split_at_mut((start - at) * c);
        let (mine, tail) = tail.split_at_mut((end - start) * c);
        parts.push((b, end - start, mine));
        rest = tail;
        at = end;
    }
    parts.into_par_iter().for_each(|(b, len, rows)| {
        if len == 0 {
            return;
        }
        let inv = 1.0 / len as f32;
        let g = &dout[b * c..(b + 1) * c];
        for row in rows.chunks_mut(c) {
            for (d, &g) in row.iter_mut().zip(g) {
                *d += g * inv;
            }
        }
    });
}

/// log(sum(exp(row))) in f64, shifted by the row maximum.
fn logsumexp(row: &[f32]) -> f64 {
    let max = row.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
    max + row
        .iter()
        .map(|&x| (x as f64 - max).exp())
        .sum::<f64>()
        .ln()
}

/// Sum over fixed blocks of ROWS_PER_PARTIAL rows of `row_loss(i)`, partials added in order.
fn fixed_order_sum(n: usize, row_loss: impl Fn(usize) -> f64 + Sync) -> f64 {
    let partials: Vec<f64> = (0..n.div_ceil(ROWS_PER_PARTIAL))
        .into_par_iter()
        .map(|blk| {
            (blk * ROWS_PER_PARTIAL..((blk + 1) * ROWS_PER_PARTIAL).min(n))
                .map(&row_loss)
                .sum::<f64>()
        })
        .collect();
    partials.iter().sum()
}

fn check_label(label: u32, k: usize) -> usize {
    assert!(
        (label as usize) < k,
        "class label {label} is not below the {k} classes"
    );
    label as usize
}

/// `mean_i (logsumexp(logits_i) - logits_i[label_i])` over logits (N, K).
pub(crate) fn cross_entropy_forward(logits: &[f32], labels: &[u32], n: usize, k: usize) -> f64 {
    if n == 0 {
        return 0.0;
    }
    fixed_order_sum(n, |i| {
        let row = &logits[i * k..(i + 1) * k];
        logsumexp(row) - row[check_label(labels[i], k)] as f64
    }) / n as f64
}

/// dlogits (N, K) = loss_scale * (softmax - onehot) / N (overwritten).
pub(crate) fn cross_entropy_backward(
    dlogits: &mut [f32],
    logits: &[f32],
    labels: &[u32],
    n: usize,
    k: usize,
    loss_scale: f32,
) {
    let coef = loss_scale as f64 / n.max(1) as f64;
    dlogits[..n * k]
        .par_chunks_mut(k.max(1))
        .enumerate()
        .for_each(|(i, d)| {
            let row = &logits[i * k..(i + 1) * k];
            let lse = logsumexp(row);
            let label = check_label(labels[i], k);
            for (j, d) in d.iter_mut().enumerate() {
                let p = (row[j] as f64 - lse).exp();
                let y = if j == label { 1.0 } else { 0.0 };
                *d = (coef * (p - y)) as f32;
            }
        });
}

/// mean over (N, K) of max(x, 0) - x y + log(1 + exp(-|x|)).
pub(crate) fn bce_forward(logits: &[f32], targets: &[f32], n: usize, k: usize) -> f64 {
    if n == 0 || k == 0 {
        return 0.0;
    }
    fixed_order_sum(n, |i| {
        (i * k..(i + 1) * k)
            .map(|e| {
                let (x, y) = (logits[e] as f64, targets[e] as f64);
                x.max(0.0) - x * y + (-x.abs()).exp().ln_1p()
            })
            .sum::<f64>()
    }) / (n * k) as f64
}

/// dlogits (N, K) = loss_scale * (sigmoid(x) - y) / (N K) (overwritten).
pub(crate) fn bce_backward(
    dlogits: &mut [f32],
    logits: &[f32],
    targets: &[f32],
    n: usize,
    k: usize,
    loss_scale: f32,
) {
    let coef = loss_scale as f64 / (n * k).max(1) as f64;
    dlogits[..n * k]
        .par_chunks_mut(k.max(1))
        .enumerate()
        .for_each(|(i, d)| {
            for (j, d) in d.iter_mut().enumerate() {
                let e = i * k + j;
                let x = logits[e] as f64;
                let sig = 1.0 / (1.0 + (-x).exp());
                *d = (coef * (sig - targets[e] as f64)) as f32;
            }
        });
}
