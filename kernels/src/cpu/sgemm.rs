//! SGEMM on strided matrices through the `gemm` crate, always single-threaded per call; the
//! parallel variant splits only the OUTPUT into fixed tiles, never the reduction dimension, so
//! every result is bitwise independent of the thread count; and the reduction is cut into the
//! same pieces whatever the CPU's cache (`KC`), so it is independent of the machine too.

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

/// Longest piece of the reduction one `gemm` call sums where the crate blocks the reduction by
/// the CPU's cache (`cache_blocked`): its block there is 512 on a 32 KiB 8-way L1 and 1024 on a
/// 48 KiB 12-way one, and each block boundary is a rounding, so the last bits of such a product
/// with k > 512 depended on the machine (found on 2026-12-06, when a 48 KiB machine trained
/// `tiny` to other losses than the committed reference). Cut here as the crate cuts on a 512
/// machine (the fewest pieces of at most 512, all of one length but the last), each piece one
/// call that every machine sums as one block, the result is that machine's everywhere.
const KC: usize = 512;

/// Whether `gemm` 0.19 sums this product in blocks sized by the CPU's cache: the general path
/// of `gemm_common::gemm::gemm_basic_generic` after `gemm::gemm` transposes a row-major
/// destination. Its other paths block independently of the machine (1024 for at most 256
/// outputs with contiguous operands, 512 with both sides at most 64) or not at all (k <= 2,
/// matrix-vector products). A new `gemm` version must be read against this again
/// (`tests/tests/reference_losses.rs` fails on a 48 KiB-L1 machine when it no longer matches).
fn cache_blocked(m: usize, n: usize, k: usize, dst: MatMut, lhs: MatRef, rhs: MatRef) -> bool {
    let (m, n, dst_cs, dst_rs, lhs_cs, lhs_rs, rhs_cs, rhs_rs) = match dst.cs.abs() < dst.rs.abs() {
        true => (n, m, dst.rs, dst.cs, rhs.rs, rhs.cs, lhs.rs, lhs.cs),
        false => (m, n, dst.cs, dst.rs, lhs.cs, lhs.rs, rhs.cs, rhs.rs),
    };
    let horizontal = lhs_cs == 1 && rhs_rs == 1 && m * n <= 16 * 16;
    let matrix_vector = (n <= 1 && lhs_rs == 1 && dst_rs == 1)
        || (n <= 1 && lhs_cs == 1 && rhs_rs == 1)
        || (m <= 1 && rhs_cs == 1 && dst_cs == 1)
        || (m <= 1 && rhs_rs == 1 && lhs_cs == 1);
    let small = m <= 64 && n <= 64;
    !(horizontal || k <= 2 || matrix_vector || small)
}

/// dst (m, n) = scale * lhs (m, k) @ rhs (k, n), or `+=` when `accumulate`. Single-threaded;
/// the same bits on every machine (see [`KC`]).
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
    let kc = match cache_blocked(m, n, k, dst, lhs, rhs) {
        // As the crate splits on a 512 machine: the fewest pieces of at most KC.
        true => k.div_ceil(k.div_ceil(KC)),
        false => k,
    };
    for k0 in (0..k).step_by(kc) {
        let (lhs, rhs) = (lhs.at(0, k0), rhs.at(k0, 0));
        gemm::gemm(
            m,
            n,
            kc.min(k - k0),
            dst.ptr,
            dst.cs,
            dst.rs,
            accumulate || k0 > 0,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A row-major destination (never written: `cache_blocked` looks at strides only).
    fn dst(ld: usize) -> MatMut {
        MatMut::rows(std::ptr::null_mut(), ld)
    }

    /// The products the model computes with k > 512 that take the crate's cache-blocked path,
    /// and those that take a path every machine sums alike.
    #[test]
    fn the_cache_blocked_products_are_those_of_the_general_path() {
        let null = std::ptr::null::<f32>();
        // A linear layer's forward, out (T, OC) = inp (T, C) @ weight (OC, C)^T, C = 768.
        let out = dst(768);
        let inp = MatRef::rows(null, 768);
        let weight_t = MatRef::transposed(null, 768);
        assert!(cache_blocked(4096, 768, 768, out, inp, weight_t));
        // Its weight gradient, dweight (OC, C) += dout^T (OC, T) @ inp (T, C), k = T.
        let dout_t = MatRef::transposed(null, 768);
        assert!(cache_blocked(768, 768, 4096, out, dout_t, inp));
        // Both sides at most 64: blocks of 512 on every machine.
        let small = dst(64);
        assert!(!cache_blocked(64, 64, 4096, small, dout_t, inp));
        // A matrix-vector product (one class's head gradient): the whole reduction at once.
        let row = dst(768);
        assert!(!cache_blocked(
            1,
            768,
            4096,
            row,
            MatRef::transposed(null, 1),
            inp
        ));
        // At most 256 outputs from contiguous operands: blocks of 1024 on every machine.
        let tiny = dst(3);
        let lhs = MatRef::rows(null, 4096);
        let rhs = MatRef::transposed(null, 4096);
        assert!(!cache_blocked(80, 3, 4096, tiny, lhs, rhs));
    }
}
