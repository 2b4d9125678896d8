//! The host-compiled CUDA kernels, launched by the CUDA backend's own launch code, against the
//! CPU backend: elementwise helpers, sum of squares and clipping, GELU, AdamW, layer norm and the
//! linear layer, on small, odd and empty shapes (and row counts that cross the reduction chunks).

mod common;

use common::{assert_bits, assert_close, padded, v, vm, Rng, PAD};
use ecgfm_cuda_host::host_backend;
use ecgfm_kernels::{AdamW, Backend, CpuBackend, View, ViewMut};

fn elementwise_outputs<B: Backend<Buf = Vec<f32>, IdxBuf = Vec<u32>>>(be: &B, n: usize) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(n as u64 + 1);
    let (a, b) = (padded(&rng.vec(n, 3.0)), padded(&rng.vec(n, 3.0)));
    let mut out = padded(&vec![0.0; n]);
    be.add(vm(&mut out), v(&a), v(&b), n);
    let mut acc = out.clone();
    be.add_assign(vm(&mut acc), v(&a), n);
    be.scale(vm(&mut acc), n, 0.75);
    let mut copied = padded(&vec![0.0; n]);
    be.copy(v(&acc), vm(&mut copied), n);
    let mut filled = padded(&vec![0.0; n]);
    be.fill(vm(&mut filled), n, -2.5);
    let mut sumsq = padded(&[0.0]);
    be.sum_squares(vm(&mut sumsq), v(&acc), n);
    // Clip to half the norm (scales), and to twice the norm (leaves it).
    let norm = sumsq[PAD].sqrt();
    let (mut clipped, mut kept) = (acc.clone(), acc.clone());
    be.clip_grad_norm(vm(&mut clipped), n, v(&sumsq), norm / 2.0);
    be.clip_grad_norm(vm(&mut kept), n, v(&sumsq), norm * 2.0 + 1.0);
    vec![out, acc, copied, filled, sumsq, clipped, kept]
}

#[test]
fn elementwise_and_norm_helpers_match_the_cpu() {
    let (host, cpu) = (host_backend(), CpuBackend::new());
    // 40000 crosses the sum-of-squares chunks (16384) with a partial last one.
    for n in [0, 1, 7, 1000, 40_000] {
        let (got, want) = (elementwise_outputs(&host, n), elementwise_outputs(&cpu, n));
        let names = ["add", "add_assign+scale", "copy", "fill", "sum_squares", "clipped", "kept"];
        for ((name, g), w) in names.iter().zip(&got).zip(&want) {
            // sum_squares: f64 sums in another fixed order, rounded once to f32.
            assert_close(&format!("{name} n={n}"), g, w, 1e-6);
        }
    }
}

fn gelu_outputs<B: Backend<Buf = Vec<f32>, IdxBuf = Vec<u32>>>(be: &B, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let n = x.len();
    let mut rng = Rng::new(9);
    let (xb, dout) = (padded(x), padded(&rng.vec(n, 1.0)));
    let mut out = padded(&vec![0.0; n]);
    be.gelu_forward(vm(&mut out), v(&xb), n);
    let mut dinp = padded(&rng.vec(n, 1.0));
    be.gelu_backward(vm(&mut dinp), v(&xb), v(&dout), n);
    (out, dinp)
}

#[test]
fn gelu_is_bitwise_the_cpu_formula() {
    let n = 4099;
    let x: Vec<f32> = (0..n).map(|i| -12.0 + 24.0 * i as f32 / (n - 1) as f32).collect();
    let (got, want) = (gelu_outputs(&host_backend(), &x), gelu_outputs(&CpuBackend::new(), &x));
    assert_bits("gelu forward", &got.0, &want.0);
    assert_bits("gelu backward", &got.1, &want.1);
}

fn adamw_outputs<B: Backend<Buf = Vec<f32>, IdxBuf = Vec<u32>>>(be: &B, n: usize) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(3);
    let (mut p, mut m, mut vv) = (padded(&rng.vec(n, 1.0)), padded(&rng.vec(n, 0.1)), padded(&rng.vec(n, 0.1)));
    for x in &mut vv[PAD..PAD + n] {
        *x = x.abs();
    }
    for step in 1..=3u32 {
        let grad = padded(&rng.vec(n, 1.0));
        let hp = AdamW { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.05, step };
        be.adamw(vm(&mut p), v(&grad), vm(&mut m), vm(&mut vv), n, &hp, step != 2);
    }
    vec![p, m, vv]
}

#[test]
fn adamw_is_bitwise_the_cpu_update() {
    for n in [1, 333] {
        let (got, want) = (adamw_outputs(&host_backend(), n), adamw_outputs(&CpuBackend::new(), n));
        for (name, (g, w)) in ["param", "m", "v"].iter().zip(got.iter().zip(&want)) {
            assert_bits(name, g, w);
        }
    }
}

fn layernorm_outputs<B: Backend<Buf = Vec<f32>, IdxBuf = Vec<u32>>>(
    be: &B,
    t: usize,
    c: usize,
) -> Vec<Vec<f32>> {
    let mut rng = Rng::new((t * 100 + c) as u64);
    let (x, w, b, dout) = (
        padded(&rng.vec(t * c, 2.0)),
        padded(&rng.vec(c, 1.0)),
        padded(&rng.vec(c, 1.0)),
        padded(&rng.vec(t * c, 1.0)),
    );
    let (mut out, mut mean, mut rstd) = (padded(&vec![0.0; t * c]), padded(&vec![0.0; t]), padded(&vec![0.0; t]));
    be.layernorm_forward(vm(&mut out), vm(&mut mean), vm(&mut rstd), v(&x), v(&w), v(&b), t, c);
    let mut dx = padded(&rng.vec(t * c, 1.0));
    // Weight gradient then bias gradient in one buffer, starting from random content.
    let mut dwb = padded(&rng.vec(2 * c, 1.0));
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
    vec![out, mean, rstd, dx, dwb]
}

#[test]
fn layernorm_matches_the_cpu() {
    // 300 rows cross the 256-row reduction chunks; widths below, at and above a warp.
    for (t, c) in [(0, 4), (1, 1), (5, 7), (3, 32), (300, 33), (20, 100)] {
        let (got, want) = (layernorm_outputs(&host_backend(), t, c), layernorm_outputs(&CpuBackend::new(), t, c));
        for (name, (g, w)) in ["out", "mean", "rstd", "dinp", "dweight|dbias"].iter().zip(got.iter().zip(&want)) {
            assert_close(&format!("layernorm {name} t={t} c={c}"), g, w, 2e-5);
        }
    }
}

fn matmul_outputs<B: Backend<Buf = Vec<f32>, IdxBuf = Vec<u32>>>(
    be: &B,
    (t, c, oc): (usize, usize, usize),
    bias: bool,
    with_dinp: bool,
) -> Vec<Vec<f32>> {
    let mut rng = Rng::new((t * 31 + c * 7 + oc) as u64);
    let (x, w, b, dout) = (
        padded(&rng.vec(t * c, 1.0)),
        padded(&rng.vec(oc * c, 1.0)),
        padded(&rng.vec(oc, 1.0)),
        padded(&rng.vec(t * oc, 1.0)),
    );
    let mut out = padded(&vec![0.0; t * oc]);
    let bias_view = bias.then(|| v(&b));
    be.matmul_forward(vm(&mut out), v(&x), v(&w), bias_view, t, c, oc);
    let mut dx = padded(&rng.vec(t * c, 1.0));
    let mut dwb = padded(&rng.vec(oc * c + oc, 1.0));
    let dinp = with_dinp.then(|| ViewMut::new(&mut dx, PAD));
    be.matmul_backward(
        dinp,
        ViewMut::new(&mut dwb, PAD),
        bias.then_some(PAD + oc * c),
        View::new(&dout, PAD),
        v(&x),
        v(&w),
        t,
        c,
        oc,
    );
    vec![out, dx, dwb]
}

#[test]
fn matmul_matches_the_cpu() {
    for shape in [(0, 3, 4), (1, 1, 1), (13, 7, 5), (6, 0, 3), (97, 33, 75), (300, 5, 3)] {
        for (bias, with_dinp) in [(true, true), (false, true), (true, false)] {
            let got = matmul_outputs(&host_backend(), shape, bias, with_dinp);
            let want = matmul_outputs(&CpuBackend::new(), shape, bias, with_dinp);
            for (name, (g, w)) in ["out", "dinp", "dweight|dbias"].iter().zip(got.iter().zip(&want)) {
                // Sums of up to 300 products in another order.
                assert_close(&format!("matmul {name} {shape:?} bias {bias}"), g, w, 1e-5);
            }
        }
    }
}
