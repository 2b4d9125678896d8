//! Elementwise helpers, sum of squares and clipping, GELU, AdamW, layer norm (alone and fused
//! with the residual add) and the linear layer against the CPU backend, on small, odd and empty
//! shapes (and row counts that cross the reduction chunks).

use super::common::{assert_bits, assert_close, body, down, max_gap, up, v, vm, Rng, PAD};
use super::operands::fc1_gelu;
use ecgfm_kernels::{AdamW, Backend, CpuBackend, Precision, View, ViewMut};

fn elementwise_outputs<B: Backend>(be: &B, n: usize) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(n as u64 + 1);
    let (a, b) = (up(be, &rng.vec(n, 3.0)), up(be, &rng.vec(n, 3.0)));
    let mut out = up(be, &vec![0.0; n]);
    be.add(vm(&mut out), v(&a), v(&b), n);
    let mut acc = up(be, &vec![0.0; n]);
    be.copy(v(&out), vm(&mut acc), n);
    be.add_assign(vm(&mut acc), v(&a), n);
    be.scale(vm(&mut acc), n, 0.75);
    let mut filled = up(be, &vec![0.0; n]);
    be.fill(vm(&mut filled), n, -2.5);
    let mut sumsq = up(be, &[0.0]);
    be.sum_squares(vm(&mut sumsq), v(&acc), n);
    // Clip to half the norm (scales), and to twice the norm (leaves it).
    let norm = down(be, &sumsq, 1)[PAD].sqrt();
    let (mut clipped, mut kept) = (up(be, &vec![0.0; n]), up(be, &vec![0.0; n]));
    be.copy(v(&acc), vm(&mut clipped), n);
    be.copy(v(&acc), vm(&mut kept), n);
    be.clip_grad_norm(vm(&mut clipped), n, v(&sumsq), norm / 2.0);
    be.clip_grad_norm(vm(&mut kept), n, v(&sumsq), norm * 2.0 + 1.0);
    vec![
        down(be, &out, n),
        down(be, &acc, n),
        down(be, &filled, n),
        down(be, &sumsq, 1),
        down(be, &clipped, n),
        down(be, &kept, n),
    ]
}

pub fn elementwise_and_norm_helpers<B: Backend>(be: &B) {
    // 40000 crosses the sum-of-squares chunks (16384) with a partial last one.
    for n in [0, 1, 7, 1000, 40_000] {
        let (got, want) = (
            elementwise_outputs(be, n),
            elementwise_outputs(&CpuBackend::new(), n),
        );
        let names = [
            "add",
            "copy+add_assign+scale",
            "fill",
            "sum_squares",
            "clipped",
            "kept",
        ];
        for ((name, g), w) in names.iter().zip(&got).zip(&want) {
            // sum_squares: f64 sums in another fixed order, rounded once to f32.
            assert_close(&format!("{name} n={n}"), g, w, 1e-6);
        }
    }
}

fn gelu_outputs<B: Backend>(be: &B, x: &[f32]) -> Vec<Vec<f32>> {
    let n = x.len();
    let mut rng = Rng::new(9);
    let (xb, dout) = (up(be, x), up(be, &rng.vec(n, 1.0)));
    let mut out = up(be, &vec![0.0; n]);
    be.gelu_forward(vm(&mut out), v(&xb), n);
    let mut dinp = up(be, &rng.vec(n, 1.0));
    be.gelu_backward(vm(&mut dinp), None, (v(&xb), v(&dout)), n, 1);
    vec![down(be, &out, n), down(be, &dinp, n)]
}

/// dinp and the bias gradient (added to a random start) of the GELU's backward over (T, M):
/// `fused` in `gelu_backward`, or its plain form and then `matmul_backward`'s dbias from dinp.
fn gelu_bias_grad_outputs<B: Backend>(
    be: &B,
    (t, m): (usize, usize),
    fused: bool,
) -> [Vec<f32>; 2] {
    let mut rng = Rng::new((t * 7 + m) as u64);
    let (x, dout) = (up(be, &rng.vec(t * m, 3.0)), up(be, &rng.vec(t * m, 1.0)));
    let mut dinp = up(be, &rng.vec(t * m, 1.0));
    // (M, 1) weight gradient, then the bias gradient (M), as a linear layer C = 1 -> M keeps them.
    let mut dwb = up(be, &rng.vec(2 * m, 1.0));
    if fused {
        let dbias = ViewMut::new(&mut dwb, PAD + m);
        be.gelu_backward(vm(&mut dinp), Some(dbias), (v(&x), v(&dout)), t, m);
    } else {
        be.gelu_backward(vm(&mut dinp), None, (v(&x), v(&dout)), t, m);
        let (zeros, w) = (up(be, &vec![0.0; t]), up(be, &vec![0.0; m]));
        let (dwb_view, dinp_view) = (ViewMut::new(&mut dwb, PAD), View::new(&dinp, PAD));
        be.matmul_backward(
            None,
            dwb_view,
            Some(PAD + m),
            dinp_view,
            v(&zeros),
            v(&w),
            t,
            1,
            m,
        );
    }
    [down(be, &dinp, t * m), body(be, &dwb, 2 * m)[m..].to_vec()]
}

/// `gelu_backward` with the bias gradient is bitwise its plain form followed by
/// `matmul_backward`'s bias gradient (on this backend and on the CPU), on ragged shapes and over
/// several row chunks, and within f32 rounding of the CPU's sums.
pub fn gelu_bias_grad<B: Backend>(be: &B) {
    for shape in [(0, 4), (1, 1), (5, 7), (300, 33), (1000, 70), (70_000, 3)] {
        let fused = gelu_bias_grad_outputs(be, shape, true);
        let unfused = gelu_bias_grad_outputs(be, shape, false);
        let cpu = gelu_bias_grad_outputs(&CpuBackend::new(), shape, true);
        let cpu_unfused = gelu_bias_grad_outputs(&CpuBackend::new(), shape, false);
        for (i, name) in ["dinp", "dbias"].iter().enumerate() {
            let name = format!("gelu backward {name} {shape:?}");
            assert_bits(&name, &fused[i], &unfused[i]);
            assert_bits(&format!("CPU {name}"), &cpu[i], &cpu_unfused[i]);
            assert_close(&name, &fused[i], &cpu[i], 1e-5);
        }
    }
}

/// GELU: bit for bit the CPU formula (same polynomial, no fused multiply-add), on [-12, 12] and
/// in the tails beyond |x| = 13.2, where exp(-x^2 / 2) is below exp_nonpositive's cutoff (e^-87)
/// and counts as exactly 0: gelu(x) is -0 or x there, its derivative 0 or 1.
pub fn gelu<B: Backend>(be: &B) {
    let n = 4099;
    let tails = [-1e4, -40.0, -13.5, -13.2, 13.2, 13.5, 40.0, 1e4];
    let x: Vec<f32> = (0..n)
        .map(|i| -12.0 + 24.0 * i as f32 / (n - 1) as f32)
        .chain(tails)
        .collect();
    let (got, want) = (gelu_outputs(be, &x), gelu_outputs(&CpuBackend::new(), &x));
    assert_bits("gelu forward", &got[0], &want[0]);
    assert_bits("gelu backward", &got[1], &want[1]);
}

/// The optimiser tests' hyperparameters at `step`.
fn test_hp(step: u32) -> AdamW {
    AdamW {
        lr: 1e-2,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.05,
        step,
    }
}

/// Random parameters, first moments and (non-negative) second moments of `n` elements.
fn optimizer_state<B: Backend>(be: &B, rng: &mut Rng, n: usize) -> (B::Buf, B::Buf, B::Buf) {
    let moment2: Vec<f32> = rng.vec(n, 0.1).iter().map(|x| x.abs()).collect();
    (
        up(be, &rng.vec(n, 1.0)),
        up(be, &rng.vec(n, 0.1)),
        up(be, &moment2),
    )
}

fn adamw_outputs<B: Backend>(be: &B, n: usize) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(3);
    let (mut p, mut m, mut vv) = optimizer_state(be, &mut rng, n);
    for step in 1..=3u32 {
        let grad = up(be, &rng.vec(n, 1.0));
        let hp = test_hp(step);
        be.adamw(
            vm(&mut p),
            v(&grad),
            vm(&mut m),
            vm(&mut vv),
            n,
            &hp,
            step != 2,
        );
    }
    vec![down(be, &p, n), down(be, &m, n), down(be, &vv, n)]
}

/// AdamW: bit for bit the CPU update.
pub fn adamw<B: Backend>(be: &B) {
    for n in [1, 333] {
        let (got, want) = (adamw_outputs(be, n), adamw_outputs(&CpuBackend::new(), n));
        for (name, (g, w)) in ["param", "m", "v"].iter().zip(got.iter().zip(&want)) {
            assert_bits(name, g, w);
        }
    }
}

/// Three optimiser steps over `runs` with clipping at `clip`: the fused op, or (`fused` false)
/// `clip_grad_norm` then `adamw` per run. The fused op must leave the gradients as they were.
fn optimizer_outputs<B: Backend>(
    be: &B,
    runs: &[(usize, usize, bool)],
    clip: Option<f32>,
    fused: bool,
) -> Vec<Vec<f32>> {
    let n = runs.last().map_or(0, |r| r.1);
    let mut rng = Rng::new(11);
    let (mut p, mut m, mut vv) = optimizer_state(be, &mut rng, n);
    let mut sumsq = up(be, &[0.0]);
    for step in 1..=3u32 {
        let host_grad = rng.vec(n, 1.0);
        let mut grad = up(be, &host_grad);
        be.sum_squares(vm(&mut sumsq), v(&grad), n);
        let hp = test_hp(step);
        if fused {
            let clip = clip.map(|c| (v(&sumsq), c));
            be.adamw_fused(
                vm(&mut p),
                v(&grad),
                vm(&mut m),
                vm(&mut vv),
                runs,
                &hp,
                clip,
            );
            assert_bits(
                "gradients after the fused step",
                &body(be, &grad, n),
                &host_grad,
            );
            continue;
        }
        if let Some(c) = clip {
            be.clip_grad_norm(vm(&mut grad), n, v(&sumsq), c);
        }
        for &(start, end, decay) in runs {
            be.adamw(
                ViewMut::new(&mut p, PAD + start),
                View::new(&grad, PAD + start),
                ViewMut::new(&mut m, PAD + start),
                ViewMut::new(&mut vv, PAD + start),
                end - start,
                &hp,
                decay,
            );
        }
    }
    vec![down(be, &p, n), down(be, &m, n), down(be, &vv, n)]
}

/// The fused optimiser step (AdamW over decay runs, clipping folded in): bit for bit the
/// unfused ops and the CPU's fused step, with clipping active, inactive and off.
pub fn adamw_fused<B: Backend>(be: &B) {
    let layouts: [&[(usize, usize, bool)]; 2] = [
        &[
            (0, 100, true),
            (100, 101, false),
            (101, 333, true),
            (333, 340, false),
        ],
        &[(0, 1, false)],
    ];
    for runs in layouts {
        for clip in [Some(1.0), Some(1e3), None] {
            let fused = optimizer_outputs(be, runs, clip, true);
            let unfused = optimizer_outputs(be, runs, clip, false);
            let cpu = optimizer_outputs(&CpuBackend::new(), runs, clip, true);
            for (i, name) in ["param", "m", "v"].iter().enumerate() {
                assert_bits(name, &fused[i], &unfused[i]);
                assert_bits(name, &fused[i], &cpu[i]);
            }
        }
    }
}

fn layernorm_outputs<B: Backend>(be: &B, t: usize, c: usize) -> Vec<Vec<f32>> {
    let mut rng = Rng::new((t * 100 + c) as u64);
    let (x, w, b, dout) = (
        up(be, &rng.vec(t * c, 2.0)),
        up(be, &rng.vec(c, 1.0)),
        up(be, &rng.vec(c, 1.0)),
        up(be, &rng.vec(t * c, 1.0)),
    );
    let (mut out, mut mean, mut rstd) = (
        up(be, &vec![0.0; t * c]),
        up(be, &vec![0.0; t]),
        up(be, &vec![0.0; t]),
    );
    be.layernorm_forward(
        vm(&mut out),
        vm(&mut mean),
        vm(&mut rstd),
        v(&x),
        v(&w),
        v(&b),
        t,
        c,
    );
    let mut dx = up(be, &rng.vec(t * c, 1.0));
    // Weight gradient then bias gradient in one buffer, starting from random content.
    let mut dwb = up(be, &rng.vec(2 * c, 1.0));
    be.layernorm_backward(
        vm(&mut dx),
        vm(&mut dwb),
        PAD + c,
        v(&dout),
        v(&x),
        v(&w),
        v(&mean),
        v(&rstd),
        t,
        c,
    );
    vec![
        down(be, &out, t * c),
        down(be, &mean, t),
        down(be, &rstd, t),
        down(be, &dx, t * c),
        down(be, &dwb, 2 * c),
    ]
}

pub fn layernorm<B: Backend>(be: &B) {
    // 300 rows cross the 256-row reduction chunks; widths below, at and above a warp.
    for (t, c) in [(0, 4), (1, 1), (5, 7), (3, 32), (300, 33), (20, 100)] {
        let (got, want) = (
            layernorm_outputs(be, t, c),
            layernorm_outputs(&CpuBackend::new(), t, c),
        );
        let names = ["out", "mean", "rstd", "dinp", "dweight|dbias"];
        for (name, (g, w)) in names.iter().zip(got.iter().zip(&want)) {
            assert_close(&format!("layernorm {name} t={t} c={c}"), g, w, 2e-5);
        }
    }
}

/// Inputs of the residual-add tests: a, b (T, C) and a bias (C), and b + bias row by row in f32
/// (what a linear layer's bias epilogue writes).
fn residual_inputs(t: usize, c: usize) -> [Vec<f32>; 4] {
    let mut rng = Rng::new((t * 31 + c) as u64);
    let (a, b, bias) = (rng.vec(t * c, 2.0), rng.vec(t * c, 2.0), rng.vec(c, 1.0));
    let biased = b
        .iter()
        .enumerate()
        .map(|(i, &x)| x + bias[i % c.max(1)])
        .collect();
    [a, b, bias, biased]
}

/// res, out, mean and rstd of the residual add and LayerNorm: `fused` in one op (with b's bias
/// passed when `with_bias`), or `add` of the biased b then `layernorm_forward`.
fn add_layernorm_outputs<B: Backend>(
    be: &B,
    (t, c): (usize, usize),
    fused: bool,
    with_bias: bool,
) -> Vec<Vec<f32>> {
    let [a, b, bias, biased] = residual_inputs(t, c);
    let mut rng = Rng::new((t * 17 + c) as u64);
    let (w, ln_bias) = (up(be, &rng.vec(c, 1.0)), up(be, &rng.vec(c, 1.0)));
    let a = up(be, &a);
    let mut res = up(be, &vec![0.0; t * c]);
    let (mut out, mut mean, mut rstd) = (
        up(be, &vec![0.0; t * c]),
        up(be, &vec![0.0; t]),
        up(be, &vec![0.0; t]),
    );
    let outs = (vm(&mut out), vm(&mut mean), vm(&mut rstd));
    let params = (v(&w), v(&ln_bias));
    match (fused, with_bias) {
        (true, true) => {
            let (b, bias) = (up(be, &b), up(be, &bias));
            be.add_layernorm_forward(
                vm(&mut res),
                outs,
                (v(&a), v(&b), Some(v(&bias))),
                params,
                t,
                c,
            );
        }
        (true, false) => {
            let b = up(be, &biased);
            be.add_layernorm_forward(vm(&mut res), outs, (v(&a), v(&b), None), params, t, c);
        }
        (false, _) => {
            let b = up(be, &biased);
            be.add(vm(&mut res), v(&a), v(&b), t * c);
            let (out, mean, rstd) = outs;
            be.layernorm_forward(out, mean, rstd, v(&res), params.0, params.1, t, c);
        }
    }
    vec![
        down(be, &res, t * c),
        down(be, &out, t * c),
        down(be, &mean, t),
        down(be, &rstd, t),
    ]
}

pub fn add_layernorm<B: Backend>(be: &B) {
    let cpu = CpuBackend::new();
    for (t, c) in [(0, 4), (1, 1), (5, 7), (3, 32), (300, 33), (20, 100)] {
        let unfused = add_layernorm_outputs(be, (t, c), false, false);
        let cpu_unfused = add_layernorm_outputs(&cpu, (t, c), false, false);
        for with_bias in [false, true] {
            let fused = add_layernorm_outputs(be, (t, c), true, with_bias);
            let cpu_fused = add_layernorm_outputs(&cpu, (t, c), true, with_bias);
            for (i, name) in ["res", "out", "mean", "rstd"].iter().enumerate() {
                let name = format!("add_layernorm {name} t={t} c={c} bias={with_bias}");
                assert_bits(&name, &fused[i], &unfused[i]);
                assert_bits(&name, &cpu_fused[i], &cpu_unfused[i]);
                assert_close(&name, &fused[i], &cpu_fused[i], 2e-5);
            }
        }
    }
}

/// `add_bias` is bitwise `add` of the biased input (on any backend: one exact formula), and
/// `matmul_gelu_forward` bitwise `matmul_forward` with the bias then `gelu_forward` on the same
/// backend (operands::fc1_gelu), and within the linear layer's tolerance of the CPU.
pub fn bias_fusions<B: Backend>(be: &B) {
    for (t, c) in [(0, 4), (1, 1), (5, 7), (3, 32), (300, 33), (70_000, 3)] {
        let [a, b, bias, biased] = residual_inputs(t, c);
        let n = t * c;
        let a = up(be, &a);
        let (mut fused, mut unfused) = (up(be, &vec![0.0; n]), up(be, &vec![0.0; n]));
        let (b, bias, biased) = (up(be, &b), up(be, &bias), up(be, &biased));
        be.add_bias(vm(&mut fused), v(&a), (v(&b), v(&bias)), t, c);
        be.add(vm(&mut unfused), v(&a), v(&biased), n);
        let name = format!("add_bias t={t} c={c}");
        assert_bits(&name, &down(be, &fused, n), &down(be, &unfused, n));
    }
    let reference = CpuBackend::with_precision(be.precision());
    for shape @ (t, c, m) in LINEAR_SHAPES {
        let mut rng = Rng::new((t * 13 + c * 5 + m) as u64);
        let (x, w, b) = (rng.vec(t * c, 1.0), rng.vec(m * c, 1.0), rng.vec(m, 1.0));
        let ins = (&x[..], &w[..], &b[..]);
        let (_, pre, gelu) = fc1_gelu(be, ins, shape, (false, true));
        let (_, pre_unfused, gelu_unfused) = fc1_gelu(be, ins, shape, (false, false));
        let (_, pre_cpu, gelu_cpu) = fc1_gelu(&reference, ins, shape, (false, true));
        for (name, (f, u, w)) in [
            ("pre", (&pre, &pre_unfused, &pre_cpu)),
            ("gelu", (&gelu, &gelu_unfused, &gelu_cpu)),
        ] {
            let name = format!("matmul_gelu {name} {shape:?}");
            assert_bits(&name, f, u);
            assert_close(&name, f, w, 1e-5);
        }
    }
}

/// (T, C, OC) of the linear-layer tests: empty, single, odd, C = 0, and larger than a tile.
const LINEAR_SHAPES: [(usize, usize, usize); 7] = [
    (0, 3, 4),
    (1, 1, 1),
    (13, 7, 5),
    (6, 0, 3),
    (97, 33, 75),
    (300, 5, 3),
    (300, 5, 70),
];

fn matmul_outputs<B: Backend>(
    be: &B,
    (t, c, oc): (usize, usize, usize),
    bias: bool,
    with_dinp: bool,
) -> Vec<Vec<f32>> {
    let mut rng = Rng::new((t * 31 + c * 7 + oc) as u64);
    let (x, w, b, dout) = (
        up(be, &rng.vec(t * c, 1.0)),
        up(be, &rng.vec(oc * c, 1.0)),
        up(be, &rng.vec(oc, 1.0)),
        up(be, &rng.vec(t * oc, 1.0)),
    );
    let mut out = up(be, &vec![0.0; t * oc]);
    be.matmul_forward(vm(&mut out), v(&x), v(&w), bias.then(|| v(&b)), t, c, oc);
    let mut dx = up(be, &rng.vec(t * c, 1.0));
    let mut dwb = up(be, &rng.vec(oc * c + oc, 1.0));
    be.matmul_backward(
        with_dinp.then(|| ViewMut::new(&mut dx, PAD)),
        ViewMut::new(&mut dwb, PAD),
        bias.then_some(PAD + oc * c),
        View::new(&dout, PAD),
        v(&x),
        v(&w),
        t,
        c,
        oc,
    );
    vec![
        down(be, &out, t * oc),
        down(be, &dx, t * c),
        down(be, &dwb, oc * c + oc),
    ]
}

/// The linear layer against the CPU backend of the same precision. fp32: sums of up to 300
/// products in another order (1e-5). bf16: the same operands rounded to nearest even (the CUDA
/// backend rounds f32 operands into bf16 itself before its GEMMs, as the CPU emulation does),
/// summed in f32 in another order; 1e-4 leaves room for the order of tensor-core sums, and stays
/// far below the bf16-vs-fp32 difference, which the largest shape must show (bf16 really in
/// effect).
pub fn matmul<B: Backend>(be: &B) {
    let precision = be.precision();
    let reference = CpuBackend::with_precision(precision);
    let tol = match precision {
        Precision::Fp32 => 1e-5,
        Precision::Bf16 => 1e-4,
    };
    if precision == Precision::Bf16 {
        let (shape, bias, with_dinp) = ((97, 33, 75), true, true);
        let bf16 = matmul_outputs(be, shape, bias, with_dinp);
        let fp32 = matmul_outputs(&CpuBackend::new(), shape, bias, with_dinp);
        let gap = max_gap(&bf16[0], &fp32[0]);
        assert!(gap > 10.0 * tol, "bf16 matmul is within {gap} of fp32");
    }
    for shape in LINEAR_SHAPES {
        for (bias, with_dinp) in [(true, true), (false, true), (true, false)] {
            let got = matmul_outputs(be, shape, bias, with_dinp);
            let want = matmul_outputs(&reference, shape, bias, with_dinp);
            for (name, (g, w)) in ["out", "dinp", "dweight|dbias"]
                .iter()
                .zip(got.iter().zip(&want))
            {
                let name = format!("{precision} matmul {name} {shape:?} bias {bias}");
                assert_close(&name, g, w, tol);
            }
        }
    }
}
