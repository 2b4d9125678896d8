//! Label readers. Every label is a string prefixed with its vocabulary, so labels from
//! different databases never collide: `snomed:164889003`, `cinc2017:A`, `scp:NORM`,
//! `ptbxl_superclass:MI`.

mod cinc2017;
mod header_labels;
mod ptbxl;

pub use cinc2017::{read_cinc2017_reference, read_cinc2017_reference_from, Cinc2017Label};
pub use header_labels::{header_labels, parse_header_comments, HeaderLabels};
pub use ptbxl::{PtbXlDatabase, PtbXlEntry};

/// Sex of the patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sex {
    Male,
    Female,
}
