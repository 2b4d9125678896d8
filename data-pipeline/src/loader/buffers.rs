//! Reuse of the large decoded-signal buffers: a row group's decoded values are tens of MB, and
//! a fresh allocation of that size is page-faulted in on every decode (about a sixth of the
//! loader's time). Buffers return to the pool when the rows holding them are dropped.

use std::sync::{Arc, Mutex};

/// Idle buffers kept at most (the loader holds about 3 × `mix_row_groups` at once); the pool
/// never allocates, so it never holds more than the loader's own peak.
const MAX_POOLED: usize = 32;

/// A shared pool of signal buffers.
#[derive(Clone, Default)]
pub(crate) struct BufferPool(Arc<Mutex<Vec<Vec<i32>>>>);

impl BufferPool {
    /// An empty buffer, reusing a returned allocation when there is one.
    pub fn take(&self) -> PooledBuffer {
        let mut values = self.0.lock().unwrap().pop().unwrap_or_default();
        values.clear();
        PooledBuffer {
            values,
            pool: Some(self.clone()),
        }
    }
}

/// A buffer that goes back to its pool when dropped.
#[derive(Default)]
pub(crate) struct PooledBuffer {
    pub values: Vec<i32>,
    pool: Option<BufferPool>,
}

impl From<Vec<i32>> for PooledBuffer {
    /// A buffer outside any pool.
    fn from(values: Vec<i32>) -> Self {
        PooledBuffer { values, pool: None }
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            let mut kept = pool.0.lock().unwrap();
            if kept.len() < MAX_POOLED {
                kept.push(std::mem::take(&mut self.values));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_buffers_are_reused_empty() {
        let pool = BufferPool::default();
        let mut first = pool.take();
        first.values.extend([1, 2, 3]);
        let address = first.values.as_ptr();
        drop(first);
        let second = pool.take();
        assert!(second.values.is_empty());
        assert_eq!(second.values.as_ptr(), address);
        assert!(second.values.capacity() >= 3);
    }
}
