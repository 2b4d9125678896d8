//! The linear layer on a kernel backend: the three GEMMs through the device's GEMM (cuBLAS, in
//! true fp32 or with bf16 operands as the backend's precision says), and the bias row add and
//! the bias gradient from kernels/cuda/matmul.cu.
//! Row-major X (r, c) is column-major X^T with leading dimension c, so:
//!   out^T (OC x T)   = W (op T of W^T, ld C) . inp^T (ld C)
//!   dinp^T (C x T)   = W^T (ld C) . dout^T (ld OC)
//!   dW^T (C x OC)   += inp^T (ld C) . dout (op T of dout^T, ld OC)
//! When `inp` is stored in bf16 (`Backend::alloc_operand` of a bf16 backend), the weight (and in
//! the backward the output gradient) is first rounded into bf16 workspace (`to_bf16`), so every
//! GEMM multiplies two bf16 matrices: the same products as rounding f32 operands in the GEMM.

use super::device::{Arg, Device, Gemm, GemmOperands, LaunchDims, Module};
use super::launch::{columns_by_rows, elementwise, per_item, row_chunks, Operand, ROWS_PER_CHUNK};
use super::KernelBackend;
use crate::precision::Precision;

/// How the GEMMs of a linear layer whose input is `inp` multiply.
fn operands<D: Device>(k: &KernelBackend<D>, inp: Operand) -> GemmOperands {
    match (inp.bf16, k.precision) {
        (true, _) => GemmOperands::Bf16,
        (false, Precision::Bf16) => GemmOperands::F32AsBf16,
        (false, Precision::Fp32) => GemmOperands::F32,
    }
}

/// Queues dst (n, bf16 bits) = src (n, f32) rounded.
fn to_bf16<D: Device>(k: &KernelBackend<D>, dst: u64, src: u64, n: usize) {
    if let Some(dims) = elementwise(n) {
        let args = [Arg::Ptr(dst), Arg::Ptr(src), Arg::U64(n as u64)];
        k.dev.launch(Module::Matmul, "to_bf16", dims, &args);
    }
}

/// Runs `f` with bf16 copies of f32 tensors of the given lengths (workspace addresses, each
/// 256-byte aligned), or with the tensors themselves when `round` is false.
fn bf16_copies<D: Device, const N: usize, R>(
    k: &KernelBackend<D>,
    round: bool,
    tensors: [(u64, usize); N],
    f: impl FnOnce([u64; N]) -> R,
) -> R {
    if !round {
        return f(tensors.map(|(addr, _)| addr));
    }
    // In f32 slots: two bf16 per slot, each copy starting on a 64-slot (256-byte) boundary.
    let slots = |n: usize| n.div_ceil(2).next_multiple_of(64);
    let total = tensors.iter().map(|&(_, n)| slots(n)).sum();
    k.workspace.with(&k.dev, total, |base| {
        let mut at = base;
        let copies = tensors.map(|(src, n)| {
            to_bf16(k, at, src, n);
            at += 4 * slots(n) as u64;
            at - 4 * slots(n) as u64
        });
        f(copies)
    })
}

/// out (T, OC) = inp (T, C) @ weight (OC, C)^T + bias (OC).
pub(super) fn forward<D: Device>(
    k: &KernelBackend<D>,
    out: u64,
    inp: Operand,
    weight: u64,
    bias: Option<u64>,
    (t, c, oc): (usize, usize, usize),
) {
    if t == 0 || oc == 0 {
        return;
    }
    let operands = operands(k, inp);
    bf16_copies(k, inp.bf16, [(weight, oc * c)], |[weight]| {
        k.dev.gemm(&Gemm {
            trans_a: true,
            trans_b: false,
            m: oc,
            n: t,
            k: c,
            a: weight,
            lda: c.max(1),
            b: inp.addr,
            ldb: c.max(1),
            beta: 0.0,
            c: out,
            ldc: oc,
            operands,
        })
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
    (dout, inp, weight): (u64, Operand, u64),
    (t, c, oc): (usize, usize, usize),
) {
    if t == 0 || oc == 0 {
        return;
    }
    let operands = operands(k, inp);
    let tensors = [(dout, t * oc), (weight, oc * c)];
    bf16_copies(k, inp.bf16, tensors, |[dout, weight]| {
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
                operands,
            });
        }
        if c > 0 {
            k.dev.gemm(&Gemm {
                trans_a: false,
                trans_b: true,
                m: c,
                n: oc,
                k: t,
                a: inp.addr,
                lda: c,
                b: dout,
                ldb: oc,
                beta: 1.0,
                c: dweight,
                ldc: c,
                operands,
            });
        }
    });
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
