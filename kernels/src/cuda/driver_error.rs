//! CUDA driver and cuBLAS errors in words: `NAME (what it means)`, as the libraries word them,
//! and for the failures a user can act on, what to do. cudarc's own `Display` of these errors
//! is their Debug form (`DriverError(CUDA_ERROR_DEVICE_UNAVAILABLE, "...")`).

use cudarc::driver::{sys::CUresult, DriverError};

/// A driver error as `NAME (what it means)`, followed by what to do where the error says more
/// than its name (a busy GPU, a driver half-upgraded, a kernel's fault, a memory fault).
pub fn describe_driver(e: &DriverError) -> String {
    let named = match (e.error_name(), e.error_string()) {
        (Ok(name), Ok(text)) => format!("{} ({})", name.to_string_lossy(), text.to_string_lossy()),
        _ => format!("{:?}", e.0),
    };
    match driver_hint(e.0) {
        Some(hint) => format!("{named}; {hint}"),
        None => named,
    }
}

/// What to do about a driver error, for those that say more than their name.
fn driver_hint(code: CUresult) -> Option<&'static str> {
    Some(match code {
        CUresult::CUDA_ERROR_DEVICE_UNAVAILABLE => {
            "another process holds this GPU and its compute mode is exclusive-process \
             (nvidia-smi shows the processes and the mode): wait for it, choose another GPU \
             with --device cuda:N, or ask the administrator"
        }
        CUresult::CUDA_ERROR_SYSTEM_DRIVER_MISMATCH => {
            "the driver library (libcuda.so) and the loaded kernel module are of different \
             versions, as after a driver upgrade without a reboot: reboot, or reload the \
             nvidia kernel module"
        }
        CUresult::CUDA_ERROR_ILLEGAL_ADDRESS | CUresult::CUDA_ERROR_LAUNCH_FAILED => {
            "a kernel faulted and the GPU context is lost (the operation named is where the \
             fault showed, maybe after the kernel that caused it): a bug in ecgfm, please \
             report it with the command; compute-sanitizer names the kernel"
        }
        CUresult::CUDA_ERROR_ECC_UNCORRECTABLE => {
            "the GPU's memory reported an uncorrectable error, a hardware fault: resume from \
             the last checkpoint on another GPU, and tell the administrator (nvidia-smi -q -d \
             ECC)"
        }
        _ => return None,
    })
}

/// A cuBLAS status as `NAME (what it means)`, as cuBLAS words it.
pub fn describe_cublas(status: cudarc::cublas::sys::cublasStatus_t) -> String {
    // SAFETY: cuBLAS is loaded (it returned the status).
    status_words(status, unsafe {
        cudarc::cublas::sys::cublasGetStatusString(status)
    })
}

/// A cuBLASLt status as `NAME (what it means)`, as cuBLASLt words it.
pub fn describe_cublas_lt(status: cudarc::cublaslt::sys::cublasStatus_t) -> String {
    // SAFETY: cuBLASLt is loaded (it returned the status).
    status_words(status, unsafe {
        cudarc::cublaslt::sys::cublasLtGetStatusString(status)
    })
}

/// `NAME (text)` for a status and the library's static string for it.
fn status_words(status: impl std::fmt::Debug, text: *const std::ffi::c_char) -> String {
    // SAFETY: the libraries return static NUL-terminated strings for every status.
    let text = unsafe { std::ffi::CStr::from_ptr(text) };
    format!("{status:?} ({})", text.to_string_lossy())
}
