//! One Parquet shard as the loader sees it: its footer (one suffix request for most footers), the leaf
//! columns it needs, ranged fetches of one row group's column chunks, and the decode of chosen
//! rows of that row group into a `DecodedRows` (run off the async threads).

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{Array, BooleanArray, FixedSizeListArray, Int32Array};
use bytes::{Buf, Bytes};
use object_store::path::Path;
use object_store::ObjectStore;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
};
use parquet::arrow::ProjectionMask;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::reader::{ChunkReader, Length};

use crate::chunk_crc::{self, CHECKED};
use crate::error::DataError;
use crate::manifest::ShardEntry;
use crate::schema::{col, N_LEADS};
use crate::store;

use super::buffers::{BufferPool, PooledBuffer};
use super::signal::{consecutive_runs, decode_signal_rows};

/// Bytes fetched from the end of a shard in the first request; most footers fit.
const FOOTER_GUESS: u64 = 64 * 1024;

/// A shard's metadata and where its needed columns are.
pub(crate) struct Shard {
    /// Location in the store.
    pub path: Path,
    /// Name used in errors (the manifest's relative path).
    pub name: String,
    /// File size in bytes.
    pub size: u64,
    metadata: ArrowReaderMetadata,
    /// The manifest's CRC-32C of each row group's chunks of each group of
    /// `chunk_crc::CHECKED` (signal; lead_mask and n_samples; split and source); an empty list
    /// is not checked.
    checksums: [Vec<u32>; 3],
    /// The leaf columns of each group of `chunk_crc::CHECKED`.
    checked_leaves: [Vec<usize>; 3],
    /// Leaf column indices of `signal`, `lead_mask`, `n_samples`, `split`, `source`.
    signal: usize,
    lead_mask: usize,
    n_samples: usize,
    split: usize,
    source: usize,
}

/// Rows decoded from one row group: `signal` is (rows, 12, window) stored values, lead-major.
pub(crate) struct DecodedRows {
    pub signal: PooledBuffer,
    pub lead_mask: Vec<u8>,
    pub n_samples: Vec<i32>,
}

/// How a shard of `size` bytes differs from its manifest entry's `bytes`.
pub fn size_differs(size: u64, bytes: u64) -> String {
    format!("the file has {size} bytes, the manifest says {bytes}")
}

impl Shard {
    /// Reads the footer of the shard `entry` of the manifest (at `path`), checks it against the
    /// entry's checksum and that it holds the loader's columns. A shard missing, or whose footer
    /// does not read while its size differs from the manifest's (cut short, or grown), is
    /// `DataError::Damaged`, as a checksum that fails; a shard whose footer reads is held to its
    /// size and row groups after every shard opened (`DatasetIndex::open`'s order of errors).
    pub async fn open(
        store: &dyn ObjectStore,
        path: Path,
        entry: &ShardEntry,
    ) -> Result<Self, DataError> {
        let (name, checksums) = (entry.path.clone(), entry.checksums());
        let damaged = |reason: String| DataError::Damaged {
            path: name.clone(),
            reason,
        };
        let (tail, size) = match store::get_suffix(store, &path, FOOTER_GUESS).await {
            Err(DataError::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }) => {
                let listed = format!("the manifest lists it, of {} bytes", entry.bytes);
                return Err(damaged(format!("not found, though {listed}")));
            }
            read => read?,
        };
        // A footer that does not read is a symptom; a size the manifest does not give, the cause.
        let broken = |err: DataError| match size != entry.bytes {
            true => damaged(size_differs(size, entry.bytes)),
            false => err,
        };
        let corrupt = |reason: String| {
            broken(DataError::Corrupt {
                path: name.clone(),
                reason,
            })
        };
        if tail.len() < 8 || &tail[tail.len() - 4..] != b"PAR1" {
            return Err(corrupt("not a Parquet file (no PAR1 footer)".into()));
        }
        let footer_len =
            u32::from_le_bytes(tail[tail.len() - 8..tail.len() - 4].try_into().unwrap()) as u64;
        if footer_len + 12 > size {
            return Err(corrupt(format!(
                "footer length {footer_len} exceeds file size {size}"
            )));
        }
        let footer = if footer_len + 8 <= tail.len() as u64 {
            tail.slice(tail.len() - 8 - footer_len as usize..tail.len() - 8)
        } else {
            store::get_range(store, &path, size - 8 - footer_len..size - 8).await?
        };
        if let Some(want) = checksums.footer {
            let got = crc32c::crc32c(&footer);
            if got != want {
                return Err(broken(damaged(format!(
                    "the footer has CRC-32C {got:08x}, the manifest says {want:08x}"
                ))));
            }
        }
        let metadata = ParquetMetaDataReader::decode_metadata(&footer).map_err(|source| {
            broken(DataError::Parquet {
                path: name.clone(),
                source,
            })
        })?;
        Self::from_metadata(path, name, size, metadata, checksums.chunks)
    }

    fn from_metadata(
        path: Path,
        name: String,
        size: u64,
        metadata: ParquetMetaData,
        checksums: [Vec<u32>; 3],
    ) -> Result<Self, DataError> {
        let missing = |column: &str| DataError::Corrupt {
            path: name.clone(),
            reason: format!("missing column {column:?}"),
        };
        let leaf = |column: &str| chunk_crc::leaf(&metadata, column).ok_or_else(|| missing(column));
        let (signal, lead_mask, n_samples, split, source) = (
            leaf(col::SIGNAL)?,
            leaf(col::LEAD_MASK)?,
            leaf(col::N_SAMPLES)?,
            leaf(col::SPLIT)?,
            leaf(col::SOURCE)?,
        );
        let checked_leaves = chunk_crc::checked_leaves(&metadata).map_err(missing)?;
        for (columns, sums) in CHECKED.iter().zip(&checksums) {
            if !sums.is_empty() && sums.len() != metadata.num_row_groups() {
                return Err(DataError::Corrupt {
                    path: name,
                    reason: format!(
                        "the manifest has {} checksums of {} for {} row groups",
                        sums.len(),
                        columns.join(" and "),
                        metadata.num_row_groups()
                    ),
                });
            }
        }
        let metadata = ArrowReaderMetadata::try_new(Arc::new(metadata), ArrowReaderOptions::new())
            .map_err(|source| DataError::Parquet {
                path: name.clone(),
                source,
            })?;
        Ok(Shard {
            path,
            name,
            size,
            metadata,
            checksums,
            checked_leaves,
            signal,
            lead_mask,
            n_samples,
            split,
            source,
        })
    }

    /// Rows of each row group, in file order.
    pub fn row_group_rows(&self) -> Vec<u64> {
        self.metadata
            .metadata()
            .row_groups()
            .iter()
            .map(|rg| rg.num_rows() as u64)
            .collect()
    }

    /// The split of every row of row group `rg` when its statistics say they all share one
    /// (min == max), else `None`.
    pub fn uniform_split(&self, rg: usize) -> Option<String> {
        self.uniform_string(rg, self.split)
    }

    /// The split of each row of row group `rg`, read from the file.
    pub async fn read_splits(
        &self,
        store: &dyn ObjectStore,
        rg: usize,
    ) -> Result<Vec<String>, DataError> {
        self.read_strings(store, rg, col::SPLIT).await
    }

    /// The source names of the shard's rows (from column statistics where a row group holds
    /// one source, else read from the file).
    pub async fn sources(&self, store: &dyn ObjectStore) -> Result<BTreeSet<String>, DataError> {
        let mut names = BTreeSet::new();
        for rg in 0..self.metadata.metadata().num_row_groups() {
            match self.uniform_string(rg, self.source) {
                Some(name) => {
                    names.insert(name);
                }
                None => names.extend(self.read_strings(store, rg, col::SOURCE).await?),
            }
        }
        Ok(names)
    }

    /// The value of every row of Utf8 column `leaf` in row group `rg` when its statistics say
    /// they all share one (min == max), else `None`.
    fn uniform_string(&self, rg: usize, leaf: usize) -> Option<String> {
        let stats = self
            .metadata
            .metadata()
            .row_group(rg)
            .column(leaf)
            .statistics()?;
        let (min, max) = (stats.min_bytes_opt()?, stats.max_bytes_opt()?);
        (min == max).then(|| String::from_utf8_lossy(min).into_owned())
    }

    /// Each row's value of the Utf8 column `name` (the split or the source) in row group `rg`.
    async fn read_strings(
        &self,
        store: &dyn ObjectStore,
        rg: usize,
        name: &str,
    ) -> Result<Vec<String>, DataError> {
        let batch = self.read_utf8(store, rg, &[name]).await?;
        let column = batch
            .column(0)
            .as_string_opt::<i32>()
            .ok_or_else(|| self.corrupt(&format!("{name} is not a Utf8 column")))?;
        Ok(column
            .iter()
            .map(|s| s.unwrap_or_default().to_string())
            .collect())
    }

    /// Row group `rg`'s rows of the columns `names` (in the file's column order), read with the
    /// split and source chunks, which are checked against the manifest's CRC-32C.
    pub async fn read_utf8(
        &self,
        store: &dyn ObjectStore,
        rg: usize,
        names: &[&str],
    ) -> Result<arrow_array::RecordBatch, DataError> {
        let leaves = names
            .iter()
            .map(|name| {
                chunk_crc::leaf(self.metadata.metadata(), name)
                    .ok_or_else(|| self.corrupt(&format!("missing column {name:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let checked = &self.checked_leaves[2];
        let mut fetched = checked.clone();
        fetched.extend(leaves.iter().filter(|leaf| !checked.contains(leaf)));
        let file = self.fetch(store, rg, &fetched).await?;
        self.check_chunks(&file, rg, 2..3)?;
        self.decode_batch(file, rg, &leaves, None)
    }

    /// Fetches what decoding row group `rg` needs (the signal, lead mask and length columns).
    pub async fn fetch_rows(
        &self,
        store: &dyn ObjectStore,
        rg: usize,
    ) -> Result<SparseFile, DataError> {
        self.fetch(store, rg, &[self.signal, self.lead_mask, self.n_samples])
            .await
    }

    async fn fetch(
        &self,
        store: &dyn ObjectStore,
        rg: usize,
        leaves: &[usize],
    ) -> Result<SparseFile, DataError> {
        let row_group = self.metadata.metadata().row_group(rg);
        let ranges: Vec<Range<u64>> = leaves
            .iter()
            .map(|&leaf| {
                let (start, len) = row_group.column(leaf).byte_range();
                start..start + len
            })
            .collect();
        if let Some(bad) = ranges.iter().find(|r| r.end > self.size) {
            return Err(self.corrupt(&format!(
                "column chunk {bad:?} lies beyond the end of the file ({} bytes)",
                self.size
            )));
        }
        let chunks = store::get_ranges(store, &self.path, &ranges).await?;
        Ok(SparseFile {
            size: self.size,
            chunks: ranges.iter().map(|r| r.start).zip(chunks).collect(),
        })
    }

    /// Decodes the rows `rows` (ascending indices within row group `rg`) from fetched bytes.
    /// CPU-bound: call it from a blocking thread.
    pub fn decode_rows(
        &self,
        file: SparseFile,
        rg: usize,
        rows: &[u32],
        window: usize,
        buffers: &BufferPool,
    ) -> Result<DecodedRows, DataError> {
        self.check_chunks(&file, rg, 0..2)?;
        let mut signal = buffers.take();
        decode_signal_rows(
            file.clone(),
            self.metadata.metadata().row_group(rg),
            self.signal,
            rows,
            N_LEADS * window,
            &mut signal.values,
        )
        .map_err(|reason| self.corrupt(&format!("row group {rg}: {reason}")))?;
        let batch = self.decode_batch(file, rg, &[self.lead_mask, self.n_samples], Some(rows))?;
        let by_name = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| self.corrupt(&format!("column {name:?} missing after decode")))
        };
        let mask = by_name(col::LEAD_MASK)?
            .as_any()
            .downcast_ref::<FixedSizeListArray>()
            .filter(|a| a.value_length() as usize == N_LEADS)
            .ok_or_else(|| self.corrupt("lead_mask is not FixedSizeList<Boolean, 12>"))?;
        let mask_values: &BooleanArray = mask
            .values()
            .as_boolean_opt()
            .ok_or_else(|| self.corrupt("lead_mask items are not Boolean"))?;
        let mask_offset = mask.offset() * N_LEADS;
        let lead_mask = (0..rows.len() * N_LEADS)
            .map(|i| u8::from(mask_values.value(mask_offset + i)))
            .collect();
        let lengths: &Int32Array = by_name(col::N_SAMPLES)?
            .as_primitive_opt::<Int32Type>()
            .ok_or_else(|| self.corrupt("n_samples is not Int32"))?;
        Ok(DecodedRows {
            signal,
            lead_mask,
            n_samples: lengths.values().to_vec(),
        })
    }

    /// Compares the fetched column chunks of row group `rg` of the groups `which` of
    /// `chunk_crc::CHECKED` with the manifest's CRC-32C.
    fn check_chunks(
        &self,
        file: &SparseFile,
        rg: usize,
        which: Range<usize>,
    ) -> Result<(), DataError> {
        let groups = CHECKED
            .iter()
            .zip(&self.checksums)
            .zip(&self.checked_leaves)
            .skip(which.start)
            .take(which.len());
        for ((columns, sums), leaves) in groups {
            let Some(&want) = sums.get(rg) else {
                continue;
            };
            let row_group = self.metadata.metadata().row_group(rg);
            let got =
                chunk_crc::chunks_crc(row_group, leaves, |start, len| file.get_bytes(start, len))
                    .map_err(|source| DataError::Parquet {
                    path: self.name.clone(),
                    source,
                })?;
            if got != want {
                let what = match columns.len() {
                    1 => format!("the {} column chunk has", columns[0]),
                    _ => format!("the {} column chunks have", columns.join(" and ")),
                };
                return Err(DataError::Damaged {
                    path: self.name.clone(),
                    reason: format!(
                        "row group {rg}: {what} CRC-32C {got:08x}, the manifest says {want:08x}"
                    ),
                });
            }
        }
        Ok(())
    }

    fn decode_batch(
        &self,
        file: SparseFile,
        rg: usize,
        leaves: &[usize],
        rows: Option<&[u32]>,
    ) -> Result<arrow_array::RecordBatch, DataError> {
        let parquet_err = |source| DataError::Parquet {
            path: self.name.clone(),
            source,
        };
        let total = self.metadata.metadata().row_group(rg).num_rows() as usize;
        let wanted = rows.map_or(total, <[u32]>::len);
        let mask = ProjectionMask::leaves(
            self.metadata.metadata().file_metadata().schema_descr(),
            leaves.iter().copied(),
        );
        let mut builder =
            ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.metadata.clone())
                .with_projection(mask)
                .with_row_groups(vec![rg])
                .with_batch_size(wanted.max(1));
        if let Some(rows) = rows {
            builder = builder.with_row_selection(selection(rows, total));
        }
        let reader = builder.build().map_err(parquet_err)?;
        let batches = reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| parquet_err(e.into()))?;
        let batch = match batches.len() {
            1 => batches.into_iter().next().unwrap(),
            0 if wanted == 0 => return Err(self.corrupt("empty row selection")),
            0 => {
                let why = format!("row group {rg} decoded to no rows, expected {wanted}");
                return Err(self.corrupt(&why));
            }
            _ => arrow_select::concat::concat_batches(&batches[0].schema(), &batches)
                .map_err(|e| parquet_err(e.into()))?,
        };
        if batch.num_rows() != wanted {
            return Err(self.corrupt(&format!(
                "row group {rg} decoded to {} rows, expected {wanted}",
                batch.num_rows()
            )));
        }
        Ok(batch)
    }

    fn corrupt(&self, reason: &str) -> DataError {
        DataError::Corrupt {
            path: self.name.clone(),
            reason: reason.to_string(),
        }
    }
}

/// A row selection picking `rows` (ascending) out of `total`.
fn selection(rows: &[u32], total: usize) -> RowSelection {
    let ranges = consecutive_runs(rows)
        .into_iter()
        .map(|r| r.start as usize..r.end as usize);
    RowSelection::from_consecutive_ranges(ranges, total)
}

/// The parts of a file that were fetched (column chunks), served to the Parquet reader as if
/// they were the file.
#[derive(Clone)]
pub(crate) struct SparseFile {
    size: u64,
    chunks: Vec<(u64, Bytes)>,
}

impl SparseFile {
    fn slice(&self, start: u64, len: Option<usize>) -> parquet::errors::Result<Bytes> {
        for (offset, bytes) in &self.chunks {
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

impl Length for SparseFile {
    fn len(&self) -> u64 {
        self.size
    }
}

impl ChunkReader for SparseFile {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(self.slice(start, None)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.slice(start, Some(length))
    }
}
