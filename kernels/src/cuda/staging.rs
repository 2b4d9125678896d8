//! Page-locked staging for [`CudaDevice`](super::CudaDevice)'s uploads. A host-to-device copy
//! from pageable memory may make the driver wait for the work already queued on the stream, so
//! uploading the next batch would hold the host until the current step had run. Instead the
//! source is copied (by the host, at once) into a page-locked block and an asynchronous copy from
//! that block is queued: the call returns without waiting, the copy runs in stream order (after
//! the work queued before it, before the work queued after), and the block is reused only once an
//! event recorded after its copy has completed.
//!
//! Blocks come in power-of-two sizes from 64 KiB and are kept for reuse, up to `KEEP_BYTES` in
//! all. Sources over `MAX_STAGED_BYTES` (parameter loads, not batches) are copied from pageable
//! memory, as is everything when page-locked memory cannot be had, and everything when the
//! environment sets `ECGFM_CUDA_PAGEABLE_UPLOADS=1` (to measure what staging saves).

use cudarc::driver::{
    result, sys, CudaContext, CudaEvent, CudaStream, DriverError, PinnedHostSlice,
};
use std::sync::{Arc, Mutex};

/// The smallest block.
const MIN_BLOCK_BYTES: usize = 64 << 10;
/// Larger sources are copied from pageable memory.
const MAX_STAGED_BYTES: usize = 256 << 20;
/// Blocks beyond this many bytes are freed once their copy is done.
const KEEP_BYTES: usize = 1 << 30;

/// One page-locked block and the event recorded after the last copy out of it.
struct Block {
    mem: PinnedHostSlice<u8>,
    copied: CudaEvent,
}

impl Block {
    fn idle(&self) -> bool {
        self.copied.is_complete()
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // The page-locked memory is freed after this; the copy out of it must be over.
        let _ = self.copied.synchronize();
    }
}

/// The blocks of one device.
pub(super) struct Staging {
    enabled: bool,
    blocks: Mutex<Vec<Block>>,
}

impl Staging {
    /// Staging on, unless `ECGFM_CUDA_PAGEABLE_UPLOADS=1`.
    pub(super) fn from_env() -> Self {
        Self {
            enabled: std::env::var("ECGFM_CUDA_PAGEABLE_UPLOADS").as_deref() != Ok("1"),
            blocks: Mutex::new(Vec::new()),
        }
    }

    /// Whether uploads go through page-locked blocks (`ECGFM_CUDA_PAGEABLE_UPLOADS` unset).
    pub(super) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Queues the copy of `src` to device address `dst` on `stream`, through a page-locked block
    /// when `src` is small enough (`Ok(false)`: it is not; copy it another way).
    pub(super) fn upload<T: Copy>(
        &self,
        ctx: &Arc<CudaContext>,
        stream: &CudaStream,
        src: &[T],
        dst: u64,
    ) -> Result<bool, DriverError> {
        let bytes = std::mem::size_of_val(src);
        if bytes == 0 {
            return Ok(true);
        }
        if !self.enabled || bytes > MAX_STAGED_BYTES {
            return Ok(false);
        }
        ctx.bind_to_thread()?;
        let size = bytes.next_power_of_two().max(MIN_BLOCK_BYTES);
        let mut blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        let reuse = blocks.iter().position(|b| b.mem.len() == size && b.idle());
        let mut block = match reuse {
            Some(i) => blocks.swap_remove(i),
            // SAFETY: the block is written below before any copy reads it.
            None => match unsafe { ctx.alloc_pinned::<u8>(size) } {
                Ok(mem) => Block {
                    mem,
                    copied: ctx.new_event(Some(sys::CUevent_flags::CU_EVENT_DISABLE_TIMING))?,
                },
                Err(_) => return Ok(false),
            },
        };
        // SAFETY: T is a plain value type (f32 or u32 here): its bytes are readable as u8.
        let src_bytes = unsafe { std::slice::from_raw_parts(src.as_ptr().cast::<u8>(), bytes) };
        let staged = &mut block.mem.as_mut_slice()?[..bytes];
        staged.copy_from_slice(src_bytes);
        // SAFETY: `dst` is a bounds-checked address of `bytes` on this context; the block stays
        // alive and unwritten until `copied` (recorded right after the copy) completes.
        unsafe { result::memcpy_htod_async(dst, &*staged, stream.cu_stream())? };
        block.copied.record(stream)?;
        blocks.push(block);
        let mut kept: usize = blocks.iter().map(|b| b.mem.len()).sum();
        while kept > KEEP_BYTES {
            let Some(i) = blocks.iter().position(Block::idle) else {
                break;
            };
            kept -= blocks.swap_remove(i).mem.len();
        }
        Ok(true)
    }
}
