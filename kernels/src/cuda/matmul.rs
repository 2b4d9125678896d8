//! The linear layer on a kernel backend: the three GEMMs through the device's GEMM (cuBLAS, in
//! true fp32 or with bf16 operands as the backend's precision says), and the bias row add and
//! the bias gradient from kernels/cuda/matmul.cu.
//! Row-major X (r, c) is column-major X^T with leading dimension c, so:
//!   out^T (OC x T)   = W (op T of W^T, ld C) . inp^T (ld C)
//!   dinp^T (C x T)   = W^T (ld C) . dout^T (ld OC)
//!   dW^T (C x OC)   += inp^T (ld C) . dout (op T of dout^T, ld OC)
//! With bf16 precision the GEMMs multiply bf16 matrices: operands stored in bf16
//! (`Backend::alloc_operand` of a bf16 backend: `inp`, the backward's `dout`; the weight from the
//! model's bf16 copy, `Backend::alloc_weight_copy`) as they are, f32 ones first rounded to
//! nearest even into bf16 workspace (`to_bf16`). cuBLAS's own f32-to-bf16 compute type is not
//! used: it leaves the rounding, and whether it rounds at all, to the kernel cuBLAS picks. The
//! forward GEMM of such a layer adds the bias in its epilogue where the device can (`fused`:
//! cuBLASLt on a GPU), instead of a bias pass over its output.

use super::device::{Arg, Device, Gemm, GemmEpilogue, GemmOperands, LaunchDims, Module};
use super::launch::{columns_by_rows, elementwise, per_item, row_chunks, Operand, ROWS_PER_CHUNK};
use super::KernelBackend;
use crate::precision::Precision;

/// Whether a GEMM of these operands multiplies in bf16: with bf16 precision, or when one of
/// them is stored in bf16 (then the f32 ones are rounded into workspace first).
fn in_bf16_gemm<D: Device>(k: &KernelBackend<D>, operands: &[Operand]) -> bool {
    k.precision == Precision::Bf16 || operands.iter().any(|o| o.bf16)
}

/// The GEMM's operand type: bf16 after [`in_bf16_gemm`], else true f32.
fn operands(bf16: bool) -> GemmOperands {
    match bf16 {
        true => GemmOperands::Bf16,
        false => GemmOperands::F32,
    }
}

/// dst (n, operand storage) = src (n, f32) as the storage holds it: rounded into bf16, or copied.
pub(super) fn round_into<D: Device>(k: &KernelBackend<D>, dst: Operand, src: u64, n: usize) {
    match dst.bf16 {
        true => to_bf16(k, dst.addr, src, n),
        false => super::elementwise::copy(k, dst.addr, src, n),
    }
}

/// Queues dst (n, bf16 bits) = src (n, f32) rounded.
fn to_bf16<D: Device>(k: &KernelBackend<D>, dst: u64, src: u64, n: usize) {
    if let Some(dims) = elementwise(n) {
        let args = [Arg::Ptr(dst), Arg::Ptr(src), Arg::U64(n as u64)];
        k.dev.launch(Module::Matmul, "to_bf16", dims, &args);
    }
}

/// Runs `f` with workspace regions of the given sizes in f32 slots (a bf16 tensor of n elements
/// takes n / 2), each starting on a 256-byte boundary; regions of size 0 are not used.
fn with_regions<D: Device, const N: usize, R>(
    k: &KernelBackend<D>,
    slots: [usize; N],
    f: impl FnOnce([u64; N]) -> R,
) -> R {
    let slots = slots.map(|n| n.next_multiple_of(64));
    k.workspace.with(&k.dev, slots.iter().sum(), |base| {
        let mut at = base;
        f(slots.map(|n| {
            at += 4 * n as u64;
            at - 4 * n as u64
        }))
    })
}

/// f32 slots of a bf16 copy of n elements, when `needed`.
fn bf16_slots(n: usize, needed: bool) -> usize {
    if needed {
        n.div_ceil(2)
    } else {
        0
    }
}

/// The address of `x` (n elements) in bf16: `x` itself when stored so, else its copy rounded
/// into `region`.
fn in_bf16<D: Device>(k: &KernelBackend<D>, x: Operand, region: u64, n: usize) -> u64 {
    if x.bf16 {
        return x.addr;
    }
    to_bf16(k, region, x.addr, n);
    region
}

/// out (T, OC) = inp (T, C) @ weight (OC, C)^T + bias (OC). In one GEMM where `fused` can;
/// else with `out` in bf16 the product lands in f32 workspace and `bias_rows_to_bf16` adds the
/// bias and rounds it into `out`, and with `out` in f32 `add_bias_rows` adds the bias to it.
pub(super) fn forward<D: Device>(
    k: &KernelBackend<D>,
    out: Operand,
    inp: Operand,
    weight: Operand,
    bias: Option<u64>,
    (t, c, oc): (usize, usize, usize),
) {
    if fused(k, out, inp, weight, bias, (t, c, oc)) {
        return;
    }
    product_then(
        k,
        (out.addr, out.bf16),
        inp,
        weight,
        (t, c, oc),
        |product| {
            let Some(dims) = columns_by_rows(t, oc) else {
                return;
            };
            if out.bf16 {
                let args = [
                    Arg::Ptr(out.addr),
                    Arg::Ptr(product),
                    Arg::Ptr(bias.unwrap_or(0)),
                    Arg::I32(t as i32),
                    Arg::I32(oc as i32),
                ];
                k.dev
                    .launch(Module::Matmul, "bias_rows_to_bf16", dims, &args);
            } else if let Some(bias) = bias {
                let args = [
                    Arg::Ptr(product),
                    Arg::Ptr(bias),
                    Arg::I32(t as i32),
                    Arg::I32(oc as i32),
                ];
                k.dev.launch(Module::Matmul, "add_bias_rows", dims, &args);
            }
        },
    );
}

/// Bytes a bias must be aligned to for a GEMM epilogue: a bias elsewhere (parameters sit at any
/// float offset) is copied into aligned workspace first (cuBLASLt's users report misaligned
/// biases silently ignored rather than refused).
const EPILOGUE_BIAS_ALIGN: u64 = 16;

/// out (T, OC) = inp (T, C) @ weight (OC, C)^T + bias (OC) as one GEMM whose epilogue adds the
/// bias to the f32 product and writes out (f32, or rounded once into bf16 storage): the values
/// of the GEMM and a bias pass within bf16 tolerance (bitwise on the host harness; on a GPU,
/// where cuBLASLt may pick another kernel than cuBLAS, unverified: gpu-check item 3c). Only
/// with `inp` in bf16 storage (the weight rounded into workspace first), something for the
/// epilogue to do and the backend's epilogues on; false otherwise, and when the device has no
/// such GEMM for these shapes (then only the weight's rounding was queued, unused).
pub(super) fn fused<D: Device>(
    k: &KernelBackend<D>,
    out: Operand,
    inp: Operand,
    weight: Operand,
    bias: Option<u64>,
    (t, c, oc): (usize, usize, usize),
) -> bool {
    let wanted = k.gemm_epilogues() && inp.bf16 && (bias.is_some() || out.bf16);
    if !wanted || t == 0 || oc == 0 || c == 0 {
        return false;
    }
    let misaligned = bias.filter(|b| b % EPILOGUE_BIAS_ALIGN != 0);
    let slots = [
        bf16_slots(oc * c, !weight.bf16),
        if misaligned.is_some() { oc } else { 0 },
    ];
    with_regions(k, slots, |[weight_r, bias_copy]| {
        let weight = in_bf16(k, weight, weight_r, oc * c);
        let bias = match misaligned {
            Some(bias) => {
                super::elementwise::copy(k, bias_copy, bias, oc);
                Some(bias_copy)
            }
            None => bias,
        };
        let gemm = linear_gemm((out.addr, weight, inp.addr), (t, c, oc), GemmOperands::Bf16);
        let epilogue = GemmEpilogue {
            bias,
            out_bf16: out.bf16,
        };
        k.dev.gemm_epilogue(&gemm, epilogue)
    })
}

/// The forward GEMM of a linear layer, out (T, OC) = inp (T, C) @ weight (OC, C)^T, in
/// cuBLAS's column-major terms: out^T (OC x T) = weight (op T, ld C) . inp^T (ld C).
fn linear_gemm(
    (out, weight, inp): (u64, u64, u64),
    (t, c, oc): (usize, usize, usize),
    operands: GemmOperands,
) -> Gemm {
    Gemm {
        trans_a: true,
        trans_b: false,
        m: oc,
        n: t,
        k: c,
        a: weight,
        lda: c.max(1),
        b: inp,
        ldb: c.max(1),
        beta: 0.0,
        c: out,
        ldc: oc,
        operands,
    }
}

/// Queues the product inp (T, C) @ weight (OC, C)^T, f32 (T, OC), into `out`, or into workspace
/// when `in_workspace`, then `finish(product address)` while the workspace is still held (to add
/// the bias, round, ...). In a bf16 GEMM (`in_bf16_gemm`) the operands stored in f32 are rounded
/// into workspace first. Nothing runs when T or OC is 0.
pub(super) fn product_then<D: Device>(
    k: &KernelBackend<D>,
    (out, in_workspace): (u64, bool),
    inp: Operand,
    weight: Operand,
    (t, c, oc): (usize, usize, usize),
    finish: impl FnOnce(u64),
) {
    if t == 0 || oc == 0 {
        return;
    }
    let bf16 = in_bf16_gemm(k, &[inp, weight]);
    let slots = [
        bf16_slots(oc * c, bf16 && !weight.bf16),
        bf16_slots(t * c, bf16 && !inp.bf16),
        if in_workspace { t * oc } else { 0 },
    ];
    with_regions(k, slots, |[weight_r, inp_r, product]| {
        let (weight, inp_addr) = match bf16 {
            true => (
                in_bf16(k, weight, weight_r, oc * c),
                in_bf16(k, inp, inp_r, t * c),
            ),
            false => (weight.addr, inp.addr),
        };
        let product = if in_workspace { product } else { out };
        let addrs = (product, weight, inp_addr);
        k.dev.gemm(&linear_gemm(addrs, (t, c, oc), operands(bf16)));
        finish(product);
    });
}

/// dinp = dout @ weight; dweight += dout^T @ inp; dbias += column sums of dout (f32). In a bf16
/// GEMM (`in_bf16_gemm`) the operands stored in f32 are rounded into workspace first (an f32
/// dout by the bias gradient's first pass, as it reads it).
pub(super) fn backward<D: Device>(
    k: &KernelBackend<D>,
    dinp: Option<u64>,
    dweight: u64,
    dbias: Option<u64>,
    (dout, inp, weight): (Operand, Operand, Operand),
    (t, c, oc): (usize, usize, usize),
) {
    if t == 0 || oc == 0 {
        return;
    }
    let bf16 = in_bf16_gemm(k, &[inp, dout, weight]);
    let round_dout = bf16 && !dout.bf16;
    let chunks = row_chunks(t);
    let fused_dbias = dbias.filter(|_| round_dout);
    let slots = [
        bf16_slots(t * oc, round_dout),
        bf16_slots(t * c, bf16 && !inp.bf16),
        bf16_slots(oc * c, bf16 && !weight.bf16),
        if fused_dbias.is_some() {
            2 * chunks * oc
        } else {
            0
        },
    ];
    with_regions(k, slots, |[dout_r, inp_r, weight_r, partial]| {
        let (dout, inp, weight) = match bf16 {
            true => (
                match fused_dbias {
                    // The bias gradient's first pass writes dout's bf16 copy as it reads it.
                    Some(dbias) => {
                        chunked_column_sums_at(k, (dbias, partial), (t, oc), |p, dims| {
                            colsum_partial(k, p, (dout.addr, dout_r), (t, oc), dims)
                        });
                        dout_r
                    }
                    None => in_bf16(k, dout, dout_r, t * oc),
                },
                in_bf16(k, inp, inp_r, t * c),
                in_bf16(k, weight, weight_r, oc * c),
            ),
            false => (dout.addr, inp.addr, weight.addr),
        };
        let operands = operands(bf16);
        if let Some(dinp) = dinp.filter(|_| c > 0) {
            k.dev.gemm(&Gemm {
                trans_a: false,
                trans_b: false,
                m: c,
                n: t,
                k: oc,
                a: weight,
                lda: c,
                b: dout,
                ldb: oc,
                beta: 0.0,
                c: dinp,
                ldc: c,
                operands,
            });
        }
        if c > 0 {
            k.dev.gemm(&Gemm {
                trans_a: false,
                trans_b: true,
                m: c,
                n: oc,
                k: t,
                a: inp,
                lda: c,
                b: dout,
                ldb: oc,
                beta: 1.0,
                c: dweight,
                ldc: c,
                operands,
            });
        }
    });
    if let Some(dbias) = dbias.filter(|_| fused_dbias.is_none()) {
        column_sums(k, dbias, dout.addr, t, oc);
    }
}

/// dst (C) += column sums of src (T, C): f64 partials over fixed row chunks, then in order.
pub(super) fn column_sums<D: Device>(k: &KernelBackend<D>, dst: u64, src: u64, t: usize, c: usize) {
    chunked_column_sums(k, dst, (t, c), |partial, dims| {
        colsum_partial(k, partial, (src, 0), (t, c), dims)
    });
}

/// Queues `colsum_partial` of src (T, C) into `partial` on `dims`, writing src's bf16 copy into
/// `copy` as well unless it is 0.
fn colsum_partial<D: Device>(
    k: &KernelBackend<D>,
    partial: u64,
    (src, copy): (u64, u64),
    (t, c): (usize, usize),
    dims: LaunchDims,
) {
    let args = [
        Arg::Ptr(partial),
        Arg::Ptr(copy),
        Arg::Ptr(src),
        Arg::I32(t as i32),
        Arg::I32(c as i32),
        Arg::I32(ROWS_PER_CHUNK as i32),
    ];
    k.dev.launch(Module::Matmul, "colsum_partial", dims, &args);
}

/// dst (C) += the column sums of a (T, C) tensor in two passes. `first_pass(partial, dims)`
/// launches a kernel on `dims` = (ceil(C / BLOCK), chunks of `ROWS_PER_CHUNK` rows) whose thread
/// (j, chunk) writes `partial[chunk][j]` (f64), its column's sum over the chunk in row order (as
/// `colsum_partial`); then the chunks are added in order. The partials live in the workspace.
pub(super) fn chunked_column_sums<D: Device>(
    k: &KernelBackend<D>,
    dst: u64,
    (t, c): (usize, usize),
    first_pass: impl FnOnce(u64, LaunchDims),
) {
    let partials = 2 * row_chunks(t) * c;
    k.workspace.with(&k.dev, partials, |partial| {
        chunked_column_sums_at(k, (dst, partial), (t, c), first_pass)
    });
}

/// `chunked_column_sums` with the partials (2 * chunks * C f32 slots) at `partial`, for a caller
/// that already holds the workspace.
fn chunked_column_sums_at<D: Device>(
    k: &KernelBackend<D>,
    (dst, partial): (u64, u64),
    (t, c): (usize, usize),
    first_pass: impl FnOnce(u64, LaunchDims),
) {
    let chunks = row_chunks(t);
    if let Some(dims) = per_item(c, chunks) {
        first_pass(partial, dims);
        finish_column_sums(k, dst, partial, chunks, c);
    }
}

/// dst (C) += (f32) sum over `chunks` f64 partial rows (chunks, C), in chunk order.
pub(super) fn finish_column_sums<D: Device>(
    k: &KernelBackend<D>,
    dst: u64,
    partial: u64,
    chunks: usize,
    c: usize,
) {
    if let Some(dims) = per_item(c, 1) {
        let args = [
            Arg::Ptr(dst),
            Arg::Ptr(partial),
            Arg::I32(chunks as i32),
            Arg::I32(c as i32),
        ];
        k.dev.launch(Module::Matmul, "colsum_finish", dims, &args);
    }
}
