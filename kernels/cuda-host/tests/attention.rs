//! The host-compiled FlashAttention-style kernels against the CPU backend's attention, forward
//! (out, lse) and backward (dqkv accumulated onto random content), on packed ragged sequences:
//! empty sequences, single tokens, lengths that are not multiples of the tile, several tiles.

mod common;

use common::{assert_close, cu_seqlens, padded, padded_idx, v, vi, vm, Rng};
use ecgfm_cuda_host::host_backend;
use ecgfm_kernels::{AttnDims, Backend, CpuBackend};

fn attention_outputs<B: Backend<Buf = Vec<f32>, IdxBuf = Vec<u32>>>(
    be: &B,
    lengths: &[usize],
    width: usize,
    heads: usize,
) -> Vec<Vec<f32>> {
    let cu = cu_seqlens(lengths);
    let t = *cu.last().unwrap() as usize;
    let dims = AttnDims {
        seqs: lengths.len(),
        tokens: t,
        width,
        heads,
    };
    let mut rng = Rng::new((t * 7 + width) as u64);
    let (qkv, dout) = (padded(&rng.vec(t * 3 * width, 2.0)), padded(&rng.vec(t * width, 1.0)));
    let cu = padded_idx(&cu);
    let (mut out, mut lse) = (padded(&vec![0.0; t * width]), padded(&vec![0.0; t * heads]));
    be.attention_forward(vm(&mut out), vm(&mut lse), v(&qkv), vi(&cu), dims);
    let mut dqkv = padded(&rng.vec(t * 3 * width, 1.0));
    be.attention_backward(vm(&mut dqkv), v(&dout), v(&qkv), v(&out), v(&lse), vi(&cu), dims);
    vec![out, lse, dqkv]
}

fn compare(lengths: &[usize], width: usize, heads: usize) {
    let got = attention_outputs(&host_backend(), lengths, width, heads);
    let want = attention_outputs(&CpuBackend::new(), lengths, width, heads);
    for (name, (g, w)) in ["out", "lse", "dqkv"].iter().zip(got.iter().zip(&want)) {
        assert_close(&format!("attention {name} {lengths:?} C={width} H={heads}"), g, w, 2e-5);
    }
}

#[test]
fn one_token_and_empty_sequences() {
    compare(&[1], 4, 1);
    compare(&[0, 1, 0], 6, 2);
}

#[test]
fn ragged_sequences_within_one_tile() {
    compare(&[5, 17, 1, 0, 9], 12, 3);
}

#[test]
fn sequences_over_several_tiles() {
    // Tiles are 32 rows at these head sizes: 70 and 131 end mid-tile, 64 on a boundary.
    compare(&[70, 3, 131, 64], 16, 2);
}

#[test]
fn head_dim_that_shrinks_the_tile() {
    // hd = 80 forces 16-row backward tiles (48 KiB of shared memory).
    compare(&[40, 17], 160, 2);
}
