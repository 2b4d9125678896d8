//! CRC-32C of a shard's column chunks as the manifest records them and the loader checks them:
//! for each row group, one checksum of the `signal` chunk (stored uncompressed, so nothing else
//! would notice a flipped bit) and one of the `lead_mask` and `n_samples` chunks together (the
//! loader's other reads: a damaged byte there could decode to another mask without an error).

use parquet::file::metadata::{ParquetMetaData, RowGroupMetaData};

use crate::schema::col;

/// Each checked group of columns: the signal, then the lead mask and lengths.
pub(crate) const CHECKED: [&[&str]; 2] = [&[col::SIGNAL], &[col::LEAD_MASK, col::N_SAMPLES]];

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
pub(crate) fn checked_leaves(metadata: &ParquetMetaData) -> Result<[Vec<usize>; 2], &'static str> {
    let group = |columns: &[&'static str]| {
        columns
            .iter()
            .map(|&c| leaf(metadata, c).ok_or(c))
            .collect::<Result<Vec<usize>, _>>()
    };
    Ok([group(CHECKED[0])?, group(CHECKED[1])?])
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
