//! The typed errors of preprocessing: why a setting is invalid or why a record must be quarantined.

use thiserror::Error;

/// Everything that can go wrong while preprocessing one record.
///
/// The ingest adds the file name; the message says the reason. Variants other than
/// [`PreprocessError::InvalidConfig`] mean "quarantine this record".
#[derive(Debug, Error, Clone, PartialEq)]
pub enum PreprocessError {
    /// A setting is out of range (rates, cut-offs, window sizes...).
    #[error("invalid preprocessing setting: {0}")]
    InvalidConfig(String),
    /// The record's sampling rate is not a number in the plausible range
    /// ([`crate::pipeline::MIN_RECORD_RATE_HZ`] to [`crate::pipeline::MAX_RECORD_RATE_HZ`]).
    #[error("sampling rate {0} Hz is outside the plausible range of 1 Hz to 100 kHz")]
    InvalidSamplingRate(f64),
    /// The number of lead names differs from the number of signals.
    #[error("{names} lead names but {signals} signals")]
    LeadCountMismatch { names: usize, signals: usize },
    /// The signals do not all have the same number of samples.
    #[error("lead {lead} has {found} samples but lead 0 has {expected}")]
    LeadLengthMismatch {
        lead: usize,
        expected: usize,
        found: usize,
    },
    /// The record holds no samples at all.
    #[error("record has no samples")]
    EmptyRecord,
    /// None of the record's leads maps to a standard lead.
    #[error("no standard lead among {0:?}")]
    NoKnownLeads(Vec<String>),
    /// Every mapped lead is entirely missing (NaN or infinite).
    #[error("every mapped lead is entirely missing (NaN)")]
    AllLeadsMissing,
    /// Every window failed the hard quality rule (all present leads flat or missing).
    #[error("all {windows} windows fail quality: every present lead is flat or missing")]
    AllWindowsFailed { windows: usize },
}
