//! [`CudaDevice`](super::CudaDevice)'s GEMMs with an epilogue (`Device::gemm_epilogue`), through
//! cuBLASLt: bf16 A and B, f32 accumulation, the bias added to the f32 product and D written as
//! f32 or rounded to bf16, in the GEMM's own pass instead of a second kernel over its output.
//! The values are those of the plain GEMM and bias pass within bf16 tolerance, not necessarily
//! bitwise: cuBLASLt's heuristic and `cublasGemmEx` may pick different kernels (tile shape,
//! split-K, summation order). The host harness, whose twin shares one GEMM loop, is bitwise;
//! gpu-check item 3c reports whether a GPU is (unverified so far).
//!
//! The descriptors and algorithm of each shape (transposes, sizes, leading dimensions, output
//! type, bias, and the alignment of every pointer) are made and asked of cuBLASLt's heuristic
//! once and kept (a call only points them at its bias), so every call of a shape runs the same
//! kernel: a run stays bitwise reproducible. A shape cuBLASLt has no
//! algorithm for, or whose launch it refuses, is remembered as such and `gemm_epilogue` answers
//! false for it (the backend then runs the plain GEMM and its bias pass), so the fused path can
//! never fail a run. `ECGFM_CUDA_NO_GEMM_EPILOGUES=1` turns it off (launch/src/device.rs), to
//! measure what it saves.

use super::device::{Gemm, GemmEpilogue};
use super::driver_error::{describe_cublas_lt, describe_driver};
use cudarc::cublaslt::{result as lt, sys};
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr};
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::{Arc, Mutex};

/// cuBLASLt's recommended workspace on Hopper (4 MiB suffices before).
const WORKSPACE_BYTES: usize = 32 << 20;

/// Everything the algorithm choice depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Shape {
    trans: (bool, bool),
    mnk: (usize, usize, usize),
    ld: (usize, usize, usize),
    epilogue: (bool, bool),
    /// Alignment in bytes (up to 256) of A, B, C and the bias.
    align: [u32; 4],
}

/// The descriptors and algorithm of one shape, kept for every call of it.
struct Plan {
    descriptors: Descriptors,
    algo: sys::cublasLtMatmulAlgo_t,
}

/// The cuBLASLt handle, its workspace and the plan of every shape met so far (None: no fused
/// GEMM for it).
pub(super) struct LtGemm {
    handle: sys::cublasLtHandle_t,
    workspace: CudaSlice<u8>,
    plans: Mutex<HashMap<Shape, Option<Plan>>>,
}

// SAFETY: the handle and the plans' descriptors are used under the `plans` lock only, on the
// device's one stream.
unsafe impl Send for LtGemm {}
unsafe impl Sync for LtGemm {}

impl Drop for LtGemm {
    fn drop(&mut self) {
        // SAFETY: the handle was created by `new` and is not used after this.
        let _ = unsafe { lt::destroy_handle(self.handle) };
    }
}

/// The largest power of two up to 256 that divides `addr`.
fn alignment(addr: u64) -> u32 {
    1 << addr.trailing_zeros().min(8)
}

/// The matmul descriptor and layouts of one shape, destroyed when dropped.
struct Descriptors {
    desc: sys::cublasLtMatmulDesc_t,
    layouts: [sys::cublasLtMatrixLayout_t; 3],
}

impl Drop for Descriptors {
    fn drop(&mut self) {
        // SAFETY: created by `describe`, used only while this value lives.
        unsafe {
            let _ = lt::destroy_matmul_desc(self.desc);
            for layout in self.layouts {
                let _ = lt::destroy_matrix_layout(layout);
            }
        }
    }
}

/// Sets one attribute of a matmul descriptor to `value`.
///
/// # Safety
/// `desc` is live and `T` is the attribute's type.
unsafe fn set<T>(
    desc: sys::cublasLtMatmulDesc_t,
    attr: sys::cublasLtMatmulDescAttributes_t,
    value: &T,
) -> Result<(), lt::CublasError> {
    lt::set_matmul_desc_attribute(
        desc,
        attr,
        value as *const T as *const c_void,
        std::mem::size_of::<T>(),
    )
}

/// The matmul descriptor and the A, B and C/D layouts of `g` with `e`.
fn describe(g: &Gemm, e: GemmEpilogue) -> Result<Descriptors, lt::CublasError> {
    use sys::cublasLtMatmulDescAttributes_t as Attr;
    use sys::cudaDataType::{CUDA_R_16BF, CUDA_R_32F};
    let desc = lt::create_matmul_desc(sys::cublasComputeType_t::CUBLAS_COMPUTE_32F, CUDA_R_32F)?;
    let layout = |ty, rows: usize, cols: usize, ld: usize| {
        lt::create_matrix_layout(ty, rows as u64, cols as u64, ld as i64)
    };
    let (a_rows, a_cols) = if g.trans_a { (g.k, g.m) } else { (g.m, g.k) };
    let (b_rows, b_cols) = if g.trans_b { (g.n, g.k) } else { (g.k, g.n) };
    let out_type = if e.out_bf16 { CUDA_R_16BF } else { CUDA_R_32F };
    let descriptors = Descriptors {
        desc,
        layouts: [
            layout(CUDA_R_16BF, a_rows, a_cols, g.lda)?,
            layout(CUDA_R_16BF, b_rows, b_cols, g.ldb)?,
            layout(out_type, g.m, g.n, g.ldc)?,
        ],
    };
    let op = |t: bool| match t {
        true => cudarc::cublas::sys::cublasOperation_t::CUBLAS_OP_T,
        false => cudarc::cublas::sys::cublasOperation_t::CUBLAS_OP_N,
    };
    let epilogue = match e.bias {
        Some(_) => sys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_BIAS,
        None => sys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_DEFAULT,
    };
    // SAFETY: the descriptor is live; each value has its attribute's type.
    unsafe {
        set(desc, Attr::CUBLASLT_MATMUL_DESC_TRANSA, &op(g.trans_a))?;
        set(desc, Attr::CUBLASLT_MATMUL_DESC_TRANSB, &op(g.trans_b))?;
        set(desc, Attr::CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue)?;
        if let Some(bias) = e.bias {
            set(desc, Attr::CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias)?;
            set(desc, Attr::CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &CUDA_R_32F)?;
        }
    }
    Ok(descriptors)
}

impl LtGemm {
    /// A handle and workspace on `stream`.
    pub(super) fn new(stream: &Arc<CudaStream>) -> Result<Self, String> {
        let handle =
            lt::create_handle().map_err(|e| format!("cuBLASLt: {}", describe_cublas_lt(e.0)))?;
        let workspace = stream
            .alloc_zeros::<u8>(WORKSPACE_BYTES)
            .map_err(|e| format!("cuBLASLt workspace: {}", describe_driver(&e)))?;
        Ok(Self {
            handle,
            workspace,
            plans: Mutex::new(HashMap::new()),
        })
    }

    /// Queues `g` with epilogue `e` on `stream` (see `Device::gemm_epilogue`); false, having
    /// queued nothing, when cuBLASLt has no algorithm for its shape or refuses the launch.
    pub(super) fn run(&self, stream: &CudaStream, g: &Gemm, e: GemmEpilogue) -> bool {
        let shape = Shape {
            trans: (g.trans_a, g.trans_b),
            mnk: (g.m, g.n, g.k),
            ld: (g.lda, g.ldb, g.ldc),
            epilogue: (e.bias.is_some(), e.out_bf16),
            align: [g.a, g.b, g.c, e.bias.unwrap_or(256)].map(alignment),
        };
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        let entry = plans
            .entry(shape)
            .or_insert_with(|| self.plan(g, e, shape.align));
        let Some(plan) = entry else {
            return false;
        };
        let launched = self.launch(plan, stream, g, e.bias);
        if launched.is_err() {
            *entry = None;
        }
        launched.is_ok()
    }

    /// The descriptors of `g` with `e` and cuBLASLt's algorithm for them (None: it has none).
    fn plan(&self, g: &Gemm, e: GemmEpilogue, align: [u32; 4]) -> Option<Plan> {
        let descriptors = describe(g, e).ok()?;
        let algo = self.heuristic(&descriptors, align)?;
        Some(Plan { descriptors, algo })
    }

    /// Queues `g` with `plan` (its descriptors pointed at this call's bias) on `stream`.
    fn launch(
        &self,
        plan: &Plan,
        stream: &CudaStream,
        g: &Gemm,
        bias: Option<u64>,
    ) -> Result<(), lt::CublasError> {
        let desc = plan.descriptors.desc;
        if let Some(bias) = bias {
            let attr = sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_BIAS_POINTER;
            // SAFETY: the descriptor is live and the pointer is the attribute's type.
            unsafe { set(desc, attr, &bias)? };
        }
        let (alpha, beta) = (1.0f32, 0.0f32);
        let [a_layout, b_layout, c_layout] = plan.descriptors.layouts;
        let (workspace, _sync) = self.workspace.device_ptr(stream);
        // SAFETY: live descriptors; the addresses are bounds-checked views of live buffers of
        // the layouts' types on this stream; the workspace is ours, used on this stream only.
        unsafe {
            lt::matmul(
                self.handle,
                desc,
                &alpha as *const f32 as *const c_void,
                &beta as *const f32 as *const c_void,
                g.a as *const c_void,
                a_layout,
                g.b as *const c_void,
                b_layout,
                g.c as *const c_void,
                c_layout,
                g.c as *mut c_void,
                c_layout,
                &plan.algo,
                workspace as *mut c_void,
                WORKSPACE_BYTES,
                stream.cu_stream() as sys::cudaStream_t,
            )
        }
    }

    /// How many shapes met so far run fused, and how many cuBLASLt had no fused GEMM for.
    pub(super) fn shapes(&self) -> (usize, usize) {
        let plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        let fused = plans.values().filter(|p| p.is_some()).count();
        (fused, plans.len() - fused)
    }

    /// cuBLASLt's first choice for `descriptors` with pointers of the given alignments.
    fn heuristic(&self, d: &Descriptors, align: [u32; 4]) -> Option<sys::cublasLtMatmulAlgo_t> {
        use sys::cublasLtMatmulPreferenceAttributes_t as Pref;
        let pref = lt::create_matmul_pref().ok()?;
        let [a, b, c, _] = align;
        let set = |attr, value: *const c_void, size| {
            // SAFETY: `pref` is live and `value` points to `size` bytes of the attribute's type.
            unsafe { lt::set_matmul_pref_attribute(pref, attr, value, size) }
        };
        let bytes = WORKSPACE_BYTES;
        let mut ok = set(
            Pref::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
            &bytes as *const usize as *const c_void,
            std::mem::size_of::<usize>(),
        )
        .is_ok();
        for (attr, value) in [
            (Pref::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, a),
            (Pref::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, b),
            (Pref::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, c),
            (Pref::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, c),
        ] {
            ok &= set(attr, &value as *const u32 as *const c_void, 4).is_ok();
        }
        let [a_layout, b_layout, c_layout] = d.layouts;
        // SAFETY: live descriptors and preference.
        let found = ok.then(|| unsafe {
            lt::get_matmul_algo_heuristic(
                self.handle,
                d.desc,
                a_layout,
                b_layout,
                c_layout,
                c_layout,
                pref,
            )
        });
        // SAFETY: created above, not used after this.
        let _ = unsafe { lt::destroy_matmul_pref(pref) };
        match found {
            Some(Ok(result)) if result.workspaceSize <= WORKSPACE_BYTES => Some(result.algo),
            _ => None,
        }
    }
}
