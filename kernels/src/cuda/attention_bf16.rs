//! Launches of kernels/cuda/attention_bf16.cu: attention with bf16 tensor-core products
//! (mma.sync m16n8k16, f32 accumulation) for a `Precision::Bf16` backend, forward beside
//! backward. Same varlen packing and grid scheme as attention.rs (ceil(T / 64) + B blocks in x,
//! each finding its 64-row tile from cu_seqlens on the device; one head per y), 4 warps of 16
//! rows per block. The backward's D = rowsum(dout * out) is attention.cu's `attention_delta`.
//! qkv and out are f32 or bf16 operand storage (`Backend::alloc_operand`), read and written as
//! they are (out rounded to bf16 either way).

use super::device::{Arg, Device, LaunchDims, Module};
use super::launch::Operand;
use super::KernelBackend;
use crate::backend::AttnDims;

/// Threads per block: 4 warps.
const THREADS: u32 = 128;

/// Rows of a block's tile and of the streamed tiles (`TILE` in the kernel file).
const TILE: usize = 64;

/// The kernels' names for head size `hd`: the instantiation whose register arrays fit the
/// smallest bound of 64, 96 and 128 at or above it.
fn kernels(hd: usize) -> [&'static str; 3] {
    match hd {
        0..=64 => [
            "attention_bf16_forward_hd64",
            "attention_bf16_dkv_hd64",
            "attention_bf16_dq_hd64",
        ],
        65..=96 => [
            "attention_bf16_forward_hd96",
            "attention_bf16_dkv_hd96",
            "attention_bf16_dq_hd96",
        ],
        _ => [
            "attention_bf16_forward_hd128",
            "attention_bf16_dkv_hd128",
            "attention_bf16_dq_hd128",
        ],
    }
}

/// Shared bytes of two streamed (64, hd) bf16 tiles at row stride hd + 8, and `floats` f32s.
fn dims_for(dims: AttnDims, hd: usize, floats: usize) -> LaunchDims {
    LaunchDims {
        grid: (
            (dims.tokens.div_ceil(TILE) + dims.seqs) as u32,
            dims.heads as u32,
            1,
        ),
        block: THREADS,
        shared_bytes: (2 * TILE * (hd + 8) * 2 + 4 * floats) as u32,
    }
}

/// out (T, C; rounded to bf16) and lse (T, H) from qkv (T, 3C); `hd` = C / H satisfies
/// `precision::bf16_attention_head`.
pub(super) fn forward<D: Device>(
    k: &KernelBackend<D>,
    (out, lse): (Operand, u64),
    qkv: Operand,
    cu: u64,
    dims: AttnDims,
    hd: usize,
) {
    if dims.tokens == 0 || dims.seqs == 0 {
        return;
    }
    let ([qkv, qkv_bf16], [out, out_bf16]) = (qkv.args(), out.args());
    let args = [
        out,
        out_bf16,
        Arg::Ptr(lse),
        qkv,
        qkv_bf16,
        Arg::Ptr(cu),
        Arg::I32(dims.seqs as i32),
        Arg::I32(dims.width as i32),
        Arg::I32(dims.heads as i32),
        Arg::F32(super::attention::scale(hd)),
    ];
    let [forward, _, _] = kernels(hd);
    k.dev
        .launch(Module::AttentionBf16, forward, dims_for(dims, hd, 0), &args);
}

/// dqkv (T, 3C) = (overwritten) the attention backward from dout (T, C), qkv, out and lse;
/// `hd` = C / H satisfies `precision::bf16_attention_head`.
pub(super) fn backward<D: Device>(
    k: &KernelBackend<D>,
    dqkv: u64,
    (dout, qkv, out, lse): (u64, Operand, Operand, u64),
    cu: u64,
    dims: AttnDims,
    hd: usize,
) {
    let (c, heads) = (dims.width, dims.heads);
    let [_, dkv, dq] = kernels(hd);
    let [qkv, qkv_bf16] = qkv.args();
    super::attention::with_delta(k, dout, out, dims, |delta| {
        let args = [
            Arg::Ptr(dqkv),
            Arg::Ptr(dout),
            qkv,
            qkv_bf16,
            Arg::Ptr(lse),
            Arg::Ptr(delta),
            Arg::Ptr(cu),
            Arg::I32(dims.seqs as i32),
            Arg::I32(c as i32),
            Arg::I32(heads as i32),
            Arg::F32(super::attention::scale(hd)),
        ];
        k.dev.launch(
            Module::AttentionBf16,
            dkv,
            dims_for(dims, hd, 2 * TILE),
            &args,
        );
        k.dev
            .launch(Module::AttentionBf16, dq, dims_for(dims, hd, 0), &args);
    });
}
