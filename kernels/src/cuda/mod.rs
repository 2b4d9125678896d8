//! The CUDA backend: our own kernels (kernels/cuda/*.cu, one file per concern, forward beside
//! backward) behind the [`Backend`](crate::Backend) trait, GEMMs through cuBLAS (true fp32, or
//! bf16 operands with f32 sums for a bf16 backend).
//!
//! - [`device`]: the [`Device`] trait a kernel backend runs on (buffers, raw addresses, kernel
//!   launches by name, GEMM) and the embedded kernel sources.
//! - [`KernelBackend`] (`backend.rs`): the trait over any device; the launch code of each concern
//!   sits in the file named after its `.cu` (`attention.rs`, `layernorm.rs`, ...), with the
//!   shared geometry and workspace in `launch.rs`.
//! - [`CudaDevice`] (`cuda_device.rs`, cudarc) and [`CudaBackend`] = `KernelBackend<CudaDevice>`:
//!   buffers are [`CudaBuf`] (f32, or bf16 for a bf16 backend's matrix-product operands) /
//!   `CudaSlice<u32>`; `CudaBackend::stream()` is the stream all compute is queued on.
//! - `staging.rs`: page-locked blocks the uploads go through, so an upload queues behind the
//!   running step instead of waiting for it; `input_stream.rs`: the second stream a batch's
//!   signals are copied on while the step before it still computes.
//! - `lt_gemm.rs`: cuBLASLt GEMMs whose epilogue adds a linear layer's bias and rounds its
//!   output to bf16 (`Device::gemm_epilogue`), for bf16 operands in bf16 storage.
//! - `compile.rs`: NVRTC compilation for the device's architecture, cached on disk.
//! - [`ShapeDevice`] (`shape_device.rs`): runs nothing, checks every launch and GEMM against a
//!   GPU's limits and counts the memory allocated: production shapes tested without a GPU, and
//!   a run's GPU memory known before it starts.
//! - [`probe`]: checks for the driver, NVRTC, cuBLAS and a GPU before cudarc is touched, and
//!   returns a [`CudaError`] naming what is missing; [`driver_error`]: the driver's and cuBLAS's
//!   errors in words, with what to do about those a user can act on.
//!
//! The host harness (kernels/cuda-host) runs the same kernels and the same launch code on the
//! CPU, so all of this is tested without a GPU.

mod adamw;
mod attention;
mod attention_bf16;
mod backend;
pub mod compile;
mod cuda_buf;
mod cuda_device;
pub mod device;
pub mod driver_error;
mod elementwise;
mod gelu;
mod heads;
mod input_stream;
mod launch;
mod layernorm;
mod loss;
mod lt_gemm;
mod matmul;
pub mod probe;
mod shape_device;
mod staging;
mod tokens;

pub use backend::KernelBackend;
pub use cuda_buf::CudaBuf;
pub use cuda_device::{CudaDevice, DeviceInfo};
pub use device::{Arg, Device, Gemm, GemmEpilogue, GemmOperands, LaunchDims, Module};
pub use probe::CudaError;
pub use shape_device::{Bf16Gemm, GemmKind, ShapeBuf, ShapeDevice, Signatures};

/// The CUDA backend: our kernels and cuBLAS on one GPU.
pub type CudaBackend = KernelBackend<CudaDevice>;

impl CudaBackend {
    /// The backend on GPU `ordinal`, or why it cannot run (missing driver or libraries, no
    /// GPU, a kernel NVRTC cannot compile). Never panics.
    pub fn new(ordinal: usize) -> Result<Self, CudaError> {
        Ok(KernelBackend::with_device(CudaDevice::new(ordinal)?))
    }

    /// The one stream every op is queued on (work on other streams, e.g. a collective over
    /// these same f32 [`CudaBuf`]s, must be ordered against it).
    pub fn stream(&self) -> &std::sync::Arc<cudarc::driver::CudaStream> {
        self.device().stream()
    }

    /// The CUDA context of the device.
    pub fn context(&self) -> &std::sync::Arc<cudarc::driver::CudaContext> {
        self.device().context()
    }
}
