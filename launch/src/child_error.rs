//! How a parent `ecgfm` learns why a child `ecgfm` failed (a sweep's `pretrain` or `eval`, a
//! launch's ranks) without capturing the child's terminal output (which would hide its progress
//! bars): the parent names a file in `ECGFM_ERROR_FILE`, and the child, failing, writes its
//! error there as well as to its standard error. The files lie in a folder of the parent's own,
//! made afresh with mode 0700 ([`ErrorDir`]): in a shared /tmp another user could otherwise
//! plant a link where a child will write, or the text the parent reports as its error.

use anyhow::{Context, Result};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicU64, Ordering};

/// The variable naming the file a failing `ecgfm` writes its error to.
pub const ENV: &str = "ECGFM_ERROR_FILE";

/// Called by a failing `ecgfm`: writes `err` to the file `ECGFM_ERROR_FILE` names, if any.
pub fn report(err: &anyhow::Error) {
    if let Some(path) = std::env::var_os(ENV) {
        if let Err(e) = std::fs::write(&path, crate::error_text(err)) {
            say_err!(
                "warning: could not write the error to {}: {e}",
                Path::new(&path).display()
            );
        }
    }
}

/// A private folder for children's error files: created new (never one already there) in the
/// temporary folder with mode 0700, removed with everything in it when dropped.
pub struct ErrorDir {
    path: PathBuf,
    next: AtomicU64,
}

impl ErrorDir {
    pub fn create() -> Result<ErrorDir> {
        static MADE: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let tmp = std::env::temp_dir();
        for attempt in 0..100u32 {
            let path = tmp.join(format!(
                "ecgfm-errors-{}-{}-{nanos:x}-{attempt}",
                std::process::id(),
                MADE.fetch_add(1, Ordering::Relaxed)
            ));
            // mkdir fails on anything already at the path, a link included.
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {
                    return Ok(ErrorDir {
                        path,
                        next: AtomicU64::new(0),
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "creating a private folder for error files in {}",
                            tmp.display()
                        )
                    })
                }
            }
        }
        anyhow::bail!(
            "creating a private folder for error files in {}: every name tried was taken",
            tmp.display()
        )
    }

    /// A fresh path in this folder for a child's error file (what `ENV` names for it).
    pub fn new_file(&self) -> PathBuf {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.path.join(format!("child-{n}"))
    }
}

impl Drop for ErrorDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The error a child wrote to `file` (`None` when it wrote none: it succeeded, died before it
/// could, or is not `ecgfm`); the file is removed.
pub fn take(file: &Path) -> Option<String> {
    let error = std::fs::read_to_string(file).ok();
    let _ = std::fs::remove_file(file);
    error
}

/// How a child ended, in words ("exited with status 1", "was killed by signal 9 (SIGKILL ...)").
/// A child killed by a signal wrote no error of its own, so SIGKILL, which the kernel's
/// out-of-memory killer sends, says where to look.
pub fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => {
            let name = match sig {
                libc::SIGKILL => {
                    " (SIGKILL: if nobody sent it, likely the kernel's out-of-memory killer; \
                     `dmesg` or `journalctl -k` says)"
                }
                libc::SIGTERM => " (SIGTERM)",
                libc::SIGINT => " (SIGINT)",
                libc::SIGSEGV => " (SIGSEGV)",
                libc::SIGABRT => " (SIGABRT)",
                libc::SIGBUS => " (SIGBUS)",
                _ => "",
            };
            format!("was killed by signal {sig}{name}")
        }
        _ => "ended abnormally".into(),
    }
}

/// Runs `command` to its end, passing on the stop signals this process receives
/// (`signals::status_passing_on`); when it fails, also the error the child wrote.
pub fn status_and_error(
    command: &mut Command,
) -> Result<(std::process::ExitStatus, Option<String>)> {
    let dir = ErrorDir::create()?;
    let file = dir.new_file();
    let status = crate::signals::status_passing_on(command.env(ENV, &file))?;
    let error = take(&file);
    Ok((status, error.filter(|_| !status.success())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(script: &str) -> ExitStatus {
        Command::new("sh").args(["-c", script]).status().unwrap()
    }

    #[test]
    fn a_child_killed_by_sigkill_is_described_with_where_to_look() {
        let killed = describe(status_of("kill -9 $$"));
        assert!(
            killed.starts_with("was killed by signal 9 (SIGKILL"),
            "{killed}"
        );
        assert!(killed.contains("out-of-memory killer"), "{killed}");
        assert_eq!(
            describe(status_of("kill -15 $$")),
            "was killed by signal 15 (SIGTERM)"
        );
        assert_eq!(describe(status_of("exit 3")), "exited with status 3");
    }

    #[test]
    fn a_failing_child_s_error_file_is_returned_and_removed() {
        let mut command = Command::new("sh");
        command.args(["-c", "printf 'it broke' > \"$ECGFM_ERROR_FILE\"; exit 1"]);
        let (status, error) = status_and_error(&mut command).unwrap();
        assert_eq!(status.code(), Some(1));
        assert_eq!(error.as_deref(), Some("it broke"));
        let mut command = Command::new("sh");
        command.args(["-c", "printf 'not an error' > \"$ECGFM_ERROR_FILE\""]);
        let (status, error) = status_and_error(&mut command).unwrap();
        assert!(status.success());
        assert_eq!(error, None, "a child that succeeded has no error");
    }

    #[test]
    fn error_files_lie_in_a_private_folder_that_is_removed_afterwards() {
        // The child reports its file's folder and that folder's mode as its error.
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "d=$(dirname \"$ECGFM_ERROR_FILE\"); stat -c '%a %n' \"$d\" > \"$ECGFM_ERROR_FILE\"; exit 1",
        ]);
        let (_, error) = status_and_error(&mut command).unwrap();
        let error = error.unwrap();
        let (mode, dir) = error.trim().split_once(' ').unwrap();
        assert_eq!(mode, "700", "{error}");
        assert_ne!(Path::new(dir), std::env::temp_dir(), "{error}");
        assert!(!Path::new(dir).exists(), "{dir} was left behind");
    }
}
