//! Launches of kernels/cuda/gelu.cu (exact erf GELU, bit for bit the CPU backend's formula), the
//! backward optionally with the bias gradient of the layer before it.

use super::device::{Arg, Device, Module};
use super::launch::{columns_by_rows, elementwise, Operand, ROWS_PER_CHUNK};
use super::matmul;
use super::KernelBackend;

/// out (n) = gelu(inp (n)), each f32 or bf16 operand storage.
pub(super) fn forward<D: Device>(k: &KernelBackend<D>, out: Operand, inp: Operand, n: usize) {
    if let Some(dims) = elementwise(n) {
        let ([out, out_bf16], [inp, inp_bf16]) = (out.args(), inp.args());
        let args = [out, out_bf16, inp, inp_bf16, Arg::U64(n as u64)];
        k.dev.launch(Module::Gelu, "gelu_forward", dims, &args);
    }
}

/// pre (T, M) = product (T, M) + bias (M) on every row, rounded to bf16 when `round_pre`; then
/// out = gelu(pre). pre and out are operand storage; `product` (f32) may be pre's own address.
pub(super) fn bias_forward<D: Device>(
    k: &KernelBackend<D>,
    (product, pre, round_pre): (u64, Operand, bool),
    (out, bias): (Operand, u64),
    (t, m): (usize, usize),
) {
    if let Some(dims) = columns_by_rows(t, m) {
        let ([pre, pre_bf16], [out, out_bf16]) = (pre.args(), out.args());
        let args = [
            Arg::Ptr(product),
            pre,
            pre_bf16,
            Arg::I32(round_pre.into()),
            out,
            out_bf16,
            Arg::Ptr(bias),
            Arg::I32(t as i32),
            Arg::I32(m as i32),
        ];
        k.dev.launch(Module::Gelu, "bias_gelu_forward", dims, &args);
    }
}

/// dinp (n) = dout (n) * gelu'(inp (n)); dinp and inp are f32 or bf16 operand storage.
pub(super) fn backward<D: Device>(
    k: &KernelBackend<D>,
    dinp: Operand,
    (inp, dout): (Operand, u64),
    n: usize,
) {
    if let Some(dims) = elementwise(n) {
        let ([dinp, dinp_bf16], [inp, inp_bf16]) = (dinp.args(), inp.args());
        let args = [
            dinp,
            dinp_bf16,
            inp,
            inp_bf16,
            Arg::Ptr(dout),
            Arg::U64(n as u64),
        ];
        k.dev.launch(Module::Gelu, "gelu_backward", dims, &args);
    }
}

/// dinp (T, M; operand storage) = dout * gelu'(inp), and dbias (M) += its column sums (of the
/// f32 values): the first pass of the chunked column sums computes dinp as it reads it.
pub(super) fn backward_bias<D: Device>(
    k: &KernelBackend<D>,
    (dinp, dbias): (Operand, u64),
    (inp, dout): (Operand, u64),
    (t, m): (usize, usize),
) {
    let ([dinp, dinp_bf16], [inp, inp_bf16]) = (dinp.args(), inp.args());
    matmul::chunked_column_sums(k, dbias, (t, m), |partial, dims| {
        let args = [
            Arg::Ptr(partial),
            dinp,
            dinp_bf16,
            inp,
            inp_bf16,
            Arg::Ptr(dout),
            Arg::I32(t as i32),
            Arg::I32(m as i32),
            Arg::I32(ROWS_PER_CHUNK as i32),
        ];
        k.dev
            .launch(Module::Gelu, "gelu_backward_colsum", dims, &args);
    });
}
