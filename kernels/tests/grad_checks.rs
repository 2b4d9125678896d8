//! Finite-difference checks of every backward op, on the CPU backend and, where a GPU is usable,
//! on the CUDA backend. Each gradient buffer starts with random content, so the checks also prove
//! that each backward op accumulates (+=) or overwrites its gradient as the trait documents
//! (matmul's, GELU's and attention's input gradients are overwritten).

#[macro_use]
mod common;

use common::{body, check_grad, dot, down, up, up_idx, v, vm, Rng};
use ecgfm_kernels::{Backend, ViewMut, MASKED_ROW};

/// The gradient a backward op added on top of the random starting content `start`.
fn added(after: &[f32], start: &[f32]) -> Vec<f32> {
    added_at(after, common::PAD, start)
}

/// As [`added`] for a tensor at element offset `off` of its buffer.
fn added_at(after: &[f32], off: usize, start: &[f32]) -> Vec<f32> {
    after[off..off + start.len()]
        .iter()
        .zip(start)
        .map(|(a, s)| a - s)
        .collect()
}

fn matmul_gradients_match_finite_differences_on<B: Backend>(be: &B) {
    let (t, c, oc) = (7, 5, 6);
    let mut rng = Rng::new(1);
    let (inp, w, b, r) = (
        rng.vec(t * c, 1.0),
        rng.vec(oc * c, 0.5),
        rng.vec(oc, 0.5),
        rng.vec(t * oc, 1.0),
    );
    let objective = |inp: &[f32], w: &[f32], b: &[f32]| {
        let mut out = up(be, &vec![0.0; t * oc]);
        be.matmul_forward(
            vm(&mut out),
            v(&up(be, inp)),
            v(&up(be, w)),
            Some(v(&up(be, b))),
            t,
            c,
            oc,
        );
        dot(&body(be, &out, t * oc), &r)
    };
    let (g_inp, g_w, g_b) = (rng.vec(t * c, 1.0), rng.vec(oc * c, 1.0), rng.vec(oc, 1.0));
    // Weight then bias gradient in one buffer, as in the model's gradient buffer.
    let (mut dinp, mut dwb) = (up(be, &g_inp), up(be, &[g_w.clone(), g_b.clone()].concat()));
    let db_off = common::PAD + oc * c;
    be.matmul_backward(
        Some(vm(&mut dinp)),
        vm(&mut dwb),
        Some(db_off),
        v(&up(be, &r)),
        v(&up(be, &inp)),
        v(&up(be, &w)),
        t,
        c,
        oc,
    );
    check_grad(
        "matmul dinp",
        &inp,
        &body(be, &dinp, g_inp.len()),
        100,
        1e-2,
        1e-3,
        |x| objective(x, &w, &b),
    );
    check_grad(
        "matmul dweight",
        &w,
        &added(&down(be, &dwb, g_w.len()), &g_w),
        100,
        1e-2,
        1e-3,
        |x| objective(&inp, x, &b),
    );
    check_grad(
        "matmul dbias",
        &b,
        &added_at(&down(be, &dwb, oc * c + oc), db_off, &g_b),
        100,
        1e-2,
        1e-3,
        |x| objective(&inp, &w, x),
    );
}

fn layernorm_gradients_match_finite_differences_on<B: Backend>(be: &B) {
    let (t, c) = (4, 10);
    let mut rng = Rng::new(2);
    let (inp, w, b, r) = (
        rng.vec(t * c, 2.0),
        rng.vec(c, 1.0),
        rng.vec(c, 1.0),
        rng.vec(t * c, 1.0),
    );
    let forward = |inp: &[f32], w: &[f32], b: &[f32]| {
        let (mut out, mut mean, mut rstd) = (
            up(be, &vec![0.0; t * c]),
            up(be, &[0.0; 4]),
            up(be, &[0.0; 4]),
        );
        be.layernorm_forward(
            vm(&mut out),
            vm(&mut mean),
            vm(&mut rstd),
            v(&up(be, inp)),
            v(&up(be, w)),
            v(&up(be, b)),
            t,
            c,
        );
        (out, mean, rstd)
    };
    let objective =
        |inp: &[f32], w: &[f32], b: &[f32]| dot(&body(be, &forward(inp, w, b).0, t * c), &r);
    let (_, mean, rstd) = forward(&inp, &w, &b);
    let (g_inp, g_w, g_b) = (rng.vec(t * c, 1.0), rng.vec(c, 1.0), rng.vec(c, 1.0));
    // Bias then weight gradient in one buffer (the other order than the matmul check).
    let (mut dinp, mut dbw) = (up(be, &g_inp), up(be, &[g_b.clone(), g_w.clone()].concat()));
    let dw_off = common::PAD + c;
    be.layernorm_backward(
        vm(&mut dinp),
        ViewMut::new(&mut dbw, dw_off),
        common::PAD,
        v(&up(be, &r)),
        v(&up(be, &inp)),
        v(&up(be, &w)),
        v(&mean),
        v(&rstd),
        t,
        c,
    );
    check_grad(
        "layernorm dinp",
        &inp,
        &added(&down(be, &dinp, g_inp.len()), &g_inp),
        100,
        1e-2,
        5e-3,
        |x| objective(x, &w, &b),
    );
    check_grad(
        "layernorm dweight",
        &w,
        &added_at(&down(be, &dbw, 2 * c), dw_off, &g_w),
        100,
        1e-2,
        1e-3,
        |x| objective(&inp, x, &b),
    );
    check_grad(
        "layernorm dbias",
        &b,
        &added(&down(be, &dbw, g_b.len()), &g_b),
        100,
        1e-2,
        1e-3,
        |x| objective(&inp, &w, x),
    );
}

fn gelu_gradient_matches_finite_differences_on<B: Backend>(be: &B) {
    let n = 64;
    let mut rng = Rng::new(3);
    let (inp, r, g0) = (rng.vec(n, 4.0), rng.vec(n, 1.0), rng.vec(n, 1.0));
    let objective = |x: &[f32]| {
        let mut out = up(be, &[0.0; 64]);
        be.gelu_forward(vm(&mut out), v(&up(be, x)), n);
        dot(&body(be, &out, n), &r)
    };
    let mut dinp = up(be, &g0);
    be.gelu_backward(
        vm(&mut dinp),
        None,
        (v(&up(be, &inp)), v(&up(be, &r))),
        n,
        1,
    );
    check_grad(
        "gelu",
        &inp,
        &body(be, &dinp, g0.len()),
        n,
        1e-3,
        5e-3,
        objective,
    );
}

/// Attention gradient check for the given packed sequence lengths.
fn check_attention<B: Backend>(
    be: &B,
    lengths: &[usize],
    width: usize,
    heads: usize,
    max_checks: usize,
    seed: u64,
) {
    let (cu, dims) = common::packed(lengths, width, heads);
    let t = dims.tokens;
    let mut rng = Rng::new(seed);
    let (qkv, r, g0) = (
        rng.vec(t * 3 * width, 1.5),
        rng.vec(t * width, 1.0),
        rng.vec(t * 3 * width, 1.0),
    );
    let cu = up_idx(be, &cu);
    let forward = |qkv: &[f32]| {
        let (mut out, mut lse) = (up(be, &vec![0.0; t * width]), up(be, &vec![0.0; t * heads]));
        be.attention_forward(vm(&mut out), vm(&mut lse), v(&up(be, qkv)), v(&cu), dims);
        (out, lse)
    };
    let (out, lse) = forward(&qkv);
    let mut dqkv = up(be, &g0);
    be.attention_backward(
        vm(&mut dqkv),
        v(&up(be, &r)),
        v(&up(be, &qkv)),
        v(&out),
        v(&lse),
        v(&cu),
        dims,
    );
    check_grad(
        "attention dqkv",
        &qkv,
        &body(be, &dqkv, g0.len()),
        max_checks,
        1e-2,
        5e-3,
        |x| dot(&body(be, &forward(x).0, t * width), &r),
    );
}

fn attention_gradient_matches_finite_differences_on_packed_sequences_on<B: Backend>(be: &B) {
    check_attention(be, &[5, 0, 1, 9], 8, 2, 1000, 4);
}

fn attention_gradient_matches_finite_differences_across_query_tiles_on<B: Backend>(be: &B) {
    check_attention(be, &[70, 3, 131], 6, 3, 300, 5);
}

fn lead_embedding_gradient_matches_finite_differences_on<B: Backend>(be: &B) {
    let (leads, n_pos, t, d) = (3, 4, 9, 6);
    let mut rng = Rng::new(6);
    let tokens: Vec<u32> = (0..t)
        .flat_map(|i| [0, (i * 7 % leads) as u32, (i % n_pos) as u32])
        .collect();
    let tokens = up_idx(be, &tokens);
    let (h, lead, pos, r, g0) = (
        rng.vec(t * d, 1.0),
        rng.vec(leads * d, 1.0),
        rng.vec(n_pos * d, 1.0),
        rng.vec(t * d, 1.0),
        rng.vec(leads * d, 1.0),
    );
    let objective = |lead: &[f32]| {
        let mut out = up(be, &h);
        be.add_lead_pos_forward(
            vm(&mut out),
            v(&up(be, lead)),
            v(&up(be, &pos)),
            v(&tokens),
            t,
            d,
        );
        dot(&body(be, &out, t * d), &r)
    };
    let mut dlead = up(be, &g0);
    be.add_lead_pos_backward(vm(&mut dlead), v(&up(be, &r)), v(&tokens), t, d, leads);
    check_grad(
        "lead embedding",
        &lead,
        &added(&down(be, &dlead, g0.len()), &g0),
        100,
        1e-2,
        1e-3,
        objective,
    );
}

fn mask_scatter_gradients_match_finite_differences_on<B: Backend>(be: &B) {
    let (t_enc, t_dec, d) = (4, 7, 5);
    let src = up_idx(be, &[2, MASKED_ROW, 0, MASKED_ROW, 3, 1, MASKED_ROW]);
    let mut rng = Rng::new(7);
    let (z, mask, r) = (
        rng.vec(t_enc * d, 1.0),
        rng.vec(d, 1.0),
        rng.vec(t_dec * d, 1.0),
    );
    let (g_z, g_m) = (rng.vec(t_enc * d, 1.0), rng.vec(d, 1.0));
    let objective = |z: &[f32], mask: &[f32]| {
        let mut out = up(be, &vec![0.0; t_dec * d]);
        be.mask_scatter_forward(
            vm(&mut out),
            v(&up(be, z)),
            v(&up(be, mask)),
            v(&src),
            t_dec,
            d,
        );
        dot(&body(be, &out, t_dec * d), &r)
    };
    let (mut dz, mut dm) = (up(be, &g_z), up(be, &g_m));
    be.mask_scatter_backward(vm(&mut dz), vm(&mut dm), v(&up(be, &r)), v(&src), t_dec, d);
    check_grad(
        "mask scatter dz",
        &z,
        &added(&down(be, &dz, g_z.len()), &g_z),
        100,
        1e-2,
        1e-3,
        |x| objective(x, &mask),
    );
    check_grad(
        "mask scatter dmask",
        &mask,
        &added(&down(be, &dm, g_m.len()), &g_m),
        100,
        1e-2,
        1e-3,
        |x| objective(&z, x),
    );
}

fn masked_mse_gradient_matches_finite_differences_on<B: Backend>(be: &B) {
    let (t_dec, p, m) = (6, 8, 4);
    let rows = up_idx(be, &[5, 0, 2, 3]);
    let mut rng = Rng::new(8);
    let (pred, target) = (rng.vec(t_dec * p, 1.0), rng.vec(m * p, 3.0));
    for norm_pix in [true, false] {
        let objective = |x: &[f32]| {
            let mut loss = up(be, &[0.0]);
            be.masked_mse_forward(
                vm(&mut loss),
                v(&up(be, x)),
                v(&up(be, &target)),
                v(&rows),
                m,
                p,
                norm_pix,
            );
            body(be, &loss, 1)[0] as f64
        };
        let mut dpred = up(be, &rng.vec(t_dec * p, 9.0));
        be.masked_mse_backward(
            vm(&mut dpred),
            v(&up(be, &pred)),
            v(&up(be, &target)),
            v(&rows),
            t_dec,
            m,
            p,
            norm_pix,
            1.0,
        );
        let grad = body(be, &dpred, t_dec * p);
        check_grad("masked mse", &pred, &grad, 100, 1e-2, 1e-3, objective);
        for visible in [1, 4] {
            assert!(
                grad[visible * p..(visible + 1) * p]
                    .iter()
                    .all(|&g| g == 0.0),
                "visible row {visible} has a gradient"
            );
        }
        let mut scaled = up(be, &vec![0.0; t_dec * p]);
        be.masked_mse_backward(
            vm(&mut scaled),
            v(&up(be, &pred)),
            v(&up(be, &target)),
            v(&rows),
            t_dec,
            m,
            p,
            norm_pix,
            4.0,
        );
        for (s, g) in body(be, &scaled, t_dec * p).iter().zip(&grad) {
            assert!(
                (s - 4.0 * g).abs() <= 1e-6 * g.abs().max(1.0),
                "loss_scale is not applied linearly"
            );
        }
    }
}

fn mean_pool_gradient_matches_finite_differences_on<B: Backend>(be: &B) {
    let c = 5;
    // Ragged sequences, one of them empty.
    let cu = up_idx(be, &[0, 3, 3, 4, 9]);
    let (seqs, t) = (4, 9);
    let mut rng = Rng::new(21);
    let (x, r) = (rng.vec(t * c, 1.0), rng.vec(seqs * c, 1.0));
    let objective = |x: &[f32]| {
        let mut out = up(be, &vec![0.0; seqs * c]);
        be.mean_pool_forward(vm(&mut out), v(&up(be, x)), v(&cu), seqs, c);
        dot(&body(be, &out, seqs * c), &r)
    };
    let start = rng.vec(t * c, 1.0);
    let mut dx = up(be, &start);
    be.mean_pool_backward(vm(&mut dx), v(&up(be, &r)), v(&cu), seqs, t, c);
    check_grad(
        "mean pool",
        &x,
        &added(&down(be, &dx, start.len()), &start),
        100,
        1e-2,
        1e-3,
        objective,
    );
    // The empty sequence pools to an exact zero row.
    let mut out = up(be, &vec![7.0; seqs * c]);
    be.mean_pool_forward(vm(&mut out), v(&up(be, &x)), v(&cu), seqs, c);
    assert!(body(be, &out, seqs * c)[c..2 * c].iter().all(|&o| o == 0.0));
}

fn cross_entropy_gradient_matches_finite_differences_on<B: Backend>(be: &B) {
    let (n, k) = (6, 4);
    let label_values = [0u32, 3, 1, 1, 2, 3];
    let labels = up_idx(be, &label_values);
    let mut rng = Rng::new(22);
    let logits = rng.vec(n * k, 3.0);
    let objective = |x: &[f32]| {
        let mut loss = up(be, &[0.0]);
        be.cross_entropy_forward(vm(&mut loss), v(&up(be, x)), v(&labels), n, k);
        body(be, &loss, 1)[0] as f64
    };
    let mut d = up(be, &rng.vec(n * k, 5.0));
    be.cross_entropy_backward(vm(&mut d), v(&up(be, &logits)), v(&labels), n, k, 1.0);
    let grad = body(be, &d, n * k);
    check_grad("cross entropy", &logits, &grad, 100, 1e-2, 1e-3, objective);
    // Against the textbook formula, and with huge logits (no overflow).
    let want: f64 = (0..n)
        .map(|i| {
            let row = &logits[i * k..(i + 1) * k];
            let z: f64 = row.iter().map(|&x| (x as f64).exp()).sum();
            z.ln() - row[label_values[i] as usize] as f64
        })
        .sum::<f64>()
        / n as f64;
    assert!((objective(&logits) - want).abs() < 1e-6 * want.abs().max(1.0));
    let big: Vec<f32> = logits.iter().map(|x| x * 1e3).collect();
    assert!(objective(&big).is_finite());
}

fn bce_gradient_matches_finite_differences_on<B: Backend>(be: &B) {
    let (n, k) = (5, 3);
    let mut rng = Rng::new(23);
    let logits = rng.vec(n * k, 3.0);
    let targets: Vec<f32> = (0..n * k)
        .map(|i| ((i * 5) % 3 == 0) as u8 as f32)
        .collect();
    let tb = up(be, &targets);
    let objective = |x: &[f32]| {
        let mut loss = up(be, &[0.0]);
        be.bce_forward(vm(&mut loss), v(&up(be, x)), v(&tb), n, k);
        body(be, &loss, 1)[0] as f64
    };
    let mut d = up(be, &rng.vec(n * k, 5.0));
    be.bce_backward(vm(&mut d), v(&up(be, &logits)), v(&tb), n, k, 1.0);
    let grad = body(be, &d, n * k);
    check_grad("bce", &logits, &grad, 100, 1e-2, 1e-3, objective);
    let want: f64 = logits
        .iter()
        .zip(&targets)
        .map(|(&x, &y)| {
            let s = 1.0 / (1.0 + (-(x as f64)).exp());
            -(y as f64 * s.ln() + (1.0 - y as f64) * (1.0 - s).ln())
        })
        .sum::<f64>()
        / (n * k) as f64;
    assert!((objective(&logits) - want).abs() < 1e-6 * want.abs().max(1.0));
    let big: Vec<f32> = logits.iter().map(|x| x * 1e3).collect();
    assert!(objective(&big).is_finite());
    // loss_scale scales the gradient linearly.
    let mut d2 = up(be, &vec![0.0; n * k]);
    be.bce_backward(vm(&mut d2), v(&up(be, &logits)), v(&tb), n, k, 3.0);
    for (a, b) in body(be, &d2, n * k).iter().zip(&grad) {
        assert!((a - 3.0 * b).abs() <= 1e-6 * b.abs().max(1.0));
    }
}

on_every_backend! {
    matmul_gradients_match_finite_differences => matmul_gradients_match_finite_differences_on,
    layernorm_gradients_match_finite_differences => layernorm_gradients_match_finite_differences_on,
    gelu_gradient_matches_finite_differences => gelu_gradient_matches_finite_differences_on,
    attention_gradient_matches_finite_differences_on_packed_sequences => attention_gradient_matches_finite_differences_on_packed_sequences_on,
    attention_gradient_matches_finite_differences_across_query_tiles => attention_gradient_matches_finite_differences_across_query_tiles_on,
    lead_embedding_gradient_matches_finite_differences => lead_embedding_gradient_matches_finite_differences_on,
    mask_scatter_gradients_match_finite_differences => mask_scatter_gradients_match_finite_differences_on,
    masked_mse_gradient_matches_finite_differences => masked_mse_gradient_matches_finite_differences_on,
    mean_pool_gradient_matches_finite_differences => mean_pool_gradient_matches_finite_differences_on,
    cross_entropy_gradient_matches_finite_differences => cross_entropy_gradient_matches_finite_differences_on,
    bce_gradient_matches_finite_differences => bce_gradient_matches_finite_differences_on,
}
