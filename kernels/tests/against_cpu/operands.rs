//! Matrix-product operand storage (`Backend::alloc_operand`: bf16 on a bf16 kernel backend): the
//! LayerNorm, GELU (forward and backward), patch gather and linear ops write into it exactly
//! their f32 results rounded to bf16 (unrounded where the storage is f32); a linear layer
//! reading its input or its output gradient from it gives what it gives on the same values
//! stored in f32 (within 1e-4: a GPU's GEMMs may sum the two in other orders); attention with
//! qkv and out in it gives the bits it gives on the f32 values they were rounded from; and the
//! GELU's input (rounded to bf16 by `matmul_gelu_forward` in bf16) is the same from either
//! storage.
//! `bias_epilogue`: the forward of a linear layer whose input is in operand storage (on a GPU,
//! cuBLASLt's fused bias epilogue) against the CPU. `weight_copy`: the bf16 weight copy rounds
//! every value, the format's edges included, as the CPU's rounding does.

use super::attention::attention_outputs_placing;
use super::common::{assert_bits, assert_close, down, up, up_idx, v, vm, Rng, PAD};
use ecgfm_kernels::precision::rounded_bf16;
use ecgfm_kernels::{Backend, CpuBackend, Precision, View, ViewMut};

/// A padded buffer of the backend's operand storage holding `data` (as `up` does for f32).
fn up_operand<B: Backend>(be: &B, data: &[f32]) -> B::Buf {
    let host = down(be, &up(be, data), data.len());
    let mut buf = be.alloc_operand(host.len());
    be.upload(&host, (&mut buf).into());
    buf
}

/// An operand-writing op run twice, into f32 and into operand storage: the operand holds the
/// f32 result as the storage keeps it.
fn check_written<B: Backend>(be: &B, name: &str, n: usize, mut write: impl FnMut(ViewMut<B::Buf>)) {
    let (mut plain, mut operand) = (up(be, &vec![0.0; n]), up_operand(be, &vec![0.0; n]));
    write(vm(&mut plain));
    write(vm(&mut operand));
    let f32_result = down(be, &plain, n);
    let want = match be.operand_bytes() {
        2 => rounded_bf16(&f32_result),
        _ => f32_result,
    };
    assert_bits(name, &down(be, &operand, n), &want);
}

/// out, dinp and dweight|dbias of a linear layer on input `xs` and output gradient `douts`, each
/// in f32 or (`stored` = (x, dout, weight)) in operand storage (a weight there as in the model's
/// bf16 weight copy, `Backend::alloc_weight_copy`). A dout in operand storage has no bias
/// gradient (the GELU's backward sums it); `dbias` says whether there is one.
fn linear<B: Backend>(
    be: &B,
    (xs, douts): (&[f32], &[f32]),
    (t, c, oc): (usize, usize, usize),
    stored: (bool, bool, bool),
    dbias: bool,
) -> Vec<Vec<f32>> {
    let mut rng = Rng::new((t * 7 + c * 3 + oc) as u64);
    let place = |data: &[f32], operand: bool| match operand {
        true => up_operand(be, data),
        false => up(be, data),
    };
    let (x, dout) = (place(xs, stored.0), place(douts, stored.1));
    let (w, b) = (
        place(&rng.vec(oc * c, 1.0), stored.2),
        up(be, &rng.vec(oc, 1.0)),
    );
    let mut out = up(be, &vec![0.0; t * oc]);
    be.matmul_forward(vm(&mut out), v(&x), v(&w), Some(v(&b)), t, c, oc);
    let (mut dx, mut dwb) = (
        up(be, &vec![0.0; t * c]),
        up(be, &rng.vec(oc * c + oc, 1.0)),
    );
    let dbias = dbias.then_some(PAD + oc * c);
    let (dx_v, dwb_v) = (Some(vm(&mut dx)), vm(&mut dwb));
    be.matmul_backward(dx_v, dwb_v, dbias, v(&dout), v(&x), v(&w), t, c, oc);
    vec![
        down(be, &out, t * oc),
        down(be, &dx, t * c),
        down(be, &dwb, oc * c + oc),
    ]
}

/// The model's weight copy (`Backend::alloc_weight_copy`, filled by `round_weights`) holds each
/// weight as `precision::round_bf16` rounds it, the edges of the format included: signed zeros,
/// subnormals, ties to even, the largest finite values (rounding up to infinity), infinities and
/// NaN (which stays NaN). Without a weight copy (f32 storage) there is nothing to check.
pub fn weight_copy<B: Backend>(be: &B) {
    let x = [
        0.0,
        -0.0,
        1e-40,
        -1e-40,
        1.0 + 2f32.powi(-8),
        1.0 + 3.0 * 2f32.powi(-8),
        -(1.0 + 2f32.powi(-8)),
        3.389e38,
        f32::MAX,
        -f32::MAX,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        0.1,
        -7.3,
    ];
    let Some(mut copy) = be.alloc_weight_copy(PAD + x.len()) else {
        return;
    };
    let src = up(be, &x);
    be.round_weights(ViewMut::new(&mut copy, PAD), v(&src), x.len());
    let mut got = vec![0.0; x.len()];
    be.download(View::new(&copy, PAD), &mut got);
    for ((&g, w), x) in got.iter().zip(rounded_bf16(&x)).zip(x) {
        match w.is_nan() {
            true => assert!(g.is_nan(), "weight copy of NaN: {g}"),
            false => assert_eq!(
                g.to_bits(),
                w.to_bits(),
                "weight copy of {x:e}: {g:e}, want {w:e}"
            ),
        }
    }
}

/// See the module comment. The linear layer's two storages agree within 1e-4 (relative to
/// 1 + |value|; the bf16 matmul test's bound): the same rounded operands, whose sums of up to 300
/// products a GPU's GEMMs may order differently (on the host harness, whose GEMM sums in one
/// order, the whole model agrees bit for bit: kernels/cuda-host/tests/model_steps.rs).
pub fn operand_storage<B: Backend>(be: &B) {
    for (t, c, m) in [(1, 1, 2), (5, 7, 9), (97, 33, 75), (300, 16, 64)] {
        let mut rng = Rng::new((t * 11 + c) as u64);
        let (n, nm) = (t * c, t * m);
        let x = up(be, &rng.vec(n, 2.0));
        let (a, w, b) = (
            up(be, &rng.vec(n, 1.0)),
            up(be, &rng.vec(c, 1.0)),
            up(be, &rng.vec(c, 1.0)),
        );
        let (mut mean, mut rstd) = (up(be, &vec![0.0; t]), up(be, &vec![0.0; t]));
        check_written(be, &format!("layernorm t={t} c={c}"), n, |out| {
            be.layernorm_forward(out, vm(&mut mean), vm(&mut rstd), v(&x), v(&w), v(&b), t, c)
        });
        let mut res = up(be, &vec![0.0; n]);
        check_written(be, &format!("add_layernorm t={t} c={c}"), n, |out| {
            let norm = (out, vm(&mut mean), vm(&mut rstd));
            be.add_layernorm_forward(
                vm(&mut res),
                norm,
                (v(&a), v(&x), Some(v(&b))),
                (v(&w), v(&b)),
                t,
                c,
            )
        });
        // The patch gather (the patch embedding's input): t patches of c samples out of a
        // (2, 3, 4c) signal.
        let (leads, samples) = (3, 4 * c);
        let signal = up(be, &rng.vec(2 * leads * samples, 2.0));
        let tokens: Vec<u32> = (0..t)
            .flat_map(|r| [(r % 2) as u32, (r % leads) as u32, (r % 4) as u32])
            .collect();
        let tokens = up_idx(be, &tokens);
        check_written(be, &format!("gather_patches t={t} p={c}"), n, |out| {
            be.gather_patches(out, v(&signal), v(&tokens), t, leads, samples, c)
        });
        let pre = up(be, &rng.vec(nm, 3.0));
        check_written(be, &format!("gelu n={nm}"), nm, |out| {
            be.gelu_forward(out, v(&pre), nm)
        });
        let (w1, b1) = (up(be, &rng.vec(m * c, 1.0)), up(be, &rng.vec(m, 1.0)));
        let mut pre = up(be, &vec![0.0; nm]);
        check_written(be, &format!("matmul_gelu t={t} c={c} m={m}"), nm, |out| {
            be.matmul_gelu_forward((vm(&mut pre), out), v(&x), (v(&w1), v(&b1)), t, c, m)
        });
        for bias in [Some(v(&b1)), None] {
            let name = format!("matmul t={t} c={c} m={m} bias {}", bias.is_some());
            check_written(be, &name, nm, |out| {
                be.matmul_forward(out, v(&x), v(&w1), bias, t, c, m)
            });
        }
        // The GELU's input gradient, with fc1's bias gradient: the same f32 sums either way.
        let dout = up(be, &rng.vec(nm, 1.0));
        let mut dbiases = Vec::new();
        check_written(be, &format!("gelu_backward t={t} m={m}"), nm, |dinp| {
            let mut db = up(be, &vec![0.0; m]);
            be.gelu_backward(dinp, Some(vm(&mut db)), (v(&pre), v(&dout)), t, m);
            dbiases.push(down(be, &db, m));
        });
        assert_bits(
            &format!("gelu_backward dbias t={t} m={m}"),
            &dbiases[1],
            &dbiases[0],
        );
        let xs = rounded_bf16(&rng.vec(n, 1.0));
        let douts = rounded_bf16(&rng.vec(nm, 1.0));
        for (x, dout, weight) in [false, true]
            .into_iter()
            .flat_map(|w| {
                [
                    (true, false, w),
                    (false, true, w),
                    (true, true, w),
                    (false, false, w),
                ]
            })
            .filter(|&stored| stored != (false, false, false))
        {
            let (stored, dbias) = ((x, dout, weight), !dout);
            let got = linear(be, (&xs, &douts), (t, c, m), stored, dbias);
            let want = linear(be, (&xs, &douts), (t, c, m), (false, false, false), dbias);
            for (name, (g, w)) in ["out", "dinp", "dweight|dbias"]
                .iter()
                .zip(got.iter().zip(&want))
            {
                assert_close(
                    &format!("linear {name} ({t}, {c}, {m}) {stored:?}"),
                    g,
                    w,
                    1e-4,
                );
            }
        }
    }
}

/// qkv and out in operand storage with bf16 attention (head sizes 16, 32 and 80; ragged packed
/// sequences): the same bits as with the f32 values, since the attention rounds q, k and v as it
/// loads them and out as it writes it (on this backend and on the CPU's emulation), and its
/// backward reads that rounded out.
pub fn attention_qkv<B: Backend>(be: &B) {
    let lengths = [0, 1, 17, 84, 0, 95];
    let cpu = CpuBackend::with_precision(be.precision());
    for (c, heads) in [(48, 3), (64, 2), (160, 2)] {
        let plain = attention_outputs_placing(be, &lengths, (c, heads), |x| up(be, x));
        let operand = attention_outputs_placing(be, &lengths, (c, heads), |x| up_operand(be, x));
        let on_cpu = attention_outputs_placing(&cpu, &lengths, (c, heads), |x| up(&cpu, x));
        for (name, out) in [("out", &plain[0]), ("CPU out", &on_cpu[0])] {
            let name = format!("attention {name} is bf16 c={c} heads={heads}");
            assert_bits(&name, out, &rounded_bf16(out));
        }
        for (name, (g, w)) in ["out", "lse", "dqkv"]
            .iter()
            .zip(operand.iter().zip(&plain))
        {
            assert_bits(&format!("attention {name} c={c} heads={heads}"), g, w);
        }
    }
}

/// The MLP's first layer and GELU on `be`: pre and gelu(pre), pre in operand storage when
/// `operand`, or (`fused` false) `matmul_forward`, pre rounded to bf16 on the host in bf16, then
/// `gelu_forward`. Returns pre's buffer and both tensors.
pub fn fc1_gelu<B: Backend>(
    be: &B,
    (xs, ws, bs): (&[f32], &[f32], &[f32]),
    (t, c, m): (usize, usize, usize),
    (operand, fused): (bool, bool),
) -> (B::Buf, Vec<f32>, Vec<f32>) {
    let (x, w, b) = (up(be, xs), up(be, ws), up(be, bs));
    let zeros = vec![0.0; t * m];
    let (mut pre, mut out) = match operand {
        true => (up_operand(be, &zeros), up(be, &zeros)),
        false => (up(be, &zeros), up(be, &zeros)),
    };
    if fused {
        be.matmul_gelu_forward((vm(&mut pre), vm(&mut out)), v(&x), (v(&w), v(&b)), t, c, m);
    } else {
        be.matmul_forward(vm(&mut pre), v(&x), v(&w), Some(v(&b)), t, c, m);
        if be.precision() == Precision::Bf16 {
            let rounded = rounded_bf16(&down(be, &pre, t * m));
            be.upload(&rounded, (&mut pre).into());
        }
        be.gelu_forward(vm(&mut out), v(&pre), t * m);
    }
    let (pre_values, out_values) = (down(be, &pre, t * m), down(be, &out, t * m));
    (pre, pre_values, out_values)
}

/// The GELU's input (`matmul_gelu_forward`'s pre) in bf16: rounded to bf16 by the op, bitwise the
/// unfused layer, rounding and GELU on the same backend, and within one bf16 step (1e-2 relative
/// to 1 + |value|) of the CPU's emulation, whose pre is rounded too; written into operand storage
/// with the bits it has in f32; and the GELU's forward and backward (with fc1's bias gradient)
/// read it from operand storage with the results they give from f32.
pub fn gelu_input<B: Backend>(be: &B) {
    let cpu = CpuBackend::with_precision(be.precision());
    for (t, c, m) in [(1, 1, 2), (5, 7, 9), (97, 33, 75), (300, 16, 64)] {
        let name = |what: &str| format!("{what} t={t} c={c} m={m}");
        let mut rng = Rng::new((t * 5 + m) as u64);
        let (xs, ws, bs) = (rng.vec(t * c, 1.0), rng.vec(m * c, 1.0), rng.vec(m, 1.0));
        let ins = (&xs[..], &ws[..], &bs[..]);
        let (pre_f32, pre, out) = fc1_gelu(be, ins, (t, c, m), (false, true));
        let (pre_operand, pre_o, out_o) = fc1_gelu(be, ins, (t, c, m), (true, true));
        let (_, pre_u, out_u) = fc1_gelu(be, ins, (t, c, m), (false, false));
        let (_, pre_cpu, out_cpu) = fc1_gelu(&cpu, ins, (t, c, m), (false, true));
        if be.precision() == Precision::Bf16 {
            assert_bits(&name("pre is bf16"), &pre, &rounded_bf16(&pre));
            assert_bits(&name("CPU pre is bf16"), &pre_cpu, &rounded_bf16(&pre_cpu));
        }
        assert_bits(&name("pre unfused"), &pre, &pre_u);
        assert_bits(&name("gelu unfused"), &out, &out_u);
        assert_bits(&name("pre in operand storage"), &pre_o, &pre);
        assert_bits(&name("gelu from operand pre"), &out_o, &out);
        assert_close(&name("pre vs CPU"), &pre, &pre_cpu, 1e-2);
        assert_close(&name("gelu vs CPU"), &out, &out_cpu, 1e-2);
        let dout = up(be, &rng.vec(t * m, 1.0));
        let readers = |pre: &B::Buf| {
            let zeros = vec![0.0; t * m];
            let (mut out, mut dinp, mut db) = (up(be, &zeros), up(be, &zeros), up(be, &bs));
            be.gelu_forward(vm(&mut out), v(pre), t * m);
            be.gelu_backward(vm(&mut dinp), Some(vm(&mut db)), (v(pre), v(&dout)), t, m);
            [(&out, t * m), (&dinp, t * m), (&db, m)].map(|(buf, n)| down(be, buf, n))
        };
        let (from_f32, from_operand) = (readers(&pre_f32), readers(&pre_operand));
        for (what, (g, w)) in ["gelu", "gelu_backward", "fc1 dbias"]
            .iter()
            .zip(from_operand.iter().zip(&from_f32))
        {
            assert_bits(&name(&format!("{what} reading operand pre")), g, w);
        }
    }
}

/// `matmul_forward` of `xs` (in operand storage) and `ws` with the bias at element `bias_at` of
/// `held`'s buffer, out in operand storage or in f32. x and out sit 16-byte aligned (at
/// PAD + LEAD = 8 elements), as a model's tensors do and as cuBLASLt's tensor-core kernels want.
fn linear_forward<B: Backend>(
    be: &B,
    (xs, ws, held): (&[f32], &[f32], &[f32]),
    (t, c, oc): (usize, usize, usize),
    bias_at: usize,
    out_operand: bool,
) -> Vec<f32> {
    const LEAD: usize = 3;
    let x = up_operand(be, &[&[0.0; LEAD][..], xs].concat());
    let (w, b) = (up(be, ws), up(be, held));
    let zeros = vec![0.0; LEAD + t * oc];
    let mut out = match out_operand {
        true => up_operand(be, &zeros),
        false => up(be, &zeros),
    };
    let (x, bias) = (View::new(&x, PAD + LEAD), View::new(&b, PAD + bias_at));
    let out_view = ViewMut::new(&mut out, PAD + LEAD);
    be.matmul_forward(out_view, x, v(&w), Some(bias), t, c, oc);
    down(be, &out, LEAD + t * oc)
}

/// A linear layer's forward with its input in operand storage, so that a bf16 GPU backend takes
/// the fused path (`matmul::fused`: cuBLASLt's bias epilogue adding an f32 bias to the f32
/// product, D in f32 or bf16), against the CPU's bf16 emulation: out in f32 and in operand
/// storage, the bias (values of up to 4, far from bf16's) at a misaligned address (copied into
/// workspace first) and a 16-byte-aligned one (read in place). f32 out within 1e-4 of the CPU
/// (relative to 1 + |value|): a bias rounded to bf16 would be up to 2^-9 of 4 off, one read as
/// bf16 from f32 memory or dropped far more; bf16 out within one bf16 step (1e-2) of the CPU's
/// f32 out rounded.
pub fn bias_epilogue<B: Backend>(be: &B) {
    let cpu = CpuBackend::with_precision(Precision::Bf16);
    for (t, c, oc) in [(1, 8, 8), (97, 64, 96), (300, 128, 256)] {
        let mut rng = Rng::new((t * 13 + oc) as u64);
        let (xs, ws) = (rounded_bf16(&rng.vec(t * c, 1.0)), rng.vec(oc * c, 1.0));
        // The bias is the first oc of these values (at PAD = 5 floats into the buffer: 20 bytes,
        // misaligned) or the last (at PAD + 3: 32 bytes).
        let held = rng.vec(3 + oc, 4.0);
        let ins = (&xs[..], &ws[..], &held[..]);
        for at in [0, 3] {
            let want = linear_forward(&cpu, ins, (t, c, oc), at, false);
            for out_operand in [false, true] {
                let got = linear_forward(be, ins, (t, c, oc), at, out_operand);
                let name = format!(
                    "linear ({t}, {c}, {oc}), bias at +{at}, out in operand storage {out_operand}"
                );
                match out_operand && be.operand_bytes() == 2 {
                    true => assert_close(&name, &got, &rounded_bf16(&want), 1e-2),
                    false => assert_close(&name, &got, &want, 1e-4),
                }
            }
        }
    }
}
