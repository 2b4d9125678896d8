//! Who a dataset's records are, without their signals: each record's source, record id, patient
//! id and split, read from each shard's footer and those four columns' chunks only (ranged
//! reads, a small part of the bytes). What `ecgfm eval` checks its test records against (were
//! they in the split the encoder was pretrained on?) and groups its bootstrap by (patients).
//!
//! A record's windows are consecutive rows, so a record is listed once per run of rows; the
//! list is in dataset order.

use arrow_array::cast::AsArray;
use arrow_array::RecordBatch;

use crate::error::DataError;
use crate::loader::Shard;
use crate::manifest::Manifest;
use crate::schema::col;
use crate::store;

/// The columns read, in this order.
const COLUMNS: [&str; 4] = [col::SOURCE, col::RECORD_ID, col::PATIENT_ID, col::SPLIT];

/// One record of a dataset.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId {
    pub source: String,
    pub record_id: String,
    /// `source:id` as ingest writes it; `source:record_id` where the source gave no patient id.
    pub patient_id: String,
    pub split: String,
}

impl RecordId {
    /// Whether the patient id is ingest's stand-in for a source without patient ids (the
    /// record's own id, prefixed by the source).
    pub fn patient_is_record(&self) -> bool {
        self.patient_id
            .strip_prefix(&self.source)
            .and_then(|rest| rest.strip_prefix(':'))
            == Some(self.record_id.as_str())
    }
}

/// The dataset at `url`: its manifest and every record, in dataset order. Each shard is opened
/// as the loader opens it (its footer checked against the manifest) and each row group's
/// `COLUMNS` fetched alone, the split and source chunks checked too.
pub fn read_record_ids(url: &str) -> Result<(Manifest, Vec<RecordId>), DataError> {
    let (object_store, root) = store::open_url(url)?;
    let manifest = Manifest::load(object_store.as_ref(), &root)?;
    let mut records: Vec<RecordId> = Vec::new();
    for entry in &manifest.shards {
        let location = store::join(&root, &entry.path);
        let shard = store::block_on(Shard::open(
            object_store.as_ref(),
            location,
            entry.path.clone(),
            entry.checksums(),
        ))?;
        for rg in 0..shard.row_group_rows().len() {
            let batch = store::block_on(shard.read_utf8(object_store.as_ref(), rg, &COLUMNS))?;
            push_rows(&batch, &entry.path, &mut records)?;
        }
    }
    Ok((manifest, records))
}

/// Appends the record of each row of `batch` (a row group's [`COLUMNS`] of shard `name`) unless
/// it repeats the last one.
fn push_rows(batch: &RecordBatch, name: &str, out: &mut Vec<RecordId>) -> Result<(), DataError> {
    let column = |c: &str| {
        let i = batch.schema().index_of(c).expect("read");
        batch
            .column(i)
            .as_string_opt::<i32>()
            .ok_or_else(|| DataError::Corrupt {
                path: name.to_string(),
                reason: format!("`{c}` is not a Utf8 column"),
            })
    };
    let [source, record, patient, split] = COLUMNS.map(column);
    let (source, record, patient, split) = (source?, record?, patient?, split?);
    for row in 0..batch.num_rows() {
        let text = |a: &arrow_array::StringArray| a.value(row).to_string();
        let id = RecordId {
            source: text(source),
            record_id: text(record),
            patient_id: text(patient),
            split: text(split),
        };
        if out.last() != Some(&id) {
            out.push(id);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth_dataset::{write_synth_dataset, SynthDatasetOptions};

    #[test]
    fn every_record_is_read_once_with_its_split_and_patient() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().to_str().unwrap();
        let options = SynthDatasetOptions {
            out: url.to_string(),
            records: 30,
            row_group_rows: 8,
            threads: 1,
            ..SynthDatasetOptions::default()
        };
        write_synth_dataset(&options, &indicatif::ProgressBar::hidden()).unwrap();
        let (manifest, records) = read_record_ids(url).unwrap();
        assert_eq!(records.len() as u64, manifest.counts.records);
        let mut ids: Vec<&str> = records.iter().map(|r| r.record_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), records.len(), "a record listed twice");
        assert!(records
            .iter()
            .all(|r| ["train", "val", "test"].contains(&r.split.as_str())));
        let fallback = RecordId {
            source: "cinc2017".into(),
            record_id: "A00001".into(),
            patient_id: "cinc2017:A00001".into(),
            split: "test".into(),
        };
        assert!(fallback.patient_is_record());
        let real = RecordId {
            patient_id: "cinc2017:p7".into(),
            ..fallback
        };
        assert!(!real.patient_is_record());
    }
}
