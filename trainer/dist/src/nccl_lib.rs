//! Finding NCCL for cudarc. The pip wheel (`nvidia-nccl-cu12`, installed with PyTorch) and the
//! distribution packages ship `libnccl.so.2`, a name cudarc does not look for (it tries
//! `libnccl.so` and CUDA-versioned names). `ensure_loadable` finds the library (`$ECGFM_NCCL_LIB`,
//! the wheel of `python3`, the usual system folders), puts a `libnccl.so` link to it in a cache
//! folder first on `LD_LIBRARY_PATH` and re-executes the process once, because the dynamic
//! loader reads that variable only when a process starts. Nothing to do for the user.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::DistError;

const SONAME: &str = "libnccl.so.2";
const REEXEC_GUARD: &str = "ECGFM_NCCL_REEXEC";

/// Folders where distributions and the CUDA toolkit install NCCL.
const SYSTEM_DIRS: [&str; 5] = [
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/local/cuda/lib64",
    "/usr/lib64",
    "/usr/local/lib",
];

/// `site-packages` folders of `python3` (where the nvidia-nccl wheel lives).
fn python_site_dirs() -> Vec<PathBuf> {
    let script = "import site, sys; print('\\n'.join(site.getsitepackages() + [site.getusersitepackages()] + sys.path))";
    Command::new(std::env::var("ECGFM_PYTHON").unwrap_or_else(|_| "python3".into()))
        .args(["-c", script])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Where `libnccl.so.2` is, looking in `$ECGFM_NCCL_LIB` (the file), python3's nvidia-nccl
/// wheel, then the system folders.
pub fn find_libnccl() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ECGFM_NCCL_LIB").map(PathBuf::from) {
        return path.is_file().then_some(path);
    }
    let wheel = python_site_dirs()
        .into_iter()
        .map(|dir| dir.join("nvidia/nccl/lib").join(SONAME));
    let system = SYSTEM_DIRS.iter().map(|dir| Path::new(dir).join(SONAME));
    wheel.chain(system).find(|p| p.is_file())
}

/// Makes `cudarc::nccl` loadable in this process, re-executing it once if needed (see above).
pub fn ensure_loadable() -> Result<(), DistError> {
    // SAFETY: only probes whether the library can be opened.
    if unsafe { cudarc::nccl::sys::is_culib_present() } {
        return Ok(());
    }
    let missing = |why: String| {
        DistError::Nccl(format!(
            "cannot load NCCL: {why}. Install it (pip install nvidia-nccl-cu12, or the libnccl2 \
             package) or set ECGFM_NCCL_LIB=/path/to/libnccl.so.2"
        ))
    };
    let lib = find_libnccl().ok_or_else(|| missing(format!("no {SONAME} found")))?;
    if std::env::var_os(REEXEC_GUARD).is_some() {
        return Err(missing(format!(
            "{} was linked as libnccl.so but still does not load",
            lib.display()
        )));
    }
    let dir = std::env::temp_dir().join(format!("ecgfm-nccl-{}", unsafe { libc_getuid() }));
    std::fs::create_dir_all(&dir).map_err(|e| missing(format!("{}: {e}", dir.display())))?;
    let link = dir.join("libnccl.so");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&lib, &link)
        .map_err(|e| missing(format!("linking {}: {e}", link.display())))?;
    let path = match std::env::var("LD_LIBRARY_PATH") {
        Ok(old) if !old.is_empty() => format!("{}:{old}", dir.display()),
        _ => dir.display().to_string(),
    };
    tracing::info!(
        "loading NCCL from {} (re-executing with LD_LIBRARY_PATH)",
        lib.display()
    );
    let exe = std::env::current_exe().map_err(|e| missing(e.to_string()))?;
    use std::os::unix::process::CommandExt;
    let err = Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("LD_LIBRARY_PATH", path)
        .env(REEXEC_GUARD, "1")
        .exec();
    Err(missing(format!(
        "re-executing with {}: {err}",
        dir.display()
    )))
}

extern "C" {
    #[link_name = "getuid"]
    fn libc_getuid() -> u32;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_library_path_wins() {
        let fake = std::env::temp_dir().join(format!("fake-libnccl-{}.so.2", std::process::id()));
        std::fs::write(&fake, b"not really").unwrap();
        // SAFETY: this test is the only one in the crate touching ECGFM_NCCL_LIB.
        unsafe { std::env::set_var("ECGFM_NCCL_LIB", &fake) };
        assert_eq!(find_libnccl(), Some(fake.clone()));
        std::fs::remove_file(&fake).unwrap();
        assert_eq!(
            find_libnccl(),
            None,
            "a missing explicit file is not replaced by a guess"
        );
        unsafe { std::env::remove_var("ECGFM_NCCL_LIB") };
    }
}
