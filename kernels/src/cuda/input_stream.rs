//! The copy stream of [`CudaDevice`](super::CudaDevice)'s batch inputs (`Device::upload_input`):
//! a batch's signals cross to the GPU on a second stream, so the next batch is copied while the
//! current step computes instead of between two steps. Events order the two streams:
//! - a buffer's release event, recorded on the main stream by `release_input` after the last op
//!   that reads the buffer: the next copy into it waits for that point only (with none pending,
//!   it waits for everything queued on the main stream so far);
//! - `copied`, recorded on the copy stream after each copy: the main stream waits for it before
//!   anything queued after the upload, so later ops see the new input.
//!
//! An input that cannot go through page-locked staging (over `staging::MAX_STAGED_BYTES`, or no
//! page-locked memory to be had) is copied from pageable memory, which makes the uploading thread
//! wait until the main stream reaches the buffer's release: correct, but the overlap is lost for
//! it, so the first such copy logs a warning.
//!
//! `ECGFM_CUDA_SERIAL_INPUTS=1` queues input copies on the main stream instead, to measure what
//! the overlap saves.

use super::staging::Staging;
use cudarc::driver::{result, CudaContext, CudaEvent, CudaStream, DriverError};
use std::collections::hash_map::{Entry, HashMap};
use std::sync::{Arc, Mutex, Once};

/// The copy stream and its events.
pub(super) struct InputStream {
    stream: Arc<CudaStream>,
    events: Mutex<Events>,
    /// Warns of the first input copied from pageable memory.
    pageable_warning: Once,
}

struct Events {
    /// Recorded after each copy; the main stream waits for it.
    copied: CudaEvent,
    /// Recorded on the main stream when a copy has no release to wait for.
    queued: CudaEvent,
    /// Each input buffer's release event, by the buffer's base address (recorded again at each
    /// release), and whether a copy has yet to wait for its last recording.
    released: HashMap<u64, (CudaEvent, bool)>,
}

impl InputStream {
    /// The copy stream, or None when `ECGFM_CUDA_SERIAL_INPUTS=1`.
    pub(super) fn from_env(ctx: &Arc<CudaContext>) -> Result<Option<Self>, DriverError> {
        if std::env::var("ECGFM_CUDA_SERIAL_INPUTS").as_deref() == Ok("1") {
            return Ok(None);
        }
        Ok(Some(Self {
            stream: ctx.new_stream()?,
            events: Mutex::new(Events {
                copied: ctx.new_event(None)?,
                queued: ctx.new_event(None)?,
                released: HashMap::new(),
            }),
            pageable_warning: Once::new(),
        }))
    }

    /// Marks the work queued on `main` so far as the last that reads the buffer at `base`.
    pub(super) fn release(&self, main: &CudaStream, base: u64) -> Result<(), DriverError> {
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let (event, pending) = match events.released.entry(base) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => entry.insert((main.context().new_event(None)?, false)),
        };
        event.record(main)?;
        *pending = true;
        Ok(())
    }

    /// Forgets the release of a buffer that was at `base`: a new buffer is there now, zeroed on
    /// the main stream, and its first copy must wait for everything queued there.
    pub(super) fn forget(&self, base: u64) {
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        events.released.remove(&base);
    }

    /// Queues the copy of `src` to `dst` (inside the buffer at `base`) on the copy stream, after
    /// the buffer's release (or after everything queued on `main`), and makes `main` wait for it.
    pub(super) fn upload(
        &self,
        (ctx, main, staging): (&Arc<CudaContext>, &CudaStream, &Staging),
        src: &[f32],
        dst: u64,
        base: u64,
    ) -> Result<(), DriverError> {
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let Events {
            queued, released, ..
        } = &mut *events;
        match released.get_mut(&base).filter(|(_, pending)| *pending) {
            Some((event, pending)) => {
                *pending = false;
                self.stream.wait(event)?;
            }
            None => {
                queued.record(main)?;
                self.stream.wait(queued)?;
            }
        }
        if !staging.upload(ctx, &self.stream, src, dst)? {
            if staging.enabled() {
                self.pageable_warning.call_once(|| {
                    tracing::warn!(
                        "a batch input of {:.1} MiB is copied from pageable memory (over the \
                         page-locked staging's limit, or no page-locked memory to be had): its \
                         upload waits for the step before it instead of overlapping it",
                        std::mem::size_of_val(src) as f64 / (1 << 20) as f64
                    )
                });
            }
            // SAFETY: `dst` is a bounds-checked address of `src.len()` floats on this context; a
            // copy from pageable memory returns once the driver holds its own copy of `src`.
            unsafe { result::memcpy_htod_async(dst, src, self.stream.cu_stream())? };
        }
        events.copied.record(&self.stream)?;
        main.wait(&events.copied)
    }
}
