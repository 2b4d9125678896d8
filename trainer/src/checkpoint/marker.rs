//! The `COMPLETE` marker of a checkpoint: written last, it lists every other file of the folder
//! with its size and SHA-256, and readers check each file against it before using it. A flipped
//! bit inside a tensor, which safetensors itself would accept, is caught here.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{io_err, CheckpointError, COMPLETE_MARKER};

/// What `COMPLETE` held before it listed checksums.
const LEGACY_MARKER: &[u8] = b"ok\n";

/// One file's fingerprint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct FileSum {
    bytes: u64,
    sha256: String,
}

/// What `COMPLETE` holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Marker {
    files: BTreeMap<String, FileSum>,
}

fn sum_of(bytes: &[u8]) -> FileSum {
    FileSum {
        bytes: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(bytes)),
    }
}

impl Marker {
    /// Fingerprints every file of a (partial) checkpoint folder.
    pub(super) fn of_folder(dir: &Path) -> Result<Marker, CheckpointError> {
        let mut files = BTreeMap::new();
        for entry in fs::read_dir(dir).map_err(io_err(dir))? {
            let path = entry.map_err(io_err(dir))?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            if name == COMPLETE_MARKER || !path.is_file() {
                continue;
            }
            let bytes = fs::read(&path).map_err(io_err(&path))?;
            files.insert(name, sum_of(&bytes));
        }
        Ok(Marker { files })
    }

    pub(super) fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("marker serialises")
    }

    /// Reads a checkpoint's marker. A checkpoint written before markers carried checksums (its
    /// marker is the bare `ok` line) still loads, with a warning that its files cannot be checked.
    pub(super) fn read(path: &Path) -> Result<Marker, CheckpointError> {
        let bytes = fs::read(path).map_err(io_err(path))?;
        if bytes == LEGACY_MARKER {
            let dir = path
                .parent()
                .expect("a marker lives in a checkpoint folder");
            tracing::warn!(
                "checkpoint {} predates per-file checksums: its files are used unverified",
                dir.display()
            );
            return Marker::of_folder(dir);
        }
        serde_json::from_slice(&bytes).map_err(|e| CheckpointError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("the completion marker does not list the files' checksums ({e})"),
        })
    }

    /// The recorded SHA-256 (hex) of the file called `name`.
    pub(super) fn sha256(&self, name: &str) -> Option<&str> {
        self.files.get(name).map(|sum| sum.sha256.as_str())
    }

    /// Whether the checkpoint has a file called `name`.
    pub(super) fn has(&self, name: &str) -> bool {
        self.files.contains_key(name)
    }

    /// Names of the recorded files starting with `prefix`, in order.
    pub(super) fn names_with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.files
            .keys()
            .filter(move |n| n.starts_with(prefix))
            .map(String::as_str)
    }

    /// Reads `path` and checks its size and SHA-256 against the marker.
    pub(super) fn read_verified(&self, path: &Path) -> Result<Vec<u8>, CheckpointError> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let expected = self
            .files
            .get(name)
            .ok_or_else(|| CheckpointError::Corrupt {
                path: path.to_path_buf(),
                reason: "the completion marker does not list this file".into(),
            })?;
        let bytes = fs::read(path).map_err(|e| match e.kind() {
            // A listed file that is gone leaves the checkpoint incomplete: the resume falls back.
            std::io::ErrorKind::NotFound => CheckpointError::Corrupt {
                path: path.to_path_buf(),
                reason: "the completion marker lists this file, but it is missing".into(),
            },
            _ => io_err(path)(e),
        })?;
        let got = sum_of(&bytes);
        if got != *expected {
            return Err(CheckpointError::Corrupt {
                path: path.to_path_buf(),
                reason: format!(
                    "{} bytes with SHA-256 {}, but the checkpoint's COMPLETE marker lists {} \
                     bytes and SHA-256 {} (this file or the marker was damaged)",
                    got.bytes, got.sha256, expected.bytes, expected.sha256
                ),
            });
        }
        Ok(bytes)
    }
}
