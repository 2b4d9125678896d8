//! Attention against the CPU backend, forward (out, lse) and backward (dqkv accumulated onto
//! random content), on packed ragged sequences: empty sequences, single tokens, lengths that are
//! not multiples of the tile, several tiles, a head size that shrinks the tile.

use super::common::{assert_close, down, packed, up, up_idx, v, vm, Rng};
use ecgfm_kernels::{Backend, CpuBackend};

/// out, lse and dqkv (padded buffers, dqkv after the backward) and dqkv before the backward.
pub fn attention_outputs<B: Backend>(
    be: &B,
    lengths: &[usize],
    width: usize,
    heads: usize,
) -> Vec<Vec<f32>> {
    attention_outputs_placing(be, lengths, (width, heads), |values| up(be, values))
}

/// `attention_outputs` with the buffers of qkv and out made by `place` from their values (f32
/// storage, or the backend's operand storage).
pub fn attention_outputs_placing<B: Backend>(
    be: &B,
    lengths: &[usize],
    (width, heads): (usize, usize),
    place: impl Fn(&[f32]) -> B::Buf,
) -> Vec<Vec<f32>> {
    let (cu, dims) = packed(lengths, width, heads);
    let t = dims.tokens;
    let mut rng = Rng::new((t * 7 + width) as u64);
    let (qkv, dout) = (
        place(&rng.vec(t * 3 * width, 2.0)),
        up(be, &rng.vec(t * width, 1.0)),
    );
    let cu = up_idx(be, &cu);
    let (mut out, mut lse) = (place(&vec![0.0; t * width]), up(be, &vec![0.0; t * heads]));
    be.attention_forward(vm(&mut out), vm(&mut lse), v(&qkv), v(&cu), dims);
    let dqkv_before = rng.vec(t * 3 * width, 1.0);
    let mut dqkv = up(be, &dqkv_before);
    be.attention_backward(
        vm(&mut dqkv),
        v(&dout),
        v(&qkv),
        v(&out),
        v(&lse),
        v(&cu),
        dims,
    );
    vec![
        down(be, &out, t * width),
        down(be, &lse, t * heads),
        down(be, &dqkv, t * 3 * width),
        down(be, &up(be, &dqkv_before), t * 3 * width),
    ]
}

fn compare<B: Backend>(be: &B, lengths: &[usize], width: usize, heads: usize) {
    let got = attention_outputs(be, lengths, width, heads);
    let want = attention_outputs(&CpuBackend::new(), lengths, width, heads);
    for (name, (g, w)) in ["out", "lse", "dqkv"].iter().zip(got.iter().zip(&want)) {
        assert_close(
            &format!("attention {name} {lengths:?} C={width} H={heads}"),
            g,
            w,
            2e-5,
        );
    }
}

pub fn attention<B: Backend>(be: &B) {
    compare(be, &[1], 4, 1);
    compare(be, &[0, 1, 0], 6, 2);
    compare(be, &[5, 17, 1, 0, 9], 12, 3);
    // Tiles are 32 rows at these head sizes: 70 and 131 end mid-tile, 64 on a boundary.
    compare(be, &[70, 3, 131, 64], 16, 2);
    // hd = 80 forces 16-row backward tiles (48 KiB of shared memory).
    compare(be, &[40, 17], 160, 2);
}

/// The models' own packed lengths: a decoder's sequence (360 tokens: 12 leads x 30 patches)
/// beside an encoder's (84: 12 leads x 7 visible patches), at head size 64 (every decoder, and
/// every encoder but huge's) and 80 (huge's): many key tiles per query tile, each rescaling the
/// online softmax, where the ragged shapes above have at most five.
pub fn model_lengths<B: Backend>(be: &B) {
    compare(be, &[360, 84], 256, 4);
    compare(be, &[84, 360], 160, 2);
}
