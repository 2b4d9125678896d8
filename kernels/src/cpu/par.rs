//! Parallel helpers shared by the CPU kernels: a pointer that rayon tasks may share when they
//! write disjoint regions, and fixed-size chunking so results never depend on the thread count.

use rayon::prelude::*;

/// Elements per task for elementwise ops and per partial sum for reductions. Fixed, so chunk
/// boundaries (and therefore every floating-point summation order) ignore the thread count.
pub(crate) const CHUNK: usize = 1 << 14;

/// Columns per task for column-block reductions over rows.
pub(crate) const COL_BLOCK: usize = 64;

/// A raw f32 pointer shared by tasks that each write a region no other task touches.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub *mut f32);

// SAFETY: only used where every task writes a disjoint set of elements (documented at each use).
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so closures capture the whole `Sync` wrapper, not its field).
    pub fn get(self) -> *mut f32 {
        self.0
    }
}

/// Runs `f(c0, c1)` for fixed blocks of COL_BLOCK columns of `cols`, in parallel.
pub(crate) fn for_col_blocks(cols: usize, f: impl Fn(usize, usize) + Sync) {
    let blocks = cols.div_ceil(COL_BLOCK);
    (0..blocks).into_par_iter().for_each(|blk| {
        let c0 = blk * COL_BLOCK;
        f(c0, (c0 + COL_BLOCK).min(cols));
    });
}
