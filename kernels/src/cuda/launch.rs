//! Launch geometry shared by every op: threads per block, grid sizes for grid-stride and row
//! kernels, the fixed row chunks of the column reductions, the per-op workspace, and the
//! matrix-product operands that may be stored in bf16.

use super::device::{Arg, Device, LaunchDims};
use std::sync::Mutex;

/// Threads per block of the elementwise and row kernels (`BLOCK` in common.cuh).
pub(crate) const BLOCK: u32 = 256;

/// Rows per f64 partial of the column reductions (bias, layer-norm and mask-token gradients).
/// Fixed, so the summation order depends on the shape alone.
pub(crate) const ROWS_PER_CHUNK: usize = 256;

/// Elements per f64 partial of the sum of squares (the CPU backend's chunk).
pub(crate) const SUMSQ_CHUNK: usize = 1 << 14;

/// Most blocks of a grid-stride launch.
const MAX_GRID: usize = 1 << 16;

/// CUDA's limit on grid.y (and grid.z).
pub(crate) const MAX_GRID_Y: usize = 65_535;

/// A grid-stride launch over n elements (None when there is nothing to do).
pub(crate) fn elementwise(n: usize) -> Option<LaunchDims> {
    (n > 0).then(|| LaunchDims {
        grid: (n.div_ceil(BLOCK as usize).min(MAX_GRID) as u32, 1, 1),
        block: BLOCK,
        shared_bytes: 0,
    })
}

/// One thread per item (rows, columns): ceil(n / BLOCK) blocks, `y` in grid.y.
pub(crate) fn per_item(n: usize, y: usize) -> Option<LaunchDims> {
    (n > 0 && y > 0).then(|| LaunchDims {
        grid: (n.div_ceil(BLOCK as usize) as u32, y as u32, 1),
        block: BLOCK,
        shared_bytes: 0,
    })
}

/// A column per thread and rows strided over grid.y: (T, C) row-major kernels that read a
/// per-column vector (a bias) once per thread.
pub(crate) fn columns_by_rows(rows: usize, cols: usize) -> Option<LaunchDims> {
    per_item(cols, rows.min(MAX_GRID_Y))
}

/// One warp per row.
pub(crate) fn warp_per_row(rows: usize) -> Option<LaunchDims> {
    per_item(rows * 32, 1)
}

/// One block reducing f64 values into a device scalar.
pub(crate) fn scalar_reduction() -> LaunchDims {
    LaunchDims {
        grid: (1, 1, 1),
        block: BLOCK,
        shared_bytes: BLOCK * 8,
    }
}

/// Row chunks of a column reduction over `rows` rows.
pub(crate) fn row_chunks(rows: usize) -> usize {
    rows.div_ceil(ROWS_PER_CHUNK)
}

/// The address of a matrix-product operand (`Backend::alloc_operand`) and whether it holds bf16
/// elements (else f32).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Operand {
    pub addr: u64,
    pub bf16: bool,
}

impl Operand {
    pub(crate) fn new(addr: u64, bf16: bool) -> Self {
        Self { addr, bf16 }
    }

    /// The kernel arguments of an operand: the address and the bf16 flag.
    pub(crate) fn args(self) -> [Arg; 2] {
        [Arg::Ptr(self.addr), Arg::I32(self.bf16 as i32)]
    }
}

/// Scratch device memory for reductions, grown (rarely: the first step sizes it) and reused.
pub(crate) struct Workspace<B> {
    buf: Mutex<(Option<B>, usize)>,
}

impl<B> Workspace<B> {
    pub(crate) fn new() -> Self {
        Self {
            buf: Mutex::new((None, 0)),
        }
    }

    /// Runs `f` with the address of at least `floats` f32 elements of scratch (8-byte aligned,
    /// so f64 partials fit: 2 elements each). The lock serialises ops that share it.
    pub(crate) fn with<D: Device<Buf = B>, R>(
        &self,
        dev: &D,
        floats: usize,
        f: impl FnOnce(u64) -> R,
    ) -> R {
        let mut guard = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        let floats = floats.max(2);
        if guard.1 < floats {
            let size = floats.next_multiple_of(1 << 10);
            *guard = (Some(dev.alloc(size)), size);
        }
        let addr = dev.addr(guard.0.as_ref().expect("allocated above"), 0, floats);
        f(addr)
    }
}

/// Byte offset of the second of two f64 regions, the first holding `first` doubles.
pub(crate) fn after_f64(base: u64, first: usize) -> u64 {
    base + 8 * first as u64
}
