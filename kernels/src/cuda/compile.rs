//! Kernel compilation: each kernels/cuda file through NVRTC for the device's architecture
//! (a CUBIN, so the driver needs no PTX JIT), without fused multiply-add so the arithmetic
//! matches the CPU backend's; cached on disk by (source and options hash, NVRTC version,
//! architecture) so later runs skip the compiler, and a new NVRTC (whose codegen and libdevice
//! may differ) compiles afresh instead of reusing an older compiler's CUBIN.

use super::device::{Module, COMMON_HEADER};
use super::probe::CudaError;
use cudarc::nvrtc::{result, sys};
use std::ffi::{CStr, CString};
use std::path::PathBuf;

/// The source NVRTC compiles: the file with `#include "common.cuh"` replaced by the header.
pub fn preprocess(src: &str) -> String {
    src.replace("#include \"common.cuh\"", COMMON_HEADER)
}

/// NVRTC options for architecture `arch` (e.g. 90 for sm_90), with the CUDA headers folder
/// `$ECGFM_CUDA_INCLUDE` (the `nvidia-cuda-runtime` wheel's include/, for headers such as
/// cuda_bf16.h) when set.
fn options(arch: u32) -> Vec<String> {
    let mut options = vec![
        format!("--gpu-architecture=sm_{arch}"),
        "--fmad=false".into(),
        "--std=c++17".into(),
        // #177, "declared but never referenced": every file includes common.cuh's helpers and
        // uses some. Any other warning fails the NVRTC test (kernels/tests/nvrtc_compile.rs).
        "--diag-suppress=177".into(),
    ];
    if let Some(dir) = std::env::var_os("ECGFM_CUDA_INCLUDE") {
        options.push(format!("--include-path={}", dir.to_string_lossy()));
    }
    options
}

/// FNV-1a: a hash that is stable across Rust versions (the cache key must be).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `$ECGFM_KERNEL_CACHE`, else `$XDG_CACHE_HOME/ecgfm/kernels`, else `~/.cache/ecgfm/kernels`.
fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("ECGFM_KERNEL_CACHE") {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("ecgfm").join("kernels"))
}

/// A compiled kernel file: its CUBIN and NVRTC's log (warnings; empty when clean).
#[derive(Debug)]
pub struct Compiled {
    pub cubin: Vec<u8>,
    pub log: String,
}

/// NVRTC's log of `prog`, or `otherwise` when it cannot be read.
///
/// # Safety
/// `prog` must be a live program.
unsafe fn program_log(prog: sys::nvrtcProgram, otherwise: String) -> String {
    match result::get_program_log(prog) {
        Ok(log) => CStr::from_ptr(log.as_ptr()).to_string_lossy().into_owned(),
        Err(_) => otherwise,
    }
}

/// Compiles `src` (already preprocessed) for sm_`arch`; returns the CUBIN with NVRTC's log, or
/// the log of the failure.
pub fn compile_cubin(name: &str, src: &str, arch: u32) -> Result<Compiled, String> {
    compile_cubin_with(name, src, arch, &[])
}

/// [`compile_cubin`] with `extra` options after ours (e.g. `--ptxas-options=-v`, whose register
/// and spill counts then come back in the log).
pub fn compile_cubin_with(
    name: &str,
    src: &str,
    arch: u32,
    extra: &[&str],
) -> Result<Compiled, String> {
    let mut options = options(arch);
    options.extend(extra.iter().map(|o| o.to_string()));
    let c_src = CString::new(src).map_err(|_| "source holds a NUL byte".to_string())?;
    let c_name = CString::new(name).map_err(|_| "name holds a NUL byte".to_string())?;
    let prog = result::create_program(&c_src, Some(&c_name)).map_err(|e| e.to_string())?;
    // SAFETY: prog was created above and is destroyed once, at the end.
    let out = unsafe {
        match result::compile_program(prog, &options) {
            Ok(()) => cubin(prog).map(|cubin| Compiled {
                cubin,
                log: program_log(prog, String::new()),
            }),
            Err(e) => Err(program_log(prog, e.to_string())),
        }
    };
    // SAFETY: as above.
    let _ = unsafe { result::destroy_program(prog) };
    out
}

/// The CUBIN of a compiled program.
///
/// # Safety
/// `prog` must be a live, successfully compiled program.
unsafe fn cubin(prog: sys::nvrtcProgram) -> Result<Vec<u8>, String> {
    let mut size = 0usize;
    sys::nvrtcGetCUBINSize(prog, &mut size)
        .result()
        .map_err(|e| e.to_string())?;
    let mut bin = vec![0u8; size];
    sys::nvrtcGetCUBIN(prog, bin.as_mut_ptr() as *mut _)
        .result()
        .map_err(|e| e.to_string())?;
    Ok(bin)
}

/// NVRTC's version (major, minor), or (0, 0) when it cannot say.
fn nvrtc_version() -> (i32, i32) {
    let (mut major, mut minor) = (0, 0);
    // SAFETY: two writable ints, as nvrtcVersion wants.
    match unsafe { sys::nvrtcVersion(&mut major, &mut minor) }.result() {
        Ok(()) => (major, minor),
        Err(_) => (0, 0),
    }
}

/// The cache file name of kernel file `file` (preprocessed source `src`) compiled for
/// sm_`arch` by NVRTC `nvrtc` (major, minor): the hash covers the source, the options and the
/// version, and the name shows the version and the architecture.
fn cache_file(file: &str, src: &str, arch: u32, (major, minor): (i32, i32)) -> String {
    let key = fnv1a(format!("{src}\0{:?}\0nvrtc {major}.{minor}", options(arch)).as_bytes());
    format!("{file}-{key:016x}-nvrtc{major}.{minor}-sm{arch}.cubin")
}

/// The CUBIN of `module` for sm_`arch`: from the disk cache, or compiled now (and cached).
pub(crate) fn module_cubin(module: Module, arch: u32) -> Result<Vec<u8>, CudaError> {
    let (file, src) = module.source();
    let src = preprocess(src);
    let name = cache_file(file, &src, arch, nvrtc_version());
    let cached = cache_dir().map(|d| d.join(name));
    if let Some(bin) = cached.as_ref().and_then(|p| std::fs::read(p).ok()) {
        return Ok(bin);
    }
    let bin = compile_cubin(file, &src, arch)
        .map_err(|log| CudaError::Compile { file, arch, log })?
        .cubin;
    if let Some(path) = cached {
        // A cache that cannot be written only costs a recompile next time.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|_| std::fs::write(&tmp, &bin))
            .and_then(|_| std::fs::rename(&tmp, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
    Ok(bin)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CUBIN cached by one NVRTC is not found by another: the version changes the key and
    /// shows in the file name, as the architecture does.
    #[test]
    fn the_cache_file_depends_on_the_nvrtc_version() {
        let src = preprocess(Module::Gelu.source().1);
        let name = |arch, version| cache_file("gelu.cu", &src, arch, version);
        let (old, new) = (name(90, (13, 0)), name(90, (13, 1)));
        assert!(old.ends_with("-nvrtc13.0-sm90.cubin"), "{old}");
        assert!(new.ends_with("-nvrtc13.1-sm90.cubin"), "{new}");
        let hash = |n: &str| n.split('-').nth(1).map(str::to_owned);
        assert_ne!(hash(&old), hash(&new), "the hash ignores the version");
        assert_ne!(
            hash(&old),
            hash(&name(80, (13, 0))),
            "the hash ignores the arch"
        );
        assert_eq!(old, name(90, (13, 0)), "the name is not stable");
        assert_ne!(
            old,
            cache_file("gelu.cu", &(src.clone() + " "), 90, (13, 0)),
            "the hash ignores the source"
        );
    }

    /// The version comes from the NVRTC that compiles (where one is loadable: CUDA 13's).
    #[test]
    fn the_nvrtc_version_is_read_from_the_library() {
        if crate::cuda::probe::check_nvrtc().is_err() {
            ecgfm_test_support::skip_without_oracle("NVRTC");
            return;
        }
        assert!(nvrtc_version().0 >= 13, "{:?}", nvrtc_version());
    }
}
