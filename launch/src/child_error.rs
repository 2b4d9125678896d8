//! How a parent `ecgfm` learns why a child `ecgfm` failed (a sweep's `pretrain` or `eval`, a
//! launch's ranks) without capturing the child's terminal output (which would hide its progress
//! bars): the parent names a file in `ECGFM_ERROR_FILE`, and the child, failing, writes its
//! error there as well as to its standard error.

use anyhow::Result;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

/// The variable naming the file a failing `ecgfm` writes its error to.
pub const ENV: &str = "ECGFM_ERROR_FILE";

/// Called by a failing `ecgfm`: writes `err` to the file `ECGFM_ERROR_FILE` names, if any.
pub fn report(err: &anyhow::Error) {
    if let Some(path) = std::env::var_os(ENV) {
        if let Err(e) = std::fs::write(&path, crate::error_text(err)) {
            eprintln!(
                "warning: could not write the error to {}: {e}",
                Path::new(&path).display()
            );
        }
    }
}

/// A fresh path for a child's error file (what `ENV` names for it); nothing is there yet.
pub fn new_file() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let file = std::env::temp_dir().join(format!(
        "ecgfm-child-error-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&file);
    file
}

/// The error a child wrote to `file` (`None` when it wrote none: it succeeded, died before it
/// could, or is not `ecgfm`); the file is removed.
pub fn take(file: &Path) -> Option<String> {
    let error = std::fs::read_to_string(file).ok();
    let _ = std::fs::remove_file(file);
    error
}

/// Runs `command` to its end; when it fails, also the error the child wrote.
pub fn status_and_error(
    command: &mut Command,
) -> Result<(std::process::ExitStatus, Option<String>)> {
    let file = new_file();
    let status = command.env(ENV, &file).status()?;
    let error = take(&file);
    Ok((status, error.filter(|_| !status.success())))
}
