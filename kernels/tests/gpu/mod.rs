//! The GPU of the kernel tests: a `CudaBackend` on device 0, or `None` after a skip message when
//! none is usable (a failure instead when ECGFM_REQUIRE_GPU is set, as on the GPU check).

use ecgfm_kernels::CudaBackend;

pub fn cuda_backend() -> Option<CudaBackend> {
    CudaBackend::new(0)
        .map_err(|e| ecgfm_test_support::skip_without_gpu(&e.to_string()))
        .ok()
}
