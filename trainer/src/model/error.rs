//! The model's error type: bad configurations, bad batches and bad host buffers.

use thiserror::Error;

/// Everything that can go wrong when configuring the model or feeding it data.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ModelError {
    /// `ModelConfig::preset` was given a name that is not in the preset table.
    #[error("unknown model preset `{0}` (expected one of nano, tiny, small, base, large, huge)")]
    UnknownPreset(String),
    /// `Pooling::parse` was given a name that is neither `mean` nor `leads`.
    #[error("unknown pooling `{0}` (expected mean or leads)")]
    UnknownPooling(String),
    /// A configuration field breaks a rule of docs/model.md.
    #[error("invalid model config: {0}")]
    InvalidConfig(String),
    /// A batch does not match the configuration or the masking rules.
    #[error("invalid batch: {0}")]
    InvalidBatch(String),
    /// A host buffer handed to the model has the wrong length.
    #[error("wrong length for {what}: expected {expected}, got {got}")]
    LengthMismatch {
        /// Which buffer was wrong.
        what: &'static str,
        /// The length the model needs.
        expected: usize,
        /// The length it was given.
        got: usize,
    },
}
