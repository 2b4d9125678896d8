//! ecgfm-cuda-host: the host harness of the CUDA backend (tests only, no GPU).
//!
//! build.rs compiles every kernel file of `kernels/cuda/` with g++ through `src/host_compat.h`
//! (block threads as cooperative fibers with real barriers for `__syncthreads()` and warp
//! shuffles, per-block shared memory; `src/runtime.cpp`), and with a twin of the one tensor-core
//! instruction the kernels use (`src/mma_twin.h`: mma.sync m16n8k16 bf16, computed from every
//! lane's fragment registers as the PTX layouts place them). [`HostDevice`] implements the CUDA
//! backend's [`Device`] trait over host memory with those kernels, so [`HostBackend`] is
//! `KernelBackend<HostDevice>`: the very launch code of `CudaBackend` (grids, blocks, shared
//! memory, argument lists, workspaces) runs every kernel here, its blocks and threads in
//! ascending order or ([`Schedule::Descending`]) in reverse, to expose races. Its GEMM is a
//! plain loop (cuBLAS stands there on a GPU, and cuBLASLt for the GEMMs with a bias epilogue),
//! with the operands
//! rounded to bf16 for a bf16 backend, or read as bf16 where they are stored so. The tests in
//! `tests/` compare each op with `CpuBackend`; `tests/planted_bugs.rs` checks that the harness's
//! checks and the sanitizers catch the deliberately broken kernels of `tests/planted/`, which
//! build.rs compiles in beside the real ones.
//!
//! Built with `ECGFM_HOST_SANITIZE=address` or `thread` (`scripts/host-sanitize.sh`), the kernels
//! run under AddressSanitizer (a block's shared memory past the launch's bytes poisoned) or
//! ThreadSanitizer (each block thread its own sanitizer fiber, ordered only by the launch's start
//! and end and the block's barriers: `src/sanitizer_hooks.h`).
//!
//! [`shape_device`] gives the kernels crate's `ShapeDevice` (which runs no kernel at all) this
//! build's kernel signatures, so it also checks every launch's argument kinds.

use ecgfm_kernels::cuda::{
    Arg, Device, Gemm, GemmEpilogue, GemmOperands, KernelBackend, LaunchDims, Module, ShapeDevice,
};
use ecgfm_kernels::round_bf16;
use std::cell::Cell;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};

extern "C" {
    fn ecgfm_host_launch(
        name: *const c_char,
        grid: *const c_uint,
        block: *const c_uint,
        shared_bytes: c_uint,
        args: *mut *mut c_void,
        kinds: *const c_char,
        reversed: c_int,
    ) -> c_int;
    fn ecgfm_host_kinds(name: *const c_char) -> *const c_char;
    fn ecgfm_host_fibers() -> *const c_char;
}

/// The sanitizer this build's kernels run under: "address" or "thread" (built by
/// `scripts/host-sanitize.sh`), or "" for none.
pub const SANITIZER: &str = env!("ECGFM_HOST_SANITIZER");

/// How the runtime switches between a block's threads: "switch" (x86-64's own, the default
/// there) or "ucontext" (glibc's swapcontext: other hosts, or built with
/// `ECGFM_HOST_FIBERS=ucontext`).
pub fn fibers() -> &'static str {
    // SAFETY: the runtime returns a static NUL-terminated string.
    unsafe { CStr::from_ptr(ecgfm_host_fibers()) }
        .to_str()
        .unwrap()
}

/// The kind letters of kernel `name`'s parameters in this build (None: no such kernel).
fn kernel_kinds(name: &str) -> Option<Vec<u8>> {
    let c_name = CString::new(name).ok()?;
    // SAFETY: a NUL-terminated name in; out a static string of the registry or null.
    let kinds = unsafe { ecgfm_host_kinds(c_name.as_ptr()) };
    // SAFETY: when not null, a static NUL-terminated string.
    (!kinds.is_null()).then(|| unsafe { CStr::from_ptr(kinds) }.to_bytes().to_vec())
}

/// A `ShapeDevice` that also checks each launch's argument kinds against the kernels' own
/// parameters.
pub fn shape_device() -> ShapeDevice {
    ShapeDevice::new().with_signatures(kernel_kinds)
}

/// A host-harness buffer: f32 elements, or bf16 bits (the operand storage of a bf16 backend).
#[derive(Clone, Debug, PartialEq)]
pub enum HostBuf {
    F32(Vec<f32>),
    Bf16(Vec<u16>),
}

/// The bf16 bits of `x` rounded to nearest even.
fn bf16_bits(x: f32) -> u16 {
    (round_bf16(x).to_bits() >> 16) as u16
}

/// The f32 of bf16 bits.
fn widen(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}

/// What one thread has queued on the host device so far (every launch runs on the thread that
/// queues it): the difference of two readings counts the work in between, e.g. one step's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Queued {
    /// Our kernels.
    pub kernels: usize,
    /// GEMMs (cuBLAS or cuBLASLt on a GPU), with an epilogue or without.
    pub gemms: usize,
}

thread_local! {
    static QUEUED: Cell<Queued> = const { Cell::new(Queued { kernels: 0, gemms: 0 }) };
}

/// What this thread has queued so far (see [`Queued`]).
pub fn queued() -> Queued {
    QUEUED.with(Cell::get)
}

/// Counts one kernel or one GEMM queued by this thread.
fn count(gemm: bool) {
    QUEUED.with(|q| {
        let mut n = q.get();
        match gemm {
            true => n.gemms += 1,
            false => n.kernels += 1,
        }
        q.set(n);
    });
}

/// The order in which a launch runs its blocks, and each block its threads between barriers.
/// A GPU promises neither: a race-free kernel gives the same bits either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Schedule {
    #[default]
    Ascending,
    Descending,
}

/// The host "device": buffers are host vectors, addresses are host pointers.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostDevice {
    schedule: Schedule,
}

impl HostDevice {
    /// A host device whose launches run in `schedule`'s order.
    pub fn new(schedule: Schedule) -> Self {
        HostDevice { schedule }
    }
}

/// The kernel backend on the host harness.
pub type HostBackend = KernelBackend<HostDevice>;

/// A fresh host-harness backend.
pub fn host_backend() -> HostBackend {
    host_backend_scheduled(Schedule::Ascending)
}

/// A fresh host-harness backend whose launches run in the given order.
pub fn host_backend_scheduled(schedule: Schedule) -> HostBackend {
    KernelBackend::with_device(HostDevice::new(schedule))
}

fn addr_of<T>(buf: &[T], off: usize, n: usize) -> u64 {
    assert!(
        off + n <= buf.len(),
        "view [{off}, {}) outside a buffer of {} elements",
        off + n,
        buf.len()
    );
    // SAFETY: off <= len (checked above): at most one past the end.
    unsafe { buf.as_ptr().add(off) as u64 }
}

impl Device for HostDevice {
    type Buf = HostBuf;
    type IdxBuf = Vec<u32>;

    fn alloc(&self, n: usize) -> HostBuf {
        HostBuf::F32(vec![0.0; n])
    }

    fn alloc_bf16(&self, n: usize) -> HostBuf {
        HostBuf::Bf16(vec![0; n])
    }

    fn is_bf16(&self, buf: &HostBuf) -> bool {
        matches!(buf, HostBuf::Bf16(_))
    }

    fn alloc_idx(&self, n: usize) -> Vec<u32> {
        vec![0; n]
    }

    fn upload(&self, src: &[f32], dst: &mut HostBuf, off: usize) {
        match dst {
            HostBuf::F32(d) => d[off..off + src.len()].copy_from_slice(src),
            HostBuf::Bf16(d) => {
                for (d, &x) in d[off..off + src.len()].iter_mut().zip(src) {
                    *d = bf16_bits(x);
                }
            }
        }
    }

    /// Overwrites the buffer with NaN: a GPU may copy the next input into it from now on, so
    /// an op still reading it would read garbage there; here it reads NaN, which the tests see.
    fn release_input(&self, buf: &mut HostBuf) {
        match buf {
            HostBuf::F32(b) => b.fill(f32::NAN),
            HostBuf::Bf16(b) => b.fill(bf16_bits(f32::NAN)),
        }
    }

    fn download(&self, src: &HostBuf, off: usize, dst: &mut [f32]) {
        match src {
            HostBuf::F32(s) => dst.copy_from_slice(&s[off..off + dst.len()]),
            HostBuf::Bf16(s) => {
                let n = dst.len();
                for (d, &b) in dst.iter_mut().zip(&s[off..off + n]) {
                    *d = widen(b);
                }
            }
        }
    }

    fn upload_idx(&self, src: &[u32], dst: &mut Vec<u32>, off: usize) {
        dst[off..off + src.len()].copy_from_slice(src);
    }

    fn download_idx(&self, src: &Vec<u32>, off: usize, dst: &mut [u32]) {
        dst.copy_from_slice(&src[off..off + dst.len()]);
    }

    fn addr(&self, buf: &HostBuf, off: usize, n: usize) -> u64 {
        match buf {
            HostBuf::F32(b) => addr_of(b, off, n),
            HostBuf::Bf16(b) => addr_of(b, off, n),
        }
    }

    fn addr_mut(&self, buf: &mut HostBuf, off: usize, n: usize) -> u64 {
        self.addr(buf, off, n)
    }

    fn idx_addr(&self, buf: &Vec<u32>, off: usize, n: usize) -> u64 {
        addr_of(buf, off, n)
    }

    fn launch(&self, module: Module, name: &'static str, dims: LaunchDims, args: &[Arg]) {
        count(false);
        // A GPU refuses a grid outside these (ShapeDevice checks the same at production shapes).
        assert!(
            dims.grid_fits(),
            "kernel {name}: grid {:?} outside CUDA's limits",
            dims.grid
        );
        let c_name = CString::new(name).expect("kernel names have no NUL");
        let mut slots: Vec<u64> = args.iter().map(Arg::bits).collect();
        let mut ptrs: Vec<*mut c_void> = slots
            .iter_mut()
            .map(|s| s as *mut u64 as *mut c_void)
            .collect();
        let kinds = CString::new(args.iter().map(Arg::kind).collect::<Vec<u8>>())
            .expect("kind letters have no NUL");
        let grid = [dims.grid.0, dims.grid.1, dims.grid.2];
        let block = [dims.block, 1, 1];
        // SAFETY: each argument slot holds the value the kernel's parameter reads (the runtime
        // checks the kinds first); the addresses come from bounds-checked views.
        let status = unsafe {
            ecgfm_host_launch(
                c_name.as_ptr(),
                grid.as_ptr(),
                block.as_ptr(),
                dims.shared_bytes,
                ptrs.as_mut_ptr(),
                kinds.as_ptr(),
                (self.schedule == Schedule::Descending) as c_int,
            )
        };
        match status {
            0 => {}
            1 => panic!("kernel {name} is not in the host build of {module:?}"),
            2 => panic!("kernel {name}: a block's threads deadlocked on a barrier"),
            3 => panic!(
                "kernel {name}: arguments {:?} do not match its parameters",
                kinds
            ),
            4 => panic!(
                "kernel {name}: a block wrote past its {} bytes of shared memory",
                dims.shared_bytes
            ),
            5 => panic!(
                "kernel {name}: {} bytes of dynamic shared memory, more than the 48 KiB a GPU \
                 grants without opting in",
                dims.shared_bytes
            ),
            6 => panic!(
                "kernel {name}: a warp shuffle or tensor-core MMA ran in a warp without all 32 \
                 lanes live (a block not a multiple of 32 threads, or lanes that had returned): \
                 undefined on a GPU"
            ),
            7 => panic!(
                "kernel {name}: a barrier was reached after threads of the block had returned: \
                 on a GPU every thread of a block must reach __syncthreads()"
            ),
            8 => panic!(
                "kernel {name}: lanes of a warp met at different warp collectives (a shuffle \
                 against a tensor-core MMA, or shuffles with different masks): undefined on a GPU"
            ),
            9 => panic!(
                "kernel {name}: a warp shuffle with a member mask other than all 32 lanes, which \
                 the host harness does not emulate"
            ),
            other => panic!("kernel {name}: launch status {other}"),
        }
    }

    fn gemm(&self, g: &Gemm) {
        count(true);
        products(g, |at, _, acc| {
            let c = (g.c as *mut f32).wrapping_add(at);
            // SAFETY: `at` is inside C, a bounds-checked f32 view.
            unsafe {
                *c = if g.beta == 0.0 {
                    acc
                } else {
                    g.beta * *c + acc
                }
            };
        });
    }

    /// The bias added to each f32 product (the same addition as `add_bias_rows`), then C written
    /// as f32 or rounded to bf16 (as `bias_rows_to_bf16` does).
    fn gemm_epilogue(&self, g: &Gemm, epilogue: GemmEpilogue) -> bool {
        assert!(g.operands == GemmOperands::Bf16 && g.beta == 0.0);
        count(true);
        products(g, |at, row, acc| {
            // SAFETY: the bias view holds m values; `at` is inside C, of the epilogue's type.
            unsafe {
                let v = match epilogue.bias {
                    Some(bias) => acc + *(bias as *const f32).add(row),
                    None => acc,
                };
                match epilogue.out_bf16 {
                    true => *(g.c as *mut u16).add(at) = bf16_bits(v),
                    false => *(g.c as *mut f32).add(at) = v,
                }
            }
        });
        true
    }
}

/// Calls `store(offset in C, row i, product)` for every element (i, j) of the GEMM's A' B', each
/// summed in f32 in k order, with the operands as `g.operands` says (rounded to bf16, or read as
/// bf16 bits).
fn products(g: &Gemm, mut store: impl FnMut(usize, usize, f32)) {
    // Column-major: element (i, j) of a matrix with leading dimension ld is at i + j ld.
    let offset = |i: usize, j: usize, ld: usize| i + j * ld;
    // SAFETY (read): the addresses come from bounds-checked views of the GEMM's operands, of the
    // element type `g.operands` names.
    let read = |ptr: u64, at: usize| unsafe {
        match g.operands {
            GemmOperands::F32 => *(ptr as *const f32).add(at),
            GemmOperands::Bf16 => widen(*(ptr as *const u16).add(at)),
        }
    };
    for j in 0..g.n {
        for i in 0..g.m {
            let mut acc = 0f32;
            for p in 0..g.k {
                let a = match g.trans_a {
                    true => offset(p, i, g.lda),
                    false => offset(i, p, g.lda),
                };
                let b = match g.trans_b {
                    true => offset(j, p, g.ldb),
                    false => offset(p, j, g.ldb),
                };
                acc += read(g.a, a) * read(g.b, b);
            }
            store(offset(i, j, g.ldc), i, acc);
        }
    }
}
