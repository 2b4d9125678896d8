//! Launches of kernels/cuda/attention.cu (FlashAttention-2 style, varlen packed). The grid has
//! ceil(T / tile) + B blocks in x (an upper bound on the query or key tiles of all sequences:
//! each block finds its tile from cu_seqlens on the device, so the host never reads the lengths)
//! and one head per y. The tile is the largest that keeps a kernel's shared memory within the
//! 48 KiB every device grants without opting in.
//!
//! A `Precision::Bf16` backend runs the tensor-core kernels of attention_bf16.rs instead when the
//! head size is a multiple of 16 up to 128; any other head size falls back to these fp32 kernels
//! (true f32 products: no bf16 rounding at all in attention then).

use super::attention_bf16;
use super::device::{Arg, Device, LaunchDims, Module};
use super::launch::{elementwise, Operand};
use super::KernelBackend;
use crate::backend::AttnDims;
use crate::precision::{bf16_attention_head, Precision};

/// Threads per attention block.
const THREADS: u32 = 128;

/// Shared memory every device grants a block by default.
const SHARED_LIMIT: usize = 48 * 1024;

/// Largest tile of at most 32 rows whose shared memory, `floats(tile)` f32s, fits the limit.
fn tile_for(floats: impl Fn(usize) -> usize) -> usize {
    let mut tile = 32;
    while tile > 1 && 4 * floats(tile) > SHARED_LIMIT {
        tile /= 2;
    }
    tile
}

/// Shared f32s of the forward: q, k, v, o tiles (rows of hd + 1), the scores and three row
/// vectors.
fn forward_floats(tile: usize, hd: usize) -> usize {
    4 * tile * (hd + 1) + tile * tile + 3 * tile
}

/// Shared f32s of the dK/dV kernel (the larger backward kernel; dQ uses the same tile): k, v,
/// dk, dv, q, dout tiles (rows of hd + 1), P and dS, two row vectors.
fn dkv_floats(tile: usize, hd: usize) -> usize {
    6 * tile * (hd + 1) + 2 * tile * tile + 2 * tile
}

/// Shared f32s of the dQ kernel: q, dout, dq, k, v tiles (rows of hd + 1), P and dS, two row
/// vectors.
fn dq_floats(tile: usize, hd: usize) -> usize {
    5 * tile * (hd + 1) + 2 * tile * tile + 2 * tile
}

fn dims_for(dims: AttnDims, tile: usize, floats: usize) -> LaunchDims {
    LaunchDims {
        grid: (
            (dims.tokens.div_ceil(tile) + dims.seqs) as u32,
            dims.heads as u32,
            1,
        ),
        block: THREADS,
        shared_bytes: (4 * floats) as u32,
    }
}

fn check(dims: AttnDims) -> usize {
    assert_eq!(
        dims.width % dims.heads,
        0,
        "width must be a multiple of heads"
    );
    dims.width / dims.heads
}

/// The softmax scale 1 / sqrt(hd).
pub(super) fn scale(hd: usize) -> f32 {
    1.0 / (hd as f32).sqrt()
}

/// Whether `k` runs attention on the bf16 tensor-core kernels at head size `hd`. The fp32
/// kernels read qkv and write out in f32 only: bf16 operand storage is for the tensor-core path.
fn on_tensor_cores<D: Device>(k: &KernelBackend<D>, hd: usize, qkv: Operand, out: Operand) -> bool {
    let bf16 = k.precision == Precision::Bf16 && k.dev.bf16_mma() && bf16_attention_head(hd);
    assert!(
        bf16 || !(qkv.bf16 || out.bf16),
        "qkv or out in bf16 operand storage at head size {hd}, where attention runs in fp32"
    );
    bf16
}

/// out (T, C) and lse (T, H) from qkv (T, 3C): the bf16 tensor-core kernels for a bf16 backend
/// at head sizes they support (out rounded to bf16), else the fp32 kernels.
pub(super) fn forward<D: Device>(
    k: &KernelBackend<D>,
    (out, lse): (Operand, u64),
    qkv: Operand,
    cu: u64,
    dims: AttnDims,
) {
    let hd = check(dims);
    if on_tensor_cores(k, hd, qkv, out) {
        return attention_bf16::forward(k, (out, lse), qkv, cu, dims, hd);
    }
    let (qkv, out) = (qkv.addr, out.addr);
    if dims.tokens == 0 || dims.seqs == 0 {
        return;
    }
    let tile = tile_for(|t| forward_floats(t, hd));
    let args = [
        Arg::Ptr(out),
        Arg::Ptr(lse),
        Arg::Ptr(qkv),
        Arg::Ptr(cu),
        Arg::I32(dims.seqs as i32),
        Arg::I32(dims.width as i32),
        Arg::I32(dims.heads as i32),
        Arg::I32(tile as i32),
        Arg::F32(scale(hd)),
    ];
    let launch = dims_for(dims, tile, forward_floats(tile, hd));
    k.dev
        .launch(Module::Attention, "attention_forward", launch, &args);
}

/// Runs `f` with D (T, H) = rowsum over each head's columns of dout * out in a workspace (the
/// first kernel of both backward paths); nothing runs for an empty batch.
pub(super) fn with_delta<D: Device>(
    k: &KernelBackend<D>,
    dout: u64,
    out: Operand,
    dims: AttnDims,
    f: impl FnOnce(u64),
) {
    let (t, c, heads) = (dims.tokens, dims.width, dims.heads);
    let Some(delta_dims) = elementwise(t * heads) else {
        return;
    };
    if dims.seqs == 0 {
        return;
    }
    k.workspace.with(&k.dev, t * heads, |delta| {
        let [out, out_bf16] = out.args();
        let args = [
            Arg::Ptr(delta),
            Arg::Ptr(dout),
            out,
            out_bf16,
            Arg::I32(t as i32),
            Arg::I32(c as i32),
            Arg::I32(heads as i32),
        ];
        k.dev
            .launch(Module::Attention, "attention_delta", delta_dims, &args);
        f(delta);
    });
}

/// dqkv (T, 3C) = the attention backward from dout (T, C), qkv, out and lse (kernels chosen as
/// in [`forward`]): overwritten, not accumulated (rows past the last sequence are not written).
pub(super) fn backward<D: Device>(
    k: &KernelBackend<D>,
    dqkv: u64,
    (dout, qkv, out, lse): (u64, Operand, Operand, u64),
    cu: u64,
    dims: AttnDims,
) {
    let hd = check(dims);
    if on_tensor_cores(k, hd, qkv, out) {
        return attention_bf16::backward(k, dqkv, (dout, qkv, out, lse), cu, dims, hd);
    }
    let qkv = qkv.addr;
    let (c, heads) = (dims.width, dims.heads);
    let tile = tile_for(|t| dkv_floats(t, hd));
    with_delta(k, dout, out, dims, |delta| {
        let args = [
            Arg::Ptr(dqkv),
            Arg::Ptr(dout),
            Arg::Ptr(qkv),
            Arg::Ptr(lse),
            Arg::Ptr(delta),
            Arg::Ptr(cu),
            Arg::I32(dims.seqs as i32),
            Arg::I32(c as i32),
            Arg::I32(heads as i32),
            Arg::I32(tile as i32),
            Arg::F32(scale(hd)),
        ];
        let launch = dims_for(dims, tile, dkv_floats(tile, hd));
        k.dev
            .launch(Module::Attention, "attention_dkv", launch, &args);
        let launch = dims_for(dims, tile, dq_floats(tile, hd));
        k.dev
            .launch(Module::Attention, "attention_dq", launch, &args);
    });
}
