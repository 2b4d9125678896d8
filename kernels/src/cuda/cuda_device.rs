//! [`CudaDevice`]: the [`Device`] of a real GPU through cudarc: one context and one stream,
//! every kernel file compiled (NVRTC, disk-cached) and loaded when the device is opened, GEMMs
//! through cuBLAS: pedantic fp32 math (no TF32) for an fp32 backend, tensor cores with bf16
//! operands for a bf16 one.
//!
//! Uploads go through page-locked staging (`staging.rs`), so they queue without waiting; batch
//! inputs cross on a copy stream of their own (`input_stream.rs`), overlapped with the step.
//! cudarc's per-buffer event tracking is turned off: all work runs in order on this one stream
//! (the input copies are ordered against it by events). Code that uses another stream (e.g. a
//! collective) must order itself against [`CudaDevice::stream`].

use super::compile::module_cubin;
use super::cuda_buf::CudaBuf;
use super::device::{Arg, Device, Gemm, GemmEpilogue, GemmOperands, LaunchDims, Module, MODULES};
use super::driver_error::{describe_cublas, describe_driver};
use super::input_stream::InputStream;
use super::lt_gemm::LtGemm;
use super::probe::{check_cuda, CudaError};
use super::staging::Staging;
use crate::precision::round_bf16;
use cudarc::cublas::{result as blas, sys as blas_sys, CudaBlas};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr, DriverError,
    LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::Ptx;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What the start-up table shows about a GPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    pub ordinal: usize,
    pub name: String,
    pub total_bytes: usize,
    /// Compute capability (major, minor).
    pub capability: (i32, i32),
}

/// A GPU with its stream, cuBLAS handle and loaded kernels.
pub struct CudaDevice {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    /// cuBLAS in pedantic math: true-fp32 SGEMMs.
    blas: CudaBlas,
    /// cuBLAS in default math, for the bf16 tensor-core GEMMs (their compute type is explicit;
    /// a handle of their own so the pedantic one never has to change mode).
    blas_tensor: CudaBlas,
    /// cuBLASLt, for the bf16 GEMMs whose epilogue adds the bias and rounds the output.
    lt: LtGemm,
    modules: HashMap<Module, Arc<CudaModule>>,
    functions: Mutex<HashMap<&'static str, CudaFunction>>,
    /// Page-locked blocks the uploads go through, so they never wait for queued work.
    staging: Staging,
    /// The batch inputs' copy stream (None: `ECGFM_CUDA_SERIAL_INPUTS=1`).
    inputs: Option<InputStream>,
    info: DeviceInfo,
}

fn device_err(ordinal: usize) -> impl Fn(String) -> CudaError {
    move |reason| CudaError::Device { ordinal, reason }
}

/// A driver error of `what` while opening device `ordinal`, in words.
fn driver_err(ordinal: usize, what: String) -> impl FnOnce(DriverError) -> CudaError {
    move |e| device_err(ordinal)(format!("{what}: {}", describe_driver(&e)))
}

/// Keeps memory freed into the device's default pool (buffers are allocated stream-ordered)
/// for the next allocation instead of returning it to the driver at each synchronisation,
/// which would make a buffer freed and allocated again every step pay the driver each time.
fn keep_freed_memory(ctx: &CudaContext) -> Result<(), String> {
    use cudarc::driver::sys;
    let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
    let mut threshold = u64::MAX;
    // SAFETY: the driver writes the pool handle we pass, for a device of a live context; the
    // attribute takes a u64, passed by pointer.
    unsafe {
        sys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device())
            .result()
            .map_err(|e| format!("its memory pool: {}", describe_driver(&e)))?;
        sys::cuMemPoolSetAttribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            &mut threshold as *mut u64 as *mut std::ffi::c_void,
        )
        .result()
        .map_err(|e| {
            format!(
                "its memory pool's release threshold: {}",
                describe_driver(&e)
            )
        })
    }
}

impl CudaDevice {
    /// Opens GPU `ordinal`: probes the libraries and devices first (a missing one is an error,
    /// never a panic), then creates the context, stream and cuBLAS handle and loads every
    /// kernel file, compiling those not yet in the disk cache.
    pub fn new(ordinal: usize) -> Result<Self, CudaError> {
        check_cuda(ordinal)?;
        let err = device_err(ordinal);
        let driver = |what: &str| driver_err(ordinal, what.to_string());
        let ctx = CudaContext::new(ordinal).map_err(driver("creating a context"))?;
        // SAFETY: no buffer exists yet; everything then runs on the one stream below.
        unsafe { ctx.disable_event_tracking() };
        keep_freed_memory(&ctx).map_err(&err)?;
        let stream = ctx.new_stream().map_err(driver("creating a stream"))?;
        let blas = CudaBlas::new(stream.clone())
            .map_err(|e| err(format!("cuBLAS: {}", describe_cublas(e.0))))?;
        let blas_tensor = CudaBlas::new(stream.clone())
            .map_err(|e| err(format!("cuBLAS: {}", describe_cublas(e.0))))?;
        let lt = LtGemm::new(&stream).map_err(&err)?;
        // Pedantic math keeps fp32 SGEMMs in true fp32 (a bf16 backend's GEMMs name their
        // tensor-core compute type explicitly). The default math mode should too (TF32 needs
        // CUBLAS_TF32_TENSOR_OP_MATH) and may be faster: `ECGFM_CUDA_DEFAULT_MATH=1` keeps it,
        // to measure the difference (scripts/gpu-check.sh item 8g).
        let math = match std::env::var("ECGFM_CUDA_DEFAULT_MATH").as_deref() {
            Ok("1") => blas_sys::cublasMath_t::CUBLAS_DEFAULT_MATH,
            _ => blas_sys::cublasMath_t::CUBLAS_PEDANTIC_MATH,
        };
        // SAFETY: the handle is live.
        unsafe { blas_sys::cublasSetMathMode(*blas.handle(), math) }
            .result()
            .map_err(|e| err(format!("cuBLAS math mode: {}", describe_cublas(e.0))))?;
        let capability = ctx
            .compute_capability()
            .map_err(driver("compute capability"))?;
        let info = DeviceInfo {
            ordinal,
            name: ctx.name().map_err(driver("device name"))?,
            total_bytes: ctx.total_mem().map_err(driver("memory size"))?,
            capability,
        };
        let arch = (capability.0 * 10 + capability.1) as u32;
        let mut modules = HashMap::new();
        // The bf16 tensor-core kernels need sm_80; older GPUs run attention in fp32 (`bf16_mma`).
        let skip = |m: Module| m == Module::AttentionBf16 && arch < 80;
        for (module, file, _) in MODULES.into_iter().filter(|(m, _, _)| !skip(*m)) {
            let cubin = module_cubin(module, arch)?;
            let loaded = ctx
                .load_module(Ptx::from_binary(cubin))
                .map_err(driver(&format!("loading kernels/cuda/{file}")))?;
            modules.insert(module, loaded);
        }
        let inputs = InputStream::from_env(&ctx).map_err(driver("creating a copy stream"))?;
        Ok(CudaDevice {
            ctx,
            stream,
            blas,
            blas_tensor,
            lt,
            modules,
            functions: Mutex::new(HashMap::new()),
            staging: Staging::from_env(),
            inputs,
            info,
        })
    }

    /// The stream every op of this device is queued on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Bytes of device memory free (for every process on the device; None when the driver
    /// does not say).
    pub fn memory_free(&self) -> Option<usize> {
        self.ctx.mem_get_info().ok().map(|(free, _)| free)
    }

    /// Bytes of device memory in use (by every process on the device).
    pub fn memory_used(&self) -> usize {
        self.ctx
            .mem_get_info()
            .map(|(free, total)| total.saturating_sub(free))
            .unwrap_or(0)
    }

    /// How many GEMM shapes met so far run with a cuBLASLt epilogue, and how many cuBLASLt had
    /// none for (those add their bias in a second pass).
    pub fn gemm_epilogue_shapes(&self) -> (usize, usize) {
        self.lt.shapes()
    }

    /// Waits until every queued op has finished.
    pub fn synchronize(&self) {
        self.stream
            .synchronize()
            .unwrap_or_else(|e| panic!("CUDA stream failed: {}", describe_driver(&e)));
    }

    fn function(&self, module: Module, name: &'static str) -> CudaFunction {
        let mut functions = self.functions.lock().unwrap_or_else(|e| e.into_inner());
        functions
            .entry(name)
            .or_insert_with(|| {
                self.modules[&module]
                    .load_function(name)
                    .unwrap_or_else(|e| {
                        panic!("kernel {name} not in {module:?}: {}", describe_driver(&e))
                    })
            })
            .clone()
    }

    /// Raw device address of element `off` (of at least `off + n`); with event tracking off, no
    /// synchronisation is implied: everything is ordered on the one stream.
    fn raw<T>(&self, buf: &CudaSlice<T>, off: usize, n: usize) -> u64 {
        assert!(
            off + n <= buf.len(),
            "view [{off}, {}) outside a buffer of {} elements",
            off + n,
            buf.len()
        );
        let (ptr, _sync) = buf.device_ptr(&self.stream);
        ptr + (off * std::mem::size_of::<T>()) as u64
    }
}

/// Panics with the failing operation: a CUDA error inside a step is fatal for the run.
fn expect<T>(what: &str, result: Result<T, DriverError>) -> T {
    result.unwrap_or_else(|e| panic!("CUDA {what} failed: {}", describe_driver(&e)))
}

/// What a failed allocation of `bytes` says: how much it asked, how much was free, what to do.
fn allocation_failure(bytes: usize, free: Option<usize>, err: impl std::fmt::Display) -> String {
    let gib = |b: usize| crate::gib(b as u64);
    let free = free.map_or(String::new(), |f| format!(" with {:.2} GiB free", gib(f)));
    format!(
        "CUDA could not allocate {:.2} GiB{free} ({err}): lower --batch-size or recompute \
         activations (--set train.recompute=blocks); another process may hold the GPU's memory \
         (nvidia-smi)",
        gib(bytes)
    )
}

impl CudaDevice {
    /// `n` zeroed elements of `T` (at least one), or a panic saying what did not fit.
    fn alloc_zeros<T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits>(
        &self,
        n: usize,
    ) -> CudaSlice<T> {
        let n = n.max(1);
        self.stream.alloc_zeros::<T>(n).unwrap_or_else(|e| {
            let bytes = n * std::mem::size_of::<T>();
            let reason = describe_driver(&e);
            panic!("{}", allocation_failure(bytes, self.memory_free(), reason))
        })
    }
}

impl Device for CudaDevice {
    type Buf = CudaBuf;
    type IdxBuf = CudaSlice<u32>;

    fn alloc(&self, n: usize) -> CudaBuf {
        let slice = self.alloc_zeros::<f32>(n);
        if let Some(inputs) = &self.inputs {
            // A freed input buffer's address may come back: its release is not this one's.
            inputs.forget(self.raw(&slice, 0, 0));
        }
        CudaBuf::F32(slice)
    }

    fn alloc_bf16(&self, n: usize) -> CudaBuf {
        CudaBuf::Bf16(self.alloc_zeros::<u16>(n))
    }

    fn is_bf16(&self, buf: &CudaBuf) -> bool {
        matches!(buf, CudaBuf::Bf16(_))
    }

    fn alloc_idx(&self, n: usize) -> CudaSlice<u32> {
        self.alloc_zeros::<u32>(n)
    }

    fn upload(&self, src: &[f32], dst: &mut CudaBuf, off: usize) {
        match dst {
            CudaBuf::F32(dst) => {
                let addr = self.raw(dst, off, src.len());
                let staged = self.staging.upload(&self.ctx, &self.stream, src, addr);
                if !expect("upload", staged) {
                    let mut view = dst.slice_mut(off..off + src.len());
                    expect("upload", self.stream.memcpy_htod(src, &mut view));
                }
            }
            // Operand storage is written by kernels; an upload into it is a test's.
            CudaBuf::Bf16(dst) => {
                let bits: Vec<u16> = src
                    .iter()
                    .map(|&x| (round_bf16(x).to_bits() >> 16) as u16)
                    .collect();
                let mut view = dst.slice_mut(off..off + src.len());
                expect("upload", self.stream.memcpy_htod(&bits, &mut view));
            }
        }
    }

    fn upload_input(&self, src: &[f32], dst: &mut CudaBuf, off: usize) {
        let (Some(inputs), CudaBuf::F32(slice)) = (&self.inputs, &*dst) else {
            return self.upload(src, dst, off);
        };
        let (addr, base) = (self.raw(slice, off, src.len()), self.raw(slice, 0, 0));
        let queues = (&self.ctx, &*self.stream, &self.staging);
        expect("input upload", inputs.upload(queues, src, addr, base));
    }

    fn release_input(&self, buf: &mut CudaBuf) {
        if let Some(inputs) = &self.inputs {
            let base = self.addr(buf, 0, 0);
            expect("input release", inputs.release(&self.stream, base));
        }
    }

    fn download(&self, src: &CudaBuf, off: usize, dst: &mut [f32]) {
        match src {
            CudaBuf::F32(src) => {
                let view = src.slice(off..off + dst.len());
                expect("download", self.stream.memcpy_dtoh(&view, dst));
            }
            CudaBuf::Bf16(src) => {
                let mut bits = vec![0u16; dst.len()];
                let view = src.slice(off..off + dst.len());
                expect("download", self.stream.memcpy_dtoh(&view, &mut bits));
                for (d, b) in dst.iter_mut().zip(bits) {
                    *d = f32::from_bits((b as u32) << 16);
                }
            }
        }
        self.synchronize();
    }

    fn upload_idx(&self, src: &[u32], dst: &mut CudaSlice<u32>, off: usize) {
        let addr = self.raw(dst, off, src.len());
        let staged = self.staging.upload(&self.ctx, &self.stream, src, addr);
        if !expect("upload", staged) {
            let mut view = dst.slice_mut(off..off + src.len());
            expect("upload", self.stream.memcpy_htod(src, &mut view));
        }
    }

    fn download_idx(&self, src: &CudaSlice<u32>, off: usize, dst: &mut [u32]) {
        let view = src.slice(off..off + dst.len());
        expect("download", self.stream.memcpy_dtoh(&view, dst));
        self.synchronize();
    }

    fn addr(&self, buf: &CudaBuf, off: usize, n: usize) -> u64 {
        match buf {
            CudaBuf::F32(s) => self.raw(s, off, n),
            CudaBuf::Bf16(s) => self.raw(s, off, n),
        }
    }

    fn addr_mut(&self, buf: &mut CudaBuf, off: usize, n: usize) -> u64 {
        self.addr(buf, off, n)
    }

    fn idx_addr(&self, buf: &CudaSlice<u32>, off: usize, n: usize) -> u64 {
        self.raw(buf, off, n)
    }

    fn launch(&self, module: Module, name: &'static str, dims: LaunchDims, args: &[Arg]) {
        let function = self.function(module, name);
        let mut launch = self.stream.launch_builder(&function);
        for arg in args {
            match arg {
                Arg::Ptr(v) | Arg::U64(v) => launch.arg(v),
                Arg::I32(v) => launch.arg(v),
                Arg::F32(v) => launch.arg(v),
                Arg::F64(v) => launch.arg(v),
            };
        }
        let config = LaunchConfig {
            grid_dim: dims.grid,
            block_dim: (dims.block, 1, 1),
            shared_mem_bytes: dims.shared_bytes,
        };
        // SAFETY: the argument kinds follow the kernel's C signature (checked by the host
        // harness on every launch of the same code) and every address was bounds-checked.
        expect(name, unsafe { launch.launch(config) });
    }

    fn memory_in_use(&self) -> Option<u64> {
        Some(self.memory_used() as u64)
    }

    fn bf16_mma(&self) -> bool {
        self.info.capability.0 >= 8
    }

    fn gemm(&self, g: &Gemm) {
        let op = |t: bool| match t {
            true => blas_sys::cublasOperation_t::CUBLAS_OP_T,
            false => blas_sys::cublasOperation_t::CUBLAS_OP_N,
        };
        let (alpha, beta) = (1.0f32, g.beta);
        // cuBLAS runs in the calling thread's current context.
        expect("binding the context", self.ctx.bind_to_thread());
        let (m, n, k) = (g.m as i32, g.n as i32, g.k as i32);
        let (lda, ldb, ldc) = (g.lda as i32, g.ldb as i32, g.ldc as i32);
        // SAFETY (both arms): the handle is live; the addresses come from bounds-checked views
        // of live buffers on this stream.
        let (f32_type, bf16_type) = (
            blas_sys::cudaDataType::CUDA_R_32F,
            blas_sys::cudaDataType::CUDA_R_16BF,
        );
        let result = match g.operands {
            // Pedantic math (set when the device opened) keeps SGEMM in true fp32: no TF32.
            GemmOperands::F32 => unsafe {
                blas::sgemm(
                    *self.blas.handle(),
                    op(g.trans_a),
                    op(g.trans_b),
                    m,
                    n,
                    k,
                    &alpha,
                    g.a as *const f32,
                    lda,
                    g.b as *const f32,
                    ldb,
                    &beta,
                    g.c as *mut f32,
                    ldc,
                )
            },
            // Tensor cores: bf16 storage, f32 accumulation and output.
            GemmOperands::Bf16 => unsafe {
                blas::gemm_ex(
                    *self.blas_tensor.handle(),
                    op(g.trans_a),
                    op(g.trans_b),
                    m,
                    n,
                    k,
                    &alpha as *const f32 as *const _,
                    g.a as *const _,
                    bf16_type,
                    lda,
                    g.b as *const _,
                    bf16_type,
                    ldb,
                    &beta as *const f32 as *const _,
                    g.c as *mut _,
                    f32_type,
                    ldc,
                    blas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                    blas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
                )
            },
        };
        result.unwrap_or_else(|e| {
            panic!(
                "cuBLAS GEMM (m {m}, n {n}, k {k}) failed: {}",
                describe_cublas(e.0)
            )
        });
    }

    fn gemm_epilogue(&self, g: &Gemm, epilogue: GemmEpilogue) -> bool {
        assert!(
            g.operands == GemmOperands::Bf16 && g.beta == 0.0,
            "a GEMM epilogue takes bf16 operands and beta = 0"
        );
        // cuBLASLt runs in the calling thread's current context.
        expect("binding the context", self.ctx.bind_to_thread());
        self.lt.run(&self.stream, g, epilogue)
    }
}

#[cfg(test)]
mod tests {
    use super::allocation_failure;

    #[test]
    fn a_failed_allocation_says_what_it_asked_what_was_free_and_what_to_do() {
        let text = allocation_failure(3 << 30, Some(1 << 29), "out of memory");
        assert_eq!(
            text,
            "CUDA could not allocate 3.00 GiB with 0.50 GiB free (out of memory): lower \
             --batch-size or recompute activations (--set train.recompute=blocks); another \
             process may hold the GPU's memory (nvidia-smi)"
        );
        assert!(allocation_failure(1 << 30, None, "x").contains("1.00 GiB (x)"));
    }
}
