//! Writing a file whole: to a temporary file beside it, synced, then renamed over it, so a run
//! killed or out of disk space in between leaves the old file as it was, never a part of the new
//! one (a torn `config.toml` would keep every later `--resume` from reading the run).

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` whole (see the module). A file that already holds exactly `bytes`
/// is left untouched.
pub fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let written = (|| {
        let mut file = std::fs::File::create(&partial)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&partial, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_file_stays_whole_when_the_new_one_cannot_be_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        write_whole(&path, b"steps = 10\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"steps = 10\n");
        // The temporary file cannot be made (a folder holds its name): the old file is kept.
        std::fs::create_dir(dir.path().join("config.toml.partial")).unwrap();
        assert!(write_whole(&path, b"steps = 20\n").is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"steps = 10\n");
        // The same bytes are not written again (nothing to write, nothing to fail).
        write_whole(&path, b"steps = 10\n").unwrap();
        std::fs::remove_dir(dir.path().join("config.toml.partial")).unwrap();
        write_whole(&path, b"steps = 20\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"steps = 20\n");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left");
    }

    /// A write that fails after its temporary file was made (the rename fails: a folder holds
    /// the name) removes the temporary file.
    #[test]
    fn a_failed_rename_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("inside"), b"x").unwrap();
        assert!(write_whole(&path, b"steps = 10\n").is_err());
        assert!(!dir.path().join("config.toml.partial").exists());
    }
}
