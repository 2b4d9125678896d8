//! Finding NCCL for cudarc. The pip wheel (`nvidia-nccl-cu13` for CUDA 13, as PyTorch's CUDA 13
//! builds install it; `nvidia-nccl-cu12` for CUDA 12) and the distribution packages ship
//! `libnccl.so.2`, a name cudarc does not look for (it tries `libnccl.so` and CUDA-versioned
//! names). `ensure_loadable` finds the library (`$ECGFM_NCCL_LIB`, the wheel of `python3`, the
//! usual system folders), puts a `libnccl.so` link to it in a cache folder first on
//! `LD_LIBRARY_PATH` and re-executes the process once, because the dynamic loader reads that
//! variable only when a process starts: `ecgfm pretrain` calls it at start-up on GPU ranks,
//! before any thread or connection exists. `check_loadable` (when the communicator is made)
//! never re-executes. Nothing to do for the user.

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

fn missing(why: String) -> DistError {
    DistError::Nccl(format!(
        "cannot load NCCL: {why}. Install it (pip install nvidia-nccl-cu13, or the libnccl2 \
         package) or set ECGFM_NCCL_LIB=/path/to/libnccl.so.2"
    ))
}

fn present() -> bool {
    // SAFETY: only probes whether the library can be opened.
    unsafe { cudarc::nccl::sys::is_culib_present() }
}

/// Whether `cudarc::nccl` can load NCCL in this process, without re-executing it.
pub fn check_loadable() -> Result<(), DistError> {
    if present() {
        return Ok(());
    }
    Err(match find_libnccl() {
        Some(lib) => missing(format!(
            "{} exists but is not on LD_LIBRARY_PATH as libnccl.so (ecgfm pretrain links it at \
             start-up on a GPU; elsewhere call nccl_lib::ensure_loadable first)",
            lib.display()
        )),
        None => missing(format!("no {SONAME} found")),
    })
}

/// Links `lib` as `dir/libnccl.so`. Every local rank does it at once: each makes its own link
/// (named with `me`) and renames it over the shared name, atomic, so no rank finds that name
/// missing or half made.
fn link_as_libnccl(lib: &Path, dir: &Path, me: &str) -> Result<(), DistError> {
    let link = dir.join("libnccl.so");
    let own = dir.join(format!(".libnccl.so.{me}"));
    let _ = std::fs::remove_file(&own);
    std::os::unix::fs::symlink(lib, &own)
        .and_then(|()| std::fs::rename(&own, &link))
        .map_err(|e| missing(format!("linking {}: {e}", link.display())))
}

/// Makes `cudarc::nccl` loadable in this process, re-executing it once if needed (see above).
/// Call it before the process starts threads or opens connections.
pub fn ensure_loadable() -> Result<(), DistError> {
    if present() {
        return Ok(());
    }
    let lib = find_libnccl().ok_or_else(|| missing(format!("no {SONAME} found")))?;
    if std::env::var_os(REEXEC_GUARD).is_some() {
        return Err(missing(format!(
            "{} was linked as libnccl.so but still does not load",
            lib.display()
        )));
    }
    let dir = std::env::temp_dir().join(format!("ecgfm-nccl-{}", unsafe { libc_getuid() }));
    std::fs::create_dir_all(&dir).map_err(|e| missing(format!("{}: {e}", dir.display())))?;
    link_as_libnccl(&lib, &dir, &std::process::id().to_string())?;
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
    fn ranks_linking_at_once_all_succeed_and_leave_one_link() {
        let dir = std::env::temp_dir().join(format!("ecgfm-nccl-race-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lib = dir.join("libnccl.so.2");
        std::fs::write(&lib, b"not really").unwrap();
        let ranks: Vec<_> = (0..8)
            .map(|rank| {
                let (lib, dir) = (lib.clone(), dir.clone());
                std::thread::spawn(move || {
                    (0..50).try_for_each(|_| link_as_libnccl(&lib, &dir, &rank.to_string()))
                })
            })
            .collect();
        for rank in ranks {
            rank.join().unwrap().unwrap();
        }
        assert_eq!(std::fs::read_link(dir.join("libnccl.so")).unwrap(), lib);
        std::fs::remove_dir_all(dir).unwrap();
    }

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
