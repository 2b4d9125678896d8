//! Token, loss and classification-head ops against the CPU backend: patch gather, lead/position
//! embeddings, mask-token scatter (forward and backward), the masked MSE (raw and norm-pix, no
//! masked row), mean pooling over ragged sequences with an empty one (and over more sequences than
//! one launch's grid.y holds), cross-entropy and BCE.

use super::common::{assert_bits, assert_close, cu_seqlens, down, up, up_idx, v, vm, Rng, PAD};
use ecgfm_kernels::{Backend, CpuBackend, MASKED_ROW};

fn token_outputs<B: Backend>(be: &B) -> Vec<Vec<f32>> {
    let (batch, leads, samples, patch, d, n_pos) = (2, 3, 20, 4, 7, 5);
    let mut rng = Rng::new(11);
    let x = up(be, &rng.vec(batch * leads * samples, 1.0));
    // 300 tokens: crosses the 256-row chunks; leads repeat in runs, as in the model.
    let t = 300;
    let tokens: Vec<u32> = (0..t)
        .flat_map(|r| {
            [
                (r % batch) as u32,
                ((r / 7) % leads) as u32,
                (r % n_pos) as u32,
            ]
        })
        .collect();
    let tokens = up_idx(be, &tokens);
    let mut patches = up(be, &vec![0.0; t * patch]);
    be.gather_patches(
        vm(&mut patches),
        v(&x),
        v(&tokens),
        t,
        leads,
        samples,
        patch,
    );
    let (lead, pos) = (
        up(be, &rng.vec(leads * d, 1.0)),
        up(be, &rng.vec(n_pos * d, 1.0)),
    );
    let mut h = up(be, &rng.vec(t * d, 1.0));
    be.add_lead_pos_forward(vm(&mut h), v(&lead), v(&pos), v(&tokens), t, d);
    let dh = up(be, &rng.vec(t * d, 1.0));
    let mut dlead = up(be, &rng.vec(leads * d, 1.0));
    be.add_lead_pos_backward(vm(&mut dlead), v(&dh), v(&tokens), t, d, leads);
    // Mask scatter: 300 decoder rows, every third masked, the others a permutation of 200
    // encoder rows.
    let t_dec = 300;
    let t_enc = 200;
    let src: Vec<u32> = (0..t_dec)
        .map(|r| {
            if r % 3 == 1 {
                MASKED_ROW
            } else {
                ((r / 3 * 2 + r % 3 / 2) * 37 % t_enc) as u32
            }
        })
        .collect();
    let src = up_idx(be, &src);
    let (z, mask) = (up(be, &rng.vec(t_enc * d, 1.0)), up(be, &rng.vec(d, 1.0)));
    let mut dec = up(be, &vec![0.0; t_dec * d]);
    be.mask_scatter_forward(vm(&mut dec), v(&z), v(&mask), v(&src), t_dec, d);
    let dout = up(be, &rng.vec(t_dec * d, 1.0));
    let (mut dz, mut dmask) = (up(be, &rng.vec(t_enc * d, 1.0)), up(be, &rng.vec(d, 1.0)));
    be.mask_scatter_backward(vm(&mut dz), vm(&mut dmask), v(&dout), v(&src), t_dec, d);
    vec![
        down(be, &patches, t * patch),
        down(be, &h, t * d),
        down(be, &dlead, leads * d),
        down(be, &dec, t_dec * d),
        down(be, &dz, t_enc * d),
        down(be, &dmask, d),
    ]
}

pub fn token_gathers_and_scatters<B: Backend>(be: &B) {
    let (got, want) = (token_outputs(be), token_outputs(&CpuBackend::new()));
    let names = ["patches", "h", "decoder rows", "dz"];
    for (name, i) in names.iter().zip([0, 1, 3, 4]) {
        // Copies and single additions.
        assert_bits(name, &got[i], &want[i]);
    }
    // The lead gradient sums 100 rows a lead and the mask-token gradient 100 rows, in f64 over
    // row chunks (the CPU: in f32, in row order).
    assert_close("dlead", &got[2], &want[2], 1e-5);
    assert_close("dmask_token", &got[5], &want[5], 1e-5);
}

fn loss_outputs<B: Backend>(be: &B, m: usize, norm_pix: bool) -> Vec<Vec<f32>> {
    let (t_dec, p) = (m + 5, 9);
    let mut rng = Rng::new(m as u64 + norm_pix as u64);
    let pred = up(be, &rng.vec(t_dec * p, 1.0));
    let target = up(be, &rng.vec(m * p, 3.0));
    let rows: Vec<u32> = (0..m as u32).map(|i| (i * 7 + 2) % t_dec as u32).collect();
    let rows = up_idx(be, &rows);
    let mut loss = up(be, &[0.0]);
    be.masked_mse_forward(
        vm(&mut loss),
        v(&pred),
        v(&target),
        v(&rows),
        m,
        p,
        norm_pix,
    );
    let mut dpred = up(be, &rng.vec(t_dec * p, 5.0));
    be.masked_mse_backward(
        vm(&mut dpred),
        v(&pred),
        v(&target),
        v(&rows),
        t_dec,
        m,
        p,
        norm_pix,
        3.0,
    );
    vec![down(be, &loss, 1), down(be, &dpred, t_dec * p)]
}

pub fn masked_mse<B: Backend>(be: &B) {
    // m = 0: loss 0 and an all-zero gradient; 300 rows cross the CPU's 64-row partials.
    for m in [0, 1, 4, 300] {
        for norm_pix in [false, true] {
            let got = loss_outputs(be, m, norm_pix);
            let want = loss_outputs(&CpuBackend::new(), m, norm_pix);
            assert_close(
                &format!("loss m={m} norm_pix={norm_pix}"),
                &got[0],
                &want[0],
                1e-6,
            );
            assert_bits(
                &format!("dpred m={m} norm_pix={norm_pix}"),
                &got[1],
                &want[1],
            );
        }
    }
}

fn head_outputs<B: Backend>(be: &B) -> Vec<Vec<f32>> {
    let c = 5;
    let lengths = [3, 0, 1, 70, 2];
    let cu = cu_seqlens(&lengths);
    let (seqs, t) = (lengths.len(), *cu.last().unwrap() as usize);
    let cu = up_idx(be, &cu);
    let mut rng = Rng::new(21);
    let x = up(be, &rng.vec(t * c, 1.0));
    let mut pooled = up(be, &vec![7.0; seqs * c]);
    be.mean_pool_forward(vm(&mut pooled), v(&x), v(&cu), seqs, c);
    let dpool = up(be, &rng.vec(seqs * c, 1.0));
    let mut dx = up(be, &rng.vec(t * c, 1.0));
    be.mean_pool_backward(vm(&mut dx), v(&dpool), v(&cu), seqs, t, c);
    let (n, k) = (70, 4);
    let logits = up(be, &rng.vec(n * k, 3.0));
    let labels = up_idx(
        be,
        &(0..n as u32).map(|i| i * 5 % k as u32).collect::<Vec<_>>(),
    );
    let mut ce = up(be, &[0.0]);
    be.cross_entropy_forward(vm(&mut ce), v(&logits), v(&labels), n, k);
    let mut dce = up(be, &rng.vec(n * k, 1.0));
    be.cross_entropy_backward(vm(&mut dce), v(&logits), v(&labels), n, k, 2.0);
    let targets = up(
        be,
        &(0..n * k)
            .map(|i| (i % 3 == 0) as u8 as f32)
            .collect::<Vec<_>>(),
    );
    let mut bce = up(be, &[0.0]);
    be.bce_forward(vm(&mut bce), v(&logits), v(&targets), n, k);
    let mut dbce = up(be, &rng.vec(n * k, 1.0));
    be.bce_backward(vm(&mut dbce), v(&logits), v(&targets), n, k, 2.0);
    vec![
        down(be, &pooled, seqs * c),
        down(be, &dx, t * c),
        down(be, &ce, 1),
        down(be, &dce, n * k),
        down(be, &bce, 1),
        down(be, &dbce, n * k),
    ]
}

pub fn classification_heads<B: Backend>(be: &B) {
    let (got, want) = (head_outputs(be), head_outputs(&CpuBackend::new()));
    let names = [
        "mean pool",
        "mean pool dinp",
        "cross-entropy",
        "cross-entropy grad",
        "bce",
        "bce grad",
    ];
    for (name, (g, w)) in names.iter().zip(got.iter().zip(&want)) {
        assert_close(name, g, w, 1e-6);
    }
    // The empty sequence pools to an exact zero row.
    assert!(got[0][PAD + 5..PAD + 10].iter().all(|&x| x == 0.0));
}

/// Mean pooling of `seqs` sequences of 0 to 3 rows of width `c` on `be`.
fn pooled<B: Backend>(be: &B, seqs: usize, c: usize) -> Vec<f32> {
    let lengths: Vec<usize> = (0..seqs).map(|b| b * 7 % 4).collect();
    let cu = cu_seqlens(&lengths);
    let t = *cu.last().unwrap() as usize;
    let (cu, x) = (up_idx(be, &cu), up(be, &Rng::new(5).vec(t * c, 1.0)));
    let mut out = up(be, &vec![7.0; seqs * c]);
    be.mean_pool_forward(vm(&mut out), v(&x), v(&cu), seqs, c);
    down(be, &out, seqs * c)
}

/// Mean pooling of more sequences than one launch's grid.y holds (65,535): every pooled row of
/// 70,000 sequences against the CPU's, the empty ones exact zeros.
pub fn mean_pool_many_sequences<B: Backend>(be: &B) {
    let (seqs, c) = (70_000, 2);
    let got = pooled(be, seqs, c);
    assert_close(
        "mean pool, 70,000 sequences",
        &got,
        &pooled(&CpuBackend::new(), seqs, c),
        1e-6,
    );
    // Sequence 69,996 (b * 7 % 4 = 0 rows; in the second launch) pools to an exact zero row.
    assert_eq!(&got[PAD + 69_996 * c..][..c], &[0.0; 2]);
}
