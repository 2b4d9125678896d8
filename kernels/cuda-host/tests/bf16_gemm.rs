//! The bf16 linear layer of the kernel backend (the host harness's GEMM rounding its operands as
//! cuBLAS's bf16 tensor-core compute type does) against the CPU backend's bf16 emulation.

#[macro_use]
#[path = "../../tests/against_cpu/mod.rs"]
mod against_cpu;

use ecgfm_kernels::Precision;

#[test]
fn bf16_matmul_matches_the_cpu_emulation() {
    let be = ecgfm_cuda_host::host_backend().with_precision(Precision::Bf16);
    against_cpu::dense::matmul(&be);
}
