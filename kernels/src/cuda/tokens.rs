//! Launches of kernels/cuda/tokens.cu: patch gather, lead and position embeddings, mask-token
//! scatter, each forward beside its backward.

use super::device::{Arg, Device, Module};
use super::launch::{elementwise, per_item, row_chunks, Operand, ROWS_PER_CHUNK};
use super::matmul::chunked_column_sums;
use super::KernelBackend;

/// out (T, P) row r = x[b, l, n*P .. (n+1)*P], (b, l, n) from tokens (T, 3); out f32 or bf16.
pub(super) fn gather_patches<D: Device>(
    k: &KernelBackend<D>,
    (out, x, tokens): (Operand, u64, u64),
    (t, leads, samples, patch): (usize, usize, usize, usize),
) {
    if let Some(dims) = elementwise(t * patch) {
        let [out, out_bf16] = out.args();
        let args = [
            out,
            out_bf16,
            Arg::Ptr(x),
            Arg::Ptr(tokens),
            Arg::I32(t as i32),
            Arg::I32(leads as i32),
            Arg::I32(samples as i32),
            Arg::I32(patch as i32),
        ];
        k.dev.launch(Module::Tokens, "gather_patches", dims, &args);
    }
}

/// h (T, D) += `lead_embed[l] + pos[n]`.
pub(super) fn add_lead_pos_forward<D: Device>(
    k: &KernelBackend<D>,
    (h, lead_embed, pos, tokens): (u64, u64, u64, u64),
    t: usize,
    d: usize,
) {
    if let Some(dims) = elementwise(t * d) {
        let args = [
            Arg::Ptr(h),
            Arg::Ptr(lead_embed),
            Arg::Ptr(pos),
            Arg::Ptr(tokens),
            Arg::I32(t as i32),
            Arg::I32(d as i32),
        ];
        k.dev
            .launch(Module::Tokens, "add_lead_pos_forward", dims, &args);
    }
}

/// dlead_embed (L, D) += dh (T, D) rows summed by lead: f64 sums of each lead's rows in every
/// chunk of `ROWS_PER_CHUNK` rows (one thread per column and chunk), then the chunks in order
/// (`colsum_finish` over the L x D entries).
pub(super) fn add_lead_pos_backward<D: Device>(
    k: &KernelBackend<D>,
    (dlead_embed, dh, tokens): (u64, u64, u64),
    (t, d, leads): (usize, usize, usize),
) {
    chunked_column_sums(k, dlead_embed, (t, leads * d), |partial, _| {
        if let Some(dims) = per_item(d, row_chunks(t)) {
            let args = [
                Arg::Ptr(partial),
                Arg::Ptr(dh),
                Arg::Ptr(tokens),
                Arg::I32(t as i32),
                Arg::I32(d as i32),
                Arg::I32(leads as i32),
                Arg::I32(ROWS_PER_CHUNK as i32),
            ];
            k.dev.launch(Module::Tokens, "lead_partial", dims, &args);
        }
    });
}

/// out (T_dec, D) row r = `z[src_rows[r]]` or the mask token.
pub(super) fn mask_scatter_forward<D: Device>(
    k: &KernelBackend<D>,
    (out, z, mask_token, src_rows): (u64, u64, u64, u64),
    t_dec: usize,
    d: usize,
) {
    if let Some(dims) = elementwise(t_dec * d) {
        let args = [
            Arg::Ptr(out),
            Arg::Ptr(z),
            Arg::Ptr(mask_token),
            Arg::Ptr(src_rows),
            Arg::I32(t_dec as i32),
            Arg::I32(d as i32),
        ];
        k.dev
            .launch(Module::Tokens, "mask_scatter_forward", dims, &args);
    }
}

/// `dz[src_rows[r]] += dout[r]` (visible rows); dmask_token += the masked rows' sum.
pub(super) fn mask_scatter_backward<D: Device>(
    k: &KernelBackend<D>,
    (dz, dmask_token, dout, src_rows): (u64, u64, u64, u64),
    t_dec: usize,
    d: usize,
) {
    let Some(dims) = elementwise(t_dec * d) else {
        return;
    };
    let (t32, d32) = (Arg::I32(t_dec as i32), Arg::I32(d as i32));
    let args = [Arg::Ptr(dz), Arg::Ptr(dout), Arg::Ptr(src_rows), t32, d32];
    k.dev
        .launch(Module::Tokens, "mask_scatter_backward_dz", dims, &args);
    chunked_column_sums(k, dmask_token, (t_dec, d), |partial, dims| {
        let args = [
            Arg::Ptr(partial),
            Arg::Ptr(dout),
            Arg::Ptr(src_rows),
            t32,
            d32,
            Arg::I32(ROWS_PER_CHUNK as i32),
        ];
        k.dev
            .launch(Module::Tokens, "mask_token_partial", dims, &args);
    });
}
