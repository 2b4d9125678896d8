//! The linear layer on a kernel backend: the three GEMMs through the device's GEMM (cuBLAS, in
//! true fp32 or with bf16 operands as the backend's precision says), and the bias row add and
//! the bias gradient from kernels/cuda/matmul.cu.
//! Row-major X (r, c) is column-major X^T with leading dimension c, so:
//!   out^T (OC x T)   = W (op T of W^T, ld C) . inp^T (ld C)
//!   dinp^T (C x T)   = W^T (ld C) . dout^T (ld OC)
//!   dW^T (C x OC)   += inp^T (ld C) . dout (op T of dout^T, ld OC)

use super::device::{Arg, Device, Gemm, LaunchDims, Module};
use super::launch::{columns_by_rows, per_item, row_chunks, ROWS_PER_CHUNK};
use super::KernelBackend;

/// out (T, OC) = inp (T, C) @ weight (OC, C)^T + bias (OC).
pub(super) fn forward<D: Device>(
    k: &KernelBackend<D>,
    out: u64,
    inp: u64,
    weight: u64,
    bias: Option<u64>,
    (t, c, oc): (usize, usize, usize),
) {
    if t == 0 || oc == 0 {
        return;
    }
    k.dev.gemm(&Gemm {
        trans_a: true,
        trans_b: false,
        m: oc,
        n: t,
        k: c,
        a: weight,
        lda: c.max(1),
        b: inp,
        ldb: c.max(1),
        beta: 0.0,
        c: out,
        ldc: oc,
        precision: k.precision,
    });
    if let (Some(bias), Some(dims)) = (bias, columns_by_rows(t, oc)) {
        let args = [
            Arg::Ptr(out),
            Arg::Ptr(bias),
            Arg::I32(t as i32),
            Arg::I32(oc as i32),
        ];
        k.dev.launch(Module::Matmul, "add_bias_rows", dims, &args);
    }
}

/// dinp = dout @ weight; dweight += dout^T @ inp; dbias += column sums of dout.
pub(super) fn backward<D: Device>(
    k: &KernelBackend<D>,
    dinp: Option<u64>,
    dweight: u64,
    dbias: Option<u64>,
    (dout, inp, weight): (u64, u64, u64),
    (t, c, oc): (usize, usize, usize),
) {
    if t == 0 || oc == 0 {
        return;
    }
    if let Some(dinp) = dinp.filter(|_| c > 0) {
        k.dev.gemm(&Gemm {
            trans_a: false,
            trans_b: false,
            m: c,
            n: t,
            k: oc,
            a: weight,
            lda: c,
            b: dout,
            ldb: oc,
            beta: 0.0,
            c: dinp,
            ldc: c,
            precision: k.precision,
        });
    }
    if c > 0 {
        k.dev.gemm(&Gemm {
            trans_a: false,
            trans_b: true,
            m: c,
            n: oc,
            k: t,
            a: inp,
            lda: c,
            b: dout,
            ldb: oc,
            beta: 1.0,
            c: dweight,
            ldc: c,
            precision: k.precision,
        });
    }
    if let Some(dbias) = dbias {
        column_sums(k, dbias, dout, t, oc);
    }
}

/// dst (C) += column sums of src (T, C): f64 partials over fixed row chunks, then in order.
pub(super) fn column_sums<D: Device>(k: &KernelBackend<D>, dst: u64, src: u64, t: usize, c: usize) {
    chunked_column_sums(k, dst, (t, c), |partial, dims| {
        let args = [
            Arg::Ptr(partial),
            Arg::Ptr(src),
            Arg::I32(t as i32),
            Arg::I32(c as i32),
            Arg::I32(ROWS_PER_CHUNK as i32),
        ];
        k.dev.launch(Module::Matmul, "colsum_partial", dims, &args);
    });
}

/// dst (C) += the column sums of a (T, C) tensor in two passes. `first_pass(partial, dims)`
/// launches a kernel on `dims` = (ceil(C / BLOCK), chunks of `ROWS_PER_CHUNK` rows) whose thread
/// (j, chunk) writes partial[chunk][j] (f64), its column's sum over the chunk in row order (as
/// `colsum_partial`); then the chunks are added in order.
pub(super) fn chunked_column_sums<D: Device>(
    k: &KernelBackend<D>,
    dst: u64,
    (t, c): (usize, usize),
    first_pass: impl FnOnce(u64, LaunchDims),
) {
    let chunks = row_chunks(t);
    let Some(dims) = per_item(c, chunks) else {
        return;
    };
    k.workspace.with(&k.dev, 2 * chunks * c, |partial| {
        first_pass(partial, dims);
        finish_column_sums(k, dst, partial, chunks, c);
    });
}

/// dst (C) += (f32) sum over `chunks` f64 partial rows (chunks, C), in chunk order.
pub(super) fn finish_column_sums<D: Device>(
    k: &KernelBackend<D>,
    dst: u64,
    partial: u64,
    chunks: usize,
    c: usize,
) {
    if let Some(dims) = per_item(c, 1) {
        let args = [
            Arg::Ptr(dst),
            Arg::Ptr(partial),
            Arg::I32(chunks as i32),
            Arg::I32(c as i32),
        ];
        k.dev.launch(Module::Matmul, "colsum_finish", dims, &args);
    }
}
