//! The fast CPU kernels against naive f64 triple loops: matmul (odd sizes and sizes that cross
//! the parallel tile boundaries), packed attention (several sequences of different lengths, more
//! than one query tile) and the patch gather.

#[macro_use]
mod common;

use common::{body, down, up, up_idx, v, vm, Rng, PAD};
use ecgfm_kernels::{AttnDims, Backend};

fn assert_close(name: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as f64 - w).abs() <= tol * (1.0 + w.abs()),
            "{name}[{i}]: got {g}, want {w}"
        );
    }
}

fn naive_matmul(inp: &[f32], w: &[f32], b: &[f32], t: usize, c: usize, oc: usize) -> Vec<f64> {
    let mut out = vec![0f64; t * oc];
    for r in 0..t {
        for o in 0..oc {
            out[r * oc + o] = b[o] as f64
                + (0..c)
                    .map(|k| inp[r * c + k] as f64 * w[o * c + k] as f64)
                    .sum::<f64>();
        }
    }
    out
}

fn matmul_forward_and_backward_match_naive_loops_on<B: Backend>(be: &B) {
    for (t, c, oc) in [
        (0, 3, 4),
        (1, 1, 1),
        (13, 7, 5),
        (6, 0, 3),
        (97, 33, 75),
        (1100, 19, 400),
        (300, 40, 7000),
        // A forward reduction longer than the SGEMM's 512-long pieces (kernels/src/cpu/sgemm.rs)
        // in output tiles (96 x 80) past the size it sums in one piece.
        (1100, 600, 160),
    ] {
        let mut rng = Rng::new((t * 31 + c * 7 + oc) as u64);
        // f32 rounding error grows with the reduction length: c (out), oc (dinp), t (dweight).
        let grows = |k: usize| (k as f64 / 300.0).max(1.0);
        let (inp, w, b, dout) = (
            rng.vec(t * c, 1.0),
            rng.vec(oc * c, 1.0),
            rng.vec(oc, 1.0),
            rng.vec(t * oc, 1.0),
        );
        let mut out = up(be, &vec![0.0; t * oc]);
        be.matmul_forward(
            vm(&mut out),
            v(&up(be, &inp)),
            v(&up(be, &w)),
            Some(v(&up(be, &b))),
            t,
            c,
            oc,
        );
        assert_close(
            "matmul out",
            &body(be, &out, t * oc),
            &naive_matmul(&inp, &w, &b, t, c, oc),
            1e-5 * grows(c),
        );

        let mut no_bias = up(be, &vec![0.0; t * oc]);
        be.matmul_forward(
            vm(&mut no_bias),
            v(&up(be, &inp)),
            v(&up(be, &w)),
            None,
            t,
            c,
            oc,
        );
        assert_close(
            "matmul out (no bias)",
            &body(be, &no_bias, t * oc),
            &naive_matmul(&inp, &w, &vec![0.0; oc], t, c, oc),
            1e-5 * grows(c),
        );

        let (mut dinp, mut dwb) = (up(be, &vec![0.0; t * c]), up(be, &vec![0.0; oc * c + oc]));
        be.matmul_backward(
            Some(vm(&mut dinp)),
            vm(&mut dwb),
            Some(PAD + oc * c),
            v(&up(be, &dout)),
            v(&up(be, &inp)),
            v(&up(be, &w)),
            t,
            c,
            oc,
        );
        let want_dinp: Vec<f64> = (0..t * c)
            .map(|i| {
                (0..oc)
                    .map(|o| dout[(i / c) * oc + o] as f64 * w[o * c + i % c] as f64)
                    .sum()
            })
            .collect();
        let want_dw: Vec<f64> = (0..oc * c)
            .map(|i| {
                (0..t)
                    .map(|r| dout[r * oc + i / c] as f64 * inp[r * c + i % c] as f64)
                    .sum()
            })
            .collect();
        let want_db: Vec<f64> = (0..oc)
            .map(|o| (0..t).map(|r| dout[r * oc + o] as f64).sum())
            .collect();
        assert_close(
            "matmul dinp",
            &body(be, &dinp, t * c),
            &want_dinp,
            1e-5 * grows(oc),
        );
        assert_close(
            "matmul dweight",
            &body(be, &dwb, oc * c),
            &want_dw,
            1e-4 * grows(t),
        );
        assert_close(
            "matmul dbias",
            &down(be, &dwb, oc * c + oc)[PAD + oc * c..PAD + oc * c + oc],
            &want_db,
            1e-5,
        );
    }
}

/// Naive attention in f64: per sequence and head, full score matrix, softmax, weighted sum.
fn naive_attention(qkv: &[f32], cu: &[u32], c: usize, heads: usize) -> (Vec<f64>, Vec<f64>) {
    let t = *cu.last().unwrap() as usize;
    let hd = c / heads;
    let scale = 1.0 / (hd as f64).sqrt();
    let at = |row: usize, col: usize| qkv[row * 3 * c + col] as f64;
    let (mut out, mut lse) = (vec![0f64; t * c], vec![0f64; t * heads]);
    for w in cu.windows(2) {
        let (s0, s1) = (w[0] as usize, w[1] as usize);
        for h in 0..heads {
            for i in s0..s1 {
                let scores: Vec<f64> = (s0..s1)
                    .map(|j| {
                        (0..hd)
                            .map(|k| at(i, h * hd + k) * at(j, c + h * hd + k))
                            .sum::<f64>()
                            * scale
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                lse[i * heads + h] = max + sum.ln();
                for k in 0..hd {
                    out[i * c + h * hd + k] = (s0..s1)
                        .zip(&scores)
                        .map(|(j, s)| (s - max).exp() / sum * at(j, 2 * c + h * hd + k))
                        .sum();
                }
            }
        }
    }
    (out, lse)
}

fn attention_forward_matches_naive_loops_on_packed_sequences_on<B: Backend>(be: &B) {
    for (lengths, c, heads) in [
        (vec![1usize], 4, 1),
        (vec![5, 17, 1, 0, 84], 12, 3),
        (vec![130, 64, 65], 16, 2),
    ] {
        let cu = common::cu_seqlens(&lengths);
        let t = *cu.last().unwrap() as usize;
        let mut rng = Rng::new(t as u64);
        let qkv = rng.vec(t * 3 * c, 2.0);
        let (mut out, mut lse) = (up(be, &vec![0.0; t * c]), up(be, &vec![0.0; t * heads]));
        let dims = AttnDims {
            seqs: lengths.len(),
            tokens: t,
            width: c,
            heads,
        };
        be.attention_forward(
            vm(&mut out),
            vm(&mut lse),
            v(&up(be, &qkv)),
            v(&up_idx(be, &cu)),
            dims,
        );
        let (want_out, want_lse) = naive_attention(&qkv, &cu, c, heads);
        assert_close("attention out", &body(be, &out, t * c), &want_out, 1e-5);
        assert_close("attention lse", &body(be, &lse, t * heads), &want_lse, 1e-5);
    }
}

fn gather_patches_copies_the_addressed_patch_on<B: Backend>(be: &B) {
    let (b, l, s, p) = (2, 3, 12, 4);
    let x: Vec<f32> = (0..b * l * s).map(|i| i as f32).collect();
    let tokens = [1u32, 2, 0, 0, 0, 2, 1, 0, 1];
    let mut out = up(be, &[0.0; 12]);
    be.gather_patches(
        vm(&mut out),
        v(&up(be, &x)),
        v(&up_idx(be, &tokens)),
        3,
        l,
        s,
        p,
    );
    let want: Vec<f32> = [(1, 2, 0), (0, 0, 2), (1, 0, 1)]
        .iter()
        .flat_map(|&(bb, ll, n)| (0..p).map(move |k| ((bb * l + ll) * s + n * p + k) as f32))
        .collect();
    assert_eq!(&body(be, &out, 12), &want[..]);
}

fn elementwise_helpers_compute_what_they_say_on<B: Backend>(be: &B) {
    let (a, b) = (vec![1.0f32, -2.0, 3.5], vec![0.5f32, 4.0, -1.0]);
    let mut out = up(be, &[0.0; 3]);
    be.add(vm(&mut out), v(&up(be, &a)), v(&up(be, &b)), 3);
    assert_eq!(&body(be, &out, 3), &[1.5, 2.0, 2.5]);
    be.add_assign(vm(&mut out), v(&up(be, &a)), 3);
    assert_eq!(&body(be, &out, 3), &[2.5, 0.0, 6.0]);
    be.scale(vm(&mut out), 3, 2.0);
    assert_eq!(&body(be, &out, 3), &[5.0, 0.0, 12.0]);
    let mut sq = up(be, &[0.0]);
    be.sum_squares(vm(&mut sq), v(&out), 3);
    assert_eq!(&body(be, &sq, 1), &[169.0]);
    // Clipping to norm 6.5 halves the gradient (norm 13); a threshold above the norm leaves it.
    let mut clipped = up(be, &body(be, &out, 3));
    be.clip_grad_norm(vm(&mut clipped), 3, v(&sq), 13.0 / 2.0);
    for (c, o) in body(be, &clipped, 3).iter().zip(&body(be, &out, 3)) {
        assert!((c - o * 6.5 / (13.0 + 1e-6)).abs() < 1e-6, "{c} vs {o}");
    }
    let mut kept = up(be, &body(be, &out, 3));
    be.clip_grad_norm(vm(&mut kept), 3, v(&sq), 20.0);
    assert_eq!(&body(be, &kept, 3), &body(be, &out, 3));
    let mut copy = up(be, &[0.0; 3]);
    be.copy(v(&out), vm(&mut copy), 3);
    assert_eq!(&body(be, &copy, 3), &body(be, &out, 3));
    be.fill(vm(&mut copy), 2, 7.0);
    assert_eq!(&body(be, &copy, 3), &[7.0, 7.0, 12.0]);
    assert!(
        down(be, &copy, 3)[..PAD].iter().all(|x| x.is_nan()),
        "fill wrote before its offset"
    );
}

fn gelu_matches_the_exact_erf_formula_in_f64_on<B: Backend>(be: &B) {
    let n = 20001;
    let x: Vec<f32> = (0..n)
        .map(|i| -14.0 + 28.0 * i as f32 / (n - 1) as f32)
        .collect();
    let (mut out, mut grad) = (up(be, &vec![0.0; n]), up(be, &vec![0.0; n]));
    be.gelu_forward(vm(&mut out), v(&up(be, &x)), n);
    be.gelu_backward(
        vm(&mut grad),
        None,
        (v(&up(be, &x)), v(&up(be, &vec![1.0; n]))),
        n,
        1,
    );
    let (out, grad) = (body(be, &out, n), body(be, &grad, n));
    for (i, &xi) in x.iter().enumerate() {
        let xd = xi as f64;
        let cdf = 0.5 * libm::erfc(-xd / std::f64::consts::SQRT_2);
        let pdf = (-0.5 * xd * xd).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let (want, want_grad) = (xd * cdf, cdf + xd * pdf);
        let (got, got_grad) = (out[i] as f64, grad[i] as f64);
        // ~3 ulp, plus the f32 rounding of x^2 inside exp(-x^2 / 2), which grows with x^2 and
        // only matters in the negative tail where gelu is tiny.
        let rel = 4e-7 + 6e-8 * xd * xd;
        assert!(
            (got - want).abs() <= rel * want.abs() + 1e-37,
            "gelu({xi}) = {got}, want {want}"
        );
        assert!(
            (got_grad - want_grad).abs() <= 4e-7,
            "gelu'({xi}) = {got_grad}, want {want_grad}"
        );
    }
}

on_every_backend! {
    matmul_forward_and_backward_match_naive_loops => matmul_forward_and_backward_match_naive_loops_on,
    attention_forward_matches_naive_loops_on_packed_sequences => attention_forward_matches_naive_loops_on_packed_sequences_on,
    gather_patches_copies_the_addressed_patch => gather_patches_copies_the_addressed_patch_on,
    elementwise_helpers_compute_what_they_say => elementwise_helpers_compute_what_they_say_on,
    gelu_matches_the_exact_erf_formula_in_f64 => gelu_matches_the_exact_erf_formula_in_f64_on,
}
