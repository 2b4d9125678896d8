//! Who a dataset's records are, without their signals: each record's source, record id, patient
//! id and split, read from each shard's footer and those four columns' chunks only (ranged
//! reads, a small part of the bytes). What `ecgfm eval` checks its test records against (were
//! they in the split the encoder was pretrained on?) and groups its bootstrap by (patients).
//!
//! A record's windows are consecutive rows, so a record is listed once per run of rows; the
//! list is in dataset order.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::RecordBatch;
use futures::StreamExt;
use object_store::path::Path;
use object_store::ObjectStore;

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
/// `COLUMNS` fetched alone, the split and source chunks checked too;
/// [`store::REQUESTS_IN_FLIGHT`] requests at a time, so an object store's latency is paid once
/// per that many of them. Of several failures, the one a shard-by-shard, row-group-by-row-group
/// read meets first is returned.
pub fn read_record_ids(url: &str) -> Result<(Manifest, Vec<RecordId>), DataError> {
    let mut records = Vec::new();
    let kept = &mut records;
    let manifest = visit_record_ids(url, move |_| move |record| kept.push(record.clone()))?;
    Ok((manifest, records))
}

/// [`read_record_ids`] handing each record, as it is read, to the visitor `visitor` makes from
/// the manifest (which names each record's source), none kept (a pretraining set of ten million
/// records lists in about 2.8 GB); returns the manifest. The visitor may have seen records when
/// a later shard fails.
pub fn visit_record_ids<V: FnMut(&RecordId)>(
    url: &str,
    visitor: impl FnOnce(&Manifest) -> V,
) -> Result<Manifest, DataError> {
    let (object_store, root) = store::open_url(url)?;
    let manifest = Manifest::load(object_store.as_ref(), &root)?;
    let visit = visitor(&manifest);
    store::block_on(visit_records(
        object_store.as_ref(),
        &root,
        &manifest,
        visit,
    ))?;
    Ok(manifest)
}

/// One read of [`visit_records`]: a row group of an opened shard, or the failure to open one.
enum Step {
    RowGroup(Arc<Shard>, usize),
    Failed(DataError),
}

async fn visit_records(
    object_store: &dyn ObjectStore,
    root: &Path,
    manifest: &Manifest,
    mut visit: impl FnMut(&RecordId),
) -> Result<(), DataError> {
    let opened: Vec<Result<Shard, DataError>> = futures::stream::iter(&manifest.shards)
        .map(|entry| {
            let location = store::join(root, &entry.path);
            Shard::open(object_store, location, entry)
        })
        .buffered(store::REQUESTS_IN_FLIGHT)
        .collect()
        .await;
    // Every row group of each shard, up to the first shard that does not open.
    let mut steps = Vec::new();
    for shard in opened {
        match shard {
            Ok(shard) => {
                let shard = Arc::new(shard);
                let row_groups = shard.row_group_rows().len();
                steps.extend((0..row_groups).map(|rg| Step::RowGroup(shard.clone(), rg)));
            }
            Err(error) => {
                steps.push(Step::Failed(error));
                break;
            }
        }
    }
    let mut batches = futures::stream::iter(steps)
        .map(|step| async move {
            match step {
                Step::RowGroup(shard, rg) => {
                    let batch = shard.read_utf8(object_store, rg, &COLUMNS).await?;
                    Ok((shard, batch))
                }
                Step::Failed(error) => Err(error),
            }
        })
        .buffered(store::REQUESTS_IN_FLIGHT);
    let mut last: Option<RecordId> = None;
    while let Some(read) = batches.next().await {
        let (shard, batch) = read?;
        visit_rows(&batch, &shard.name, &mut last, &mut visit)?;
    }
    Ok(())
}

/// Hands `visit` the record of each row of `batch` (a row group's [`COLUMNS`] of shard `name`)
/// unless it repeats the `last` one.
fn visit_rows(
    batch: &RecordBatch,
    name: &str,
    last: &mut Option<RecordId>,
    visit: &mut impl FnMut(&RecordId),
) -> Result<(), DataError> {
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
        let values = [source, record, patient, split].map(|a| a.value(row));
        let repeated = last.as_ref().is_some_and(|l| {
            [&l.source, &l.record_id, &l.patient_id, &l.split].map(String::as_str) == values
        });
        if !repeated {
            let [source, record_id, patient_id, split] = values.map(str::to_string);
            let id = last.insert(RecordId {
                source,
                record_id,
                patient_id,
                split,
            });
            visit(id);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth_dataset::{write_synth_dataset, SynthDatasetOptions};
    use bytes::Bytes;

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

    /// A record of several windows whose rows run on from one row group into the next is
    /// listed once.
    #[test]
    fn a_record_across_row_groups_is_listed_once() {
        let url = "memory://record-ids-tests/long-records";
        let mut options = SynthDatasetOptions {
            out: url.to_string(),
            records: 6,
            row_group_rows: 2,
            threads: 1,
            ..SynthDatasetOptions::default()
        };
        options.synth.samples *= 3;
        write_synth_dataset(&options, &indicatif::ProgressBar::hidden()).unwrap();
        let (manifest, records) = read_record_ids(url).unwrap();
        assert!(
            manifest.counts.rows >= 3 * manifest.counts.records,
            "{:?}",
            manifest.counts
        );
        assert!(
            manifest.shards[0].row_groups.len() >= 2,
            "{:?}",
            manifest.shards
        );
        let ids: Vec<&str> = records.iter().map(|r| r.record_id.as_str()).collect();
        assert_eq!(ids.len() as u64, manifest.counts.records, "{ids:?}");
    }

    /// A dataset of several shards of row groups of 4 rows, in memory.
    fn several_shards(name: &str) -> (Arc<dyn ObjectStore>, Path, String) {
        let url = format!("memory://record-ids-tests/{name}");
        let options = SynthDatasetOptions {
            out: url.clone(),
            records: 40,
            row_group_rows: 4,
            shard_target_bytes: 300_000,
            threads: 1,
            ..SynthDatasetOptions::default()
        };
        write_synth_dataset(&options, &indicatif::ProgressBar::hidden()).unwrap();
        let (object_store, root) = store::open_url(&url).unwrap();
        (object_store, root, url)
    }

    /// The records as read one shard, then one row group, after another, each row's record
    /// built and compared whole with the last.
    fn one_by_one(url: &str) -> Result<Vec<RecordId>, DataError> {
        let (object_store, root) = store::open_url(url)?;
        let manifest = Manifest::load(object_store.as_ref(), &root)?;
        let mut records = Vec::new();
        for entry in &manifest.shards {
            let location = store::join(&root, &entry.path);
            let shard = store::block_on(Shard::open(object_store.as_ref(), location, entry))?;
            for rg in 0..shard.row_group_rows().len() {
                let batch = store::block_on(shard.read_utf8(object_store.as_ref(), rg, &COLUMNS))?;
                let text = |c: &str, row: usize| {
                    let column = batch.column(batch.schema().index_of(c).unwrap());
                    column.as_string::<i32>().value(row).to_string()
                };
                for row in 0..batch.num_rows() {
                    let id = RecordId {
                        source: text(col::SOURCE, row),
                        record_id: text(col::RECORD_ID, row),
                        patient_id: text(col::PATIENT_ID, row),
                        split: text(col::SPLIT, row),
                    };
                    if records.last() != Some(&id) {
                        records.push(id);
                    }
                }
            }
        }
        Ok(records)
    }

    #[test]
    fn many_reads_at_a_time_give_the_records_and_the_error_of_one_read_at_a_time() {
        let (object_store, root, url) = several_shards("concurrent");
        let (manifest, records) = read_record_ids(&url).unwrap();
        assert!(
            manifest.shards.len() >= 3,
            "{} shards",
            manifest.shards.len()
        );
        assert_eq!(records, one_by_one(&url).unwrap());
        assert_eq!(records.len() as u64, manifest.counts.records);
        // Shard 1's split chunk of its row group 1 damaged, shard 2 gone: the damaged chunk is
        // met first.
        let shard = |i: usize| store::join(&root, &manifest.shards[i].path);
        let mut bytes = store::block_on(store::get_bytes(object_store.as_ref(), &shard(1)))
            .unwrap()
            .to_vec();
        let chunk = {
            use parquet::file::reader::{FileReader, SerializedFileReader};
            let reader = SerializedFileReader::new(Bytes::from(bytes.clone())).unwrap();
            let metadata = reader.metadata().row_group(1).clone();
            let leaf = (0..metadata.num_columns())
                .find(|&c| metadata.column(c).column_path().string() == col::SPLIT)
                .unwrap();
            metadata.column(leaf).byte_range()
        };
        bytes[(chunk.0 + chunk.1 / 2) as usize] ^= 0x01;
        store::block_on(store::put_bytes(
            object_store.as_ref(),
            &shard(1),
            Bytes::from(bytes),
        ))
        .unwrap();
        store::block_on(object_store::ObjectStoreExt::delete(
            object_store.as_ref(),
            &shard(2),
        ))
        .unwrap();
        let error = read_record_ids(&url).unwrap_err().to_string();
        assert_eq!(error, one_by_one(&url).unwrap_err().to_string());
        assert!(
            error.contains("shard-00001.parquet") && error.contains("CRC-32C"),
            "{error}"
        );
        // With shard 1 gone too, shard 1 is named, not a later one.
        store::block_on(object_store::ObjectStoreExt::delete(
            object_store.as_ref(),
            &shard(1),
        ))
        .unwrap();
        let error = read_record_ids(&url).unwrap_err().to_string();
        assert_eq!(error, one_by_one(&url).unwrap_err().to_string());
        assert!(error.contains("shard-00001.parquet"), "{error}");
    }
}
