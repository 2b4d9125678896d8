//! A small test-only dataset writer following docs/dataset-format.md: `shards` Parquet shards of
//! synthetic rows whose signal values are a known function of the row's global id, plus
//! `manifest.json`, written to any store. Lets loader tests check every decoded value. Even
//! shards store the signal PLAIN + zstd (as other writers and early ecgfm versions do), odd
//! shards DELTA_BINARY_PACKED uncompressed (as `ecgfm data ingest` does), so every loader test
//! reads both. Like a manifest written by ingest, the delta shards' entries carry the CRC-32C
//! of each row group's signal column chunk, of its lead_mask and n_samples chunks and of its
//! split and source chunks, and of the footer; the others have none, like manifests that
//! predate them.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::{
    ArrayRef, BooleanArray, FixedSizeListArray, Float32Array, Int16Array, Int32Array, Int8Array,
    ListArray, StringArray, UInt8Array,
};
use arrow_buffer::OffsetBuffer;
use arrow_schema::DataType;
use bytes::Bytes;
use ecgfm_data::manifest::{Manifest, ShardEntry, MANIFEST_FILE};
use ecgfm_data::schema::{list_item, window_schema, N_LEADS, STANDARD_LEADS};
use ecgfm_data::store::{self, StoreRoot};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::schema::types::ColumnPath;
use sha2::{Digest, Sha256};

/// Shape of a test dataset.
#[derive(Clone, Debug)]
pub struct Spec {
    pub shards: usize,
    pub rows_per_shard: usize,
    pub row_group_rows: usize,
    pub window_samples: usize,
    /// Split of the row with global id `id`.
    pub split_of: fn(u64) -> &'static str,
    /// Source of the row with global id `id`.
    pub source_of: fn(u64) -> &'static str,
}

/// Every row from source `synth`.
pub fn synth_source(_: u64) -> &'static str {
    "synth"
}

/// Every row in `train`.
pub fn all_train(_: u64) -> &'static str {
    "train"
}

/// Every fifth row in `val`, the rest in `train` (mixed row groups).
pub fn every_fifth_val(id: u64) -> &'static str {
    if id % 5 == 4 {
        "val"
    } else {
        "train"
    }
}

/// The stored value of lead `lead`, sample `t` of the row with global id `id`.
pub fn stored_value(id: u64, lead: usize, t: usize) -> i16 {
    ((id as usize * 31 + lead * 977 + t * 7) % 4001) as i16 - 2000
}

/// Valid samples of row `id`: every seventh row is short (60 % of the window).
pub fn valid_samples(id: u64, window: usize) -> usize {
    if id % 7 == 3 {
        window * 3 / 5
    } else {
        window
    }
}

/// Whether lead `lead` of row `id` is present (row ids divisible by 3 lack V1..V6).
pub fn lead_present(id: u64, lead: usize) -> bool {
    !(id.is_multiple_of(3) && lead >= 6)
}

/// Writes the dataset under `root` and returns its manifest.
pub fn write(root: &StoreRoot, spec: &Spec) -> Manifest {
    let (store, prefix) = root;
    let mut manifest = Manifest::new(250.0, spec.window_samples, spec.row_group_rows);
    let mut id = 0u64;
    for s in 0..spec.shards {
        let ids: Vec<u64> = (id..id + spec.rows_per_shard as u64).collect();
        id += spec.rows_per_shard as u64;
        let (bytes, checksums) = shard_bytes(&ids, spec, s % 2 == 1);
        let path = format!("shards/shard-{s:05}.parquet");
        let mut row_groups = Vec::new();
        let mut left = spec.rows_per_shard as u64;
        while left > 0 {
            let n = left.min(spec.row_group_rows as u64);
            row_groups.push(n);
            left -= n;
        }
        manifest.shards.push(ShardEntry {
            path: path.clone(),
            rows: ids.len() as u64,
            bytes: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(&bytes)),
            row_groups,
            signal_crc32c: checksums.iter().map(|c| c[0]).collect(),
            lead_mask_n_samples_crc32c: checksums.iter().map(|c| c[1]).collect(),
            split_source_crc32c: checksums.iter().map(|c| c[2]).collect(),
            footer_crc32c: (s % 2 == 1).then(|| footer_crc(&bytes)),
        });
        for &i in &ids {
            *manifest
                .counts
                .splits
                .entry((spec.split_of)(i).to_string())
                .or_default() += 1;
        }
        store::block_on(store::put_bytes(
            store.as_ref(),
            &store::join(prefix, &path),
            Bytes::from(bytes),
        ))
        .expect("write shard");
    }
    manifest.counts.rows = id;
    let path = store::join(prefix, MANIFEST_FILE);
    store::block_on(store::put_bytes(
        store.as_ref(),
        &path,
        Bytes::from(manifest.to_json()),
    ))
    .expect("write manifest");
    manifest
}

fn strings(values: impl Iterator<Item = String>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

fn fixed(item: DataType, len: usize, values: ArrayRef) -> ArrayRef {
    Arc::new(FixedSizeListArray::new(
        list_item(item, false),
        len as i32,
        values,
        None,
    ))
}

fn string_lists(lists: Vec<Vec<String>>) -> ArrayRef {
    let offsets = OffsetBuffer::from_lengths(lists.iter().map(Vec::len));
    let values = StringArray::from_iter_values(lists.into_iter().flatten());
    Arc::new(ListArray::new(
        list_item(DataType::Utf8, false),
        offsets,
        Arc::new(values),
        None,
    ))
}

/// The CRC-32C of a Parquet file's footer metadata (the bytes before its length and `PAR1`).
fn footer_crc(file: &[u8]) -> u32 {
    let n = file.len();
    let len = u32::from_le_bytes(file[n - 8..n - 4].try_into().unwrap()) as usize;
    crc32c::crc32c(&file[n - 8 - len..n - 8])
}

/// The shard's bytes and, for a delta-encoded signal, each row group's checked chunks' CRC-32C
/// (as ingest writes them: the signal; the lead mask and lengths; the split and source).
fn shard_bytes(ids: &[u64], spec: &Spec, delta_signal: bool) -> (Vec<u8>, Vec<[u32; 3]>) {
    let w = spec.window_samples;
    let n = ids.len();
    let signal: Vec<i16> = ids
        .iter()
        .flat_map(|&id| {
            (0..N_LEADS).flat_map(move |l| {
                (0..w).map(move |t| {
                    if lead_present(id, l) && t < valid_samples(id, w) {
                        stored_value(id, l, t)
                    } else {
                        0
                    }
                })
            })
        })
        .collect();
    let mask: Vec<bool> = ids
        .iter()
        .flat_map(|&id| (0..N_LEADS).map(move |l| lead_present(id, l)))
        .collect();
    let columns: Vec<ArrayRef> = vec![
        strings(ids.iter().map(|id| format!("synth-{id:06}"))),
        strings(ids.iter().map(|id| format!("synth:p{}", id / 2))),
        strings(ids.iter().map(|&id| (spec.source_of)(id).to_string())),
        Arc::new(Int32Array::from(vec![0; n])),
        Arc::new(Float32Array::from(vec![250.0; n])),
        Arc::new(Int32Array::from_iter_values(
            ids.iter().map(|&id| valid_samples(id, w) as i32),
        )),
        string_lists(
            ids.iter()
                .map(|_| STANDARD_LEADS.iter().map(|s| s.to_string()).collect())
                .collect(),
        ),
        fixed(
            DataType::Boolean,
            N_LEADS,
            Arc::new(BooleanArray::from(mask)),
        ),
        fixed(
            DataType::Int16,
            N_LEADS * w,
            Arc::new(Int16Array::from(signal)),
        ),
        string_lists(
            ids.iter()
                .map(|_| vec!["synth:normal".to_string()])
                .collect(),
        ),
        Arc::new(Float32Array::from(vec![Some(50.0); n])),
        Arc::new(StringArray::from(vec![Some("F"); n])),
        Arc::new(Float32Array::from(vec![1.0; n])),
        fixed(
            DataType::UInt8,
            N_LEADS,
            Arc::new(UInt8Array::from(vec![0u8; n * N_LEADS])),
        ),
        strings(ids.iter().map(|&id| (spec.split_of)(id).to_string())),
        Arc::new(Int8Array::from(vec![None; n])),
    ];
    let schema = window_schema(w);
    let batch = RecordBatch::try_new(schema.clone(), columns).expect("rows match the schema");
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap()))
        .set_dictionary_enabled(false)
        .set_max_row_group_row_count(Some(spec.row_group_rows));
    if delta_signal {
        let signal = ColumnPath::from(vec!["signal".into(), "list".into(), "item".into()]);
        props = props
            .set_column_encoding(signal.clone(), Encoding::DELTA_BINARY_PACKED)
            .set_column_compression(signal, Compression::UNCOMPRESSED);
    }
    let props = props.build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema, Some(props)).expect("writer");
    writer.write(&batch).expect("write rows");
    writer.close().expect("close shard");
    let reader = SerializedFileReader::new(Bytes::from(out.clone())).expect("read back");
    let signal = reader.metadata().row_group(0).column(8);
    assert_eq!(signal.column_path().string(), "signal.list.item");
    let delta = signal
        .encodings()
        .any(|e| e == Encoding::DELTA_BINARY_PACKED);
    assert_eq!(delta, delta_signal, "signal encodings of the test shard");
    let chunk = |rg: &RowGroupMetaData, leaf: usize| {
        let (start, len) = rg.column(leaf).byte_range();
        &out[start as usize..(start + len) as usize]
    };
    let row_groups = reader.metadata().row_groups();
    let path = |leaf: usize| row_groups[0].column(leaf).column_path().string();
    let (mask, lengths, split, source) = (path(7), path(5), path(14), path(2));
    assert_eq!(
        [mask.as_str(), &lengths, &split, &source],
        ["lead_mask.list.item", "n_samples", "split", "source"]
    );
    let two = |rg: &RowGroupMetaData, a: usize, b: usize| {
        crc32c::crc32c_append(crc32c::crc32c(chunk(rg, a)), chunk(rg, b))
    };
    let checksums = row_groups
        .iter()
        .filter(|_| delta_signal)
        .map(|rg| [crc32c::crc32c(chunk(rg, 8)), two(rg, 7, 5), two(rg, 14, 2)])
        .collect();
    (out, checksums)
}
