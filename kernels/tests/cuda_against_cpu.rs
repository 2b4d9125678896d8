//! `CudaBackend` against the CPU backend, op by op (the suite of tests/against_cpu), on a GPU.
//! Skips with a message where no GPU is usable (CI runs the same suite on the host harness:
//! kernels/cuda-host); fails instead when ECGFM_REQUIRE_GPU is set (scripts/gpu-check.sh).

#[macro_use]
mod against_cpu;

against_cpu_tests!(against_cpu::base::cuda_backend());
