//! Stand-in libraries: a few lines of C compiled here into a shared library that plays a part
//! of the NVIDIA driver or NCCL, found before the real one because its folder comes first on
//! `LD_LIBRARY_PATH`. The dynamic loader reads that variable when a process starts, so the code
//! under test runs in a child process given [`library_path_first`].

use std::path::{Path, PathBuf};
use std::process::Command;

/// Compiles `c_source` with `cc` into a shared library in folder `dir` (made if missing), under
/// each of `names` (`libcuda.so`, `libcuda.so.1`); the folder.
pub fn build(dir: &Path, c_source: &str, names: &[&str]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let source = dir.join(format!("{}.c", names[0]));
    std::fs::write(&source, c_source).unwrap();
    let library = dir.join(names[0]);
    let built = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&library)
        .arg(&source)
        .output()
        .expect("a C compiler (cc) builds the stand-in library");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    for name in &names[1..] {
        std::fs::copy(&library, dir.join(name)).unwrap();
    }
    dir.to_path_buf()
}

/// `LD_LIBRARY_PATH` with `dir` first (then this process's value, if any).
pub fn library_path_first(dir: &Path) -> String {
    match std::env::var("LD_LIBRARY_PATH") {
        Ok(rest) if !rest.is_empty() => format!("{}:{rest}", dir.display()),
        _ => dir.display().to_string(),
    }
}
