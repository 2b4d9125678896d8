//! How a parent `ecgfm` learns why a child `ecgfm` failed (a sweep's `pretrain` or `eval`)
//! without capturing the child's terminal output (which would hide its progress bars): the
//! parent names a file in `ECGFM_ERROR_FILE`, and the child, failing, writes its error there
//! as well as to its standard error.

use anyhow::Result;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

/// The variable naming the file a failing `ecgfm` writes its error to.
pub const ENV: &str = "ECGFM_ERROR_FILE";

/// Called by a failing `ecgfm`: writes `err` to the file `ECGFM_ERROR_FILE` names, if any.
pub fn report(err: &anyhow::Error) {
    if let Some(path) = std::env::var_os(ENV) {
        if let Err(e) = std::fs::write(&path, format!("{err:#}")) {
            eprintln!(
                "warning: could not write the error to {}: {e}",
                Path::new(&path).display()
            );
        }
    }
}

/// Runs `command` to its end; when it fails, also the error the child wrote (`None` when it
/// wrote none: it died before, or is not `ecgfm`).
pub fn status_and_error(
    command: &mut Command,
) -> Result<(std::process::ExitStatus, Option<String>)> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let file: PathBuf = std::env::temp_dir().join(format!(
        "ecgfm-child-error-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&file);
    let status = command.env(ENV, &file).status()?;
    let error = std::fs::read_to_string(&file).ok();
    let _ = std::fs::remove_file(&file);
    Ok((status, error.filter(|_| !status.success())))
}
