//! Launches of kernels/cuda/gelu.cu (exact erf GELU, bit for bit the CPU backend's formula).

use super::device::{Arg, Device, Module};
use super::launch::{columns_by_rows, elementwise};
use super::KernelBackend;

/// out (n) = gelu(inp).
pub(super) fn forward<D: Device>(k: &KernelBackend<D>, out: u64, inp: u64, n: usize) {
    if let Some(dims) = elementwise(n) {
        let args = [Arg::Ptr(out), Arg::Ptr(inp), Arg::U64(n as u64)];
        k.dev.launch(Module::Gelu, "gelu_forward", dims, &args);
    }
}

/// pre (T, M) += bias (M) on every row, then out = gelu(pre).
pub(super) fn bias_forward<D: Device>(
    k: &KernelBackend<D>,
    (pre, out, bias): (u64, u64, u64),
    (t, m): (usize, usize),
) {
    if let Some(dims) = columns_by_rows(t, m) {
        let args = [
            Arg::Ptr(pre),
            Arg::Ptr(out),
            Arg::Ptr(bias),
            Arg::I32(t as i32),
            Arg::I32(m as i32),
        ];
        k.dev.launch(Module::Gelu, "bias_gelu_forward", dims, &args);
    }
}

/// dinp (n) = dout * gelu'(inp).
pub(super) fn backward<D: Device>(k: &KernelBackend<D>, dinp: u64, inp: u64, dout: u64, n: usize) {
    if let Some(dims) = elementwise(n) {
        let args = [
            Arg::Ptr(dinp),
            Arg::Ptr(inp),
            Arg::Ptr(dout),
            Arg::U64(n as u64),
        ];
        k.dev.launch(Module::Gelu, "gelu_backward", dims, &args);
    }
}
