//! Launches of kernels/cuda/layernorm.cu: forward and input gradient one warp per row; the
//! weight and bias gradients as f64 column partials over fixed row chunks, finished in chunk
//! order by matmul.cu's `colsum_finish`.

use super::device::{Arg, Device, Module};
use super::launch::{after_f64, per_item, row_chunks, warp_per_row, Operand, ROWS_PER_CHUNK};
use super::matmul::finish_column_sums;
use super::KernelBackend;

/// out (T, C; f32 or bf16 operand storage), mean (T), rstd (T) from inp (T, C), weight (C),
/// bias (C).
pub(super) fn forward<D: Device>(
    k: &KernelBackend<D>,
    (out, mean, rstd): (Operand, u64, u64),
    (inp, weight, bias): (u64, u64, u64),
    t: usize,
    c: usize,
) {
    if let Some(dims) = warp_per_row(t) {
        let [out, out_bf16] = out.args();
        let args = [
            out,
            out_bf16,
            Arg::Ptr(mean),
            Arg::Ptr(rstd),
            Arg::Ptr(inp),
            Arg::Ptr(weight),
            Arg::Ptr(bias),
            Arg::I32(t as i32),
            Arg::I32(c as i32),
        ];
        k.dev
            .launch(Module::Layernorm, "layernorm_forward", dims, &args);
    }
}

/// res (T, C) = a + (b + b_bias), then `forward` of res in the same kernel (`b_bias` 0: none).
pub(super) fn add_forward<D: Device>(
    k: &KernelBackend<D>,
    res: u64,
    (out, mean, rstd): (Operand, u64, u64),
    (a, b, b_bias): (u64, u64, u64),
    (weight, bias): (u64, u64),
    (t, c): (usize, usize),
) {
    if let Some(dims) = warp_per_row(t) {
        let [out, out_bf16] = out.args();
        let args = [
            Arg::Ptr(res),
            out,
            out_bf16,
            Arg::Ptr(mean),
            Arg::Ptr(rstd),
            Arg::Ptr(a),
            Arg::Ptr(b),
            Arg::Ptr(b_bias),
            Arg::Ptr(weight),
            Arg::Ptr(bias),
            Arg::I32(t as i32),
            Arg::I32(c as i32),
        ];
        k.dev
            .launch(Module::Layernorm, "add_layernorm_forward", dims, &args);
    }
}

/// dinp (T, C), dweight (C), dbias (C) += the backward from dout and the saved statistics.
pub(super) fn backward<D: Device>(
    k: &KernelBackend<D>,
    (dinp, dweight, dbias): (u64, u64, u64),
    (dout, inp, weight, mean, rstd): (u64, u64, u64, u64, u64),
    t: usize,
    c: usize,
) {
    let Some(dims) = warp_per_row(t) else {
        return;
    };
    let (t32, c32) = (Arg::I32(t as i32), Arg::I32(c as i32));
    let args = [
        Arg::Ptr(dinp),
        Arg::Ptr(dout),
        Arg::Ptr(inp),
        Arg::Ptr(weight),
        Arg::Ptr(mean),
        Arg::Ptr(rstd),
        t32,
        c32,
    ];
    k.dev
        .launch(Module::Layernorm, "layernorm_backward_dx", dims, &args);
    let chunks = row_chunks(t);
    let Some(dims) = per_item(c, chunks) else {
        return;
    };
    k.workspace.with(&k.dev, 4 * chunks * c, |partial_w| {
        let partial_b = after_f64(partial_w, chunks * c);
        let args = [
            Arg::Ptr(partial_w),
            Arg::Ptr(partial_b),
            Arg::Ptr(dout),
            Arg::Ptr(inp),
            Arg::Ptr(mean),
            Arg::Ptr(rstd),
            t32,
            c32,
            Arg::I32(ROWS_PER_CHUNK as i32),
        ];
        k.dev.launch(
            Module::Layernorm,
            "layernorm_backward_partials",
            dims,
            &args,
        );
        finish_column_sums(k, dweight, partial_w, chunks, c);
        finish_column_sums(k, dbias, partial_b, chunks, c);
    });
}
