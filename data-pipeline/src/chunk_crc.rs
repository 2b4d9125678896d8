//! CRC-32C of a shard's parts as the manifest records them and the loader checks them, so a
//! byte damaged after ingest fails the read naming the shard instead of training on other values:
//! - the footer (the Parquet metadata: row-group layout and the statistics the loader reads a
//!   uniform split or source from), checked when the shard is opened;
//! - for each row group, the `signal` chunk (stored uncompressed, so nothing else would notice a
//!   flipped bit), the `lead_mask` and `n_samples` chunks together, and the `split` and `source`
//!   chunks together (a damaged byte there could decode to another mask, split or source
//!   without an error), checked on every fetch of them.

use bytes::Bytes;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader, RowGroupMetaData};

use crate::error::DataError;
use crate::schema::col;

/// Each checked group of columns: the signal; the lead mask and lengths; the split and source.
pub(crate) const CHECKED: [&[&str]; 3] = [
    &[col::SIGNAL],
    &[col::LEAD_MASK, col::N_SAMPLES],
    &[col::SPLIT, col::SOURCE],
];

/// A shard's checksums as its manifest entry keeps them; an empty list or `None` (a manifest
/// written before ecgfm kept that one) is not checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardChecksums {
    /// Per group of `CHECKED`, the CRC-32C of each row group's chunks, in file order.
    pub chunks: [Vec<u32>; 3],
    /// The CRC-32C of the footer's metadata bytes (between the data and the length + `PAR1`).
    pub footer: Option<u32>,
}

impl ShardChecksums {
    /// Computes every checksum of the shard `bytes`.
    pub(crate) fn of_shard(bytes: &Bytes) -> Result<Self, DataError> {
        let parquet = |source| DataError::Parquet {
            path: "shard being checksummed".into(),
            source,
        };
        let metadata = ParquetMetaDataReader::new()
            .parse_and_finish(bytes)
            .map_err(parquet)?;
        let leaves = checked_leaves(&metadata)
            .map_err(|c| DataError::Internal(format!("the shard schema has no {c} column")))?;
        let read = |start: u64, len: usize| Ok(bytes.slice(start as usize..start as usize + len));
        let sums = |leaves: &Vec<usize>| -> Result<Vec<u32>, DataError> {
            let rows = metadata.row_groups().iter();
            rows.map(|rg| chunks_crc(rg, leaves, read)).collect()
        };
        let [a, b, c] = &leaves;
        Ok(ShardChecksums {
            chunks: [sums(a)?, sums(b)?, sums(c)?],
            footer: footer_of(bytes).map(crc32c::crc32c),
        })
    }

    /// Whether any of them is missing.
    pub fn incomplete(&self) -> bool {
        self.footer.is_none() || self.chunks.iter().any(Vec::is_empty)
    }
}

/// The footer's metadata bytes of a whole Parquet file, `None` when it has no valid footer.
pub(crate) fn footer_of(file: &[u8]) -> Option<&[u8]> {
    let n = file.len();
    if n < 12 || &file[n - 4..] != b"PAR1" {
        return None;
    }
    let len = u32::from_le_bytes(file[n - 8..n - 4].try_into().unwrap()) as usize;
    (len + 12 <= n).then(|| &file[n - 8 - len..n - 8])
}

/// The leaf index of top-level column `column`.
pub(crate) fn leaf(metadata: &ParquetMetaData, column: &str) -> Option<usize> {
    metadata
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.path().parts().first().map(String::as_str) == Some(column))
}

/// The leaf columns of each group of [`CHECKED`] in `metadata`'s schema, or the name of a
/// column it lacks.
pub(crate) fn checked_leaves(metadata: &ParquetMetaData) -> Result<[Vec<usize>; 3], &'static str> {
    let group = |columns: &[&'static str]| {
        columns
            .iter()
            .map(|&c| leaf(metadata, c).ok_or(c))
            .collect::<Result<Vec<usize>, _>>()
    };
    Ok([group(CHECKED[0])?, group(CHECKED[1])?, group(CHECKED[2])?])
}

/// The CRC-32C of the chunks of `leaves` in `row_group`, their bytes hashed in the order given;
/// `read(start, len)` returns a chunk's bytes.
pub(crate) fn chunks_crc<E>(
    row_group: &RowGroupMetaData,
    leaves: &[usize],
    mut read: impl FnMut(u64, usize) -> Result<bytes::Bytes, E>,
) -> Result<u32, E> {
    let mut crc = 0;
    for &leaf in leaves {
        let (start, len) = row_group.column(leaf).byte_range();
        crc = crc32c::crc32c_append(crc, &read(start, len as usize)?);
    }
    Ok(crc)
}
