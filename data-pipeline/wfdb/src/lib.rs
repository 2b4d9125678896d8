//! ecgfm-wfdb: a reader for PhysioNet WFDB records and the label files that come with ECG
//! databases. Pure Rust; depends only on `thiserror` and `csv`.
//!
//! What lives here and where to look:
//! - [`header`]: `.hea` parsing ([`Header`], [`SignalSpec`], multi-segment [`SegmentSpec`]).
//! - [`format`](mod@format): the storage formats 8, 16, 24, 32, 61, 80, 160, 212, 310, 311 ([`SignalFormat`]).
//! - `signal_file` / `matlab` (private): decoding one signal file (interleaving, samples per
//!   frame, skew, byte offset, MATLAB v4 `.mat` files).
//! - [`record`]: [`Record`] and [`read_record`] / [`read_record_from`] / [`read_record_with`];
//!   header checksums are verified. Missing samples keep the format's invalid code in
//!   [`Record::digital`] and become NaN in [`Record::physical`]. Signals with several samples
//!   per frame stay at their own rate ([`Record::signal_fs`]).
//! - `multi_segment` (private): joining multi-segment records.
//! - [`source`]: where bytes come from ([`RecordSource`]: a folder, memory, or any closure).
//! - [`annotation`]: MIT-format annotation files ([`read_annotations`]).
//! - [`rdsamp`]: CSV output like PhysioNet's `rdsamp` ([`write_rdsamp_csv`]).
//! - [`labels`]: `# Dx/Age/Sex` header comments, CinC 2017 `REFERENCE.csv`, PTB-XL tables.
//! - [`error`]: [`WfdbError`], which always names the file and the reason.
//!
//! Tests in `tests/` compare every record of the shared data's `wfdb-formats` folder (and
//! samples of PTB-XL and CinC) with the Python `wfdb` package through `tests/wfdb_oracle.py`.

pub mod annotation;
pub mod error;
pub mod format;
pub mod header;
pub mod labels;
mod matlab;
mod multi_segment;
pub mod rdsamp;
pub mod record;
mod signal_file;
pub mod source;

pub use annotation::{parse_annotations, read_annotations, read_annotations_from, Annotation};
pub use error::WfdbError;
pub use format::SignalFormat;
pub use header::{Header, SegmentSpec, SignalSpec};
pub use rdsamp::write_rdsamp_csv;
pub use record::{
    read_header_from, read_record, read_record_from, read_record_with, ReadOptions, Record,
};
pub use source::{DirSource, MemorySource, RecordSource};
