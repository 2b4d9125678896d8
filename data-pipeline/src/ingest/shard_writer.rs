//! Writing rows into Parquet shards (the signal delta-encoded, every other column zstd): rows
//! are buffered into row groups of exactly
//! `row_group_rows` (the last one of a shard may be shorter), and a shard is closed on a record
//! boundary once its flushed bytes pass `shard_target_bytes`. Finished shards are hashed (SHA-256)
//! and stored through the object store.

use bytes::Bytes;
use object_store::path::Path;
use object_store::ObjectStore;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use sha2::{Digest, Sha256};

use crate::chunk_crc::ShardChecksums;
use crate::error::DataError;
use crate::ingest::row::{rows_to_batch, WindowRow};
use crate::manifest::{ShardEntry, SHARDS_DIR};
use crate::schema::{col, window_schema, N_LEADS};
use crate::store;

/// How shards are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardLayout {
    pub window_samples: usize,
    pub row_group_rows: usize,
    pub shard_target_bytes: u64,
    pub zstd_level: i32,
}

/// The most signal bytes one row group may hold (`row_group_rows` windows x 12 leads x 2
/// bytes): the writer buffers a row group, and the loader decodes several at a time into 32-bit values
/// (`LoaderConfig::mix_row_groups`), so a 60 s window at 500 Hz (184 MB a row group of 256
/// windows) would hold gigabytes. The defaults (256 windows of 2500 samples) take 15 MB.
pub const MAX_ROW_GROUP_SIGNAL_BYTES: u64 = 64 << 20;

impl ShardLayout {
    /// Refuses a layout whose row groups would not fit in memory as the writer and the loader
    /// hold them (`MAX_ROW_GROUP_SIGNAL_BYTES`), naming the flags that set it.
    pub fn check(&self) -> Result<(), DataError> {
        if self.row_group_rows == 0 {
            return Err(DataError::Config("row_group_rows must be > 0".into()));
        }
        // Saturating: an absurd window (--window-s of years) must not wrap to a small size.
        let window_bytes = (self.window_samples as u64).saturating_mul(N_LEADS as u64 * 2);
        let bytes = window_bytes.saturating_mul(self.row_group_rows as u64);
        if bytes <= MAX_ROW_GROUP_SIGNAL_BYTES {
            return Ok(());
        }
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        let way_out = match MAX_ROW_GROUP_SIGNAL_BYTES / window_bytes {
            0 => "shorter windows (--window-s, or a lower --rate)".to_string(),
            rows => format!(
                "--row-group-rows {rows} or fewer, or shorter windows (--window-s, or a lower \
                 --rate)"
            ),
        };
        Err(DataError::Config(format!(
            "a row group of {} windows of {} samples x {N_LEADS} leads holds {:.0} MiB of \
             signal, more than the {:.0} MiB the writer and the loader (which decodes several at once) \
             may hold in memory: give {way_out}",
            self.row_group_rows,
            self.window_samples,
            mib(bytes),
            mib(MAX_ROW_GROUP_SIGNAL_BYTES)
        )))
    }
}

/// A closed shard held in memory, not yet stored.
#[derive(Debug, Clone)]
pub struct FinishedShard {
    pub bytes: Bytes,
    pub rows: u64,
    pub row_groups: Vec<u64>,
    /// The checksums the loader checks it against.
    pub checksums: ShardChecksums,
}

/// The relative path of shard number `index`.
pub fn shard_path(index: usize) -> String {
    format!("{SHARDS_DIR}/shard-{index:05}.parquet")
}

/// Removes the shards in the dataset folder `root` from number `listed` on (`shard_path`'s
/// names; nothing else there is touched): what an earlier attempt into the same folder left
/// beyond the `listed` shards a writer's manifest is about to name (a merge of more inputs, a
/// larger synth, a writer killed before its manifest). Returns how many were removed.
pub fn remove_unlisted_shards(
    object_store: &dyn ObjectStore,
    root: &Path,
    listed: usize,
) -> Result<u64, DataError> {
    let prefix = store::join(root, SHARDS_DIR);
    let mut removed = 0;
    for meta in store::block_on(store::list(object_store, &prefix))? {
        let index = meta.location.filename().and_then(|name| {
            let number = name.strip_prefix("shard-")?.strip_suffix(".parquet")?;
            number.parse::<usize>().ok()
        });
        let Some(index) = index.filter(|&i| i >= listed) else {
            continue;
        };
        if meta.location != store::join(root, &shard_path(index)) {
            continue;
        }
        store::remove(object_store, &meta.location)?;
        removed += 1;
    }
    Ok(removed)
}

/// Parquet writer settings: zstd on every column but the signal, which is delta-encoded
/// (DELTA_BINARY_PACKED, about 8 bits per sample on ECGs) and left uncompressed: zstd on top
/// saves nothing there and would cost the loader most of its decode time.
fn writer_properties(layout: &ShardLayout) -> Result<WriterProperties, DataError> {
    let level = ZstdLevel::try_new(layout.zstd_level)
        .map_err(|e| DataError::Config(format!("zstd level {}: {e}", layout.zstd_level)))?;
    let signal = ColumnPath::from(vec![
        col::SIGNAL.to_string(),
        "list".to_string(),
        crate::schema::LIST_ITEM.to_string(),
    ]);
    Ok(WriterProperties::builder()
        .set_created_by(format!("ecgfm {}", env!("CARGO_PKG_VERSION")))
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(layout.row_group_rows))
        .set_max_row_group_bytes(None)
        .set_column_dictionary_enabled(signal.clone(), false)
        .set_column_encoding(signal.clone(), Encoding::DELTA_BINARY_PACKED)
        .set_column_compression(signal.clone(), Compression::UNCOMPRESSED)
        .set_column_statistics_enabled(signal, EnabledStatistics::None)
        .build())
}

/// Accumulates rows of one shard at a time.
pub struct ShardWriter {
    layout: ShardLayout,
    properties: WriterProperties,
    writer: Option<ArrowWriter<Vec<u8>>>,
    pending: Vec<WindowRow>,
    row_groups: Vec<u64>,
    rows: u64,
}

impl ShardWriter {
    /// A writer for shards of the given layout.
    pub fn new(layout: ShardLayout) -> Result<Self, DataError> {
        layout.check()?;
        Ok(Self {
            properties: writer_properties(&layout)?,
            layout,
            writer: None,
            pending: Vec::new(),
            row_groups: Vec::new(),
            rows: 0,
        })
    }

    /// Adds the rows of one record, writing every full row group.
    pub fn push_record(&mut self, rows: Vec<WindowRow>) -> Result<(), DataError> {
        self.rows += rows.len() as u64;
        self.pending.extend(rows);
        while self.pending.len() >= self.layout.row_group_rows {
            let rest = self.pending.split_off(self.layout.row_group_rows);
            let group = std::mem::replace(&mut self.pending, rest);
            self.write_group(&group)?;
        }
        Ok(())
    }

    /// Whether the open shard has reached its target size (checked between records).
    pub fn is_full(&self) -> bool {
        self.writer
            .as_ref()
            .is_some_and(|w| w.bytes_written() as u64 >= self.layout.shard_target_bytes)
    }

    fn write_group(&mut self, group: &[WindowRow]) -> Result<(), DataError> {
        let batch = rows_to_batch(group, self.layout.window_samples, "shard being written")?;
        let writer = match &mut self.writer {
            Some(writer) => writer,
            None => self.writer.insert(
                ArrowWriter::try_new(
                    Vec::new(),
                    window_schema(self.layout.window_samples),
                    Some(self.properties.clone()),
                )
                .map_err(parquet_error)?,
            ),
        };
        writer.write(&batch).map_err(parquet_error)?;
        writer.flush().map_err(parquet_error)?;
        self.row_groups.push(group.len() as u64);
        Ok(())
    }

    /// Closes the open shard (writing any partial last row group); `None` when it holds no rows.
    pub fn finish(&mut self) -> Result<Option<FinishedShard>, DataError> {
        if !self.pending.is_empty() {
            let group = std::mem::take(&mut self.pending);
            self.write_group(&group)?;
        }
        let Some(writer) = self.writer.take() else {
            return Ok(None);
        };
        let bytes = Bytes::from(writer.into_inner().map_err(parquet_error)?);
        let finished = FinishedShard {
            checksums: ShardChecksums::of_shard(&bytes)?,
            bytes,
            rows: self.rows,
            row_groups: std::mem::take(&mut self.row_groups),
        };
        self.rows = 0;
        Ok(Some(finished))
    }
}

fn parquet_error(source: parquet::errors::ParquetError) -> DataError {
    DataError::Parquet {
        path: "shard being written".into(),
        source,
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Stores `shard` as shard number `index` under `root` and returns its manifest entry.
pub fn store_shard(
    object_store: &dyn ObjectStore,
    root: &Path,
    index: usize,
    shard: FinishedShard,
) -> Result<ShardEntry, DataError> {
    let path = shard_path(index);
    let mut entry = ShardEntry {
        path: path.clone(),
        rows: shard.rows,
        bytes: shard.bytes.len() as u64,
        sha256: sha256_hex(&shard.bytes),
        row_groups: shard.row_groups,
        ..ShardEntry::default()
    };
    entry.set_checksums(shard.checksums);
    let location = store::join(root, &path);
    store::block_on(store::put_bytes(object_store, &location, shard.bytes))?;
    Ok(entry)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::schema::N_LEADS;
    use crate::split::Split;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    /// The single row of record `r{id}`: one window of `window` samples.
    pub(in crate::ingest) fn row(window: usize, id: usize) -> WindowRow {
        WindowRow {
            record_id: format!("r{id}"),
            patient_id: format!("test:{id}"),
            source: "test".into(),
            window_index: 0,
            sampling_rate: 250.0,
            n_samples: window as i32,
            lead_names: vec!["II".into()],
            lead_mask: [true; N_LEADS],
            signal: (0..N_LEADS * window)
                .map(|i| (i % 200) as i16 - 100)
                .collect(),
            labels: Vec::new(),
            age: None,
            sex: None,
            quality_score: 1.0,
            quality_flags: [0; N_LEADS],
            split: Split::Train,
            fold: None,
        }
    }

    #[test]
    fn row_groups_beyond_the_memory_cap_are_refused() {
        let layout = |window_samples, row_group_rows| ShardLayout {
            window_samples,
            row_group_rows,
            shard_target_bytes: 1 << 20,
            zstd_level: 3,
        };
        layout(2500, 256).check().unwrap();
        // 64 MiB / (12 leads x 2 bytes) = 2,796,202 samples.
        layout(2_796_202, 1).check().unwrap();
        let err = layout(2_796_203, 1).check().unwrap_err().to_string();
        assert!(err.contains("give shorter windows"), "{err}");
        let err = layout(30_000, 256).check().unwrap_err().to_string();
        assert!(err.contains("--row-group-rows 93 or fewer"), "{err}");
        layout(30_000, 93).check().unwrap();
        // 2^62 samples x 24 bytes is 6 x 2^64: no wrapping to 0 bytes.
        let err = layout(1 << 62, 1).check().unwrap_err().to_string();
        assert!(err.contains("give shorter windows"), "{err}");
        assert!(layout(2500, 0).check().is_err());
    }

    #[test]
    fn signal_is_delta_encoded_and_uncompressed_the_rest_zstd() {
        let layout = ShardLayout {
            window_samples: 50,
            row_group_rows: 2,
            shard_target_bytes: 1 << 20,
            zstd_level: 3,
        };
        let mut writer = ShardWriter::new(layout).unwrap();
        writer
            .push_record((0..3).map(|i| row(50, i)).collect())
            .unwrap();
        let shard = writer.finish().unwrap().unwrap();
        assert_eq!((shard.rows, shard.row_groups.clone()), (3, vec![2, 1]));
        let [signal, lead_mask, split] = &shard.checksums.chunks;
        assert_eq!((signal.len(), lead_mask.len(), split.len()), (2, 2, 2));
        assert_ne!(signal[0], signal[1]);
        assert!(shard.checksums.footer.is_some());
        let reader = SerializedFileReader::new(shard.bytes).unwrap();
        let group = reader.metadata().row_group(0);
        let column = |name: &str| {
            group
                .columns()
                .iter()
                .find(|c| c.column_path().string().starts_with(name))
                .unwrap()
        };
        let signal = column(col::SIGNAL);
        assert!(signal
            .encodings()
            .any(|e| e == Encoding::DELTA_BINARY_PACKED));
        assert_eq!(signal.compression(), Compression::UNCOMPRESSED);
        assert!(signal.statistics().is_none());
        assert!(matches!(
            column(col::RECORD_ID).compression(),
            Compression::ZSTD(_)
        ));
        assert!(
            column(col::SPLIT).statistics().is_some(),
            "the loader reads split statistics"
        );
    }
}
