//! SGEMM on strided matrices through the `gemm` crate, always single-threaded per call; the
//! parallel variant splits only the OUTPUT into fixed tiles, never the reduction dimension, so
//! every result is bitwise independent of the thread count.

use rayon::prelude::*;

/// A read-only strided matrix: element (i, j) at `ptr + i * rs + j * cs`.
#[derive(Clone, Copy)]
pub(crate) struct MatRef {
    pub ptr: *const f32,
    pub rs: isize,
    pub cs: isize,
}

/// A writable strided matrix: element (i, j) at `ptr + i * rs + j * cs`.
#[derive(Clone, Copy)]
pub(crate) struct MatMut {
    pub ptr: *mut f32,
    pub rs: isize,
    pub cs: isize,
}

// SAFETY: the parallel tiles below read shared inputs and write disjoint output tiles.
unsafe impl Send for MatRef {}
// SAFETY: as above.
unsafe impl Sync for MatRef {}
// SAFETY: as above.
unsafe impl Send for MatMut {}
// SAFETY: as above.
unsafe impl Sync for MatMut {}

impl MatRef {
    /// The sub-matrix starting at element (r, c).
    pub fn at(self, r: usize, c: usize) -> Self {
        Self {
            ptr: self
                .ptr
                .wrapping_offset(r as isize * self.rs + c as isize * self.cs),
            ..self
        }
    }

    /// A row-major matrix with `ld` elements between rows.
    pub fn rows(ptr: *const f32, ld: usize) -> Self {
        Self {
            ptr,
            rs: ld as isize,
            cs: 1,
        }
    }

    /// The transpose of a row-major matrix with `ld` elements between rows.
    pub fn transposed(ptr: *const f32, ld: usize) -> Self {
        Self {
            ptr,
            rs: 1,
            cs: ld as isize,
        }
    }
}

impl MatMut {
    /// The sub-matrix starting at element (r, c).
    pub fn at(self, r: usize, c: usize) -> Self {
        Self {
            ptr: self
                .ptr
                .wrapping_offset(r as isize * self.rs + c as isize * self.cs),
            ..self
        }
    }

    /// A row-major matrix with `ld` elements between rows.
    pub fn rows(ptr: *mut f32, ld: usize) -> Self {
        Self {
            ptr,
            rs: ld as isize,
            cs: 1,
        }
    }
}

/// dst (m, n) = scale * lhs (m, k) @ rhs (k, n), or `+=` when `accumulate`. Single-threaded.
///
/// # Safety
/// Every addressed element of the three matrices must be valid, and `dst` must not overlap
/// the inputs nor be accessed by anyone else during the call.
pub(crate) unsafe fn gemm_st(
    m: usize,
    n: usize,
    k: usize,
    dst: MatMut,
    accumulate: bool,
    lhs: MatRef,
    rhs: MatRef,
    scale: f32,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    *dst.ptr.offset(i as isize * dst.rs + j as isize * dst.cs) = 0.0;
                }
            }
        }
        return;
    }
    gemm::gemm(
        m,
        n,
        k,
        dst.ptr,
        dst.cs,
        dst.rs,
        accumulate,
        lhs.ptr,
        lhs.cs,
        lhs.rs,
        rhs.ptr,
        rhs.cs,
        rhs.rs,
        1.0,
        scale,
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
}

/// Tiles wanted per parallel gemm, so that small outputs (e.g. weight gradients) still spread
/// over the threads with little imbalance.
const TARGET_TILES: usize = 16;

/// Row-tile bounds: tall enough to amortise packing the right-hand side once per tile.
const MIN_TILE_ROWS: usize = 64;
const MAX_TILE_ROWS: usize = 256;

/// Widest output tile: keeps the packed right-hand side of one tile cache-sized.
const MAX_TILE_COLS: usize = 512;

/// Output tile (rows, columns): a function of the shape only, never of the thread count, so each
/// tile's single-threaded gemm (and its summation order) is the same on any pool.
fn tile_shape(m: usize, n: usize) -> (usize, usize) {
    let tm = m
        .div_ceil(TARGET_TILES)
        .next_multiple_of(32)
        .clamp(MIN_TILE_ROWS, MAX_TILE_ROWS);
    let col_splits = TARGET_TILES
        .div_ceil(m.div_ceil(tm))
        .max(n.div_ceil(MAX_TILE_COLS));
    let tn = n.div_ceil(col_splits).next_multiple_of(16).max(32);
    (tm, tn)
}

/// Parallel [`gemm_st`] over fixed output tiles; `epilogue(r0, r1, c0, c1)` runs on each finished
/// tile in the same task (e.g. to add a bias while the tile is in cache).
///
/// # Safety
/// As [`gemm_st`]; `epilogue` must only touch its own tile of `dst`.
pub(crate) unsafe fn gemm_par(
    m: usize,
    n: usize,
    k: usize,
    dst: MatMut,
    accumulate: bool,
    lhs: MatRef,
    rhs: MatRef,
    epilogue: impl Fn(usize, usize, usize, usize) + Sync,
) {
    if m == 0 || n == 0 {
        return;
    }
    let (tm, tn) = tile_shape(m, n);
    let (bm, bn) = (m.div_ceil(tm), n.div_ceil(tn));
    (0..bm * bn).into_par_iter().for_each(|tile| {
        let (r0, c0) = ((tile / bn) * tm, (tile % bn) * tn);
        let (r1, c1) = ((r0 + tm).min(m), (c0 + tn).min(n));
        // SAFETY: tiles are disjoint; offsets stay inside the matrices the caller vouched for.
        unsafe {
            gemm_st(
                r1 - r0,
                c1 - c0,
                k,
                dst.at(r0, c0),
                accumulate,
                lhs.at(r0, 0),
                rhs.at(0, c0),
                1.0,
            );
        }
        epilogue(r0, r1, c0, c1);
    });
}
