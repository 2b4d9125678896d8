//! What the pipeline hands back for one record: its windows (ready for dataset rows) and a report.

use crate::leads::{DroppedLead, N_LEADS};

/// One output window, ready for a dataset row.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Position of the window among the record's windows (counting dropped ones), from 0.
    pub window_index: usize,
    /// First sample of the window in the resampled record.
    pub start_sample: usize,
    /// Valid samples; the rest of each lead row is zero padding.
    pub n_valid: usize,
    /// Presence of each standard lead.
    pub lead_mask: [bool; N_LEADS],
    /// `(12, window_samples)` lead-major; absent leads, padding and missing samples are 0.
    pub signal: Vec<f32>,
    /// Minimum lead score over present leads.
    pub quality_score: f32,
    /// Per-lead flag bits (see [`crate::quality`]).
    pub quality_flags: [u8; N_LEADS],
    /// Every present lead is flat or mostly missing (only seen when such windows are kept).
    pub hard_fail: bool,
}

/// What happened to a record besides its windows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RecordReport {
    /// Source leads that map to no standard lead, or duplicate one.
    pub dropped_leads: Vec<DroppedLead>,
    /// Mapped source leads left out because every sample is missing.
    pub empty_leads: Vec<String>,
    /// Samples per lead after resampling.
    pub resampled_samples: usize,
    /// Windows left out by the hard quality rule.
    pub hard_failed_windows: usize,
}

/// The result for one record.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessedRecord {
    /// The kept windows, in order.
    pub windows: Vec<Window>,
    /// The report.
    pub report: RecordReport,
}
