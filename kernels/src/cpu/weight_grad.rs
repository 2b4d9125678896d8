//! Parameter gradients of the linear layer: dweight (OC, C) += dout (T, OC)^T @ inp (T, C) and
//! dbias (OC) += column sums of dout.
//!
//! The reduction runs over every token (T is thousands) while the output is a small weight
//! matrix, so tiling the output alone gives thin, packing-bound gemms. Instead T is cut into at
//! most `K_CHUNKS` fixed chunks: one task per (chunk, output row block) computes that chunk's
//! partial product into scratch with one large single-threaded gemm (and the chunk's f64 column
//! sums of dout), then the partials are added in chunk order. Chunks and blocks depend only on
//! the shape, never on the thread count, so every result is bitwise reproducible.

use super::fastmath::wide_simd_fn;
use super::par::{SendPtr, CHUNK};
use super::sgemm::{gemm_st, MatMut, MatRef};
use rayon::prelude::*;
use std::sync::Mutex;

/// Upper bound on the chunks of the reduction dimension (and so on scratch: K_CHUNKS weights).
const K_CHUNKS: usize = 8;

/// Fewest rows of T in one chunk: below this a chunk's gemm is too short to pay for its packing.
const MIN_CHUNK_ROWS: usize = 256;

/// Largest output block (elements) of one task, so a block's partial stays cache-friendly.
const MAX_BLOCK_ELEMS: usize = 1 << 18;

/// Elements per step of the partial-sum reduction (a register-sized accumulator).
const LANE_BLOCK: usize = 64;

/// Scratch for the partial products, reused across calls (taken, so concurrent calls each
/// get their own buffer).
static SCRATCH: Mutex<Vec<f32>> = Mutex::new(Vec::new());

/// Rows of T per chunk for a reduction of `t` rows: a function of `t` alone.
fn chunk_rows(t: usize) -> usize {
    t.div_ceil(K_CHUNKS)
        .next_multiple_of(64)
        .max(MIN_CHUNK_ROWS)
}

/// Rows of the (OC, C) output per task: the whole output when it is small enough.
fn block_rows(oc: usize, c: usize) -> usize {
    let rows = (MAX_BLOCK_ELEMS / c.max(1)) / 16 * 16;
    rows.max(16).min(oc.max(1))
}

/// dweight (OC, C) += dout^T @ inp; with `bias` = (dbias, bias_dout): dbias (OC) += sum over
/// rows of bias_dout (T, OC) (f64 per chunk, then the chunk sums in order).
pub(crate) fn accumulate(
    dweight: &mut [f32],
    bias: Option<(&mut [f32], &[f32])>,
    dout: &[f32],
    inp: &[f32],
    t: usize,
    c: usize,
    oc: usize,
) {
    let (dweight, dout, inp) = (&mut dweight[..oc * c], &dout[..t * oc], &inp[..t * c]);
    if t == 0 || oc == 0 {
        return;
    }
    let kr = chunk_rows(t);
    let chunks = t.div_ceil(kr);
    let br = block_rows(oc, c);
    let blocks = oc.div_ceil(br);
    let wsize = oc * c;
    let mut scratch = std::mem::take(&mut *SCRATCH.lock().unwrap_or_else(|e| e.into_inner()));
    if scratch.len() < chunks * wsize {
        scratch.resize(chunks * wsize, 0.0);
    }
    let partials = SendPtr(scratch.as_mut_ptr());
    let (dbias, bias_dout) = bias.unzip();
    let bias_sums: Vec<Vec<f64>> = (0..chunks * blocks)
        .into_par_iter()
        .map(|task| {
            let (chunk, block) = (task / blocks, task % blocks);
            let (k0, k1) = (chunk * kr, ((chunk + 1) * kr).min(t));
            let (r0, r1) = (block * br, ((block + 1) * br).min(oc));
            // SAFETY: task (chunk, block) alone writes rows r0..r1 of partial `chunk` (inside the
            // scratch sized above); the inputs are bounds-checked slices of k1 - k0 rows.
            unsafe {
                let dst = partials.get().add(chunk * wsize + r0 * c);
                gemm_st(
                    r1 - r0,
                    c,
                    k1 - k0,
                    MatMut::rows(dst, c),
                    false,
                    MatRef::transposed(dout[k0 * oc + r0..].as_ptr(), oc),
                    MatRef::rows(inp[k0 * c..].as_ptr(), c),
                    1.0,
                );
            }
            match bias_dout {
                Some(rows) => column_sums(&rows[k0 * oc..k1 * oc], oc, r0, r1),
                None => Vec::new(),
            }
        })
        .collect();
    add_partials(dweight, &scratch[..chunks * wsize], chunks);
    *SCRATCH.lock().unwrap_or_else(|e| e.into_inner()) = scratch;
    if let Some(dbias) = dbias {
        let dbias = &mut dbias[..oc];
        for block in 0..blocks {
            let r0 = block * br;
            for (i, d) in dbias[r0..(r0 + br).min(oc)].iter_mut().enumerate() {
                *d += in_chunk_order((0..chunks).map(|chunk| bias_sums[chunk * blocks + block][i]));
            }
        }
    }
}

/// dbias (OC) += column sums of dout (T, OC), bitwise the dbias of `accumulate` (f64 per chunk
/// of rows, then the chunk sums in order) for a caller that has no weight gradient to go with it.
pub(crate) fn bias_grad(dbias: &mut [f32], dout: &[f32], t: usize, oc: usize) {
    if t == 0 || oc == 0 {
        return;
    }
    let kr = chunk_rows(t);
    let sums: Vec<Vec<f64>> = (0..t.div_ceil(kr))
        .into_par_iter()
        .map(|chunk| {
            column_sums(
                &dout[chunk * kr * oc..((chunk + 1) * kr).min(t) * oc],
                oc,
                0,
                oc,
            )
        })
        .collect();
    for (j, d) in dbias[..oc].iter_mut().enumerate() {
        *d += in_chunk_order(sums.iter().map(|s| s[j]));
    }
}

/// (((s_0 + s_1) + s_2) + ...) of a column's chunk sums, in f64, as the f32 to add.
fn in_chunk_order(chunk_sums: impl Iterator<Item = f64>) -> f32 {
    chunk_sums.fold(0f64, |s, x| s + x) as f32
}

/// f64 sums over the rows of `rows` (row length `width`) of columns r0..r1, in row order.
fn column_sums(rows: &[f32], width: usize, r0: usize, r1: usize) -> Vec<f64> {
    let mut acc = vec![0f64; r1 - r0];
    add_column_sums(&mut acc, rows, width, r0);
    acc
}

wide_simd_fn! {
    /// acc (n) += the f64 sums of columns r0..r0 + n over the rows of `rows`, in row order.
    fn add_column_sums(acc: &mut [f64], rows: &[f32], width: usize, r0: usize) {
        let r1 = r0 + acc.len();
        for row in rows.chunks_exact(width) {
            for (a, &v) in acc.iter_mut().zip(&row[r0..r1]) {
                *a += v as f64;
            }
        }
    }
}

/// dst += (((p_0 + p_1) + p_2) + ...) element-wise over the `chunks` partials laid end to end.
fn add_partials(dst: &mut [f32], partials: &[f32], chunks: usize) {
    let n = dst.len();
    dst.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(b, d)| add_partials_block(d, b * CHUNK, partials, (chunks, n)));
}

wide_simd_fn! {
    /// `add_partials` for the block d of dst (length n) that starts at element `base`.
    fn add_partials_block(d: &mut [f32], base: usize, partials: &[f32], chunks_n: (usize, usize)) {
        let (chunks, n) = chunks_n;
        for (l, lane) in d.chunks_mut(LANE_BLOCK).enumerate() {
            let e0 = base + l * LANE_BLOCK;
            let len = lane.len();
            let mut acc = [0f32; LANE_BLOCK];
            acc[..len].copy_from_slice(&partials[e0..e0 + len]);
            for chunk in 1..chunks {
                let p = &partials[chunk * n + e0..chunk * n + e0 + len];
                for (a, &v) in acc.iter_mut().zip(p) {
                    *a += v;
                }
            }
            for (x, &a) in lane.iter_mut().zip(&acc) {
                *x += a;
            }
        }
    }
}
