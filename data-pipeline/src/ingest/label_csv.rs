//! The label-CSV override of `ingest --label-csv FILE.csv`: a header row naming `record` and
//! `labels` (`;`-separated `vocabulary:code` strings) and optionally `patient_id`, `age`, `sex`
//! (`M`/`F`). Listed records take these values instead of the source's own: an empty `labels`
//! cell means no labels (the source's, header `# Dx:` lines included, are dropped), an empty
//! cell of the other columns keeps the source's value. A label that is not `vocabulary:code`
//! is refused, naming the file, line and value, as is a record listed twice with other values. A
//! row's `record` is the record id (`00001_hr`) or its path relative to the source (`records500/00000/00001_hr`), either with or without `.hea`. Rows that match no record
//! are reported; a file none of whose rows matches is refused.

use std::collections::{BTreeSet, HashMap};

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

/// The parsed override file, keyed by the `record` cell without `.hea`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelOverride {
    /// The file, for messages.
    file: String,
    rows: HashMap<String, Override>,
}

/// Rows named in messages about the rows that match no record.
const UNMATCHED_EXAMPLES: usize = 5;

impl LabelOverride {
    /// Parses the CSV bytes; `file` names it in errors.
    pub fn parse(bytes: &[u8], file: &str) -> Result<Self, DataError> {
        let bad = |row: usize, reason: String| DataError::Corrupt {
            path: file.to_string(),
            reason: format!("label CSV row {row}: {reason}"),
        };
        let bad_header = |reason: String| DataError::Corrupt {
            path: file.to_string(),
            reason: format!("label CSV header: {reason}"),
        };
        let mut reader = csv::Reader::from_reader(bytes);
        let header = reader
            .headers()
            .map_err(|e| bad_header(e.to_string()))?
            .clone();
        let column = |name: &str| header.iter().position(|h| h.trim() == name);
        let record_col = column("record").ok_or_else(|| bad_header("no `record` column".into()))?;
        let (labels_col, patient_col, age_col, sex_col) = (
            column("labels"),
            column("patient_id"),
            column("age"),
            column("sex"),
        );
        let (mut rows, mut first_rows) = (HashMap::new(), HashMap::new());
        for (index, row) in reader.records().enumerate() {
            let row_no = index + 1;
            let row = row.map_err(|e| bad(row_no, e.to_string()))?;
            let cell = |col: Option<usize>| {
                col.and_then(|c| row.get(c))
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
            };
            let record =
                cell(Some(record_col)).ok_or_else(|| bad(row_no, "empty record name".into()))?;
            let record = record.strip_suffix(".hea").unwrap_or(record).to_string();
            let age = cell(age_col)
                .map(|a| match a.parse::<f32>() {
                    Ok(years) if (0.0..=150.0).contains(&years) => Ok(years),
                    Ok(_) => Err(bad(row_no, format!("age {a:?} is not in years (0 to 150)"))),
                    Err(e) => Err(bad(row_no, format!("age {a:?}: {e}"))),
                })
                .transpose()?;
            let sex = cell(sex_col)
                .map(|s| match s.to_ascii_uppercase().as_str() {
                    "M" | "MALE" => Ok(Sex::Male),
                    "F" | "FEMALE" => Ok(Sex::Female),
                    _ => Err(bad(row_no, format!("sex {s:?} is not M or F"))),
                })
                .transpose()?;
            // A `labels` column replaces the labels, an empty cell with none.
            let labels = labels_col
                .map(|c| {
                    let line = row.position().map_or(row_no + 1, |p| p.line() as usize);
                    row.get(c)
                        .unwrap_or("")
                        .split(';')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|label| match label.split_once(':') {
                            Some((vocabulary, code))
                                if !vocabulary.trim().is_empty() && !code.trim().is_empty() =>
                            {
                                Ok(label.to_string())
                            }
                            _ => Err(bad(
                                row_no,
                                format!(
                                    "line {line}: label {label:?} is not `vocabulary:code` (e.g. \
                                     `snomed:426783006`, `cinc2017:A`)"
                                ),
                            )),
                        })
                        .collect::<Result<Vec<String>, DataError>>()
                })
                .transpose()?;
            let entry = Override {
                labels,
                patient_id: cell(patient_col).map(String::from),
                age,
                sex,
            };
            match first_rows.get(&record) {
                // A record listed twice with other values took the last row's until 2026-12-06.
                Some(&first) if rows[&record] != entry => {
                    return Err(bad(
                        row_no,
                        format!(
                            "record {record} again, with other values than row {first}: give \
                             each record one row (several labels `;`-separated in one cell)"
                        ),
                    ))
                }
                Some(_) => {}
                None => {
                    first_rows.insert(record.clone(), row_no);
                    rows.insert(record, entry);
                }
            }
        }
        Ok(LabelOverride {
            file: file.to_string(),
            rows,
        })
    }

    /// Applies the CSV to every record. Returns the warning about rows that match no record (if
    /// any); fails when the CSV has rows and none of them matches.
    pub fn apply_all(&self, records: &mut [PlannedRecord]) -> Result<Option<String>, DataError> {
        let matched: BTreeSet<&str> = records.iter_mut().filter_map(|r| self.apply(r)).collect();
        let mut unmatched: Vec<&str> = self
            .rows
            .keys()
            .map(String::as_str)
            .filter(|key| !matched.contains(key))
            .collect();
        if unmatched.is_empty() {
            return Ok(None);
        }
        unmatched.sort_unstable();
        let examples = unmatched[..unmatched.len().min(UNMATCHED_EXAMPLES)].join(", ");
        let hint = "a row's `record` is a record id (`00001_hr`) or its path in the source \
                    (`records500/00000/00001_hr`)";
        if matched.is_empty() {
            return Err(DataError::Corrupt {
                path: self.file.clone(),
                reason: format!(
                    "label CSV: none of its {} rows matches a record of the source's {} (first: \
                     {examples}); {hint}",
                    self.rows.len(),
                    records.len()
                ),
            });
        }
        Ok(Some(format!(
            "label CSV {}: {} of its {} rows match no record of the source (e.g. {examples}); \
             {hint}",
            self.file,
            unmatched.len(),
            self.rows.len()
        )))
    }

    /// Replaces the values of `record` that the CSV gives; returns the key of the row used (the
    /// record's path first, then its id).
    pub fn apply(&self, record: &mut PlannedRecord) -> Option<&str> {
        let (key, row) = [&record.name, &record.record_id]
            .into_iter()
            .find_map(|key| self.rows.get_key_value(key.as_str()))?;
        if let Some(labels) = &row.labels {
            record.labels = labels.clone();
            record.header_labels = false;
        }
        if row.patient_id.is_some() {
            record.patient_id = row.patient_id.clone();
        }
        record.age = row.age.or(record.age);
        record.sex = row.sex.or(record.sex);
        Some(key)
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
            header_comments: true,
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
        // An empty `labels` cell replaces the labels with none (header ones too).
        let mut a2 = planned("A2");
        o.apply(&mut a2);
        assert!(a2.labels.is_empty(), "{:?}", a2.labels);
        assert!(!a2.header_labels);
        assert_eq!(a2.age, Some(33.0));
        // Without a `labels` column the source's labels stay.
        let o = LabelOverride::parse(b"record,age\nA2,40\n", "ages.csv").unwrap();
        let mut a2 = planned("A2");
        o.apply(&mut a2);
        assert_eq!(
            (a2.labels.as_slice(), a2.header_labels),
            (&["old:x".to_string()][..], true)
        );
        let mut other = planned("Z");
        assert_eq!(o.apply(&mut other), None);
        assert_eq!(other, planned("Z"));
    }

    /// A CSV saved by a spreadsheet: a byte-order mark before the header, Windows line ends.
    #[test]
    fn a_byte_order_mark_and_crlf_line_ends_are_read_as_text() {
        let csv = b"\xef\xbb\xbfrecord,labels\r\nA1,x:y\r\n";
        let o = LabelOverride::parse(csv, "excel.csv").unwrap();
        let mut records = vec![planned("A1")];
        assert_eq!(o.apply_all(&mut records).unwrap(), None);
        assert_eq!(records[0].labels, ["x:y"]);
    }

    #[test]
    fn rows_match_by_path_or_id_with_or_without_hea() {
        let csv = b"record,labels\nsub/A1.hea,x:path\nA2.hea,x:id\nsub/A3,x:bare\nA9,x:none\n";
        let o = LabelOverride::parse(csv, "labels.csv").unwrap();
        let mut records = vec![planned("A1"), planned("A2"), planned("A3"), planned("A4")];
        let warning = o.apply_all(&mut records).unwrap().unwrap();
        let labels: Vec<&[String]> = records.iter().map(|r| r.labels.as_slice()).collect();
        assert_eq!(labels, [&["x:path"], &["x:id"], &["x:bare"], &["old:x"]]);
        assert!(warning.contains("labels.csv"), "{warning}");
        assert!(warning.contains("1 of its 4 rows"), "{warning}");
        assert!(warning.contains("A9"), "{warning}");
        let all_match = LabelOverride::parse(b"record,labels\nA1,x:y\n", "l.csv").unwrap();
        assert_eq!(all_match.apply_all(&mut records).unwrap(), None);
    }

    #[test]
    fn a_csv_matching_no_record_is_refused() {
        let o = LabelOverride::parse(b"record,labels\nB1,x:y\nB2,x:z\n", "mine.csv").unwrap();
        let err = o.apply_all(&mut [planned("A1")]).unwrap_err().to_string();
        assert!(err.contains("mine.csv"), "{err}");
        assert!(err.contains("none of its 2 rows"), "{err}");
        assert!(err.contains("B1, B2"), "{err}");
    }

    #[test]
    fn bad_rows_name_the_file_and_row() {
        let err = LabelOverride::parse(b"record,sex\nA1,X\n", "my.csv").unwrap_err();
        assert!(err.to_string().contains("my.csv"), "{err}");
        assert!(err.to_string().contains("row 1"), "{err}");
        for age in ["-5", "NaN", "1e9"] {
            let csv = format!("record,age\nA1,{age}\n");
            let err = LabelOverride::parse(csv.as_bytes(), "my.csv").unwrap_err();
            let said = format!("row 1: age \"{age}\" is not in years (0 to 150)");
            assert!(err.to_string().contains(&said), "{err}");
        }
        let err = LabelOverride::parse(b"name,labels\n", "my.csv").unwrap_err();
        let said = "my.csv: label CSV header: no `record` column";
        assert!(err.to_string().contains(said), "{err}");
    }

    /// A record listed twice with other values is refused (the last row won until 2026-12-06);
    /// the same row twice is one row.
    #[test]
    fn a_record_listed_twice_with_other_values_is_refused() {
        let csv = b"record,labels\nA1,x:a\nA2,x:b\nA1,x:c\n";
        let err = LabelOverride::parse(csv, "two.csv")
            .unwrap_err()
            .to_string();
        let said = "two.csv: label CSV row 3: record A1 again, with other values than row 1";
        assert!(err.contains(said), "{err}");
        let csv = b"record,labels,age\nA1,x:a,40\nA1,x:a,41\n";
        LabelOverride::parse(csv, "ages.csv").unwrap_err();
        let csv = b"record,labels\nA1,x:a\nA1.hea,x:a\n";
        let o = LabelOverride::parse(csv, "same.csv").unwrap();
        let mut records = vec![planned("A1")];
        assert_eq!(o.apply_all(&mut records).unwrap(), None);
        assert_eq!(records[0].labels, ["x:a"]);
    }

    /// A label without its `vocabulary:` (or with an empty side) is refused, naming the file,
    /// the line and the value; it was stored as a label of no vocabulary.
    #[test]
    fn a_label_that_is_not_vocabulary_code_is_refused() {
        for (labels, value) in [
            ("nocolon", "\"nocolon\""),
            ("x:y; :z", "\":z\""),
            ("snomed:", "\"snomed:\""),
        ] {
            let csv = format!("record,labels\nA0,ok:1\n\"A1\",\"{labels}\"\n");
            let err = LabelOverride::parse(csv.as_bytes(), "lab.csv")
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("lab.csv: label CSV row 2: line 3: label "),
                "{err}"
            );
            assert!(
                err.contains(&format!("label {value} is not `vocabulary:code`")),
                "{err}"
            );
        }
    }
}
