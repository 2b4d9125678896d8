//! The probe that runs before anything touches cudarc (which panics when a library is missing):
//! loads each CUDA library by the same names cudarc would try, then asks the driver for devices.
//! Every failure is a [`CudaError`] naming what is missing; nothing here panics.

use std::fmt;

use super::driver_error::describe_driver;
use cudarc::driver::{sys::CUresult, DriverError};

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
    #[error("CUDA is not usable: the NVIDIA driver did not start ({0})")]
    DriverStart(String),
    #[error(
        "CUDA is not usable: the NVIDIA driver supports CUDA {}.{}, and ecgfm's kernels \
         (NVRTC 13) and cuBLAS 13 need CUDA {}.{} or newer: update the driver (R580 or later)",
        .found / 1000, .found % 1000 / 10, .needed / 1000, .needed % 1000 / 10
    )]
    OldDriver { found: i32, needed: i32 },
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
    let no_device = |call: &str, e: DriverError| {
        CudaError::NoDevice(format!("{call}: {}{}", describe_driver(&e), visible_hint()))
    };
    cudarc::driver::result::init().map_err(|e| match e.0 {
        CUresult::CUDA_ERROR_NO_DEVICE => no_device("cuInit", e),
        _ => CudaError::DriverStart(format!("cuInit: {}", describe_driver(&e))),
    })?;
    check_driver_version()?;
    let count = cudarc::driver::CudaContext::device_count()
        .map_err(|e| no_device("cuDeviceGetCount", e))?;
    if count <= 0 {
        return Err(CudaError::NoDevice(format!("0 devices{}", visible_hint())));
    }
    Ok(count as usize)
}

/// Where `CUDA_VISIBLE_DEVICES` is set, says so: it hides every GPU it does not list (an empty
/// value or `-1` hides them all), the usual reason a machine with GPUs shows none.
fn visible_hint() -> String {
    match std::env::var("CUDA_VISIBLE_DEVICES") {
        Ok(list) => {
            format!("; CUDA_VISIBLE_DEVICES is {list:?}, which hides the GPUs it does not list")
        }
        Err(_) => String::new(),
    }
}

/// The CUDA version the libraries ecgfm loads were built for (cudarc's `cuda-13000`).
const NEEDED_DRIVER_CUDA: i32 = 13000;

/// Refuses a driver older than the CUDA the kernels and cuBLAS need, which would otherwise fail
/// later with errors that do not point at the driver.
fn check_driver_version() -> Result<(), CudaError> {
    let mut found = 0;
    // SAFETY: cuDriverGetVersion writes the int we pass; the driver library is loaded.
    let result = unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut found) };
    if let Err(e) = result.result() {
        return Err(CudaError::DriverStart(format!(
            "cuDriverGetVersion: {}",
            describe_driver(&e)
        )));
    }
    if found < NEEDED_DRIVER_CUDA {
        return Err(CudaError::OldDriver {
            found,
            needed: NEEDED_DRIVER_CUDA,
        });
    }
    Ok(())
}

/// NVRTC alone (enough to compile the kernels, no GPU needed).
pub fn check_nvrtc() -> Result<(), CudaError> {
    check_library(&NVRTC)
}

/// Everything the CUDA backend needs: the driver, NVRTC, cuBLAS and cuBLASLt, and a device
/// `ordinal` that the driver reports.
pub fn check_cuda(ordinal: usize) -> Result<(), CudaError> {
    let count = visible_devices()?;
    for lib in [&NVRTC, &CUBLAS, &CUBLAS_LT] {
        check_library(lib)?;
    }
    if ordinal >= count {
        return Err(CudaError::Device {
            ordinal,
            reason: format!(
                "the driver shows {count} GPU(s), cuda:0 to cuda:{}{}",
                count - 1,
                visible_hint()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_driver_is_named_with_its_cuda_version_and_the_way_out() {
        let err = CudaError::OldDriver {
            found: 12040,
            needed: NEEDED_DRIVER_CUDA,
        };
        let text = err.to_string();
        assert!(
            text.contains("supports CUDA 12.4") && text.contains("CUDA 13.0 or newer"),
            "{text}"
        );
        assert!(text.contains("update the driver"), "{text}");
    }
}
