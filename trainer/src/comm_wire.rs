//! `CommWire`: what the communication thread of a data-parallel rank needs from the memory its
//! gradients live in: the collectives over the backend's buffers, local copies and zeroing in
//! the collective's order, and waiting for work the training thread queued (`Ready` marks).
//! `HostComm` is the CPU ranks' wire (host `Vec<f32>` buffers, the CPU collective; nothing to
//! wait for); `NcclComm` (`nccl_rank.rs`) the GPU ranks' (device buffers, NCCL on its own stream,
//! CUDA events).

use std::ops::Range;

use ecgfm_dist::{Collective, DistError, Shards};

/// The communication thread's side of a rank's gradient exchange.
pub trait CommWire {
    /// A buffer of the backend (host vector, device slice).
    type Buf;
    /// A mark of the work the training thread queued up to some point (nothing on the CPU, a
    /// CUDA event on a GPU).
    type Ready;

    /// The collective for small host-memory exchanges (losses, flags, norm partials, barriers).
    fn host(&mut self) -> &mut dyn Collective<[f32]>;
    /// Orders this wire's later work after everything `ready` marks.
    fn wait_for(&mut self, ready: Self::Ready) -> Result<(), DistError>;
    /// [`Collective::reduce_scatter`] over the backend's buffers.
    fn reduce_scatter(
        &mut self,
        src: &Self::Buf,
        range: Range<usize>,
        shards: &Shards,
        acc: &mut Self::Buf,
    ) -> Result<(), DistError>;
    /// [`Collective::all_gather`] over the backend's buffers.
    fn all_gather(
        &mut self,
        buf: &mut Self::Buf,
        range: Range<usize>,
        shards: &Shards,
    ) -> Result<(), DistError>;
    /// `dst[dst_off..][..n] = src[src_off..][..n]`, ordered with this wire's collectives.
    fn copy(
        &mut self,
        src: &Self::Buf,
        src_off: usize,
        dst: &mut Self::Buf,
        dst_off: usize,
        n: usize,
    ) -> Result<(), DistError>;
    /// Sets every element of `buf` to zero, ordered with this wire's collectives.
    fn zero(&mut self, buf: &mut Self::Buf) -> Result<(), DistError>;
}

/// CPU ranks: host buffers and a host-memory collective (the CPU collective over TCP).
pub struct HostComm {
    pub coll: Box<dyn Collective<[f32]> + Send>,
}

impl CommWire for HostComm {
    type Buf = Vec<f32>;
    type Ready = ();

    fn host(&mut self) -> &mut dyn Collective<[f32]> {
        self.coll.as_mut()
    }

    fn wait_for(&mut self, _ready: ()) -> Result<(), DistError> {
        Ok(())
    }

    fn reduce_scatter(
        &mut self,
        src: &Vec<f32>,
        range: Range<usize>,
        shards: &Shards,
        acc: &mut Vec<f32>,
    ) -> Result<(), DistError> {
        self.coll.reduce_scatter(src, range, shards, acc)
    }

    fn all_gather(
        &mut self,
        buf: &mut Vec<f32>,
        range: Range<usize>,
        shards: &Shards,
    ) -> Result<(), DistError> {
        self.coll.all_gather(buf, range, shards)
    }

    fn copy(
        &mut self,
        src: &Vec<f32>,
        src_off: usize,
        dst: &mut Vec<f32>,
        dst_off: usize,
        n: usize,
    ) -> Result<(), DistError> {
        dst[dst_off..dst_off + n].copy_from_slice(&src[src_off..src_off + n]);
        Ok(())
    }

    fn zero(&mut self, buf: &mut Vec<f32>) -> Result<(), DistError> {
        buf.fill(0.0);
        Ok(())
    }
}
