//! The CUDA kernels, compiled for the host and launched by the CUDA backend's own launch code,
//! against the CPU backend: the shared suite of kernels/tests/against_cpu.

#[macro_use]
#[path = "../../tests/against_cpu/mod.rs"]
mod against_cpu;

against_cpu_tests!(Some(ecgfm_cuda_host::host_backend()));

/// The linear layer's forward on bf16 storage through the GEMM epilogue (the host twin of
/// cuBLASLt's; on a GPU: kernels/tests/cuda_against_cpu.rs) against the CPU.
#[test]
fn bias_epilogue_matches_the_cpu() {
    let be = ecgfm_cuda_host::host_backend().with_precision(ecgfm_kernels::Precision::Bf16);
    against_cpu::operands::bias_epilogue(&be);
}

/// The block threads switch as this build chose (build.rs: x86-64's own switch, or swapcontext
/// on other hosts and with `ECGFM_HOST_FIBERS=ucontext`), so a run of these tests under that
/// variable has tested the other hosts' path.
#[test]
fn the_runtime_switches_block_threads_as_built() {
    assert_eq!(ecgfm_cuda_host::fibers(), env!("ECGFM_HOST_FIBERS_CHOSEN"));
}
