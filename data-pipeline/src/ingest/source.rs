//! Where the records of an ingest come from: a local folder (read with `std::fs`, the fast path)
//! or an object-store prefix (read through `store`). Both list files by their path relative to
//! the source root and serve them to the WFDB reader. A local listing follows symbolic links
//! (a linked subfolder is part of the source) and lists each real folder once, so a link loop
//! ends.

use std::collections::HashSet;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use ecgfm_wfdb::{DirSource, RecordSource, WfdbError};
use object_store::path::Path;
use object_store::ObjectStore;

use super::read_failure::StoreReadFailed;
use crate::error::DataError;
use crate::store;

/// The root of a source dataset.
#[derive(Clone)]
pub enum SourceRoot {
    /// A local folder.
    Local(PathBuf),
    /// A prefix in an object store; `url` is the redacted URL, for messages.
    Store {
        store: Arc<dyn ObjectStore>,
        root: Path,
        url: String,
    },
}

impl std::fmt::Debug for SourceRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl SourceRoot {
    /// Opens a local path, `file://` URL or object-store URL (with explicit store settings).
    pub fn open(url: &str, options: &[(String, String)]) -> Result<Self, DataError> {
        if let Some(dir) = local_path(url) {
            if dir.exists() && !dir.is_dir() {
                return Err(DataError::Io {
                    path: dir.display().to_string(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotADirectory,
                        "a file, not a folder: give the folder that holds the records",
                    ),
                });
            }
            if !dir.is_dir() {
                let reason = match std::env::current_dir() {
                    Ok(cwd) if dir.is_relative() => format!(
                        "source folder not found (a relative path is taken from the working \
                         directory, {})",
                        cwd.display()
                    ),
                    _ => "source folder not found".to_string(),
                };
                return Err(DataError::Io {
                    path: dir.display().to_string(),
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, reason),
                });
            }
            return Ok(SourceRoot::Local(dir));
        }
        let (store, root) = store::open_url_with(url, options)?;
        Ok(SourceRoot::Store {
            store,
            root,
            url: store::redact_url(url),
        })
    }

    /// The source as it appears in messages (secrets redacted).
    pub fn describe(&self) -> String {
        match self {
            SourceRoot::Local(dir) => dir.display().to_string(),
            SourceRoot::Store { url, .. } => url.clone(),
        }
    }

    /// The source as the manifest names it: a local folder by its absolute path without links,
    /// so the same folder given twice, spelled differently, is known for the same source.
    pub fn identity(&self) -> String {
        match self {
            SourceRoot::Local(dir) => local_identity(dir),
            SourceRoot::Store { url, .. } => url.trim_end_matches('/').to_string(),
        }
    }

    /// The location of `relative` as it appears in messages: below the folder, before a signed
    /// URL's (redacted) query string.
    pub fn uri_of(&self, relative: &str) -> String {
        let shown = self.describe();
        let (base, query) = match (self, shown.find('?')) {
            (SourceRoot::Store { .. }, Some(at)) => shown.split_at(at),
            _ => (shown.as_str(), ""),
        };
        format!("{}/{relative}{query}", base.trim_end_matches('/'))
    }

    /// Every file under the root, as sorted `/`-separated relative paths.
    pub fn list_files(&self) -> Result<Vec<String>, DataError> {
        let mut files = match self {
            SourceRoot::Local(dir) => {
                let mut files = Vec::new();
                walk(dir, "", &mut HashSet::new(), &mut files)?;
                files
            }
            SourceRoot::Store { store, root, .. } => {
                let objects = store::block_on(store::list(store.as_ref(), root))?;
                objects
                    .into_iter()
                    .filter_map(|meta| {
                        meta.location
                            .prefix_match(root)
                            .map(|parts| parts.map(|p| p.as_ref().to_string()).collect::<Vec<_>>())
                            .map(|parts| parts.join("/"))
                    })
                    .collect()
            }
        };
        files.sort();
        Ok(files)
    }

    /// The whole content of `relative`.
    pub fn read(&self, relative: &str) -> Result<Vec<u8>, DataError> {
        match self {
            SourceRoot::Local(dir) => {
                let path = dir.join(relative);
                std::fs::read(&path).map_err(|source| DataError::Io {
                    path: path.display().to_string(),
                    source,
                })
            }
            SourceRoot::Store { store, root, .. } => {
                let location = store::join(root, relative);
                Ok(store::block_on(store::get_bytes(store.as_ref(), &location))?.to_vec())
            }
        }
    }

    /// A WFDB record source reading files relative to the root.
    pub fn record_source(&self) -> Box<dyn RecordSource + Send + Sync + '_> {
        match self {
            SourceRoot::Local(dir) => Box::new(DirSource::new(dir.clone())),
            SourceRoot::Store { .. } => Box::new(move |name: &str| {
                self.read(name).map_err(|e| match e {
                    DataError::Store {
                        source: object_store::Error::NotFound { .. },
                        ..
                    } => WfdbError::NotFound {
                        file: self.uri_of(name),
                    },
                    other => WfdbError::Io {
                        file: self.uri_of(name),
                        source: std::io::Error::other(StoreReadFailed(other.to_string())),
                    },
                })
            }),
        }
    }
}

/// The local folder a source URL names (a plain path or `file://`), or `None` for an object
/// store.
fn local_path(url: &str) -> Option<PathBuf> {
    if let Some(rest) = url.strip_prefix("file://") {
        Some(PathBuf::from(rest))
    } else if !url.contains("://") {
        Some(PathBuf::from(url))
    } else {
        None
    }
}

/// A local folder by its absolute path without links.
fn local_identity(dir: &FsPath) -> String {
    dir.canonicalize()
        .unwrap_or_else(|_| dir.to_path_buf())
        .display()
        .to_string()
}

/// [`SourceRoot::identity`] of the source at `url`, without opening it.
pub fn identity_of(url: &str) -> String {
    match local_path(url) {
        Some(dir) => local_identity(&dir),
        None => store::redact_url(url).trim_end_matches('/').to_string(),
    }
}

/// Appends the files below `dir` (named relative to the walk's root) to `out`, following links
/// to folders; a folder already in `visited` (by canonical path) is not listed again. An entry
/// whose target cannot be read (a dangling link) is listed as a file, for ingest to report.
fn walk(
    dir: &FsPath,
    prefix: &str,
    visited: &mut HashSet<PathBuf>,
    out: &mut Vec<String>,
) -> Result<(), DataError> {
    let io = |source| DataError::Io {
        path: dir.display().to_string(),
        source,
    };
    if !visited.insert(dir.canonicalize().map_err(io)?) {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = format!("{prefix}{name}");
        let path = entry.path();
        if std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
            walk(&path, &format!("{relative}/"), visited, out)?;
        } else {
            out.push(relative);
        }
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_file_of_a_signed_source_is_named_before_its_query() {
        let signed = SourceRoot::Store {
            store: Arc::new(object_store::memory::InMemory::new()),
            root: Path::from("raw/bad"),
            url: store::redact_url("s3://user:pw@raw/bad/?x=TOKEN"),
        };
        assert_eq!(
            signed.uri_of("A00005.mat"),
            "s3://***@raw/bad/A00005.mat?***"
        );
        let local = SourceRoot::Local(PathBuf::from("/data/odd?name"));
        assert_eq!(local.uri_of("A1.hea"), "/data/odd?name/A1.hea");
    }

    #[test]
    fn linked_folders_are_listed_and_link_loops_end() {
        let dir = tempfile::tempdir().unwrap();
        let (root, elsewhere) = (dir.path().join("root"), dir.path().join("elsewhere"));
        std::fs::create_dir_all(root.join("own")).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::write(root.join("own/a.hea"), "").unwrap();
        std::fs::write(elsewhere.join("b.hea"), "").unwrap();
        symlink(&elsewhere, root.join("linked")).unwrap();
        symlink(&root, root.join("own/loop")).unwrap();
        symlink(dir.path().join("gone"), root.join("dangling.hea")).unwrap();
        let files = SourceRoot::Local(root).list_files().unwrap();
        assert_eq!(files, ["dangling.hea", "linked/b.hea", "own/a.hea"]);
    }

    #[test]
    fn a_file_is_named_as_a_file_not_a_missing_folder() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("README.md");
        std::fs::write(&file, "notes").unwrap();
        let err = SourceRoot::open(file.to_str().unwrap(), &[])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "{}: a file, not a folder: give the folder that holds the records",
                file.display()
            )
        );
    }

    #[test]
    fn a_missing_relative_folder_names_the_working_directory() {
        let err = SourceRoot::open("no/such/records", &[])
            .unwrap_err()
            .to_string();
        let cwd = std::env::current_dir().unwrap();
        let want = format!("taken from the working directory, {})", cwd.display());
        assert!(
            err.starts_with("no/such/records") && err.ends_with(&want),
            "{err}"
        );
        let err = SourceRoot::open("/no/such/records", &[])
            .unwrap_err()
            .to_string();
        assert!(!err.contains("working directory"), "{err}");
    }
}
