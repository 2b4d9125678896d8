//! The record lists of `ingest --records FILE` (which of a source's records to ingest: a cohort)
//! and `ingest --exclude FILE` (which to leave out: an external test set, withdrawn consent).
//! Either one record per line (blank lines and `#` comments skipped) or a CSV whose header names
//! a `record` column (a label CSV, a cohort exported from a spreadsheet). A name is a record id
//! (`00001_hr`) or a path relative to the source (`records500/00000/00001_hr`), with or without
//! `.hea`, as in the label CSV. The plan keeps its own sorted order. A cohort's name that matches
//! no record of the source is an error naming it, so a typo never shrinks a cohort silently; an
//! exclusion's is a warning (the record is not ingested either way).

use std::collections::BTreeSet;

use crate::error::DataError;
use crate::ingest::plan::PlannedRecord;

/// Listed names quoted in the error about names that match no record.
const UNMATCHED_EXAMPLES: usize = 5;

/// The parsed list: record names without `.hea`.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordList {
    /// The file, for messages.
    file: String,
    names: BTreeSet<String>,
}

impl RecordList {
    /// Parses the list's bytes; `file` names it in errors.
    pub fn parse(bytes: &[u8], file: &str) -> Result<Self, DataError> {
        let bad = |reason: String| DataError::Corrupt {
            path: file.to_string(),
            reason: format!("record list: {reason}"),
        };
        let text = std::str::from_utf8(bytes).map_err(|e| bad(format!("not UTF-8 text: {e}")))?;
        // A spreadsheet's byte-order mark (the CSV reader drops it itself).
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let first = text.lines().map(str::trim).find(|l| !skipped(l));
        let names: Vec<String> = match first {
            Some(header) if header.contains(',') || header == "record" => {
                csv_records(bytes).map_err(bad)?
            }
            _ => text
                .lines()
                .map(str::trim)
                .filter(|l| !skipped(l))
                .map(String::from)
                .collect(),
        };
        let names: BTreeSet<String> = names
            .into_iter()
            .map(|n| n.strip_suffix(".hea").unwrap_or(&n).to_string())
            .collect();
        if names.is_empty() {
            return Err(bad("it names no record".into()));
        }
        Ok(RecordList {
            file: file.to_string(),
            names,
        })
    }

    /// Keeps the records the list names (by path, else by id), in their order; fails naming the
    /// listed names that match no record of `source` (the source's description).
    pub fn select(
        &self,
        records: Vec<PlannedRecord>,
        source: &str,
    ) -> Result<Vec<PlannedRecord>, DataError> {
        let (listed, _, unmatched) = self.split(records);
        if unmatched.is_empty() {
            return Ok(listed);
        }
        Err(DataError::Corrupt {
            path: self.file.clone(),
            reason: format!(
                "record list: {} of its {} records are not in {source} (e.g. {}); a name is a \
                 record id (`00001_hr`) or its path in the source (`records500/00000/00001_hr`)",
                unmatched.len(),
                self.names.len(),
                examples(&unmatched)
            ),
        })
    }

    /// Leaves out the records the list names, keeping the others in their order; the second
    /// value warns of listed names that match no record of `source` (harmless for an exclusion,
    /// but likely a typo or another source's list).
    pub fn exclude(
        &self,
        records: Vec<PlannedRecord>,
        source: &str,
    ) -> (Vec<PlannedRecord>, Option<String>) {
        let (_, others, unmatched) = self.split(records);
        let warning = (!unmatched.is_empty()).then(|| {
            format!(
                "exclusion list {}: {} of its {} records are not in {source} (e.g. {})",
                self.file,
                unmatched.len(),
                self.names.len(),
                examples(&unmatched)
            )
        });
        (others, warning)
    }

    /// `records` split into those the list names (by path, else by id) and the others, each in
    /// order, and the listed names that match none of them.
    fn split(
        &self,
        records: Vec<PlannedRecord>,
    ) -> (Vec<PlannedRecord>, Vec<PlannedRecord>, Vec<&str>) {
        let mut matched = BTreeSet::new();
        let (listed, others) = records.into_iter().partition(|r: &PlannedRecord| {
            let key = [&r.name, &r.record_id]
                .into_iter()
                .find(|k| self.names.contains(k.as_str()));
            key.map(|k| matched.insert(k.clone())).is_some()
        });
        let unmatched = self
            .names
            .iter()
            .map(String::as_str)
            .filter(|n| !matched.contains(*n))
            .collect();
        (listed, others, unmatched)
    }
}

/// The first few of `names`, for a message.
fn examples(names: &[&str]) -> String {
    names[..names.len().min(UNMATCHED_EXAMPLES)].join(", ")
}

/// Blank lines and `#` comments.
fn skipped(line: &str) -> bool {
    line.is_empty() || line.starts_with('#')
}

/// The `record` column of a CSV with a header.
fn csv_records(bytes: &[u8]) -> Result<Vec<String>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .from_reader(bytes);
    let header = reader.headers().map_err(|e| e.to_string())?.clone();
    let column = header
        .iter()
        .position(|h| h.trim() == "record")
        .ok_or("a CSV list needs a `record` column in its header")?;
    let mut names = Vec::new();
    for (index, row) in reader.records().enumerate() {
        let row = row.map_err(|e| format!("row {}: {e}", index + 1))?;
        match row.get(column).map(str::trim).filter(|v| !v.is_empty()) {
            Some(name) => names.push(name.to_string()),
            None => return Err(format!("row {}: empty record name", index + 1)),
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::RecordList;
    use crate::ingest::plan::PlannedRecord;

    fn plan(names: &[&str]) -> Vec<PlannedRecord> {
        names
            .iter()
            .map(|n| PlannedRecord::bare(n, false))
            .collect()
    }

    fn names(records: &[PlannedRecord]) -> Vec<&str> {
        records.iter().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn a_line_list_selects_by_path_or_id_in_the_plans_order() {
        let list = b"# cohort 3\nb/A3.hea\n\n  A1  \nb/A3\n";
        let list = RecordList::parse(list, "cohort.txt").unwrap();
        let kept = list.select(plan(&["a/A1", "a/A2", "b/A3"]), "src").unwrap();
        assert_eq!(names(&kept), ["a/A1", "b/A3"]);
        let err = list.select(plan(&["a/A1"]), "src").unwrap_err().to_string();
        assert!(
            err.contains("1 of its 2 records are not in src (e.g. b/A3)"),
            "b/A3 twice, .hea or not, is one name: {err}"
        );
    }

    #[test]
    fn a_csv_list_takes_its_record_column() {
        let list = b"patient,record,labels\np1,A2,x:1\np2,A4,\n";
        let list = RecordList::parse(list, "cohort.csv").unwrap();
        let kept = list.select(plan(&["A1", "A2", "A3", "A4"]), "src").unwrap();
        assert_eq!(names(&kept), ["A2", "A4"]);
        let one_column = RecordList::parse(b"record\nA3\n", "cohort.csv").unwrap();
        let kept = one_column.select(plan(&["A1", "A3"]), "src").unwrap();
        assert_eq!(names(&kept), ["A3"]);
    }

    /// Lists saved by a spreadsheet: a byte-order mark and Windows line ends.
    #[test]
    fn a_byte_order_mark_and_crlf_line_ends_are_read_as_text() {
        for bytes in [
            &b"\xef\xbb\xbfrecord,labels\r\nA2,x\r\n"[..],
            b"\xef\xbb\xbfA2\r\n",
        ] {
            let list = RecordList::parse(bytes, "excel.csv").unwrap();
            let kept = list.select(plan(&["A1", "A2"]), "src").unwrap();
            assert_eq!(names(&kept), ["A2"], "{bytes:?}");
        }
    }

    #[test]
    fn names_missing_from_the_source_are_refused_naming_them() {
        let list = RecordList::parse(b"A1\nA9\nA8\n", "cohort.txt").unwrap();
        let err = list.select(plan(&["A1", "A2"]), "/data/raw").unwrap_err();
        let err = err.to_string();
        assert!(err.contains("cohort.txt"), "{err}");
        assert!(
            err.contains("2 of its 3 records are not in /data/raw (e.g. A8, A9)"),
            "{err}"
        );
    }

    #[test]
    fn an_exclusion_list_leaves_its_records_out_and_warns_of_names_not_there() {
        let list = RecordList::parse(b"a/A2\nA3.hea\nZ9\n", "held-out.txt").unwrap();
        let (kept, warning) = list.exclude(plan(&["a/A1", "a/A2", "b/A3", "b/A4"]), "/data/raw");
        assert_eq!(names(&kept), ["a/A1", "b/A4"]);
        let warning = warning.unwrap();
        assert!(
            warning.contains("held-out.txt: 1 of its 3 records are not in /data/raw (e.g. Z9)"),
            "{warning}"
        );
        let all_there = RecordList::parse(b"A1\n", "l.txt").unwrap();
        assert_eq!(all_there.exclude(plan(&["A1", "A2"]), "src").1, None);
    }

    #[test]
    fn empty_and_malformed_lists_are_refused() {
        for (bytes, says) in [
            (&b"# nothing\n\n"[..], "names no record"),
            (b"id,labels\nA1,x\n", "needs a `record` column"),
            (b"record,labels\n,x\n", "row 1: empty record name"),
            (b"\xff\xfe", "not UTF-8"),
        ] {
            let err = RecordList::parse(bytes, "l.txt").unwrap_err().to_string();
            assert!(err.contains("l.txt") && err.contains(says), "{err}");
        }
    }
}
