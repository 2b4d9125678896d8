//! GPU ranks: the CUDA backend as a [`RankBackend`] (a CUDA event marks the work queued on the
//! compute stream; one sum-of-squares partial per shard) and [`NcclComm`], the communication
//! thread's wire on a GPU: NCCL on a stream of its own over the backend's device buffers, each
//! bucket ordered after the backward work that wrote it by waiting on its event, so reductions
//! overlap with the rest of the backward pass on the device. The CPU collective of the
//! rendezvous carries the small host exchanges (losses, flags, norm partials, barriers).
//!
//! No GPU in CI: this compiles everywhere; the exchange logic it plugs into runs on CPU ranks in
//! every test, and scripts/gpu-check.sh runs it through NCCL on a GPU.

use std::ops::Range;
use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaEvent};
use ecgfm_dist::nccl::{driver_err, NcclCollective};
use ecgfm_dist::{Collective, CpuCollective, DistError, Shards};
use ecgfm_kernels::cuda::driver_error::describe_driver;
use ecgfm_kernels::cuda::CudaBuf;
use ecgfm_kernels::{Backend, CudaBackend, View};

use crate::comm_wire::CommWire;
use crate::rank_backend::RankBackend;

impl RankBackend for CudaBackend {
    type Ready = CudaEvent;

    fn ready(&self) -> CudaEvent {
        self.stream()
            .record_event(None)
            .unwrap_or_else(|e| panic!("CUDA event record failed: {}", describe_driver(&e)))
    }

    fn partials_per_rank(_shards: &Shards) -> usize {
        1
    }

    fn sumsq_partials(&self, grads: View<CudaBuf>, n: usize, scratch: &mut CudaBuf) -> Vec<f64> {
        self.sum_squares(scratch.into(), grads, n);
        let mut host = [0.0f32];
        self.download((&*scratch).into(), &mut host);
        vec![host[0] as f64]
    }
}

/// A GPU rank's collectives: NCCL for device buffers, the CPU collective for host values.
pub struct NcclComm {
    nccl: NcclCollective,
    cpu: CpuCollective,
}

impl NcclComm {
    /// Joins the job's NCCL communicator on a new stream of `context` (the backend's), sharing
    /// its unique id through `cpu`. Run it on the thread that will use it (the communication
    /// thread's constructor).
    pub fn join(mut cpu: CpuCollective, context: Arc<CudaContext>) -> Result<NcclComm, DistError> {
        context
            .bind_to_thread()
            .map_err(driver_err("binding the context"))?;
        let stream = context
            .new_stream()
            .map_err(driver_err("creating the NCCL stream"))?;
        let nccl = NcclCollective::new(&mut cpu, stream)?;
        Ok(NcclComm { nccl, cpu })
    }
}

impl CommWire for NcclComm {
    type Buf = CudaBuf;
    type Ready = CudaEvent;

    fn host(&mut self) -> &mut dyn Collective<[f32]> {
        &mut self.cpu
    }

    fn wait_for(&mut self, ready: CudaEvent) -> Result<(), DistError> {
        self.nccl
            .stream()
            .wait(&ready)
            .map_err(driver_err("cuStreamWaitEvent"))
    }

    fn reduce_scatter(
        &mut self,
        src: &CudaBuf,
        range: Range<usize>,
        shards: &Shards,
        acc: &mut CudaBuf,
    ) -> Result<(), DistError> {
        self.nccl
            .reduce_scatter(src.f32(), range, shards, acc.f32_mut())
    }

    fn all_gather(
        &mut self,
        buf: &mut CudaBuf,
        range: Range<usize>,
        shards: &Shards,
    ) -> Result<(), DistError> {
        self.nccl.all_gather(buf.f32_mut(), range, shards)
    }

    fn copy(
        &mut self,
        src: &CudaBuf,
        src_off: usize,
        dst: &mut CudaBuf,
        dst_off: usize,
        n: usize,
    ) -> Result<(), DistError> {
        if n == 0 {
            return Ok(());
        }
        let from = src.f32().slice(src_off..src_off + n);
        let mut to = dst.f32_mut().slice_mut(dst_off..dst_off + n);
        self.nccl
            .stream()
            .memcpy_dtod(&from, &mut to)
            .map_err(driver_err("cuMemcpyDtoDAsync"))
    }

    fn zero(&mut self, buf: &mut CudaBuf) -> Result<(), DistError> {
        self.nccl
            .stream()
            .memset_zeros(buf.f32_mut())
            .map_err(driver_err("cuMemsetD8Async"))
    }
}
