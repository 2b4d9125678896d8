//! The bf16 tensor-core attention of a kernel backend (kernels/cuda/attention_bf16.cu): its MMA
//! and fragment loaders against a plain product (exact on small integers, so a wrong fragment
//! layout fails), forward and backward against the bf16 CPU reference on ragged packed
//! sequences, bitwise determinism, and the fp32 fallback at head sizes it does not take.

use super::attention::{attention_outputs, attention_outputs_placing};
use super::common::{assert_bits, assert_close, down, packed, up, up_idx, v, vm, Rng, PAD};
use ecgfm_kernels::cuda::{Arg, Device, KernelBackend, LaunchDims, Module};
use ecgfm_kernels::{Backend, CpuBackend, Precision};

/// d = a b for a (16, 16) and b (16, 8) of small integers through `attention_bf16_mma_check`,
/// with b read in both shared layouts, equal to the triple loop exactly: integers up to 8 are
/// exact in bf16 and their sums exact in f32, so any misplaced fragment element shows up.
pub fn mma_fragments<D: Device>(be: &KernelBackend<D>) {
    let dev = be.device();
    let mut rng = Rng::new(16816);
    let mut ints =
        |n: usize| -> Vec<f32> { (0..n).map(|_| (rng.next_u64() % 17) as f32 - 8.0).collect() };
    let (a, b) = (ints(16 * 16), ints(16 * 8));
    let mut want = vec![0f32; 16 * 8];
    for i in 0..16 {
        for j in 0..8 {
            want[i * 8 + j] = (0..16).map(|k| a[i * 16 + k] * b[k * 8 + j]).sum();
        }
    }
    let (mut a_buf, mut b_buf) = (dev.alloc(a.len()), dev.alloc(b.len()));
    dev.upload(&a, &mut a_buf, 0);
    dev.upload(&b, &mut b_buf, 0);
    let (mut d, mut d_t) = (dev.alloc(16 * 8), dev.alloc(16 * 8));
    let args = [
        Arg::Ptr(dev.addr_mut(&mut d, 0, 16 * 8)),
        Arg::Ptr(dev.addr_mut(&mut d_t, 0, 16 * 8)),
        Arg::Ptr(dev.addr(&a_buf, 0, a.len())),
        Arg::Ptr(dev.addr(&b_buf, 0, b.len())),
    ];
    let dims = LaunchDims {
        grid: (1, 1, 1),
        block: 32,
        shared_bytes: 2 * 16 * 24 * 2,
    };
    dev.launch(
        Module::AttentionBf16,
        "attention_bf16_mma_check",
        dims,
        &args,
    );
    for (name, buf) in [("B as (K, N)", &d), ("B as (N, K)", &d_t)] {
        let mut got = vec![0f32; 16 * 8];
        dev.download(buf, 0, &mut got);
        assert_bits(&format!("mma_bf16_16816 with {name}"), &got, &want);
    }
}

/// max |got - want| / max |want - base| over a padded buffer (NaN padding must match), where
/// `base` is what the op accumulated onto (zeros for outputs it overwrites).
fn relative_error(name: &str, got: &[f32], want: &[f32], base: &[f32]) -> f32 {
    let (mut diff, mut size) = (0f32, 0f32);
    for (i, ((&g, &w), &b)) in got.iter().zip(want).zip(base).enumerate() {
        if w.is_nan() {
            assert!(g.is_nan(), "{name}[{i}]: {g} written outside the view");
            continue;
        }
        diff = diff.max((g - w).abs());
        size = size.max((w - b).abs());
    }
    assert!(diff.is_finite(), "{name}: non-finite result");
    if size == 0.0 {
        diff
    } else {
        diff / size
    }
}

/// The bf16 backend `be` against the bf16 CPU reference on one shape: out, lse and the dqkv
/// increment within `TOL` of the reference's size; lse, and the backward run from the same
/// forward outputs, within much less and 10 times closer to it than to the fp32 CPU op.
///
/// Tolerance: both sides multiply the same bf16-rounded q, k, v, dO with exact products and f32
/// sums, so they differ by f32 summation order (~1e-6) and by where P is rounded (the kernels
/// round the unnormalised exp(s - m) of the online softmax and divide by the row sum at the end;
/// the CPU rounds the normalised P): one bf16 rounding, relative 2^-9 ~ 2e-3 per probability,
/// averaging out over a row's sum, and dS = P (dP - D) inherits it. 1e-2 of the largest value
/// leaves room for that while a wrong layout, a missed tile or an unrounded operand gives errors
/// of order one; the fp32 comparisons below catch an operand rounded wrongly or not at all.
fn compare_bf16<B: Backend>(be: &B, lengths: &[usize], width: usize, heads: usize) {
    const TOL: f32 = 1e-2;
    let got = attention_outputs(be, lengths, width, heads);
    let bf16 = attention_outputs(
        &CpuBackend::with_precision(Precision::Bf16),
        lengths,
        width,
        heads,
    );
    let fp32 = attention_outputs(&CpuBackend::new(), lengths, width, heads);
    let zeros = vec![0f32; got[2].len()];
    let bases = [&zeros, &zeros, &got[3]];
    let mut errors = [(0f32, 0f32); 3];
    for (k, name) in ["out", "lse", "dqkv"].iter().enumerate() {
        let label = format!("bf16 attention {name} {lengths:?} C={width} H={heads}");
        let e_bf16 = relative_error(&label, &got[k], &bf16[k], bases[k]);
        let e_fp32 = relative_error(&label, &got[k], &fp32[k], bases[k]);
        println!("{label}: vs bf16 CPU {e_bf16:.2e}, vs fp32 CPU {e_fp32:.2e}");
        assert!(e_bf16 <= TOL, "{label}: {e_bf16} from the bf16 CPU op");
        errors[k] = (e_bf16, e_fp32);
    }
    // lse depends on the products alone (no rounded P): the bf16 CPU op must be far closer than
    // the fp32 one, which it is only if q and k were rounded exactly as the contract says.
    let (lse_bf16, lse_fp32) = errors[1];
    assert!(
        lse_bf16 * 10.0 < lse_fp32,
        "lse {lengths:?} C={width} H={heads}: {lse_bf16} from bf16 vs {lse_fp32} from fp32"
    );
    // The backward alone, from the bf16 CPU op's out and lse: D = rowsum(dout * out) no longer
    // carries the forward's difference, so the kernels and the bf16 CPU op multiply the same
    // rounded operands and differ by f32 summation order, plus the odd P or dS element whose
    // bf16 rounding that flips (observed <= 2e-5): 1e-3, and 10 times closer than the fp32 op.
    let shape = (lengths, width, heads);
    let (out, lse) = (&bf16[0], &bf16[1]);
    let got_bwd = backward_from(be, shape, out, lse);
    let want_bwd = backward_from(
        &CpuBackend::with_precision(Precision::Bf16),
        shape,
        out,
        lse,
    );
    let fp32_bwd = backward_from(&CpuBackend::new(), shape, out, lse);
    let label = format!("bf16 attention backward alone {lengths:?} C={width} H={heads}");
    let e_bf16 = relative_error(&label, &got_bwd[0], &want_bwd[0], &got_bwd[1]);
    let e_fp32 = relative_error(&label, &got_bwd[0], &fp32_bwd[0], &got_bwd[1]);
    println!("{label}: vs bf16 CPU {e_bf16:.2e}, vs fp32 CPU {e_fp32:.2e}");
    assert!(
        e_bf16 <= 1e-3 && e_bf16 * 10.0 < e_fp32,
        "{label}: {e_bf16} from the bf16 CPU op, {e_fp32} from the fp32 one"
    );
}

/// dqkv (padded) after `be`'s backward from the forward outputs `out` and `lse` (padded buffers
/// of [`attention_outputs`]) of the same inputs, and dqkv before it.
fn backward_from<B: Backend>(
    be: &B,
    (lengths, width, heads): (&[usize], usize, usize),
    out: &[f32],
    lse: &[f32],
) -> [Vec<f32>; 2] {
    let (cu, dims) = packed(lengths, width, heads);
    let t = dims.tokens;
    // The inputs attention_outputs draws, in its order.
    let mut rng = Rng::new((t * 7 + width) as u64);
    let (qkv, dout) = (rng.vec(t * 3 * width, 2.0), rng.vec(t * width, 1.0));
    let before = rng.vec(t * 3 * width, 1.0);
    let (qkv, dout, cu) = (up(be, &qkv), up(be, &dout), up_idx(be, &cu));
    let (out, lse) = (
        up(be, &out[PAD..PAD + t * width]),
        up(be, &lse[PAD..PAD + t * heads]),
    );
    let mut dqkv = up(be, &before);
    be.attention_backward(
        vm(&mut dqkv),
        v(&dout),
        v(&qkv),
        v(&out),
        v(&lse),
        v(&cu),
        dims,
    );
    [
        down(be, &dqkv, t * 3 * width),
        down(be, &up(be, &before), t * 3 * width),
    ]
}

/// Ragged packed sequences (empty ones, one token, lengths that end mid-tile and that span two
/// 64-row tiles) at every head size the models use, several heads, and lengths that fill whole
/// tiles.
pub fn attention<B: Backend>(be: &B) {
    let lengths = [0, 1, 17, 84, 0, 95];
    compare_bf16(be, &lengths, 48, 3); // hd 16
    compare_bf16(be, &lengths, 64, 2); // hd 32
    compare_bf16(be, &lengths, 128, 2); // hd 64
    compare_bf16(be, &lengths, 160, 2); // hd 80
    compare_bf16(be, &[64, 1, 128], 192, 2); // hd 96 (`huge`'s), one and two whole tiles
    compare_bf16(be, &[70], 128, 1); // hd 128, the largest
}

/// The models' own packed lengths (see `attention::model_lengths`) at head sizes 64 and 80.
pub fn model_lengths<B: Backend>(be: &B) {
    compare_bf16(be, &[360, 84], 256, 4);
    compare_bf16(be, &[84, 360], 160, 2);
}

/// `attention_outputs` on [192, 5] at head size 64 with qkv 8 times as large (scores spread over
/// hundreds).
fn sharp_outputs<B: Backend>(be: &B) -> Vec<Vec<f32>> {
    let place = |x: &[f32]| up(be, &x.iter().map(|&v| 8.0 * v).collect::<Vec<_>>());
    attention_outputs_placing(be, &[192, 5], (64, 1), place)
}

/// Sharp attention ([`sharp_outputs`]): some query rows' scores in a later 64-key tile lie more
/// than 88 below their maximum in an earlier one, where exp(m_old - m_new) leaves
/// exp_nonpositive's range unless the online softmax carries its running maximum from tile to
/// tile. The forward's out and lse within `compare_bf16`'s 1e-2 of the bf16 CPU op (dqkv, whose
/// near-one-hot P amplifies the kernels' other rounding places, is left to the other cases).
pub fn sharp_scores<B: Backend>(be: &B) {
    let got = sharp_outputs(be);
    let want = sharp_outputs(&CpuBackend::with_precision(Precision::Bf16));
    for (k, name) in ["out", "lse"].into_iter().enumerate() {
        let label = format!("sharp bf16 attention {name}");
        let zeros = vec![0f32; got[k].len()];
        let error = relative_error(&label, &got[k], &want[k], &zeros);
        println!("{label}: vs bf16 CPU {error:.2e}");
        assert!(error <= 1e-2, "{label}: {error} from the bf16 CPU op");
    }
}

/// Two runs of forward and backward give the same bits.
pub fn deterministic<B: Backend>(be: &B) {
    let (first, second) = (
        attention_outputs(be, &[95, 1, 40], 160, 2),
        attention_outputs(be, &[95, 1, 40], 160, 2),
    );
    for (name, (a, b)) in ["out", "lse", "dqkv"].iter().zip(first.iter().zip(&second)) {
        assert_bits(&format!("bf16 attention {name}, second run"), b, a);
    }
}

/// Head sizes that are not multiples of 16 run the fp32 kernels: the fp32 CPU op's results.
pub fn fallback<B: Backend>(be: &B) {
    let seqs = [5, 17, 1, 0, 9];
    let got = attention_outputs(be, &seqs, 12, 3);
    let fp32 = attention_outputs(&CpuBackend::new(), &seqs, 12, 3);
    let bf16_cpu = attention_outputs(&CpuBackend::with_precision(Precision::Bf16), &seqs, 12, 3);
    for (i, name) in ["out", "lse", "dqkv"].iter().enumerate() {
        assert_close(
            &format!("bf16 fallback attention {name}"),
            &got[i],
            &fp32[i],
            2e-5,
        );
        assert_bits(
            &format!("bf16 CPU attention {name} at head size 4"),
            &bf16_cpu[i],
            &fp32[i],
        );
    }
}
