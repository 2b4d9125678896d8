//! Decoding named columns of a shard held whole in memory (`inspect`, `plot`, `windows`): the
//! Parquet bytes opened, the columns projected, a row selection or a limit applied, and every
//! error naming the shard. The loader reads row groups by range instead (`loader/shard.rs`).

use arrow_array::RecordBatch;
use bytes::Bytes;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReaderBuilder, RowSelection};
use parquet::arrow::ProjectionMask;

use crate::error::DataError;

/// The batches of `columns` of the shard `bytes` (columns in the file's order: read them by
/// name, or in the schema's order), the rows `selection` picks (all when `None`), at most
/// `limit` of them; `path` names the shard in errors.
pub(crate) fn decode(
    bytes: Bytes,
    path: &str,
    columns: &[&str],
    selection: Option<RowSelection>,
    limit: Option<usize>,
) -> Result<Vec<RecordBatch>, DataError> {
    let parquet_error = |source| DataError::Parquet {
        path: path.to_string(),
        source,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(parquet_error)?;
    let indices = columns
        .iter()
        .map(|name| {
            builder.schema().index_of(name).map_err(|_| {
                corrupt(
                    path,
                    format!("the shard has no `{name}` column (not an ecgfm dataset shard?)"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
    let mut builder = builder.with_projection(mask);
    if let Some(selection) = selection {
        builder = builder.with_row_selection(selection);
    }
    if let Some(limit) = limit {
        builder = builder.with_limit(limit);
    }
    let reader = builder.build().map_err(parquet_error)?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| corrupt(path, e.to_string()))
}

/// The error of a shard `path` whose contents are not what docs/dataset-format.md says.
pub(crate) fn corrupt(path: &str, reason: impl Into<String>) -> DataError {
    DataError::Corrupt {
        path: path.to_string(),
        reason: reason.into(),
    }
}
