//! `NcclCollective`: the `Collective` of GPU ranks, over NCCL (cudarc's `nccl` feature) on
//! `CudaSlice<f32>` device buffers and the stream it is given (in training a stream of its own,
//! ordered after the compute stream's work by events: the trainer's `nccl_rank.rs`). Rank 0
//! makes the NCCL unique id and sends it to the others through the CPU collective of the
//! rendezvous.
//!
//! NCCL sums in its own (ring or tree) order, not in rank order: GPU runs are reproducible run
//! to run on the same topology but not bitwise equal across rank counts (the CPU collective is).
//! Reduce-scatter with accumulation is one NCCL reduce per owner (grouped), then `acc += sum` by
//! a small NVRTC kernel; all-gather is one grouped broadcast per owner. Each call waits for its
//! stream with the per-call timeout (NCCL does not say which peer hung; the communicator is
//! aborted), asking NCCL meanwhile for an error its background thread met (a network failure:
//! `nccl_comm.rs`) and watching the CPU collective's connections: a peer whose process is gone
//! (exited or crashed, on any node) is named within seconds instead (`peer_watch.rs`).

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use cudarc::driver::{CudaEvent, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg};
use cudarc::nccl::result::NcclError;
use ecgfm_kernels::cuda::driver_error::describe_driver;

use crate::nccl_comm::{unique_id, Communicator};
use crate::nccl_lib;
use crate::peer_watch::{run_watching, wait_watching, PeerWatch};
use crate::{Collective, CpuCollective, DistError, Shards};

const ADD_KERNEL: &str = r#"
extern "C" __global__ void ecgfm_add_into(float* acc, const float* x, unsigned long long n) {
    unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) acc[i] += x[i];
}
"#;

/// The NCCL collective of one GPU rank.
pub struct NcclCollective {
    comm: Communicator,
    stream: Arc<CudaStream>,
    add: CudaFunction,
    scratch: CudaSlice<f32>,
    /// Recorded after each call's work; the wait polls it.
    queued: CudaEvent,
    timeout: Duration,
    peers: PeerWatch,
}

fn nccl_err(what: &str) -> impl Fn(NcclError) -> DistError + '_ {
    move |e| DistError::Nccl(format!("{what}: {}", describe_nccl(&e)))
}

/// A CUDA driver error of a collective's call `what`, in words.
pub fn driver_err(what: &str) -> impl Fn(cudarc::driver::DriverError) -> DistError + '_ {
    move |e| DistError::Nccl(format!("{what}: {}", describe_driver(&e)))
}

/// An NCCL error as `NAME (what it means)` and NCCL's own account of its last failure (the
/// peer it could not reach, the call it refused), where it has one. cudarc's Debug form of the
/// error is the bare word `NcclError`. `ncclGetLastError` is NCCL 2.13's; every NCCL built for
/// CUDA 13 has it.
pub fn describe_nccl(e: &NcclError) -> String {
    let text = |ptr: *const std::ffi::c_char| match ptr.is_null() {
        true => String::new(),
        // SAFETY: NCCL returns a NUL-terminated string it owns, valid until its next call.
        false => unsafe { std::ffi::CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned(),
    };
    // SAFETY: NCCL is loaded (it returned the error); both calls only read NCCL's state, and
    // ncclGetLastError takes a null communicator (its argument is unused).
    let (meaning, last) = unsafe {
        (
            text(cudarc::nccl::sys::ncclGetErrorString(e.0)),
            text(cudarc::nccl::sys::ncclGetLastError(std::ptr::null_mut())),
        )
    };
    let last = match last.trim() {
        "" => String::new(),
        said => format!("; NCCL says: {said}"),
    };
    format!("{:?} ({meaning}){last}", e.0)
}

impl NcclCollective {
    /// Joins the job's NCCL communicator on `stream` (the rank's device and compute stream).
    /// `cpu` is the rendezvous' CPU collective, used once to share the unique id.
    pub fn new(cpu: &mut CpuCollective, stream: Arc<CudaStream>) -> Result<Self, DistError> {
        nccl_lib::check_loadable()?;
        let (rank, world) = (cpu.rank(), cpu.world_size());
        let mut id = match rank {
            0 => unique_id().map_err(nccl_err("ncclGetUniqueId"))?.to_vec(),
            _ => Vec::new(),
        };
        cpu.broadcast_bytes(&mut id, 0)?;
        let id: [u8; 128] = id
            .try_into()
            .map_err(|_| DistError::Nccl("the NCCL unique id is not 128 bytes".into()))?;
        // A rank whose initialisation fails exits; the others' would wait for it for good.
        let peers = cpu.peer_watch()?;
        let joining = stream.clone();
        let comm = run_watching("ncclCommInitRank", cpu.timeout(), &peers, move || {
            // ncclCommInitRank joins with the calling thread's current device.
            joining
                .context()
                .bind_to_thread()
                .map_err(driver_err("binding the context"))?;
            Communicator::join(joining, rank, world, id).map_err(nccl_err("ncclCommInitRank"))
        })?;
        let ptx = cudarc::nvrtc::compile_ptx(ADD_KERNEL)
            .map_err(|e| DistError::Nccl(format!("compiling the add kernel: {e}")))?;
        let module = stream
            .context()
            .load_module(ptx)
            .map_err(driver_err("loading the add kernel"))?;
        let add = module
            .load_function("ecgfm_add_into")
            .map_err(driver_err("loading the add kernel"))?;
        let scratch = stream.alloc_zeros(1).map_err(driver_err("cudaMalloc"))?;
        let queued = stream
            .context()
            .new_event(None)
            .map_err(driver_err("cuEventCreate"))?;
        Ok(NcclCollective {
            comm,
            stream,
            add,
            scratch,
            queued,
            timeout: cpu.timeout(),
            peers,
        })
    }

    /// The stream every NCCL call and kernel of this collective is queued on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Waits for everything queued on the stream: at most the per-call timeout, and no more
    /// than two seconds once a peer's process is seen gone.
    /// `op` is the call's name as errors give it ("NCCL's all_reduce").
    fn wait(&self, op: &str) -> Result<(), DistError> {
        self.queued
            .record(&self.stream)
            .map_err(driver_err("cuEventRecord"))?;
        // SAFETY: querying an event this collective owns.
        let done = || match unsafe { cudarc::driver::sys::cuEventQuery(self.queued.cu_event()) } {
            cudarc::driver::sys::CUresult::CUDA_SUCCESS => Ok(true),
            cudarc::driver::sys::CUresult::CUDA_ERROR_NOT_READY => match self.comm.async_error() {
                Some(e) => Err(nccl_err(op)(e)),
                None => Ok(false),
            },
            other => Err(driver_err(op)(cudarc::driver::DriverError(other))),
        };
        wait_watching(op, self.timeout, done, || self.peers.gone())
    }

    fn ensure_scratch(&mut self, len: usize) -> Result<(), DistError> {
        if self.scratch.len() < len {
            self.scratch = self
                .stream
                .alloc_zeros(len)
                .map_err(driver_err("cudaMalloc"))?;
        }
        Ok(())
    }
}

impl Collective<CudaSlice<f32>> for NcclCollective {
    fn rank(&self) -> usize {
        self.comm.rank()
    }

    fn world_size(&self) -> usize {
        self.comm.world_size()
    }

    fn reduce_scatter(
        &mut self,
        src: &CudaSlice<f32>,
        range: Range<usize>,
        shards: &Shards,
        acc: &mut CudaSlice<f32>,
    ) -> Result<(), DistError> {
        let rank = self.rank();
        let mine = shards.piece(rank, &range);
        self.ensure_scratch(mine.len().max(1))?;
        cudarc::nccl::result::group_start().map_err(nccl_err("ncclGroupStart"))?;
        for q in 0..self.world_size() {
            let piece = shards.piece(q, &range);
            if piece.is_empty() {
                continue;
            }
            let send = src.slice(piece.start - range.start..piece.end - range.start);
            let mut recv = self.scratch.slice_mut(0..piece.len());
            let recv = (q == rank).then_some(&mut recv);
            self.comm
                .reduce(&send, recv, q)
                .map_err(nccl_err("ncclReduce"))?;
        }
        cudarc::nccl::result::group_end().map_err(nccl_err("ncclGroupEnd"))?;
        if !mine.is_empty() {
            let own = shards.range(rank);
            let n = mine.len() as u64;
            let mut dst = acc.slice_mut(mine.start - own.start..mine.end - own.start);
            let x = self.scratch.slice(0..mine.len());
            let mut launch = self.stream.launch_builder(&self.add);
            launch.arg(&mut dst).arg(&x).arg(&n);
            // SAFETY: the kernel reads and writes `n` elements of views of that length.
            unsafe { launch.launch(LaunchConfig::for_num_elems(n as u32)) }
                .map_err(driver_err("launching the add kernel"))?;
        }
        self.wait("NCCL's reduce_scatter")
    }

    fn all_gather(
        &mut self,
        buf: &mut CudaSlice<f32>,
        range: Range<usize>,
        shards: &Shards,
    ) -> Result<(), DistError> {
        cudarc::nccl::result::group_start().map_err(nccl_err("ncclGroupStart"))?;
        for q in 0..self.world_size() {
            let piece = shards.piece(q, &range);
            if piece.is_empty() {
                continue;
            }
            let mut view = buf.slice_mut(piece);
            self.comm
                .broadcast_in_place(&mut view, q)
                .map_err(nccl_err("ncclBroadcast"))?;
        }
        cudarc::nccl::result::group_end().map_err(nccl_err("ncclGroupEnd"))?;
        self.wait("NCCL's all_gather")
    }

    fn all_reduce(&mut self, buf: &mut CudaSlice<f32>) -> Result<(), DistError> {
        self.comm
            .all_reduce_in_place(buf)
            .map_err(nccl_err("ncclAllReduce"))?;
        self.wait("NCCL's all_reduce")
    }

    fn broadcast(&mut self, buf: &mut CudaSlice<f32>, root: usize) -> Result<(), DistError> {
        self.comm
            .broadcast_in_place(&mut buf.as_view_mut(), root)
            .map_err(nccl_err("ncclBroadcast"))?;
        self.wait("NCCL's broadcast")
    }

    fn barrier(&mut self) -> Result<(), DistError> {
        let mut one = self.scratch.slice_mut(0..1);
        self.comm
            .all_reduce_in_place(&mut one)
            .map_err(nccl_err("ncclAllReduce"))?;
        self.wait("NCCL's barrier")
    }
}
