//! `CudaBackend` against the CPU backend, op by op (the suite of tests/against_cpu), on a GPU.
//! Skips with a message where no GPU is usable (CI runs the same suite on the host harness:
//! kernels/cuda-host); fails instead when ECGFM_REQUIRE_GPU is set (scripts/gpu-check.sh).

#[macro_use]
mod against_cpu;

use ecgfm_kernels::Precision;

against_cpu_tests!(against_cpu::base::cuda_backend());

/// A bf16 linear layer whose input is in bf16 storage adds its f32 bias in cuBLASLt's epilogue
/// (bf16 A and B, D in f32 or bf16, bias type f32): within bf16 tolerance of the CPU, and the
/// epilogue really ran (cuBLASLt fused at least one shape), so a silent fallback to the bias
/// pass cannot pass for it. The shapes cuBLASLt fused and refused are printed.
#[test]
fn cublaslt_bias_epilogue_with_an_f32_bias_matches_the_cpu() {
    let Some(be) = against_cpu::base::cuda_backend() else {
        return;
    };
    let be = be.with_precision(Precision::Bf16);
    against_cpu::operands::bias_epilogue(&be);
    let (fused, refused) = be.device().gemm_epilogue_shapes();
    println!("cuBLASLt bias epilogue: {fused} shapes fused, {refused} refused");
    assert!(
        fused > 0,
        "cuBLASLt fused no shape ({refused} refused): the bias passes ran"
    );
}
