//! Linear layer: out (T, OC) = inp (T, C) @ weight^T + bias, optionally with the GELU of out
//! fused into each output tile, and its backward (dinp = dout @ weight here; dweight += dout^T @
//! inp and dbias += column sums of dout in `weight_grad`).

use super::sgemm::{gemm_par, MatMut, MatRef};
use super::{gelu, weight_grad};
use crate::precision::round_bf16;

/// out (T, OC) = inp (T, C) @ weight (OC, C)^T + bias (OC); with `gelu_out` (T, OC), also
/// gelu_out = gelu(out), each output tile while it is still in cache, out first rounded to bf16
/// when `gelu_out`'s flag says so (the GELU's input in bf16 precision, crate::precision).
pub(crate) fn forward(
    (out, gelu_out): (&mut [f32], Option<(&mut [f32], bool)>),
    inp: &[f32],
    (weight, bias): (&[f32], Option<&[f32]>),
    t: usize,
    c: usize,
    oc: usize,
) {
    let (out, inp, weight) = (&mut out[..t * oc], &inp[..t * c], &weight[..oc * c]);
    let bias = bias.map(|b| &b[..oc]);
    let dst = MatMut::rows(out.as_mut_ptr(), oc);
    let gelu_dst = gelu_out.map(|(g, round)| (MatMut::rows(g[..t * oc].as_mut_ptr(), oc), round));
    // SAFETY: the slices above bound every addressed element; out and gelu_out are disjoint
    // from the inputs and from each other (two &mut), and each tile's epilogue touches only its
    // own rows r0..r1 and columns c0..c1 of both.
    unsafe {
        gemm_par(
            t,
            oc,
            c,
            dst,
            false,
            MatRef::rows(inp.as_ptr(), c),
            MatRef::transposed(weight.as_ptr(), c),
            |r0, r1, c0, c1| {
                for r in r0..r1 {
                    let row = std::slice::from_raw_parts_mut(dst.at(r, c0).ptr, c1 - c0);
                    if let Some(bias) = bias {
                        row.iter_mut()
                            .zip(&bias[c0..c1])
                            .for_each(|(x, &b)| *x += b);
                    }
                    if let Some((g, round)) = gelu_dst {
                        if round {
                            row.iter_mut().for_each(|x| *x = round_bf16(*x));
                        }
                        let g = std::slice::from_raw_parts_mut(g.at(r, c0).ptr, c1 - c0);
                        gelu::forward_run(g, row);
                    }
                }
            },
        );
    }
}

/// dinp (T, C) = dout (T, OC) @ weight (OC, C); dweight (OC, C) += dout^T @ inp (T, C);
/// dbias (OC) += sum over rows of `bias_dout` (the f32 dout; the products take the operands as
/// given, bf16-rounded in a bf16 backend).
pub(crate) fn backward(
    dinp: Option<&mut [f32]>,
    (dweight, dbias): (&mut [f32], Option<&mut [f32]>),
    bias_dout: &[f32],
    (dout, inp, weight): (&[f32], &[f32], &[f32]),
    t: usize,
    c: usize,
    oc: usize,
) {
    let (dout, inp, weight) = (&dout[..t * oc], &inp[..t * c], &weight[..oc * c]);
    let dweight = &mut dweight[..oc * c];
    // SAFETY: all slices are bounds-checked above; outputs are distinct from the inputs.
    unsafe {
        if let Some(dinp) = dinp {
            let dinp = &mut dinp[..t * c];
            gemm_par(
                t,
                c,
                oc,
                MatMut::rows(dinp.as_mut_ptr(), c),
                false,
                MatRef::rows(dout.as_ptr(), oc),
                MatRef::rows(weight.as_ptr(), c),
                |_, _, _, _| {},
            );
        }
    }
    weight_grad::accumulate(
        dweight,
        dbias.map(|b| (b, &bias_dout[..t * oc])),
        dout,
        inp,
        t,
        c,
        oc,
    );
}
