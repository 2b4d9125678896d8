//! Times the CPU backend's linear layer (forward and backward) on every linear shape of the
//! `tiny` preset at batch 32 (encoder T = 2688, D = 192; decoder T = 11520, D = 256), on the
//! current rayon pool: `cargo run --release -p ecgfm-kernels --example linear [THREADS]`.
//! Each figure is the fastest of a few runs, so other work on the machine inflates it less.

use ecgfm_kernels::{Backend, CpuBackend};
use std::time::Instant;

fn best_ms(mut f: impl FnMut()) -> f64 {
    f();
    (0..3)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::INFINITY, f64::min)
}

fn filled(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 500.0)
        .collect()
}

/// (forward ms, backward ms) of one linear layer out (t, oc) = inp (t, c) @ weight^T + bias.
fn time_linear(be: &CpuBackend, t: usize, c: usize, oc: usize) -> (f64, f64) {
    let (inp, weight, dout) = (filled(t * c), filled(oc * c), filled(t * oc));
    let bias = filled(oc);
    let (mut out, mut dinp, mut grads) = (be.alloc(t * oc), be.alloc(t * c), be.alloc(oc * c + oc));
    let fwd = best_ms(|| {
        be.matmul_forward(
            (&mut out).into(),
            (&inp).into(),
            (&weight).into(),
            Some((&bias).into()),
            t,
            c,
            oc,
        )
    });
    let bwd = best_ms(|| {
        be.matmul_backward(
            Some((&mut dinp).into()),
            (&mut grads).into(),
            Some(oc * c),
            (&dout).into(),
            (&inp).into(),
            (&weight).into(),
            t,
            c,
            oc,
        )
    });
    (fwd, bwd)
}

fn main() {
    let threads = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("THREADS must be a number"))
        .unwrap_or(2);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool");
    let be = CpuBackend::new();
    let shapes = [
        ("enc qkv", 2688, 192, 576),
        ("enc proj", 2688, 192, 192),
        ("enc fc1", 2688, 192, 768),
        ("enc fc2", 2688, 768, 192),
        ("dec qkv", 11520, 256, 768),
        ("dec proj", 11520, 256, 256),
        ("dec fc1", 11520, 256, 1024),
        ("dec fc2", 11520, 1024, 256),
    ];
    println!("{threads} threads");
    let (mut total_fwd, mut total_bwd) = (0.0, 0.0);
    for (name, t, c, oc) in shapes {
        let (fwd, bwd) = pool.install(|| time_linear(&be, t, c, oc));
        let flops = 2.0 * (t * c * oc) as f64;
        println!(
            "{name:9} t={t:5} c={c:4} oc={oc:4}: fwd {fwd:7.2} ms ({:5.1} GFLOP/s), bwd {bwd:7.2} ms ({:5.1} GFLOP/s)",
            flops / fwd / 1e6,
            2.0 * flops / bwd / 1e6
        );
        let blocks = if t == 2688 { 12.0 } else { 4.0 };
        total_fwd += blocks * fwd;
        total_bwd += blocks * bwd;
    }
    println!(
        "per step (12 encoder + 4 decoder blocks): fwd {total_fwd:.0} ms, bwd {total_bwd:.0} ms"
    );
}
