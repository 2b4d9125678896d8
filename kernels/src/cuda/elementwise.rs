//! Launches of kernels/cuda/elementwise.cu: fill, copy, add (with or without a bias), add_assign,
//! scale, the fixed-order sum of squares (f64 partials over the CPU backend's chunks, then one
//! block adds them) and the on-device gradient clipping. Also the shared last pass that turns f64
//! row values into a loss.

use super::device::{Arg, Device, Module};
use super::launch::{columns_by_rows, elementwise, scalar_reduction, SUMSQ_CHUNK};
use super::KernelBackend;

/// Runs a grid-stride kernel of elementwise.cu over n elements.
fn each<D: Device>(k: &KernelBackend<D>, name: &'static str, n: usize, args: &[Arg]) {
    if let Some(dims) = elementwise(n) {
        k.dev.launch(Module::Elementwise, name, dims, args);
    }
}

pub(super) fn fill<D: Device>(k: &KernelBackend<D>, dst: u64, n: usize, value: f32) {
    let args = [Arg::Ptr(dst), Arg::U64(n as u64), Arg::F32(value)];
    each(k, "fill_f32", n, &args);
}

pub(super) fn copy<D: Device>(k: &KernelBackend<D>, dst: u64, src: u64, n: usize) {
    each(
        k,
        "copy_f32",
        n,
        &[Arg::Ptr(dst), Arg::Ptr(src), Arg::U64(n as u64)],
    );
}

pub(super) fn add<D: Device>(k: &KernelBackend<D>, out: u64, a: u64, b: u64, n: usize) {
    let args = [Arg::Ptr(out), Arg::Ptr(a), Arg::Ptr(b), Arg::U64(n as u64)];
    each(k, "add_f32", n, &args);
}

/// out (T, C) = a + (b + bias), bias (C) on every row.
pub(super) fn add_bias<D: Device>(
    k: &KernelBackend<D>,
    out: u64,
    (a, b, bias): (u64, u64, u64),
    (t, c): (usize, usize),
) {
    if let Some(dims) = columns_by_rows(t, c) {
        let args = [
            Arg::Ptr(out),
            Arg::Ptr(a),
            Arg::Ptr(b),
            Arg::Ptr(bias),
            Arg::I32(t as i32),
            Arg::I32(c as i32),
        ];
        k.dev
            .launch(Module::Elementwise, "add_bias_f32", dims, &args);
    }
}

pub(super) fn add_assign<D: Device>(k: &KernelBackend<D>, dst: u64, src: u64, n: usize) {
    each(
        k,
        "add_assign_f32",
        n,
        &[Arg::Ptr(dst), Arg::Ptr(src), Arg::U64(n as u64)],
    );
}

pub(super) fn scale<D: Device>(k: &KernelBackend<D>, dst: u64, n: usize, factor: f32) {
    each(
        k,
        "scale_f32",
        n,
        &[Arg::Ptr(dst), Arg::U64(n as u64), Arg::F32(factor)],
    );
}

/// `out[0]` = (f32) (sum of the `count` f64 values at `parts`) / divisor (0 when divisor is 0).
pub(super) fn f64_sum_to_scalar<D: Device>(
    k: &KernelBackend<D>,
    out: u64,
    parts: u64,
    count: usize,
    divisor: f64,
) {
    let args = [
        Arg::Ptr(out),
        Arg::Ptr(parts),
        Arg::U64(count as u64),
        Arg::F64(divisor),
    ];
    k.dev.launch(
        Module::Elementwise,
        "sum_f64_to_scalar",
        scalar_reduction(),
        &args,
    );
}

pub(super) fn sum_squares<D: Device>(k: &KernelBackend<D>, out: u64, src: u64, n: usize) {
    let parts = n.div_ceil(SUMSQ_CHUNK);
    k.workspace.with(&k.dev, 2 * parts, |partial| {
        if parts > 0 {
            let mut dims = scalar_reduction();
            dims.grid.0 = parts as u32;
            let args = [
                Arg::Ptr(partial),
                Arg::Ptr(src),
                Arg::U64(n as u64),
                Arg::U64(SUMSQ_CHUNK as u64),
            ];
            k.dev
                .launch(Module::Elementwise, "sum_squares_partial", dims, &args);
        }
        f64_sum_to_scalar(k, out, partial, parts, 1.0);
    });
}

pub(super) fn clip_grad_norm<D: Device>(
    k: &KernelBackend<D>,
    grads: u64,
    n: usize,
    sumsq: u64,
    max_norm: f32,
) {
    let args = [
        Arg::Ptr(grads),
        Arg::U64(n as u64),
        Arg::Ptr(sumsq),
        Arg::F32(max_norm),
    ];
    each(k, "clip_by_norm", n, &args);
}
