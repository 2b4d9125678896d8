//! The CUDA kernels, compiled for the host and launched by the CUDA backend's own launch code,
//! against the CPU backend: the shared suite of kernels/tests/against_cpu.

#[macro_use]
#[path = "../../tests/against_cpu/mod.rs"]
mod against_cpu;

against_cpu_tests!(Some(ecgfm_cuda_host::host_backend()));
