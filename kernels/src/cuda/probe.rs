//! The probe that runs before anything touches cudarc (which panics when a library is missing):
//! loads each CUDA library by the same names cudarc would try, then asks the driver for devices.
//! Every failure is a [`CudaError`] naming what is missing; nothing here panics.

use std::fmt;

/// Why the CUDA backend cannot run.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    #[error(
        "CUDA is not usable: {library} could not be loaded ({tried} names tried on \
         LD_LIBRARY_PATH and the system paths). {hint}"
    )]
    MissingLibrary {
        library: &'static str,
        tried: usize,
        hint: &'static str,
    },
    #[error("CUDA is not usable: the driver found no GPU ({0})")]
    NoDevice(String),
    #[error("CUDA device {ordinal} is not usable: {reason}")]
    Device { ordinal: usize, reason: String },
    #[error("NVRTC could not compile kernels/cuda/{file} for sm_{arch}:\n{log}")]
    Compile {
        file: &'static str,
        arch: u32,
        log: String,
    },
}

/// A CUDA library the backend loads: cudarc's name for it, and how a user gets it.
struct Library {
    name: &'static str,
    what: &'static str,
    hint: &'static str,
}

const DRIVER: Library = Library {
    name: "cuda",
    what: "the NVIDIA driver library (libcuda.so.1)",
    hint: "Install the NVIDIA driver; on a machine without a GPU use --device cpu.",
};

const NVRTC: Library = Library {
    name: "nvrtc",
    what: "NVRTC (libnvrtc.so.13)",
    hint: "pip install nvidia-cuda-nvrtc and add its lib folder \
           (site-packages/nvidia/cu13/lib) to LD_LIBRARY_PATH.",
};

const CUBLAS: Library = Library {
    name: "cublas",
    what: "cuBLAS (libcublas.so.13)",
    hint: "pip install nvidia-cublas and add its lib folder \
           (site-packages/nvidia/cu13/lib) to LD_LIBRARY_PATH.",
};

const CUBLAS_LT: Library = Library {
    name: "cublasLt",
    what: "cuBLASLt (libcublasLt.so.13)",
    hint: "pip install nvidia-cublas and add its lib folder \
           (site-packages/nvidia/cu13/lib) to LD_LIBRARY_PATH.",
};

impl fmt::Debug for Library {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what)
    }
}

/// Loads `lib` by the first of cudarc's candidate names that loads (then unloads it).
fn check_library(lib: &Library) -> Result<(), CudaError> {
    let candidates = cudarc::get_lib_name_candidates(lib.name);
    for name in &candidates {
        // SAFETY: loading a CUDA library runs only its initialisers; nothing is called.
        if unsafe { libloading::Library::new(name) }.is_ok() {
            return Ok(());
        }
    }
    Err(CudaError::MissingLibrary {
        library: lib.what,
        tried: candidates.len(),
        hint: lib.hint,
    })
}

/// The number of GPUs the driver shows this process (after CUDA_VISIBLE_DEVICES); an error
/// when the driver is missing or shows none.
pub fn visible_devices() -> Result<usize, CudaError> {
    check_library(&DRIVER)?;
    cudarc::driver::result::init().map_err(|e| CudaError::NoDevice(format!("cuInit: {e}")))?;
    let count = cudarc::driver::CudaContext::device_count()
        .map_err(|e| CudaError::NoDevice(format!("cuDeviceGetCount: {e}")))?;
    if count <= 0 {
        return Err(CudaError::NoDevice("0 devices".into()));
    }
    Ok(count as usize)
}

/// NVRTC alone (enough to compile the kernels, no GPU needed).
pub fn check_nvrtc() -> Result<(), CudaError> {
    check_library(&NVRTC)
}

/// Everything the CUDA backend needs: the driver, NVRTC, cuBLAS and cuBLASLt, and a device
/// `ordinal` that the driver reports.
pub fn check_cuda(ordinal: usize) -> Result<(), CudaError> {
    for lib in [&NVRTC, &CUBLAS, &CUBLAS_LT] {
        check_library(lib)?;
    }
    let count = visible_devices()?;
    if ordinal >= count {
        return Err(CudaError::Device {
            ordinal,
            reason: format!("only {count} device(s) visible (CUDA_VISIBLE_DEVICES?)"),
        });
    }
    Ok(())
}
