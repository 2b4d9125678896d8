//! ecgfm-kernels: the numeric backend of the ecgfm ST-MEM masked autoencoder.
//!
//! - [`backend`]: the [`Backend`] trait, every op the model in docs/model.md needs (linear,
//!   layer norm, GELU, packed varlen attention, patch/token gathers, masked MSE loss, AdamW),
//!   over opaque device buffers addressed by [`View`] / [`ViewMut`] (buffer + element offset).
//!   Read its module docs first: forward ops overwrite, backward ops accumulate.
//! - [`cpu`]: [`CpuBackend`], the rayon + `gemm`-crate implementation; bitwise deterministic
//!   whatever the thread count. One file per op under `src/cpu/`.
//! - [`bench`]: [`sgemm_gflops`] for `ecgfm bench`.
//!
//! Depends on `gemm` (SGEMM micro-kernels), `rayon` (threads) and `libm` (erf). The model itself
//! lives in the `ecgfm-trainer` crate; tests of every op's gradient are in `kernels/tests/`.

pub mod backend;
pub mod bench;
pub mod cpu;

pub use backend::{AdamW, AttnDims, Backend, View, ViewMut, MASKED_ROW};
pub use bench::sgemm_gflops;
pub use cpu::CpuBackend;
