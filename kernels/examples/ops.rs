//! Per-op timings of the CPU backend at the `tiny` preset's encoder shapes (B = 32 samples of
//! 12 leads x 7 visible patches, D = 192, H = 3): `cargo run --release -p ecgfm-kernels --example ops`.
//! Also times the decoder's attention (360 tokens per sample). Each figure is the fastest of a
//! few runs, so other work on the machine inflates it less.

use ecgfm_kernels::{AttnDims, Backend, CpuBackend};
use std::time::Instant;

fn best_ms(mut f: impl FnMut()) -> f64 {
    f();
    (0..5)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let be = CpuBackend::new();
    let (seqs, d, heads) = (32usize, 192usize, 3usize);
    let t = seqs * 84;
    let m = 4 * d;
    let filled = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 500.0)
            .collect()
    };
    let cu: Vec<u32> = (0..=seqs as u32).map(|b| b * 84).collect();
    let dims = AttnDims {
        seqs,
        tokens: t,
        width: d,
        heads,
    };
    let (x, w_fc1, qkv, dout) = (
        filled(t * d),
        filled(m * d),
        filled(t * 3 * d),
        filled(t * d),
    );
    let (ln_w, ln_b) = (filled(d), filled(d));
    let (mut h, mut big, mut big2) = (be.alloc(t * d), be.alloc(t * m), be.alloc(t * m));
    let (mut mean, mut rstd, mut lse) = (be.alloc(t), be.alloc(t), be.alloc(t * heads));
    let (mut grads, mut dqkv, mut dx) = (be.alloc(m * d + m), be.alloc(t * 3 * d), be.alloc(t * d));

    let fc1 = best_ms(|| {
        be.matmul_forward(
            (&mut big).into(),
            (&x).into(),
            (&w_fc1).into(),
            None,
            t,
            d,
            m,
        )
    });
    let fc1_back = best_ms(|| {
        be.matmul_backward(
            Some((&mut dx).into()),
            (&mut grads).into(),
            Some(m * d),
            (&big).into(),
            (&x).into(),
            (&w_fc1).into(),
            t,
            d,
            m,
        )
    });
    let gelu = best_ms(|| be.gelu_forward((&mut big2).into(), (&big).into(), t * m));
    let gelu_back = best_ms(|| {
        be.gelu_backward(
            (&mut big2).into(),
            None,
            ((&big).into(), (&big).into()),
            t,
            m,
        )
    });
    let ln = best_ms(|| {
        be.layernorm_forward(
            (&mut h).into(),
            (&mut mean).into(),
            (&mut rstd).into(),
            (&x).into(),
            (&ln_w).into(),
            (&ln_b).into(),
            t,
            d,
        )
    });
    let ln_back = best_ms(|| {
        be.layernorm_backward(
            (&mut dx).into(),
            (&mut grads).into(),
            d,
            (&dout).into(),
            (&x).into(),
            (&ln_w).into(),
            (&mean).into(),
            (&rstd).into(),
            t,
            d,
        )
    });
    let attn = best_ms(|| {
        be.attention_forward(
            (&mut h).into(),
            (&mut lse).into(),
            (&qkv).into(),
            (&cu).into(),
            dims,
        )
    });
    let attn_back = best_ms(|| {
        be.attention_backward(
            (&mut dqkv).into(),
            (&dout).into(),
            (&qkv).into(),
            (&h).into(),
            (&lse).into(),
            (&cu).into(),
            dims,
        )
    });
    // The decoder's attention: every sample has 12 leads x 30 patches, Dd = 256, Hd = 4.
    let (t_dec, dd) = (seqs * 360, 256);
    let dec_dims = AttnDims {
        seqs,
        tokens: t_dec,
        width: dd,
        heads: 4,
    };
    let dec_cu: Vec<u32> = (0..=seqs as u32).map(|b| b * 360).collect();
    let (dec_qkv, dec_dout) = (filled(t_dec * 3 * dd), filled(t_dec * dd));
    let (mut dec_out, mut dec_lse, mut dec_dqkv) = (
        be.alloc(t_dec * dd),
        be.alloc(t_dec * 4),
        be.alloc(t_dec * 3 * dd),
    );
    let dec_attn = best_ms(|| {
        be.attention_forward(
            (&mut dec_out).into(),
            (&mut dec_lse).into(),
            (&dec_qkv).into(),
            (&dec_cu).into(),
            dec_dims,
        )
    });
    let dec_attn_back = best_ms(|| {
        be.attention_backward(
            (&mut dec_dqkv).into(),
            (&dec_dout).into(),
            (&dec_qkv).into(),
            (&dec_out).into(),
            (&dec_lse).into(),
            (&dec_cu).into(),
            dec_dims,
        )
    });
    let dec_flops = 4.0 * (seqs * 360 * 360 * dd) as f64;
    let fc1_gflops = 2.0 * (t * d * m) as f64 / fc1 / 1e6;
    println!("T = {t}, D = {d}, M = {m}, H = {heads}");
    println!("fc1 forward      {fc1:8.2} ms ({fc1_gflops:.1} GFLOP/s)");
    println!("fc1 backward     {fc1_back:8.2} ms");
    println!("gelu forward     {gelu:8.2} ms");
    println!("gelu backward    {gelu_back:8.2} ms");
    println!("layernorm fwd    {ln:8.2} ms");
    println!("layernorm bwd    {ln_back:8.2} ms");
    println!("attention fwd    {attn:8.2} ms");
    println!("attention bwd    {attn_back:8.2} ms");
    println!("decoder attention (T = {t_dec}, 360 per sample, Dd = 256, Hd = 4):");
    println!(
        "attention fwd    {dec_attn:8.2} ms ({:.1} GFLOP/s)",
        dec_flops / dec_attn / 1e6
    );
    println!(
        "attention bwd    {dec_attn_back:8.2} ms ({:.1} GFLOP/s)",
        2.0 * dec_flops / dec_attn_back / 1e6
    );
}
