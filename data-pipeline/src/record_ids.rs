//! Who a dataset's records are, without their signals: each record's source, record id, patient
//! id and split, read from each shard's footer and those four columns' chunks only (ranged
//! reads, a small part of the bytes). What `ecgfm eval` checks its test records against (were
//! they in the split the encoder was pretrained on?) and groups its bootstrap by (patients).
//!
//! A record's windows are consecutive rows, so a record is listed once per run of rows; the
//! list is in dataset order.

use std::ops::Range;

use arrow_array::cast::AsArray;
use bytes::{Buf, Bytes};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use parquet::file::metadata::ParquetMetaDataReader;
use parquet::file::reader::{ChunkReader, Length};

use crate::chunk_crc::leaf;
use crate::error::DataError;
use crate::manifest::Manifest;
use crate::schema::col;
use crate::store;

/// Bytes fetched from the end of a shard in the first request; most footers fit.
const FOOTER_GUESS: u64 = 64 * 1024;

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

/// The dataset at `url`: its manifest and every record, in dataset order.
pub fn read_record_ids(url: &str) -> Result<(Manifest, Vec<RecordId>), DataError> {
    let (object_store, root) = store::open_url(url)?;
    let manifest = Manifest::load(object_store.as_ref(), &root)?;
    let mut records: Vec<RecordId> = Vec::new();
    for shard in &manifest.shards {
        let location = store::join(&root, &shard.path);
        let file = store::block_on(fetch_columns(object_store.as_ref(), &location, &shard.path))?;
        for record in decode(file, &shard.path)? {
            if records.last() != Some(&record) {
                records.push(record);
            }
        }
    }
    Ok((manifest, records))
}

fn corrupt(path: &str, reason: String) -> DataError {
    DataError::Corrupt {
        path: path.to_string(),
        reason,
    }
}

/// The footer and the chunks of [`COLUMNS`] of every row group of the shard at `location`.
async fn fetch_columns(
    object_store: &dyn object_store::ObjectStore,
    location: &object_store::path::Path,
    name: &str,
) -> Result<Fetched, DataError> {
    let (tail, size) = store::get_suffix(object_store, location, FOOTER_GUESS).await?;
    if tail.len() < 8 || &tail[tail.len() - 4..] != b"PAR1" {
        return Err(corrupt(name, "not a Parquet file (no PAR1 footer)".into()));
    }
    let footer_len = u32::from_le_bytes(tail[tail.len() - 8..tail.len() - 4].try_into().unwrap());
    let footer_len = u64::from(footer_len);
    if footer_len + 12 > size {
        return Err(corrupt(
            name,
            format!("footer length {footer_len} exceeds file size {size}"),
        ));
    }
    let footer_range = size - 8 - footer_len..size;
    let footer = if footer_len + 8 <= tail.len() as u64 {
        tail.slice(tail.len() - 8 - footer_len as usize..)
    } else {
        store::get_range(object_store, location, footer_range.clone()).await?
    };
    let metadata = ParquetMetaDataReader::decode_metadata(&footer[..footer_len as usize]).map_err(
        |source| DataError::Parquet {
            path: name.to_string(),
            source,
        },
    )?;
    let mut ranges: Vec<Range<u64>> = Vec::new();
    for name_of in COLUMNS {
        let leaf = leaf(&metadata, name_of)
            .ok_or_else(|| corrupt(name, format!("missing column {name_of:?}")))?;
        for row_group in metadata.row_groups() {
            let (start, len) = row_group.column(leaf).byte_range();
            if start + len > size {
                return Err(corrupt(
                    name,
                    format!("a column chunk lies beyond the end of the file ({size} bytes)"),
                ));
            }
            ranges.push(start..start + len);
        }
    }
    let chunks = store::get_ranges(object_store, location, &ranges).await?;
    let mut parts: Vec<(u64, Bytes)> = ranges.iter().map(|r| r.start).zip(chunks).collect();
    parts.push((footer_range.start, footer));
    Ok(Fetched { size, parts })
}

/// Each row's record (consecutive duplicates kept) from the fetched columns.
fn decode(file: Fetched, name: &str) -> Result<Vec<RecordId>, DataError> {
    let parquet_error = |source| DataError::Parquet {
        path: name.to_string(),
        source,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_error)?;
    let indices = COLUMNS
        .iter()
        .map(|c| builder.schema().index_of(c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| corrupt(name, e.to_string()))?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), indices.iter().copied());
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(parquet_error)?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| corrupt(name, e.to_string()))?;
        let column = |c: &str| {
            let i = batch.schema().index_of(c).expect("projected");
            batch
                .column(i)
                .as_string_opt::<i32>()
                .cloned()
                .ok_or_else(|| corrupt(name, format!("`{c}` is not a Utf8 column")))
        };
        let [source, record, patient, split] = COLUMNS.map(column);
        let (source, record, patient, split) = (source?, record?, patient?, split?);
        for row in 0..batch.num_rows() {
            let text = |a: &arrow_array::StringArray| a.value(row).to_string();
            let id = RecordId {
                source: text(&source),
                record_id: text(&record),
                patient_id: text(&patient),
                split: text(&split),
            };
            if out.last() != Some(&id) {
                out.push(id);
            }
        }
    }
    Ok(out)
}

/// The fetched parts of a shard (column chunks and footer), served to the Parquet reader as if
/// they were the file.
struct Fetched {
    size: u64,
    parts: Vec<(u64, Bytes)>,
}

impl Fetched {
    fn slice(&self, start: u64, len: Option<usize>) -> parquet::errors::Result<Bytes> {
        for (offset, bytes) in &self.parts {
            let end = offset + bytes.len() as u64;
            if (*offset..end).contains(&start) {
                let from = (start - offset) as usize;
                let to = len.map_or(bytes.len(), |l| from + l);
                if to <= bytes.len() {
                    return Ok(bytes.slice(from..to));
                }
            }
        }
        Err(parquet::errors::ParquetError::General(format!(
            "read of bytes {start}+{len:?} outside the fetched column chunks"
        )))
    }
}

impl Length for Fetched {
    fn len(&self) -> u64 {
        self.size
    }
}

impl ChunkReader for Fetched {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(self.slice(start, None)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.slice(start, Some(length))
    }
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
