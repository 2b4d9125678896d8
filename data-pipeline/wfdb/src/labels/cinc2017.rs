//! The PhysioNet/CinC Challenge 2017 `REFERENCE.csv` (`record,label`, label one of N A O ~).

use std::collections::HashMap;
use std::path::Path;

use crate::error::WfdbError;

/// One row of `REFERENCE.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cinc2017Label {
    /// Record name, e.g. `A00001`.
    pub record: String,
    /// The label with its vocabulary: `cinc2017:N`, `cinc2017:A`, `cinc2017:O` or `cinc2017:~`.
    pub label: String,
}

/// Reads `REFERENCE.csv` from a local path.
pub fn read_cinc2017_reference(path: &Path) -> Result<Vec<Cinc2017Label>, WfdbError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| WfdbError::from_io(&file, e))?;
    read_cinc2017_reference_from(&bytes, &file)
}

/// Parses the bytes of `REFERENCE.csv` (with or without a `record,label` header row);
/// `file` names it in errors.
pub fn read_cinc2017_reference_from(
    bytes: &[u8],
    file: &str,
) -> Result<Vec<Cinc2017Label>, WfdbError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes);
    let mut labels = Vec::new();
    let mut first_rows: HashMap<String, (usize, String)> = HashMap::new();
    for (index, row) in reader.records().enumerate() {
        let bad = |reason: String| WfdbError::BadLabels {
            file: file.to_string(),
            row: index + 1,
            reason,
        };
        let row = row.map_err(|e| bad(e.to_string()))?;
        let (record, label) = match (row.get(0), row.get(1)) {
            (Some(r), Some(l)) if row.len() == 2 => (r.trim(), l.trim()),
            _ => {
                return Err(bad(format!(
                    "expected `record,label`, found {} fields",
                    row.len()
                )))
            }
        };
        if index == 0 && record == "record" {
            continue;
        }
        if !matches!(label, "N" | "A" | "O" | "~") {
            return Err(bad(format!("label `{label}` is not one of N, A, O, ~")));
        }
        let label = format!("cinc2017:{label}");
        // A record labelled twice, otherwise, took the last row's label until 2026-12-06.
        match first_rows.get(record) {
            Some(&(row, ref first)) if *first != label => {
                return Err(bad(format!(
                    "{record} is labelled {} here and {} at row {row}: one label a record",
                    &label["cinc2017:".len()..],
                    &first["cinc2017:".len()..]
                )))
            }
            Some(_) => {}
            None => {
                first_rows.insert(record.to_string(), (index + 1, label.clone()));
                labels.push(Cinc2017Label {
                    record: record.to_string(),
                    label,
                });
            }
        }
    }
    Ok(labels)
}
