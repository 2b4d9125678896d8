//! The folder an output file goes in, made before a command's work so that a path it cannot
//! write fails first; the folders made for it are removed again, while still empty, when the
//! command fails (a refused or failed `eval` or `embed` leaves no empty folder behind).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// The folder of the file `out` (`.` for a bare file name).
pub(crate) fn out_folder(out: &Path) -> &Path {
    match out.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// The folders one `create` made, deepest last. Dropping it removes those still empty, deepest
/// first: after a success they hold the output and stay.
#[must_use = "dropping it at once removes the folders it made"]
pub(crate) struct MadeFolders(Vec<PathBuf>);

impl MadeFolders {
    /// Creates the folder `dir` (and those above it) for `what` (the output, as messages name
    /// it); a file where a folder must be is named: `afile` of `afile/e.json`.
    pub(crate) fn create(dir: &Path, what: &str) -> Result<MadeFolders> {
        if let Some(file) = dir.ancestors().find(|a| a.is_file()) {
            bail!(
                "{what} cannot be written: {} is a file, not a folder",
                file.display()
            );
        }
        let missing: Vec<PathBuf> = dir
            .ancestors()
            .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
            .map(Path::to_path_buf)
            .collect();
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{what} cannot be written: creating {}", dir.display()))?;
        Ok(MadeFolders(missing.into_iter().rev().collect()))
    }
}

/// Makes sure the file `out` can be written before any work: creates its folder, refusing a
/// file in the way with a message naming it, and writes and removes the temporary file that
/// `write_whole` writes beside it (a folder without write permission fails here); `what` names
/// the file in errors. The folders it made are removed again, while still empty, when the
/// returned value drops.
pub(crate) fn prepare_out_file(out: &Path, what: &str) -> Result<MadeFolders> {
    let made = MadeFolders::create(out_folder(out), what)?;
    let mut probe = out.as_os_str().to_owned();
    probe.push(".partial");
    let probe = PathBuf::from(probe);
    std::fs::write(&probe, b"").with_context(|| format!("{what} cannot be written"))?;
    let _ = std::fs::remove_file(&probe);
    Ok(made)
}

impl Drop for MadeFolders {
    fn drop(&mut self) {
        for dir in self.0.iter().rev() {
            // `remove_dir` takes only an empty folder; the first that is not ends the walk.
            if std::fs::remove_dir(dir).is_err() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_folders_go_while_empty_and_stay_once_written() {
        let root = std::env::temp_dir().join(format!("ecgfm-made-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let deep = root.join("a/b/c");
        drop(MadeFolders::create(&deep, "--out x").unwrap());
        assert!(!root.join("a").exists() && root.exists());
        // A folder that holds a file stays, and with it those above.
        let made = MadeFolders::create(&deep, "--out x").unwrap();
        std::fs::write(root.join("a/b/kept"), b"").unwrap();
        drop(made);
        assert!(!deep.exists() && root.join("a/b/kept").exists());
        // A folder that was there before is never removed.
        let made = MadeFolders::create(&root, "--out x").unwrap();
        std::fs::remove_dir_all(root.join("a")).unwrap();
        drop(made);
        assert!(root.exists());
        let file = root.join("f");
        std::fs::write(&file, b"").unwrap();
        let err = MadeFolders::create(&file.join("d"), "--out f/d/e.json")
            .err()
            .unwrap();
        assert!(err.to_string().contains("is a file, not a folder"), "{err}");
        std::fs::remove_dir_all(root).unwrap();
    }
}
