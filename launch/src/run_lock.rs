//! One process trains in a run folder at a time: rank 0 holds an advisory lock (`flock`) on
//! `DIR/train.lock` for the whole run. The kernel releases it when the process ends, however it
//! ends, so a killed run leaves no stale lock; a second `pretrain` into the same folder while the
//! first trains (a sweep started twice, a `--resume` typed in another terminal) is refused at
//! once instead of interleaving its checkpoints and metrics with the first one's.

use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::Path;

/// The lock file in a run folder; it holds the pid of the process that last trained there.
pub const FILE: &str = "train.lock";

/// The lock on a run folder, held until dropped.
pub struct RunLock {
    _file: File,
}

/// Takes the lock on `run_dir` (creating the folder), or says which process holds it. A file
/// system without locks (some network mounts) is a warning, not a refusal.
pub fn lock(run_dir: &Path) -> Result<RunLock> {
    if let Some(file) = run_dir.ancestors().find(|a| a.is_file()) {
        bail!("{} is a file, where the run folder must be", file.display());
    }
    std::fs::create_dir_all(run_dir)
        .with_context(|| format!("creating the run folder {}", run_dir.display()))?;
    let path = run_dir.join(FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0)
                .and_then(|()| writeln!(file, "{}", std::process::id()))
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Err(TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            bail!(
                "{} is being trained by another process (pid {}, holding {}): wait for it to \
                 end, or stop it (it checkpoints on SIGTERM) and continue with --resume",
                run_dir.display(),
                holder.trim(),
                path.display()
            );
        }
        Err(TryLockError::Error(e)) => tracing::warn!(
            "could not lock {} ({e}): a second process training in {} at the same time would \
             not be refused",
            path.display(),
            run_dir.display()
        ),
    }
    Ok(RunLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_folder_is_refused_naming_the_holder_until_the_first_is_dropped() {
        let dir = std::env::temp_dir().join(format!("ecgfm-run-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = lock(&dir).unwrap();
        let err = lock(&dir).err().unwrap().to_string();
        let holder = format!("pid {}, holding", std::process::id());
        assert!(err.contains("is being trained by another process"), "{err}");
        assert!(err.contains(&holder), "{err}");
        drop(first);
        lock(&dir).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// The lock file holds the pid of the process that holds the lock and nothing else, even
    /// where an earlier holder's pid was longer.
    #[test]
    fn the_lock_file_holds_only_the_holders_pid() {
        let dir = std::env::temp_dir().join(format!("ecgfm-run-lock-pid-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(FILE), "99999999999999999999\n").unwrap();
        let held = lock(&dir).unwrap();
        let text = std::fs::read_to_string(dir.join(FILE)).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()));
        drop(held);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
