//! Where record files come from: a local folder, bytes held in memory, or any closure.
//!
//! A record's header names its signal files relative to the header's folder, so every source
//! fetches a file by that relative name (`"100.hea"`, `"records500/00000/00001_hr.dat"`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::WfdbError;

/// Fetches the whole content of a file named relative to the record's folder.
pub trait RecordSource {
    /// Returns the file's bytes, or [`WfdbError::NotFound`] naming the file.
    fn fetch(&self, name: &str) -> Result<Vec<u8>, WfdbError>;
}

/// Any `Fn(&str) -> Result<Vec<u8>, WfdbError>` is a source (e.g. an object-store getter).
impl<F> RecordSource for F
where
    F: Fn(&str) -> Result<Vec<u8>, WfdbError>,
{
    fn fetch(&self, name: &str) -> Result<Vec<u8>, WfdbError> {
        self(name)
    }
}

/// Files in one local folder (the default source).
#[derive(Debug, Clone)]
pub struct DirSource {
    dir: PathBuf,
}

impl DirSource {
    /// A source reading files from `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The folder files are read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl RecordSource for DirSource {
    fn fetch(&self, name: &str) -> Result<Vec<u8>, WfdbError> {
        let path = self.dir.join(name);
        std::fs::read(&path).map_err(|e| WfdbError::from_io(path.display().to_string(), e))
    }
}

/// Files held in memory, keyed by their name relative to the record's folder.
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    files: HashMap<String, Vec<u8>>,
}

impl MemorySource {
    /// An empty source.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) one file.
    pub fn insert(&mut self, name: impl Into<String>, bytes: Vec<u8>) {
        self.files.insert(name.into(), bytes);
    }
}

impl RecordSource for MemorySource {
    fn fetch(&self, name: &str) -> Result<Vec<u8>, WfdbError> {
        self.files
            .get(name)
            .cloned()
            .ok_or_else(|| WfdbError::NotFound {
                file: name.to_string(),
            })
    }
}
