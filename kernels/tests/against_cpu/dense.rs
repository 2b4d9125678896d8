//! Elementwise helpers, sum of squares and clipping, GELU, AdamW, layer norm and the linear
//! layer against the CPU backend, on small, odd and empty shapes (and row counts that cross the
//! reduction chunks).

use super::common::{assert_bits, assert_close, down, up, v, vm, Rng, PAD};
use ecgfm_kernels::{AdamW, Backend, CpuBackend, View, ViewMut};

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
            elementwise_outputs(&CpuBackend, n),
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
    be.gelu_backward(vm(&mut dinp), v(&xb), v(&dout), n);
    vec![down(be, &out, n), down(be, &dinp, n)]
}

/// GELU: bit for bit the CPU formula (same polynomial, no fused multiply-add).
pub fn gelu<B: Backend>(be: &B) {
    let n = 4099;
    let x: Vec<f32> = (0..n)
        .map(|i| -12.0 + 24.0 * i as f32 / (n - 1) as f32)
        .collect();
    let (got, want) = (gelu_outputs(be, &x), gelu_outputs(&CpuBackend, &x));
    assert_bits("gelu forward", &got[0], &want[0]);
    assert_bits("gelu backward", &got[1], &want[1]);
}

fn adamw_outputs<B: Backend>(be: &B, n: usize) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(3);
    let moment2: Vec<f32> = rng.vec(n, 0.1).iter().map(|x| x.abs()).collect();
    let (mut p, mut m, mut vv) = (
        up(be, &rng.vec(n, 1.0)),
        up(be, &rng.vec(n, 0.1)),
        up(be, &moment2),
    );
    for step in 1..=3u32 {
        let grad = up(be, &rng.vec(n, 1.0));
        let hp = AdamW {
            lr: 1e-2,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.05,
            step,
        };
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
        let (got, want) = (adamw_outputs(be, n), adamw_outputs(&CpuBackend, n));
        for (name, (g, w)) in ["param", "m", "v"].iter().zip(got.iter().zip(&want)) {
            assert_bits(name, g, w);
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
            layernorm_outputs(&CpuBackend, t, c),
        );
        let names = ["out", "mean", "rstd", "dinp", "dweight|dbias"];
        for (name, (g, w)) in names.iter().zip(got.iter().zip(&want)) {
            assert_close(&format!("layernorm {name} t={t} c={c}"), g, w, 2e-5);
        }
    }
}

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

pub fn matmul<B: Backend>(be: &B) {
    for shape in [
        (0, 3, 4),
        (1, 1, 1),
        (13, 7, 5),
        (6, 0, 3),
        (97, 33, 75),
        (300, 5, 3),
    ] {
        for (bias, with_dinp) in [(true, true), (false, true), (true, false)] {
            let got = matmul_outputs(be, shape, bias, with_dinp);
            let want = matmul_outputs(&CpuBackend, shape, bias, with_dinp);
            for (name, (g, w)) in ["out", "dinp", "dweight|dbias"]
                .iter()
                .zip(got.iter().zip(&want))
            {
                // Sums of up to 300 products in another order.
                assert_close(&format!("matmul {name} {shape:?} bias {bias}"), g, w, 1e-5);
            }
        }
    }
}
