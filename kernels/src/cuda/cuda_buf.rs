//! [`CudaBuf`]: a buffer of the CUDA backend, f32 or, for the matrix-product operands of a bf16
//! backend (`Backend::alloc_operand`), bf16 bits. Every op but the GEMMs and the kernels that
//! write operands takes f32 buffers only (the kernel backend checks).

use cudarc::driver::CudaSlice;

/// A device buffer of f32 elements, or of bf16 elements (the bits, 2 bytes each).
pub enum CudaBuf {
    F32(CudaSlice<f32>),
    Bf16(CudaSlice<u16>),
}

impl CudaBuf {
    /// The f32 storage (gradients, parameters, activations other than operands). Panics on a
    /// bf16 buffer: that is a programming error.
    pub fn f32(&self) -> &CudaSlice<f32> {
        match self {
            CudaBuf::F32(s) => s,
            CudaBuf::Bf16(_) => panic!("an f32 buffer was expected, got bf16 operand storage"),
        }
    }

    /// As [`CudaBuf::f32`], writable.
    pub fn f32_mut(&mut self) -> &mut CudaSlice<f32> {
        match self {
            CudaBuf::F32(s) => s,
            CudaBuf::Bf16(_) => panic!("an f32 buffer was expected, got bf16 operand storage"),
        }
    }
}
