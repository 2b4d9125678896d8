//! Token-level gathers and scatters: patches out of the signal, lead and position embeddings
//! added per token, and the decoder's mask-token scatter; each with its backward.
//! Reductions (scatter-adds) run over fixed column blocks, each walking rows in order, so sums
//! never depend on the thread count.

use super::par::{for_col_blocks, SendPtr};
use crate::backend::MASKED_ROW;
use rayon::prelude::*;

/// (b, l, n) of token `r` in a (T, 3) token table.
fn triple(tokens: &[u32], r: usize) -> (usize, usize, usize) {
    let t = &tokens[3 * r..3 * r + 3];
    (t[0] as usize, t[1] as usize, t[2] as usize)
}

/// out (T, P) row r = x[b, l, n*P .. (n+1)*P] with x (B, L, S).
pub(crate) fn gather_patches(
    out: &mut [f32],
    x: &[f32],
    tokens: &[u32],
    t: usize,
    leads: usize,
    samples: usize,
    patch: usize,
) {
    out[..t * patch]
        .par_chunks_mut(patch)
        .enumerate()
        .for_each(|(r, o)| {
            let (b, l, n) = triple(tokens, r);
            assert!(
                l < leads && (n + 1) * patch <= samples,
                "token {r} (b {b}, l {l}, n {n}) outside x"
            );
            let start = (b * leads + l) * samples + n * patch;
            o.copy_from_slice(&x[start..start + patch]);
        });
}

/// h (T, D) += `lead_embed[l] + pos[n]`.
pub(crate) fn add_lead_pos_forward(
    h: &mut [f32],
    lead_embed: &[f32],
    pos: &[f32],
    tokens: &[u32],
    t: usize,
    d: usize,
) {
    h[..t * d]
        .par_chunks_mut(d)
        .enumerate()
        .for_each(|(r, row)| {
            let (_, l, n) = triple(tokens, r);
            let (le, pe) = (&lead_embed[l * d..(l + 1) * d], &pos[n * d..(n + 1) * d]);
            for ((x, &a), &b) in row.iter_mut().zip(le).zip(pe) {
                *x += a + b;
            }
        });
}

/// dlead_embed (L, D) += rows of dh (T, D) summed by lead.
pub(crate) fn add_lead_pos_backward(
    dlead_embed: &mut [f32],
    dh: &[f32],
    tokens: &[u32],
    t: usize,
    d: usize,
) {
    let leads = dlead_embed.len() / d;
    for r in 0..t {
        let (_, l, _) = triple(tokens, r);
        assert!(l < leads, "token {r} has lead {l} beyond the lead table");
    }
    let dst = SendPtr(dlead_embed.as_mut_ptr());
    for_col_blocks(d, |c0, c1| {
        for r in 0..t {
            let (_, l, _) = triple(tokens, r);
            for (j, &g) in dh[r * d + c0..r * d + c1].iter().enumerate() {
                // SAFETY: l < leads (checked above); column blocks are disjoint between tasks.
                unsafe { *dst.get().add(l * d + c0 + j) += g };
            }
        }
    });
}

/// out (T_dec, D) row r = `z[src_rows[r]]`, or mask_token when `src_rows[r]` == MASKED_ROW.
pub(crate) fn mask_scatter_forward(
    out: &mut [f32],
    z: &[f32],
    mask_token: &[f32],
    src_rows: &[u32],
    t_dec: usize,
    d: usize,
) {
    let mask_token = &mask_token[..d];
    out[..t_dec * d]
        .par_chunks_mut(d)
        .zip(src_rows[..t_dec].par_iter())
        .for_each(|(o, &src)| {
            if src == MASKED_ROW {
                o.copy_from_slice(mask_token);
            } else {
                let s = src as usize;
                o.copy_from_slice(&z[s * d..(s + 1) * d]);
            }
        });
}

/// `dz[src_rows[r]] += dout[r]` (visible rows); dmask_token += sum of dout over masked rows.
pub(crate) fn mask_scatter_backward(
    dz: &mut [f32],
    dmask_token: &mut [f32],
    dout: &[f32],
    src_rows: &[u32],
    t_dec: usize,
    d: usize,
) {
    let src_rows = &src_rows[..t_dec];
    let t_enc = dz.len() / d;
    assert!(
        dmask_token.len() >= d,
        "mask token gradient shorter than width"
    );
    for (r, &s) in src_rows.iter().enumerate() {
        assert!(
            s == MASKED_ROW || (s as usize) < t_enc,
            "decoder row {r} points past the encoder rows"
        );
    }
    let (dz_ptr, dm_ptr) = (SendPtr(dz.as_mut_ptr()), SendPtr(dmask_token.as_mut_ptr()));
    for_col_blocks(d, |c0, c1| {
        for (r, &s) in src_rows.iter().enumerate() {
            let dst = if s == MASKED_ROW {
                dm_ptr.get()
            } else {
                dz_ptr.get().wrapping_add(s as usize * d)
            };
            for (j, &g) in dout[r * d + c0..r * d + c1].iter().enumerate() {
                // SAFETY: rows are checked above; column blocks are disjoint between tasks.
                unsafe { *dst.add(c0 + j) += g };
            }
        }
    });
}
