//! [`ShapeDevice`]: a device that runs nothing and checks everything else, so the CUDA backend's
//! launch code can be driven at production shapes (base or large at batch 256) on a machine
//! with no GPU in a second or two, and a run's GPU memory known before a GPU is touched
//! (`ecgfm pretrain` checks it fits). Buffers are only sizes at made-up device addresses
//! (256-byte aligned, as cudaMalloc's). Every launch is checked against what a GPU accepts: the
//! kernel's parameters match the arguments' kinds (where a signature lookup is given: the host
//! harness has one), the grid and block are within CUDA's limits, dynamic shared memory within
//! the 48 KiB granted without opting in, every pointer argument inside a live allocation and
//! every int argument non-negative (a size that overflowed `i32`). Every GEMM's matrices must
//! lie inside their allocations with valid leading dimensions. It also counts the bytes in use
//! (a buffer's are freed when it drops) and their peak: the device memory a model takes,
//! workspaces included (not the CUDA context, nor cuBLAS's workspaces).

use super::device::{Arg, Device, Gemm, GemmEpilogue, GemmOperands, LaunchDims, Module};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// The kind letters of a kernel's parameters (see [`Arg::kind`]), None for no such kernel.
pub type Signatures = fn(&str) -> Option<Vec<u8>>;

/// Dynamic shared memory a GPU grants a launch without opting in.
const SHARED_LIMIT: u32 = 48 * 1024;
/// cudaMalloc's alignment.
const ALIGN: u64 = 256;

/// The live allocations (first address -> bytes), their total and its peak, the next free
/// address (addresses are never reused), the launches and GEMMs checked (and of them the
/// GEMMs) and the kinds of GEMM met, with how many times (see [`ShapeDevice::gemm_kinds`]).
#[derive(Default)]
struct Memory {
    spans: BTreeMap<u64, u64>,
    in_use: u64,
    peak: u64,
    next: u64,
    checked: usize,
    gemms: usize,
    gemm_kinds: BTreeMap<GemmKind, usize>,
}

/// A GEMM on bf16 operands as tensor-core kernels see it: its sizes, whether it has an
/// epilogue, and the alignment in bytes (up to 16, what their vector loads want) of its least
/// aligned pointer or leading dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bf16Gemm {
    pub mnk: (usize, usize, usize),
    pub epilogue: bool,
    pub align: u64,
}

/// Everything of a GEMM that a GEMM library may pick its kernel (and so its summation order) by:
/// operand storage, transposes, sizes, leading dimensions, whether C is accumulated into, the
/// epilogue (bias, bf16 output) and each pointer's alignment up to 256 bytes (as cuBLASLt's
/// plans are keyed, `lt_gemm.rs`). Two runs whose GEMMs are of the same kinds get the same
/// kernels from the library; only the addresses differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GemmKind {
    pub bf16_operands: bool,
    pub trans: (bool, bool),
    pub mnk: (usize, usize, usize),
    pub ld: (usize, usize, usize),
    pub accumulates: bool,
    /// (bias, bf16 output) of an epilogue GEMM; None for a plain one.
    pub epilogue: Option<(bool, bool)>,
    /// The alignments of A, B, C and the bias (256 without one).
    pub align: [u64; 4],
}

impl GemmKind {
    /// The alignment in bytes, up to 16 (what tensor-core kernels' vector loads want), of the
    /// least aligned pointer or leading dimension.
    fn vector_alignment(&self) -> u64 {
        let operand_bytes = if self.bf16_operands { 2 } else { 4 };
        let out_bytes = if self.epilogue.is_some_and(|(_, bf16)| bf16) {
            2
        } else {
            4
        };
        let (lda, ldb, ldc) = self.ld;
        let lds = [
            lda as u64 * operand_bytes,
            ldb as u64 * operand_bytes,
            ldc as u64 * out_bytes,
        ];
        (self.align.into_iter().chain(lds))
            .map(|v| 1u64 << v.trailing_zeros().min(4))
            .min()
            .unwrap_or(16)
    }
}

type Shared = Arc<Mutex<Memory>>;

fn lock(memory: &Shared) -> MutexGuard<'_, Memory> {
    memory.lock().unwrap_or_else(|e| e.into_inner())
}

/// A buffer of [`ShapeDevice`]: its first address, element count and element size. Dropping it
/// frees its bytes.
pub struct ShapeBuf {
    base: u64,
    len: usize,
    bytes_per: usize,
    memory: Shared,
}

impl Drop for ShapeBuf {
    fn drop(&mut self) {
        let mut memory = lock(&self.memory);
        if let Some(bytes) = memory.spans.remove(&self.base) {
            memory.in_use -= bytes;
        }
    }
}

/// See the module comment.
#[derive(Default)]
pub struct ShapeDevice {
    memory: Shared,
    signatures: Option<Signatures>,
}

impl ShapeDevice {
    /// A device with nothing allocated.
    pub fn new() -> Self {
        Self::default()
    }

    /// This device checking every launch's argument kinds against `signatures`.
    pub fn with_signatures(mut self, signatures: Signatures) -> Self {
        self.signatures = Some(signatures);
        self
    }

    /// The most bytes in use at once so far.
    pub fn peak_bytes(&self) -> u64 {
        self.memory().peak
    }

    /// Every bf16 GEMM met so far, with how many times.
    pub fn bf16_gemms(&self) -> Vec<(Bf16Gemm, usize)> {
        let mut met: BTreeMap<Bf16Gemm, usize> = BTreeMap::new();
        for (kind, &times) in self.memory().gemm_kinds.iter() {
            if kind.bf16_operands {
                let gemm = Bf16Gemm {
                    mnk: kind.mnk,
                    epilogue: kind.epilogue.is_some(),
                    align: kind.vector_alignment(),
                };
                *met.entry(gemm).or_default() += times;
            }
        }
        met.into_iter().collect()
    }

    /// The kinds of GEMM met so far.
    pub fn gemm_kinds(&self) -> BTreeSet<GemmKind> {
        self.memory().gemm_kinds.keys().copied().collect()
    }

    /// How many launches and GEMMs were checked so far.
    pub fn checked(&self) -> usize {
        self.memory().checked
    }

    /// How many of [`checked`](Self::checked) were GEMMs.
    pub fn gemms(&self) -> usize {
        self.memory().gemms
    }

    fn memory(&self) -> MutexGuard<'_, Memory> {
        lock(&self.memory)
    }

    fn alloc_bytes(&self, len: usize, bytes_per: usize) -> ShapeBuf {
        let mut memory = self.memory();
        let base = memory.next.max(ALIGN);
        let bytes = (len.max(1) * bytes_per) as u64;
        memory.spans.insert(base, bytes);
        memory.in_use += bytes;
        memory.peak = memory.peak.max(memory.in_use);
        memory.next = (base + bytes).next_multiple_of(ALIGN);
        ShapeBuf {
            base,
            len,
            bytes_per,
            memory: self.memory.clone(),
        }
    }

    /// Panics unless bytes [addr, addr + bytes) lie inside one live allocation.
    fn check_span(&self, what: &str, addr: u64, bytes: u64) {
        let memory = self.memory();
        let inside = memory
            .spans
            .range(..=addr)
            .next_back()
            .is_some_and(|(&base, &len)| addr + bytes <= base + len);
        assert!(
            inside,
            "{what}: {bytes} bytes at {addr:#x} are not inside one allocation"
        );
    }
}

fn addr_of(buf: &ShapeBuf, off: usize, n: usize) -> u64 {
    assert!(
        off + n <= buf.len,
        "view [{off}, {}) outside a buffer of {} elements",
        off + n,
        buf.len
    );
    buf.base + (off * buf.bytes_per) as u64
}

/// Bytes per element of a GEMM's A and B.
fn operand_bytes(g: &Gemm) -> u64 {
    match g.operands {
        GemmOperands::Bf16 => 2,
        GemmOperands::F32 => 4,
    }
}

/// Panics unless a launch of `name` with `dims` and `args` is one a GPU runs.
fn check_launch(device: &ShapeDevice, name: &str, dims: LaunchDims, args: &[Arg]) {
    device.memory().checked += 1;
    if let Some(signatures) = device.signatures {
        let kinds =
            signatures(name).unwrap_or_else(|| panic!("kernel {name} is in no kernel file"));
        let given: Vec<u8> = args.iter().map(Arg::kind).collect();
        assert_eq!(
            kinds, given,
            "kernel {name}: argument kinds differ from its parameters"
        );
    }
    assert!(
        dims.grid_fits(),
        "kernel {name}: grid {:?} outside CUDA's limits",
        dims.grid
    );
    assert!(
        (1..=1024).contains(&dims.block) && dims.block.is_multiple_of(32),
        "kernel {name}: block of {} threads (1 to 1024, whole warps)",
        dims.block
    );
    assert!(
        dims.shared_bytes <= SHARED_LIMIT,
        "kernel {name}: {} bytes of dynamic shared memory, more than 48 KiB",
        dims.shared_bytes
    );
    for (i, arg) in args.iter().enumerate() {
        match *arg {
            Arg::Ptr(0) => {}
            Arg::Ptr(addr) => device.check_span(&format!("kernel {name} argument {i}"), addr, 1),
            Arg::I32(v) => assert!(v >= 0, "kernel {name}: int argument {i} is {v}"),
            _ => {}
        }
    }
}

/// Panics unless every matrix of `g` lies inside its allocation with a valid leading dimension;
/// notes its kind.
fn check_gemm(device: &ShapeDevice, g: &Gemm, epilogue: Option<GemmEpilogue>) {
    let out_bytes = if epilogue.is_some_and(|e| e.out_bf16) {
        2
    } else {
        4
    };
    let align_256 = |addr: u64| 1u64 << addr.trailing_zeros().min(8);
    let kind = GemmKind {
        bf16_operands: g.operands == GemmOperands::Bf16,
        trans: (g.trans_a, g.trans_b),
        mnk: (g.m, g.n, g.k),
        ld: (g.lda, g.ldb, g.ldc),
        accumulates: g.beta != 0.0,
        epilogue: epilogue.map(|e| (e.bias.is_some(), e.out_bf16)),
        align: [g.a, g.b, g.c, epilogue.and_then(|e| e.bias).unwrap_or(256)].map(align_256),
    };
    let (ob, cb) = (operand_bytes(g), out_bytes);
    let mut memory = device.memory();
    memory.checked += 1;
    memory.gemms += 1;
    *memory.gemm_kinds.entry(kind).or_default() += 1;
    drop(memory);
    let fits = |v: usize| v <= i32::MAX as usize;
    assert!(
        fits(g.m) && fits(g.n) && fits(g.k) && g.m * g.n * g.k > 0,
        "GEMM sizes {:?}",
        (g.m, g.n, g.k)
    );
    let matrices = [
        (
            "A",
            g.a,
            if g.trans_a { (g.k, g.m) } else { (g.m, g.k) },
            g.lda,
            ob,
        ),
        (
            "B",
            g.b,
            if g.trans_b { (g.n, g.k) } else { (g.k, g.n) },
            g.ldb,
            ob,
        ),
        ("C", g.c, (g.m, g.n), g.ldc, cb),
    ];
    for (what, addr, (rows, cols), ld, bytes) in matrices {
        assert!(
            ld >= rows.max(1) && fits(ld),
            "GEMM {what}: leading dimension {ld} for {rows} rows"
        );
        let extent = ((cols - 1) * ld + rows) as u64 * bytes;
        device.check_span(
            &format!("GEMM {what} ({rows} x {cols}, ld {ld})"),
            addr,
            extent,
        );
    }
}

impl Device for ShapeDevice {
    type Buf = ShapeBuf;
    type IdxBuf = ShapeBuf;

    fn alloc(&self, n: usize) -> ShapeBuf {
        self.alloc_bytes(n, 4)
    }

    fn alloc_bf16(&self, n: usize) -> ShapeBuf {
        self.alloc_bytes(n, 2)
    }

    fn is_bf16(&self, buf: &ShapeBuf) -> bool {
        buf.bytes_per == 2
    }

    fn alloc_idx(&self, n: usize) -> ShapeBuf {
        self.alloc_bytes(n, 4)
    }

    fn upload(&self, src: &[f32], dst: &mut ShapeBuf, off: usize) {
        addr_of(dst, off, src.len());
    }

    fn download(&self, src: &ShapeBuf, off: usize, dst: &mut [f32]) {
        addr_of(src, off, dst.len());
        dst.fill(0.0);
    }

    fn upload_idx(&self, src: &[u32], dst: &mut ShapeBuf, off: usize) {
        addr_of(dst, off, src.len());
    }

    fn download_idx(&self, src: &ShapeBuf, off: usize, dst: &mut [u32]) {
        addr_of(src, off, dst.len());
        dst.fill(0);
    }

    fn addr(&self, buf: &ShapeBuf, off: usize, n: usize) -> u64 {
        addr_of(buf, off, n)
    }

    fn addr_mut(&self, buf: &mut ShapeBuf, off: usize, n: usize) -> u64 {
        addr_of(buf, off, n)
    }

    fn idx_addr(&self, buf: &ShapeBuf, off: usize, n: usize) -> u64 {
        addr_of(buf, off, n)
    }

    fn launch(&self, _module: Module, name: &'static str, dims: LaunchDims, args: &[Arg]) {
        check_launch(self, name, dims, args);
    }

    fn gemm(&self, g: &Gemm) {
        check_gemm(self, g, None);
    }

    fn gemm_epilogue(&self, g: &Gemm, epilogue: GemmEpilogue) -> bool {
        check_gemm(self, g, Some(epilogue));
        if let Some(bias) = epilogue.bias {
            self.check_span("GEMM bias", bias, g.m as u64 * 4);
        }
        true
    }

    fn memory_in_use(&self) -> Option<u64> {
        Some(self.memory().in_use)
    }
}
