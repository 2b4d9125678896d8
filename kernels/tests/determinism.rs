//! Bitwise determinism: a chain of every op, run on 1-, 2- and 3-thread rayon pools and twice on
//! the same pool, must give identical bits. Sizes cross the parallel tile and chunk boundaries.

mod common;

use common::Rng;
use ecgfm_kernels::{AdamW, Backend, CpuBackend, View, ViewMut, MASKED_ROW};

/// Runs forward and backward of every op on fixed inputs; returns all outputs' bits.
fn run_everything() -> Vec<u32> {
    let be = CpuBackend::new();
    let mut rng = Rng::new(42);
    let (c, heads, p) = (48, 3, 20);
    let lengths = [84usize, 300, 7, 150, 600];
    let (cu, dims) = common::packed(&lengths, c, heads);
    let t = dims.tokens;
    let cu_buf = cu.clone();
    let mut results: Vec<f32> = Vec::new();

    let x = rng.vec(t * c, 1.0);
    let (w_qkv, b_qkv) = (rng.vec(3 * c * c, 0.2), rng.vec(3 * c, 0.1));
    let (ln_w, ln_b) = (rng.vec(c, 1.0), rng.vec(c, 0.5));
    let (mut ln, mut mean, mut rstd) = (be.alloc(t * c), be.alloc(t), be.alloc(t));
    be.layernorm_forward(
        (&mut ln).into(),
        (&mut mean).into(),
        (&mut rstd).into(),
        (&x).into(),
        (&ln_w).into(),
        (&ln_b).into(),
        t,
        c,
    );
    let mut qkv = be.alloc(t * 3 * c);
    be.matmul_forward(
        (&mut qkv).into(),
        (&ln).into(),
        (&w_qkv).into(),
        Some((&b_qkv).into()),
        t,
        c,
        3 * c,
    );
    let (mut att, mut lse) = (be.alloc(t * c), be.alloc(t * heads));
    be.attention_forward(
        (&mut att).into(),
        (&mut lse).into(),
        (&qkv).into(),
        (&cu_buf).into(),
        dims,
    );
    let mut act = be.alloc(t * c);
    be.gelu_forward((&mut act).into(), (&att).into(), t * c);
    let w_pred = rng.vec(p * c, 0.2);
    let mut pred = be.alloc(t * p);
    be.matmul_forward(
        (&mut pred).into(),
        (&act).into(),
        (&w_pred).into(),
        None,
        t,
        c,
        p,
    );
    let rows: Vec<u32> = (0..t as u32).filter(|r| r % 3 != 0).collect();
    let target = rng.vec(rows.len() * p, 2.0);
    let mut loss = be.alloc(1);
    be.masked_mse_forward(
        (&mut loss).into(),
        (&pred).into(),
        (&target).into(),
        (&rows).into(),
        rows.len(),
        p,
        true,
    );
    results.extend_from_slice(&loss);

    let mut dpred = be.alloc(t * p);
    be.masked_mse_backward(
        (&mut dpred).into(),
        (&pred).into(),
        (&target).into(),
        (&rows).into(),
        t,
        rows.len(),
        p,
        true,
        1024.0,
    );
    let (mut dact, mut dw_pred) = (be.alloc(t * c), be.alloc(p * c));
    be.matmul_backward(
        Some((&mut dact).into()),
        (&mut dw_pred).into(),
        None,
        (&dpred).into(),
        (&act).into(),
        (&w_pred).into(),
        t,
        c,
        p,
    );
    let mut datt = be.alloc(t * c);
    be.gelu_backward(
        (&mut datt).into(),
        None,
        ((&att).into(), (&dact).into()),
        t,
        c,
    );
    let mut dqkv = be.alloc(t * 3 * c);
    be.attention_backward(
        (&mut dqkv).into(),
        (&datt).into(),
        (&qkv).into(),
        (&att).into(),
        (&lse).into(),
        (&cu_buf).into(),
        dims,
    );
    let (mut dln, mut dqkv_params) = (be.alloc(t * c), be.alloc(3 * c * c + 3 * c));
    be.matmul_backward(
        Some((&mut dln).into()),
        (&mut dqkv_params).into(),
        Some(3 * c * c),
        (&dqkv).into(),
        (&ln).into(),
        (&w_qkv).into(),
        t,
        c,
        3 * c,
    );
    let (mut dx, mut dln_params) = (be.alloc(t * c), be.alloc(2 * c));
    be.layernorm_backward(
        (&mut dx).into(),
        (&mut dln_params).into(),
        c,
        (&dln).into(),
        (&x).into(),
        (&ln_w).into(),
        (&mean).into(),
        (&rstd).into(),
        t,
        c,
    );

    let tokens: Vec<u32> = (0..t as u32).flat_map(|i| [0, i % 12, i % 30]).collect();
    let mut dlead = be.alloc(12 * c);
    be.add_lead_pos_backward(
        (&mut dlead).into(),
        (&dx).into(),
        (&tokens).into(),
        t,
        c,
        12,
    );
    let src: Vec<u32> = (0..t as u32)
        .map(|i| if i % 4 == 0 { MASKED_ROW } else { i / 2 })
        .collect();
    let (mut dz, mut dmask) = (be.alloc(t * c), be.alloc(c));
    be.mask_scatter_backward(
        (&mut dz).into(),
        (&mut dmask).into(),
        (&dx).into(),
        (&src).into(),
        t,
        c,
    );

    // Classification heads over the packed rows: pool, then both losses and their gradients.
    let seqs = lengths.len();
    let mut pooled = be.alloc(seqs * c);
    be.mean_pool_forward(
        (&mut pooled).into(),
        (&dx).into(),
        (&cu_buf).into(),
        seqs,
        c,
    );
    let labels: Vec<u32> = (0..seqs as u32).map(|i| (i * 7) % c as u32).collect();
    let targets: Vec<f32> = (0..seqs * c).map(|i| (i % 3 == 0) as u8 as f32).collect();
    let (mut ce, mut bce) = (be.alloc(1), be.alloc(1));
    be.cross_entropy_forward(
        (&mut ce).into(),
        (&pooled).into(),
        (&labels).into(),
        seqs,
        c,
    );
    be.bce_forward(
        (&mut bce).into(),
        (&pooled).into(),
        (&targets).into(),
        seqs,
        c,
    );
    results.extend_from_slice(&ce);
    results.extend_from_slice(&bce);
    let (mut dce, mut dbce) = (be.alloc(seqs * c), be.alloc(seqs * c));
    be.cross_entropy_backward(
        (&mut dce).into(),
        (&pooled).into(),
        (&labels).into(),
        seqs,
        c,
        0.5,
    );
    be.bce_backward(
        (&mut dbce).into(),
        (&pooled).into(),
        (&targets).into(),
        seqs,
        c,
        0.5,
    );
    let mut dpool_in = be.alloc(t * c);
    be.mean_pool_backward(
        (&mut dpool_in).into(),
        (&dce).into(),
        (&cu_buf).into(),
        seqs,
        t,
        c,
    );

    let mut sq = be.alloc(1);
    be.sum_squares((&mut sq).into(), (&dqkv_params).into(), 3 * c * c);
    results.extend_from_slice(&sq);
    let mut clipped = dqkv_params.clone();
    be.clip_grad_norm((&mut clipped).into(), 3 * c * c, (&sq).into(), 0.5);
    results.extend_from_slice(&clipped);
    let (mut m, mut v) = (be.alloc(3 * c * c), be.alloc(3 * c * c));
    let mut w = w_qkv.clone();
    let hp = AdamW {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.05,
        step: 1,
    };
    be.adamw(
        ViewMut::from(&mut w),
        View::from(&dqkv_params),
        (&mut m).into(),
        (&mut v).into(),
        3 * c * c,
        &hp,
        true,
    );

    for buf in [
        &pred,
        &dpred,
        &dact,
        &dw_pred,
        &datt,
        &dqkv,
        &dln,
        &dqkv_params,
        &dx,
        &dln_params,
        &dlead,
        &dz,
        &dmask,
        &pooled,
        &dce,
        &dbce,
        &dpool_in,
        &w,
    ] {
        results.extend_from_slice(buf);
    }
    results.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn every_op_is_bitwise_identical_across_thread_counts_and_runs() {
    let in_pool = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool")
            .install(run_everything)
    };
    let one = in_pool(1);
    assert!(one.iter().any(|&b| b != 0), "the chain produced only zeros");
    assert_eq!(one, in_pool(2), "1 thread vs 2 threads");
    assert_eq!(one, in_pool(3), "1 thread vs 3 threads");
    assert_eq!(one, run_everything(), "run to run");
}
