//! Prints the SGEMM GFLOP/s the CPU backend reaches on linear-layer shapes of the presets
//! (`cargo run --release -p ecgfm-kernels --example sgemm`).

use ecgfm_kernels::{sgemm_gflops, CpuBackend};

fn main() {
    let backend = CpuBackend::new();
    for (m, n, k) in [
        (4096, 192, 192),
        (4096, 576, 192),
        (4096, 768, 768),
        (4096, 3072, 768),
    ] {
        let iters = (2e10 / (2.0 * (m * n * k) as f64)).ceil() as usize;
        let gflops = sgemm_gflops(&backend, m, n, k, iters);
        println!("sgemm m={m} n={n} k={k}: {gflops:.1} GFLOP/s ({iters} iters)");
    }
}
