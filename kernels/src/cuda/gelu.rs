//! Launches of kernels/cuda/gelu.cu (exact erf GELU, bit for bit the CPU backend's formula), the
//! backward optionally with the bias gradient of the layer before it.

use super::device::{Arg, Device, Module};
use super::launch::{columns_by_rows, elementwise, Operand, ROWS_PER_CHUNK};
use super::matmul;
use super::KernelBackend;

/// out (n; f32 or bf16 operand storage) = gelu(inp).
pub(super) fn forward<D: Device>(k: &KernelBackend<D>, out: Operand, inp: u64, n: usize) {
    if let Some(dims) = elementwise(n) {
        let [out, out_bf16] = out.args();
        let args = [out, out_bf16, Arg::Ptr(inp), Arg::U64(n as u64)];
        k.dev.launch(Module::Gelu, "gelu_forward", dims, &args);
    }
}

/// pre (T, M) += bias (M) on every row, then out (operand storage) = gelu(pre).
pub(super) fn bias_forward<D: Device>(
    k: &KernelBackend<D>,
    (pre, out, bias): (u64, Operand, u64),
    (t, m): (usize, usize),
) {
    if let Some(dims) = columns_by_rows(t, m) {
        let [out, out_bf16] = out.args();
        let args = [
            Arg::Ptr(pre),
            out,
            out_bf16,
            Arg::Ptr(bias),
            Arg::I32(t as i32),
            Arg::I32(m as i32),
        ];
        k.dev.launch(Module::Gelu, "bias_gelu_forward", dims, &args);
    }
}

/// dinp (n; f32 or bf16 operand storage) = dout * gelu'(inp).
pub(super) fn backward<D: Device>(
    k: &KernelBackend<D>,
    dinp: Operand,
    (inp, dout): (u64, u64),
    n: usize,
) {
    if let Some(dims) = elementwise(n) {
        let [dinp, dinp_bf16] = dinp.args();
        let args = [
            dinp,
            dinp_bf16,
            Arg::Ptr(inp),
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
    (inp, dout): (u64, u64),
    (t, m): (usize, usize),
) {
    let [dinp, dinp_bf16] = dinp.args();
    matmul::chunked_column_sums(k, dbias, (t, m), |partial, dims| {
        let args = [
            Arg::Ptr(partial),
            dinp,
            dinp_bf16,
            Arg::Ptr(inp),
            Arg::Ptr(dout),
            Arg::I32(t as i32),
            Arg::I32(m as i32),
            Arg::I32(ROWS_PER_CHUNK as i32),
        ];
        k.dev
            .launch(Module::Gelu, "gelu_backward_colsum", dims, &args);
    });
}
