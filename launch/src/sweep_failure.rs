//! A sweep run's failure, kept in `runs/NAME/FAILED` (the error) from the moment its training or
//! an evaluation fails (not when it is stopped on a signal) until the run is attempted again: `sweep status` shows it, and `sweep run
//! --keep-going` goes on past it to the other runs.

use anyhow::Result;
use std::path::Path;

/// The file in a run's folder that holds its failure.
pub const FILE: &str = "FAILED";

/// Runs `attempt` for the run in `run_dir`, first removing the failure an earlier attempt left,
/// and keeping its error in `run_dir/FAILED` when it fails.
pub fn tracked<T>(run_dir: &Path, attempt: impl FnOnce() -> Result<T>) -> Result<T> {
    let path = run_dir.join(FILE);
    if let Err(e) = std::fs::remove_file(&path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            say_err!("warning: could not remove {}: {e}", path.display());
        }
    }
    let result = attempt();
    // A run stopped on a signal saved its checkpoint: it is no failure.
    if let Some(error) = result
        .as_ref()
        .err()
        .filter(|e| !crate::signals::is_stop(e))
    {
        let kept = std::fs::create_dir_all(run_dir)
            .and_then(|()| std::fs::write(&path, crate::error_text(error) + "\n"));
        if let Err(e) = kept {
            say_err!("warning: could not write {}: {e}", path.display());
        }
    }
    result
}

/// The error the last attempt of the run in `run_dir` failed with, if it failed.
pub fn reason(run_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(run_dir.join(FILE)).ok()?;
    Some(text.trim().to_string())
}
