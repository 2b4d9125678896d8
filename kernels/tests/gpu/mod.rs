//! The GPU of the kernel tests: a `CudaBackend` on device 0, or `None` after a skip message when
//! none is usable (a failure instead when ECGFM_REQUIRE_GPU is set, as on the GPU check).

#![allow(dead_code)] // not every test binary uses every helper

use ecgfm_kernels::CudaBackend;

pub fn cuda_backend() -> Option<CudaBackend> {
    match CudaBackend::new(0) {
        Ok(be) => Some(be),
        Err(e) => {
            assert!(
                std::env::var_os("ECGFM_REQUIRE_GPU").is_none(),
                "ECGFM_REQUIRE_GPU is set but CUDA is not usable: {e}"
            );
            eprintln!("skipping the CUDA backend: {e}");
            None
        }
    }
}
