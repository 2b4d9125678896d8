//! `Communicator`: one rank's NCCL communicator and the three calls the collective makes on it
//! (reduce, broadcast, all-reduce of f32 device buffers), queued on the rank's NCCL stream.
//!
//! cudarc's safe `Comm` keeps its handle to itself, and the wait loop needs the handle to ask
//! NCCL for the communicator's asynchronous error: a network failure NCCL's proxy thread saw
//! (a peer's node unreachable while its process lives), which would otherwise leave the kernels
//! waiting until the per-call timeout. Dropping the communicator aborts it (`ncclCommAbort`),
//! which also ends kernels still waiting for a peer; an abort that fails is logged, not a panic.

use std::sync::Arc;

use cudarc::driver::{CudaStream, CudaView, CudaViewMut, DevicePtr, DevicePtrMut};
use cudarc::nccl::result::{self, NcclError};
use cudarc::nccl::sys::{self, ncclComm_t, ncclDataType_t, ncclRedOp_t, ncclResult_t};

/// A joined NCCL communicator.
pub(crate) struct Communicator {
    raw: ncclComm_t,
    stream: Arc<CudaStream>,
    rank: usize,
    world: usize,
}

// SAFETY: NCCL lets a communicator be used from any thread, one call at a time; `&self` calls
// are not shared across threads (the type is not `Sync`). It is made on a thread of its own
// (`peer_watch::run_watching`) and used on the communication thread.
unsafe impl Send for Communicator {}

/// NCCL's unique id of a new communicator (made by one rank, sent to the others), as bytes.
pub(crate) fn unique_id() -> Result<[u8; 128], NcclError> {
    result::get_uniqueid().map(|id| id.internal.map(|c| c as u8))
}

impl Communicator {
    /// Joins communicator `id` as `rank` of `world`, with the calling thread's current device.
    pub(crate) fn join(
        stream: Arc<CudaStream>,
        rank: usize,
        world: usize,
        id: [u8; 128],
    ) -> Result<Communicator, NcclError> {
        let mut raw = std::mem::MaybeUninit::uninit();
        let id = sys::ncclUniqueId {
            internal: id.map(|b| b as std::ffi::c_char),
        };
        // SAFETY: ncclCommInitRank writes the handle on success; rank < world, both small.
        let raw = unsafe {
            result::comm_init_rank(raw.as_mut_ptr(), world as i32, id, rank as i32)?;
            raw.assume_init()
        };
        Ok(Communicator {
            raw,
            stream,
            rank,
            world,
        })
    }

    pub(crate) fn rank(&self) -> usize {
        self.rank
    }

    pub(crate) fn world_size(&self) -> usize {
        self.world
    }

    /// Sums every rank's `send` into `recv` on rank `root` (`recv` is `Some` there only).
    pub(crate) fn reduce(
        &self,
        send: &CudaView<f32>,
        recv: Option<&mut CudaViewMut<f32>>,
        root: usize,
    ) -> Result<(), NcclError> {
        let (src, _reading) = send.device_ptr(&self.stream);
        let (dst, _writing) = recv.map(|r| r.device_ptr_mut(&self.stream)).unzip();
        let dst = dst.map_or(std::ptr::null_mut(), |ptr| ptr as *mut std::ffi::c_void);
        // SAFETY: both pointers are device buffers of `send.len()` f32 (NCCL ignores a null
        // receive buffer off the root), queued on the stream the guards order them on.
        unsafe {
            result::reduce(
                src as _,
                dst,
                send.len(),
                ncclDataType_t::ncclFloat32,
                ncclRedOp_t::ncclSum,
                root as i32,
                self.raw,
                self.stream.cu_stream() as _,
            )
        }
        .map(drop)
    }

    /// Copies rank `root`'s `buf` into every rank's.
    pub(crate) fn broadcast_in_place(
        &self,
        buf: &mut CudaViewMut<f32>,
        root: usize,
    ) -> Result<(), NcclError> {
        let len = buf.len();
        let (ptr, _writing) = buf.device_ptr_mut(&self.stream);
        // SAFETY: an in-place broadcast of `len` f32 on the stream the guard orders it on.
        unsafe {
            result::broadcast(
                ptr as _,
                ptr as _,
                len,
                ncclDataType_t::ncclFloat32,
                root as i32,
                self.raw,
                self.stream.cu_stream() as _,
            )
        }
        .map(drop)
    }

    /// Sums every rank's `buf` into every rank's.
    pub(crate) fn all_reduce_in_place(
        &self,
        buf: &mut impl DevicePtrMut<f32>,
    ) -> Result<(), NcclError> {
        let len = buf.len();
        let (ptr, _writing) = buf.device_ptr_mut(&self.stream);
        // SAFETY: an in-place all-reduce of `len` f32 on the stream the guard orders it on.
        unsafe {
            result::all_reduce(
                ptr as _,
                ptr as _,
                len,
                ncclDataType_t::ncclFloat32,
                ncclRedOp_t::ncclSum,
                self.raw,
                self.stream.cu_stream() as _,
            )
        }
        .map(drop)
    }

    /// The error NCCL met in the background (a network failure, a peer gone), if any.
    pub(crate) fn async_error(&self) -> Option<NcclError> {
        let mut error = ncclResult_t::ncclSuccess;
        // SAFETY: the communicator is live; NCCL writes one result.
        let asked = unsafe { sys::ncclCommGetAsyncError(self.raw, &mut error) };
        background_failure(asked, error)
    }
}

/// What `ncclCommGetAsyncError` says: the call's own failure first, then the communicator's
/// error; "in progress" (a non-blocking communicator's pending work) is not a failure.
fn background_failure(asked: ncclResult_t, error: ncclResult_t) -> Option<NcclError> {
    let failed =
        |r: &ncclResult_t| !matches!(r, ncclResult_t::ncclSuccess | ncclResult_t::ncclInProgress);
    [asked, error].into_iter().find(failed).map(NcclError)
}

impl Drop for Communicator {
    fn drop(&mut self) {
        // SAFETY: the handle is live and dropped only here.
        if let Err(e) = unsafe { result::comm_abort(self.raw) } {
            tracing::warn!(
                "aborting the NCCL communicator: {}",
                crate::nccl::describe_nccl(&e)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ncclResult_t::*;

    #[test]
    fn only_a_failure_is_a_background_error() {
        assert_eq!(background_failure(ncclSuccess, ncclSuccess), None);
        assert_eq!(background_failure(ncclSuccess, ncclInProgress), None);
        assert_eq!(
            background_failure(ncclSuccess, ncclRemoteError),
            Some(NcclError(ncclRemoteError))
        );
        assert_eq!(
            background_failure(ncclInvalidArgument, ncclSystemError),
            Some(NcclError(ncclInvalidArgument)),
            "a failed call is reported before the result it could not fetch"
        );
    }
}
