//! Packed variable-length multi-head attention (FlashAttention-varlen layout) and its backward.
//!
//! One rayon task per (sequence, head). A task walks its queries in tiles of `QUERY_TILE` rows
//! and holds only that tile's scores (`QUERY_TILE x len`) in thread-local scratch, so memory stays
//! bounded. Forward per tile: S = Q K^T / sqrt(hd); lse = logsumexp rows of S; P = exp(S - lse);
//! O = P V. Backward per tile (P recomputed from the saved lse): dV += P^T dO;
//! dP = dO V^T; dS = P * (dP - rowsum(dO * O)); dQ += dS K / sqrt(hd); dK += dS^T Q / sqrt(hd).
//! Tasks write disjoint (rows, head columns) regions, and tiles are visited in a fixed order, so
//! results are bitwise independent of the thread count.

use super::fastmath::{self, wide_simd_fn};
use super::sgemm::{gemm_st, MatMut, MatRef};
use crate::backend::AttnDims;
use crate::precision::round_bf16;
use rayon::prelude::*;
use std::cell::RefCell;

const QUERY_TILE: usize = 64;

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with a thread-local scratch buffer of at least `n` elements (reused across calls).
fn with_scratch<R>(n: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < n {
            s.resize(n, 0.0);
        }
        f(&mut s[..n])
    })
}

/// The (sequence, head) tasks: token range and head index, checked against the dims.
fn tasks(
    cu_seqlens: &[u32],
    dims: AttnDims,
) -> impl IndexedParallelIterator<Item = (usize, usize, usize)> + '_ {
    let cu = &cu_seqlens[..dims.seqs + 1];
    assert_eq!(cu[0], 0, "cu_seqlens must start at 0");
    assert_eq!(
        cu[dims.seqs] as usize, dims.tokens,
        "cu_seqlens[B] must equal the token count"
    );
    assert!(
        cu.windows(2).all(|w| w[0] <= w[1]),
        "cu_seqlens must be non-decreasing"
    );
    assert_eq!(
        dims.width % dims.heads,
        0,
        "width must be a multiple of heads"
    );
    (0..dims.seqs * dims.heads).into_par_iter().map(move |i| {
        let (b, h) = (i / dims.heads, i % dims.heads);
        (cu[b] as usize, cu[b + 1] as usize, h)
    })
}

/// out (T, C) and lse (T, H) from qkv (T, 3C). With `round_probs` (bf16 attention), P is
/// rounded to bf16 before `P V` and out as it is written (qkv arrives already rounded then:
/// crate::precision).
pub(crate) fn forward(
    out: &mut [f32],
    lse: &mut [f32],
    qkv: &[f32],
    cu_seqlens: &[u32],
    dims: AttnDims,
    round_probs: bool,
) {
    let AttnDims {
        tokens: t,
        width: c,
        heads,
        ..
    } = dims;
    let hd = c / heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let (out, lse, qkv) = (&mut out[..t * c], &mut lse[..t * heads], &qkv[..t * 3 * c]);
    let (out_ptr, lse_ptr) = (
        MatMut::rows(out.as_mut_ptr(), c),
        MatMut::rows(lse.as_mut_ptr(), heads),
    );
    tasks(cu_seqlens, dims).for_each(|(s0, s1, h)| {
        let len = s1 - s0;
        if len == 0 {
            return;
        }
        let q = MatRef::rows(qkv[s0 * 3 * c + h * hd..].as_ptr(), 3 * c);
        let k_t = MatRef::transposed(qkv[s0 * 3 * c + c + h * hd..].as_ptr(), 3 * c);
        let v = MatRef::rows(qkv[s0 * 3 * c + 2 * c + h * hd..].as_ptr(), 3 * c);
        with_scratch(QUERY_TILE * len, |scores| {
            for q0 in (0..len).step_by(QUERY_TILE) {
                let br = QUERY_TILE.min(len - q0);
                let s = &mut scores[..br * len];
                // SAFETY: all matrices lie inside the bounds-checked slices; this task alone writes
                // rows s0..s1, columns h*hd..(h+1)*hd of out and column h of lse.
                unsafe {
                    let q_tile = q.at(q0, 0);
                    gemm_st(
                        br,
                        len,
                        hd,
                        MatMut::rows(s.as_mut_ptr(), len),
                        false,
                        q_tile,
                        k_t,
                        scale,
                    );
                    let mut row_lse = [0f32; QUERY_TILE];
                    softmax_rows(s, len, round_probs, &mut row_lse[..br]);
                    for (i, &l) in row_lse[..br].iter().enumerate() {
                        *lse_ptr.at(s0 + q0 + i, h).ptr = l;
                    }
                    let o = out_ptr.at(s0 + q0, h * hd);
                    gemm_st(br, hd, len, o, false, MatRef::rows(s.as_ptr(), len), v, 1.0);
                    if round_probs {
                        for i in 0..br {
                            let row = std::slice::from_raw_parts_mut(o.at(i, 0).ptr, hd);
                            row.iter_mut().for_each(|x| *x = round_bf16(*x));
                        }
                    }
                }
            }
        });
    });
}

/// dqkv (T, 3C) = attention backward from dout (T, C), qkv, the saved out (T, C) and lse (T, H)
/// (dK and dV summed over the query tiles, the first overwriting).
/// `dout_mm` is dout as the products take it; D = rowsum(dout * out) uses the f32 `dout`. With
/// `round_probs`, P and dS are rounded to bf16 before their products (crate::precision).
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    dqkv: &mut [f32],
    (dout, dout_mm): (&[f32], &[f32]),
    qkv: &[f32],
    out: &[f32],
    lse: &[f32],
    cu_seqlens: &[u32],
    dims: AttnDims,
    round_probs: bool,
) {
    let AttnDims {
        tokens: t,
        width: c,
        heads,
        ..
    } = dims;
    let hd = c / heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let dqkv = &mut dqkv[..t * 3 * c];
    let (dout, dout_mm, qkv, out, lse) = (
        &dout[..t * c],
        &dout_mm[..t * c],
        &qkv[..t * 3 * c],
        &out[..t * c],
        &lse[..t * heads],
    );
    let dqkv_ptr = MatMut::rows(dqkv.as_mut_ptr(), 3 * c);
    tasks(cu_seqlens, dims).for_each(|(s0, s1, h)| {
        let len = s1 - s0;
        if len == 0 {
            return;
        }
        let base = s0 * 3 * c + h * hd;
        let q = MatRef::rows(qkv[base..].as_ptr(), 3 * c);
        let k = MatRef::rows(qkv[base + c..].as_ptr(), 3 * c);
        let v_t = MatRef::transposed(qkv[base + 2 * c..].as_ptr(), 3 * c);
        let d_o = MatRef::rows(dout_mm[s0 * c + h * hd..].as_ptr(), c);
        with_scratch(2 * QUERY_TILE * len, |scratch| {
            let (probs, dscores) = scratch.split_at_mut(QUERY_TILE * len);
            for q0 in (0..len).step_by(QUERY_TILE) {
                let br = QUERY_TILE.min(len - q0);
                let (p, ds) = (&mut probs[..br * len], &mut dscores[..br * len]);
                // SAFETY: all matrices lie inside the bounds-checked slices; this task alone writes
                // rows s0..s1 and the head-h columns of the q, k and v parts of dqkv.
                unsafe {
                    let q_tile = q.at(q0, 0);
                    let do_tile = d_o.at(q0, 0);
                    let k_t = MatRef {
                        ptr: k.ptr,
                        rs: k.cs,
                        cs: k.rs,
                    };
                    gemm_st(
                        br,
                        len,
                        hd,
                        MatMut::rows(p.as_mut_ptr(), len),
                        false,
                        q_tile,
                        k_t,
                        scale,
                    );
                    gemm_st(
                        br,
                        len,
                        hd,
                        MatMut::rows(ds.as_mut_ptr(), len),
                        false,
                        do_tile,
                        v_t,
                        1.0,
                    );
                    let (mut row_lse, mut row_d) = ([0f32; QUERY_TILE], [0f32; QUERY_TILE]);
                    for i in 0..br {
                        let row = s0 + q0 + i;
                        let cols = row * c + h * hd..row * c + (h + 1) * hd;
                        row_lse[i] = lse[row * heads + h];
                        row_d[i] = fastmath::dot(&out[cols.clone()], &dout[cols]);
                    }
                    let stats = (&row_lse[..br], &row_d[..br]);
                    softmax_backward_rows((p, ds), len, stats, round_probs);
                    let dq = dqkv_ptr.at(s0 + q0, h * hd);
                    gemm_st(
                        br,
                        hd,
                        len,
                        dq,
                        false,
                        MatRef::rows(ds.as_ptr(), len),
                        k,
                        scale,
                    );
                    let dk = dqkv_ptr.at(s0, c + h * hd);
                    gemm_st(
                        len,
                        hd,
                        br,
                        dk,
                        q0 > 0,
                        MatRef::transposed(ds.as_ptr(), len),
                        q_tile,
                        scale,
                    );
                    let dv = dqkv_ptr.at(s0, 2 * c + h * hd);
                    gemm_st(
                        len,
                        hd,
                        br,
                        dv,
                        q0 > 0,
                        MatRef::transposed(p.as_ptr(), len),
                        do_tile,
                        1.0,
                    );
                }
            }
        });
    });
}

wide_simd_fn! {
    /// Each row (length `len`) of the scaled scores s becomes softmax probabilities in place
    /// (bf16-rounded with `round_probs`), and its log-sum-exp goes to `row_lse`.
    fn softmax_rows(s: &mut [f32], len: usize, round_probs: bool, row_lse: &mut [f32]) {
        for (row, lse) in s.chunks_mut(len).zip(row_lse) {
            let max = fastmath::max(row);
            row.iter_mut()
                .for_each(|x| *x = fastmath::exp_nonpositive(*x - max));
            let sum = fastmath::sum(row);
            let inv = 1.0 / sum;
            row.iter_mut().for_each(|x| *x *= inv);
            if round_probs {
                row.iter_mut().for_each(|x| *x = round_bf16(*x));
            }
            *lse = max + sum.ln();
        }
    }
}

wide_simd_fn! {
    /// Row i (length `len`) of the scores p becomes P = exp(p - lse_i), and of dO V^T in ds
    /// dS = P (ds - D_i), with (lse, D) = `stats` per row (both bf16-rounded with `round_probs`).
    fn softmax_backward_rows(
        p_ds: (&mut [f32], &mut [f32]),
        len: usize,
        stats: (&[f32], &[f32]),
        round_probs: bool,
    ) {
        let (p, ds) = p_ds;
        let rows = p.chunks_mut(len).zip(ds.chunks_mut(len));
        for ((p_row, ds_row), (&l, &di)) in rows.zip(stats.0.iter().zip(stats.1)) {
            for (pv, dv) in p_row.iter_mut().zip(ds_row.iter_mut()) {
                *pv = fastmath::exp_nonpositive(*pv - l);
                *dv = *pv * (*dv - di);
            }
            if round_probs {
                p_row.iter_mut().for_each(|x| *x = round_bf16(*x));
                ds_row.iter_mut().for_each(|x| *x = round_bf16(*x));
            }
        }
    }
}
