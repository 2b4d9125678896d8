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
    #[error(
        "sampling rate {} Hz is outside the plausible range of 1 Hz to 100 kHz",
        readable(*.0)
    )]
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

/// `x` as written in a header where it is of a usual size, in scientific notation where its
/// decimals would run to hundreds of digits (a header's `1e-300` Hz).
fn readable(x: f64) -> String {
    match x.abs() {
        a if a == 0.0 || (1e-4..1e12).contains(&a) || !a.is_finite() => x.to_string(),
        _ => format!("{x:e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_of_any_size_reads_in_a_few_characters() {
        let text = |hz: f64| PreprocessError::InvalidSamplingRate(hz).to_string();
        assert!(text(1e-300).starts_with("sampling rate 1e-300 Hz is outside"));
        assert!(text(0.5).starts_with("sampling rate 0.5 Hz"));
        assert!(text(2e300).starts_with("sampling rate 2e300 Hz"));
        assert!(text(f64::NAN).starts_with("sampling rate NaN Hz"));
    }
}
