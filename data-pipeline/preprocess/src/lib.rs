//! ecgfm-preprocess: the pure numeric signal processing behind `ecgfm data ingest`. No I/O.
//!
//! A record (per-lead samples in mV at any rate, f32 or f64 ([`Sample`]), with its lead names)
//! goes through [`Pipeline::process`], which chains, in order:
//! - [`leads`]: source lead names -> the standard order I, II, III, aVR, aVL, aVF, V1..V6;
//! - [`gaps`]: NaN bridging and the missing-sample mask;
//! - [`resample`]: anti-aliased polyphase resampling to the target rate (default 250 Hz), with
//!   its SIMD dot kernels in `dot.rs` and a whole-number decimation fast path in `decimate.rs`
//!   (AVX2 where the CPU has it, bitwise identical to the portable code);
//! - [`butterworth`] + [`sos`]: zero-phase Butterworth band-pass (default 0.67-40 Hz, as scipy's
//!   `butter` + `sosfiltfilt`), all leads of a record filtered together in lockstep lanes;
//! - [`quality`]: per-lead, per-window flags and scores, and the hard-fail rule;
//! - [`standardize`]: optional z-scoring;
//! - [`windowing`]: fixed windows with stride and a trailing-part policy.
//!
//! Every setting lives in [`PipelineConfig`] (serde, with defaults) so the ingest can record it in
//! the dataset manifest (see docs/dataset-format.md); an invalid setting, or a record that must
//! be quarantined, is a [`PreprocessError`] (`error`). Depends only on serde, thiserror and
//! num-complex. Start reading at `pipeline.rs` (settings in `config.rs`, outputs in `record.rs`);
//! the tests in `tests/` compare the filters with scipy.

pub mod butterworth;
pub mod config;
mod decimate;
mod dot;
pub mod error;
pub mod gaps;
pub mod leads;
pub mod pipeline;
pub mod quality;
pub mod record;
pub mod resample;
pub mod sample;
pub mod sos;
pub mod standardize;
pub mod windowing;

pub use config::{BandPassConfig, PipelineConfig};
pub use error::PreprocessError;
pub use leads::{
    is_negated, map_leads, standard_lead_index, DropReason, DroppedLead, N_LEADS, STANDARD_LEADS,
};
pub use pipeline::Pipeline;
pub use quality::QualityConfig;
pub use record::{ProcessedRecord, RecordReport, Window};
pub use resample::{Resampler, ResamplerConfig};
pub use sample::Sample;
pub use standardize::{Standardization, StandardizeConfig};
pub use windowing::{TrailingPolicy, WindowConfig};
