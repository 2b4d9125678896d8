//! Micro-benchmark helpers for `ecgfm bench`: the SGEMM throughput a backend reaches on the
//! linear-layer shape out (m, n) = inp (m, k) @ weight (n, k)^T.

use crate::backend::{Backend, View, ViewMut};
use std::time::Instant;

/// GFLOP/s of the fastest of `iters` timed `matmul_forward` calls of shape (m, k) x (n, k)^T,
/// after one warm-up call (the minimum is robust to other work on a shared machine). Inputs are
/// a fixed deterministic pattern; counts 2 m n k flops per call.
pub fn sgemm_gflops<B: Backend>(backend: &B, m: usize, n: usize, k: usize, iters: usize) -> f64 {
    let pattern = |len: usize, salt: usize| -> Vec<f32> {
        (0..len)
            .map(|i| (((i * 7919 + salt) % 1000) as f32 - 500.0) / 1000.0)
            .collect()
    };
    let mut inp = backend.alloc(m * k);
    let mut weight = backend.alloc(n * k);
    let mut out = backend.alloc(m * n);
    backend.upload(&pattern(m * k, 1), ViewMut::from(&mut inp));
    backend.upload(&pattern(n * k, 2), ViewMut::from(&mut weight));
    let run = |out: &mut B::Buf| {
        backend.matmul_forward(
            out.into(),
            View::from(&inp),
            View::from(&weight),
            None,
            m,
            k,
            n,
        );
    };
    run(&mut out);
    let mut probe = [0f32; 1];
    backend.download(View::from(&out), &mut probe);
    let mut best = f64::INFINITY;
    for _ in 0..iters.max(1) {
        let start = Instant::now();
        run(&mut out);
        backend.download(View::from(&out), &mut probe);
        best = best.min(start.elapsed().as_secs_f64());
    }
    2.0 * (m * n * k) as f64 / best / 1e9
}
