//! The label-CSV override of `ingest --labels FILE.csv`: a header row naming `record` and
//! `labels` (`;`-separated `vocabulary:code` strings) and optionally `patient_id`, `age`, `sex`
//! (`M`/`F`). Listed records take these values instead of the source's own; an empty cell keeps
//! the source's value.

use std::collections::HashMap;

use ecgfm_wfdb::labels::Sex;

use crate::error::DataError;
use crate::ingest::plan::PlannedRecord;

/// One CSV row.
#[derive(Debug, Clone, Default, PartialEq)]
struct Override {
    labels: Option<Vec<String>>,
    patient_id: Option<String>,
    age: Option<f32>,
    sex: Option<Sex>,
}

/// The parsed override file, keyed by record id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelOverride {
    rows: HashMap<String, Override>,
}

impl LabelOverride {
    /// Parses the CSV bytes; `file` names it in errors.
    pub fn parse(bytes: &[u8], file: &str) -> Result<Self, DataError> {
        let bad = |row: usize, reason: String| DataError::Corrupt {
            path: file.to_string(),
            reason: format!("label CSV row {row}: {reason}"),
        };
        let mut reader = csv::Reader::from_reader(bytes);
        let header = reader.headers().map_err(|e| bad(0, e.to_string()))?.clone();
        let column = |name: &str| header.iter().position(|h| h.trim() == name);
        let record_col =
            column("record").ok_or_else(|| bad(0, "no `record` column in the header".into()))?;
        let (labels_col, patient_col, age_col, sex_col) = (
            column("labels"),
            column("patient_id"),
            column("age"),
            column("sex"),
        );
        let mut rows = HashMap::new();
        for (index, row) in reader.records().enumerate() {
            let row_no = index + 1;
            let row = row.map_err(|e| bad(row_no, e.to_string()))?;
            let cell = |col: Option<usize>| {
                col.and_then(|c| row.get(c))
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
            };
            let record = cell(Some(record_col))
                .ok_or_else(|| bad(row_no, "empty record name".into()))?
                .to_string();
            let age = cell(age_col)
                .map(|a| {
                    a.parse::<f32>()
                        .map_err(|e| bad(row_no, format!("age {a:?}: {e}")))
                })
                .transpose()?;
            let sex = cell(sex_col)
                .map(|s| match s.to_ascii_uppercase().as_str() {
                    "M" | "MALE" => Ok(Sex::Male),
                    "F" | "FEMALE" => Ok(Sex::Female),
                    _ => Err(bad(row_no, format!("sex {s:?} is not M or F"))),
                })
                .transpose()?;
            let labels = cell(labels_col).map(|l| {
                l.split(';')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            });
            let entry = Override {
                labels,
                patient_id: cell(patient_col).map(String::from),
                age,
                sex,
            };
            rows.insert(record, entry);
        }
        Ok(LabelOverride { rows })
    }

    /// Replaces the values of `record` that the CSV gives.
    pub fn apply(&self, record: &mut PlannedRecord) {
        let Some(row) = self.rows.get(&record.record_id) else {
            return;
        };
        if let Some(labels) = &row.labels {
            record.labels = labels.clone();
            record.header_labels = false;
        }
        if row.patient_id.is_some() {
            record.patient_id = row.patient_id.clone();
        }
        record.age = row.age.or(record.age);
        record.sex = row.sex.or(record.sex);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(id: &str) -> PlannedRecord {
        PlannedRecord {
            name: format!("sub/{id}"),
            record_id: id.into(),
            labels: vec!["old:x".into()],
            patient_id: None,
            age: Some(50.0),
            sex: None,
            fold: None,
            header_labels: true,
        }
    }

    #[test]
    fn listed_records_take_the_csv_values() {
        let csv = b"record,labels,age,sex,patient_id\nA1,custom:a; custom:b,,F,p9\nA2,,33,,\n";
        let o = LabelOverride::parse(csv, "labels.csv").unwrap();
        let mut a1 = planned("A1");
        o.apply(&mut a1);
        assert_eq!(a1.labels, ["custom:a", "custom:b"]);
        assert!(!a1.header_labels);
        assert_eq!(a1.age, Some(50.0));
        assert_eq!(a1.sex, Some(Sex::Female));
        assert_eq!(a1.patient_id.as_deref(), Some("p9"));
        let mut a2 = planned("A2");
        o.apply(&mut a2);
        assert_eq!(a2.labels, ["old:x"]);
        assert_eq!(a2.age, Some(33.0));
        let mut other = planned("Z");
        o.apply(&mut other);
        assert_eq!(other, planned("Z"));
    }

    #[test]
    fn bad_rows_name_the_file_and_row() {
        let err = LabelOverride::parse(b"record,sex\nA1,X\n", "my.csv").unwrap_err();
        assert!(err.to_string().contains("my.csv"), "{err}");
        assert!(err.to_string().contains("row 1"), "{err}");
        assert!(LabelOverride::parse(b"name,labels\n", "my.csv").is_err());
    }
}
