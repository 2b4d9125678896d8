//! The one error type of the crate: every variant names the file it is about and the reason.

use std::io;

/// Everything that can go wrong while reading WFDB records, annotations and label files.
#[derive(Debug, thiserror::Error)]
pub enum WfdbError {
    /// The file does not exist (locally or in the record source).
    #[error("{file}: file not found")]
    NotFound { file: String },

    /// The file exists but could not be read.
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: io::Error,
    },

    /// A header line does not follow the WFDB header syntax (`line` counts from 1).
    #[error("{file}: bad header line {line}: {reason}")]
    BadHeader {
        file: String,
        line: usize,
        reason: String,
    },

    /// The header names a storage format this reader does not decode.
    #[error("{file}: unsupported signal format {format}")]
    UnsupportedFormat { file: String, format: String },

    /// A signal or annotation file ends before the data the header promises (`needed` is
    /// `u64::MAX` when the header asks for at least that much).
    #[error(
        "{file}: truncated: {}{needed} bytes needed, only {found} present",
        if *.needed == u64::MAX { "at least " } else { "" }
    )]
    Truncated {
        file: String,
        needed: u64,
        found: u64,
    },

    /// The 16-bit sum of a signal's samples differs from the checksum in the header.
    #[error(
        "{file}: checksum mismatch in signal {signal} ({name}): header says {expected}, samples sum to {actual} (mod 65536){}",
        file_longer.map_or(String::new(), |(held, said)| format!("; its signal file holds {held} samples of it, the header says {said}: the header's sample count may be wrong"))
    )]
    ChecksumMismatch {
        file: String,
        signal: usize,
        name: String,
        expected: i32,
        actual: i32,
        /// (samples the signal file holds, samples the header gives), when the file holds more:
        /// a header's count set too low reads as a checksum mismatch, and this says why.
        file_longer: Option<(usize, usize)>,
    },

    /// A MATLAB v4 signal file whose own header disagrees with the WFDB header, or is not v4.
    #[error("{file}: bad MATLAB signal file: {reason}")]
    BadMatFile { file: String, reason: String },

    /// A malformed MIT-format annotation file.
    #[error("{file}: bad annotation file: {reason}")]
    BadAnnotation { file: String, reason: String },

    /// A record that is well formed but asks for something this reader does not do.
    #[error("{file}: unsupported record: {reason}")]
    Unsupported { file: String, reason: String },

    /// A label CSV that cannot be parsed (`row` counts data rows from 1).
    #[error("{file}: bad label file at row {row}: {reason}")]
    BadLabels {
        file: String,
        row: usize,
        reason: String,
    },

    /// A channel index outside the record.
    #[error("{file}: channel {channel} requested but the record has {n_signals} signals")]
    NoSuchChannel {
        file: String,
        channel: usize,
        n_signals: usize,
    },
}

impl WfdbError {
    /// Maps an I/O error on `file` to [`WfdbError::NotFound`] or [`WfdbError::Io`].
    pub fn from_io(file: impl Into<String>, source: io::Error) -> Self {
        let file = file.into();
        if source.kind() == io::ErrorKind::NotFound {
            WfdbError::NotFound { file }
        } else {
            WfdbError::Io { file, source }
        }
    }
}
