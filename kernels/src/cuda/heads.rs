//! Launches of kernels/cuda/heads.cu: mean pooling, softmax cross-entropy and binary
//! cross-entropy, each forward beside its backward; the losses' f64 row values are summed in a
//! fixed order into the device scalar.

use super::device::{Arg, Device, Module};
use super::elementwise::f64_sum_to_scalar;
use super::launch::{elementwise, per_item, MAX_GRID_Y};
use super::KernelBackend;

/// out (B, C) = per-sequence mean of inp (T, C) rows. One launch per `MAX_GRID_Y` sequences
/// (a sequence per grid.y index), each pointed at its sequences' rows of out and cu_seqlens.
pub(super) fn mean_pool_forward<D: Device>(
    k: &KernelBackend<D>,
    (out, inp, cu): (u64, u64, u64),
    seqs: usize,
    c: usize,
) {
    for first in (0..seqs).step_by(MAX_GRID_Y) {
        let Some(dims) = per_item(c, (seqs - first).min(MAX_GRID_Y)) else {
            return;
        };
        let args = [
            Arg::Ptr(out + 4 * (first * c) as u64),
            Arg::Ptr(inp),
            Arg::Ptr(cu + 4 * first as u64),
            Arg::I32(c as i32),
        ];
        k.dev
            .launch(Module::Heads, "mean_pool_forward", dims, &args);
    }
}

/// dinp (T, C) += `dout[b] / len_b` on the rows of sequence b.
pub(super) fn mean_pool_backward<D: Device>(
    k: &KernelBackend<D>,
    (dinp, dout, cu): (u64, u64, u64),
    (seqs, t, c): (usize, usize, usize),
) {
    if let Some(dims) = elementwise(t * c).filter(|_| seqs > 0) {
        let args = [
            Arg::Ptr(dinp),
            Arg::Ptr(dout),
            Arg::Ptr(cu),
            Arg::I32(seqs as i32),
            Arg::I32(t as i32),
            Arg::I32(c as i32),
        ];
        k.dev
            .launch(Module::Heads, "mean_pool_backward", dims, &args);
    }
}

/// `loss[0]` = (sum of kernel `rows_kernel`'s N f64 row values) / divisor.
fn row_loss<D: Device>(
    k: &KernelBackend<D>,
    rows_kernel: &'static str,
    (loss, logits, labels_or_targets): (u64, u64, u64),
    (n, classes): (usize, usize),
    divisor: f64,
) {
    k.workspace.with(&k.dev, 2 * n, |rowloss| {
        if let Some(dims) = per_item(n, 1) {
            let args = [
                Arg::Ptr(rowloss),
                Arg::Ptr(logits),
                Arg::Ptr(labels_or_targets),
                Arg::I32(n as i32),
                Arg::I32(classes as i32),
            ];
            k.dev.launch(Module::Heads, rows_kernel, dims, &args);
        }
        f64_sum_to_scalar(k, loss, rowloss, n, divisor);
    });
}

/// `loss[0]` = mean over rows of `logsumexp(logits_i) - logits_i[label_i]`.
pub(super) fn cross_entropy_forward<D: Device>(
    k: &KernelBackend<D>,
    bufs: (u64, u64, u64),
    n: usize,
    classes: usize,
) {
    row_loss(k, "cross_entropy_rows", bufs, (n, classes), n as f64);
}

/// dlogits (N, K) = loss_scale (softmax - onehot) / N.
pub(super) fn cross_entropy_backward<D: Device>(
    k: &KernelBackend<D>,
    (dlogits, logits, labels): (u64, u64, u64),
    (n, classes): (usize, usize),
    loss_scale: f32,
) {
    if let Some(dims) = per_item(n, 1) {
        let args = [
            Arg::Ptr(dlogits),
            Arg::Ptr(logits),
            Arg::Ptr(labels),
            Arg::I32(n as i32),
            Arg::I32(classes as i32),
            Arg::F32(loss_scale),
        ];
        k.dev
            .launch(Module::Heads, "cross_entropy_backward", dims, &args);
    }
}

/// `loss[0]` = mean over (N, K) of the binary cross-entropy with logits.
pub(super) fn bce_forward<D: Device>(
    k: &KernelBackend<D>,
    bufs: (u64, u64, u64),
    n: usize,
    classes: usize,
) {
    let divisor = if classes == 0 {
        0.0
    } else {
        (n * classes) as f64
    };
    row_loss(k, "bce_rows", bufs, (n, classes), divisor);
}

/// dlogits (N, K) = loss_scale (sigmoid(x) - y) / (N K).
pub(super) fn bce_backward<D: Device>(
    k: &KernelBackend<D>,
    (dlogits, logits, targets): (u64, u64, u64),
    (n, classes): (usize, usize),
    loss_scale: f32,
) {
    if let Some(dims) = elementwise(n * classes) {
        let args = [
            Arg::Ptr(dlogits),
            Arg::Ptr(logits),
            Arg::Ptr(targets),
            Arg::I32(n as i32),
            Arg::I32(classes as i32),
            Arg::F32(loss_scale),
        ];
        k.dev.launch(Module::Heads, "bce_backward", dims, &args);
    }
}
