//! ecgfm-kernels: the numeric backend of the ecgfm ST-MEM masked autoencoder.
//!
//! - [`backend`]: the [`Backend`] trait, every op the model in docs/model.md needs (linear,
//!   layer norm, GELU, packed varlen attention, patch/token gathers, masked MSE loss, AdamW,
//!   classification heads),
//!   over opaque device buffers addressed by [`View`] / [`ViewMut`] (buffer + element offset).
//!   Read its module docs first: forward ops overwrite; backward ops accumulate into parameter
//!   gradients and residual or scatter gradients, and overwrite the gradient that starts a branch.
//! - [`cpu`]: [`CpuBackend`], the rayon + `gemm`-crate implementation; bitwise deterministic
//!   whatever the thread count. One file per op under `src/cpu/`.
//! - [`cuda`]: [`CudaBackend`], hand-written CUDA kernels (`kernels/cuda/*.cu`, compiled at first
//!   use by NVRTC for the device, cached on disk) and cuBLAS GEMMs, through `cudarc` with dynamic
//!   loading: the crate builds and the CPU backend runs with no CUDA installed;
//!   `CudaBackend::new` says what is missing instead. `kernels/cuda-host` runs the same kernels on
//!   the CPU (g++ and a compatibility header) to test them without a GPU.
//! - [`precision`]: [`Precision`], fp32 or bf16 matrix products (bf16 operands, f32 sums), and
//!   the exact places a bf16 backend rounds.
//! - [`bench`](mod@bench): [`sgemm_gflops`] for `ecgfm bench`.
//!
//! Depends on `gemm` (SGEMM micro-kernels), `rayon` (threads), `cudarc` and `libloading` (the
//! probe), `thiserror` and `tracing`; the tests' f64 references use `libm`. The model itself lives in the `ecgfm-trainer` crate; tests of every
//! op's gradient are in `kernels/tests/`.

pub mod backend;
pub mod bench;
pub mod cpu;
pub mod cuda;
pub mod precision;

pub use backend::{AdamW, AttnDims, Backend, NormOut, ResidualIn, View, ViewMut, MASKED_ROW};
pub use bench::sgemm_gflops;
pub use cpu::CpuBackend;
pub use cuda::{CudaBackend, CudaError};
pub use precision::{bf16_attention_head, round_bf16, Precision};

/// `bytes` in GiB (2^30 bytes), for the messages and tables that report memory.
pub fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}
