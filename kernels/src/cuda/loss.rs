//! Launches of kernels/cuda/loss.cu: the masked reconstruction loss (one thread per masked row
//! into f64 row values, summed in a fixed order into the device scalar) and its gradient.

use super::device::{Arg, Device, Module};
use super::elementwise::{f64_sum_to_scalar, fill};
use super::launch::per_item;
use super::KernelBackend;

/// `loss[0]` = mean over the M masked rows of the per-row mean squared error.
pub(super) fn forward<D: Device>(
    k: &KernelBackend<D>,
    (loss, pred, target, rows): (u64, u64, u64, u64),
    m: usize,
    p: usize,
    norm_pix: bool,
) {
    k.workspace.with(&k.dev, 2 * m, |rowloss| {
        if let Some(dims) = per_item(m, 1) {
            let args = [
                Arg::Ptr(rowloss),
                Arg::Ptr(pred),
                Arg::Ptr(target),
                Arg::Ptr(rows),
                Arg::I32(m as i32),
                Arg::I32(p as i32),
                Arg::I32(norm_pix as i32),
            ];
            k.dev.launch(Module::Loss, "masked_mse_rows", dims, &args);
        }
        f64_sum_to_scalar(k, loss, rowloss, m, m as f64);
    });
}

/// dpred (T_dec, P) = loss_scale * d loss / d pred (overwritten; zero on unlisted rows).
pub(super) fn backward<D: Device>(
    k: &KernelBackend<D>,
    (dpred, pred, target, rows): (u64, u64, u64, u64),
    (t_dec, m, p): (usize, usize, usize),
    norm_pix: bool,
    loss_scale: f32,
) {
    fill(k, dpred, t_dec * p, 0.0);
    if let Some(dims) = per_item(m, 1) {
        let args = [
            Arg::Ptr(dpred),
            Arg::Ptr(pred),
            Arg::Ptr(target),
            Arg::Ptr(rows),
            Arg::I32(m as i32),
            Arg::I32(p as i32),
            Arg::I32(norm_pix as i32),
            Arg::F32(loss_scale),
        ];
        k.dev
            .launch(Module::Loss, "masked_mse_backward", dims, &args);
    }
}
