//! `ecgfm embed`'s output: one Parquet file with one row per window (who it is, and its
//! embedding), for users who bring their own classifier. Columns:
//!
//! | column | Arrow type | meaning |
//! |---|---|---|
//! | `window_id` | Utf8 | `record_id#window_index` |
//! | `source` | Utf8 | source dataset |
//! | `record_id` | Utf8 | record name within its source |
//! | `window_index` | Int32 | window within its record |
//! | `split` | Utf8 | `train`, `val` or `test` |
//! | `labels` | List<Utf8> | every label of the window, `vocabulary:code` |
//! | `embedding` | FixedSizeList<Float32, F> | the encoder's features |
//!
//! The file's key-value metadata holds whatever the caller passes (the model and checkpoint).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, FixedSizeListArray, Float32Array, Int32Array, ListBuilder, RecordBatch, StringArray,
    StringBuilder,
};
use arrow::datatypes::{DataType, Field, Schema};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::error::DataError;
use crate::schema::list_item;
use crate::store;
use crate::windows::WindowInfo;

/// Writes `windows` and their `embeddings` ((windows, dim), row-major) as one Parquet file at
/// `url` (a local path or object-store URL of the file itself), with `metadata` as key-values.
pub fn write_embeddings(
    url: &str,
    windows: &[WindowInfo],
    dim: usize,
    embeddings: &[f32],
    metadata: &[(String, String)],
) -> Result<(), DataError> {
    if embeddings.len() != windows.len() * dim {
        return Err(DataError::Config(format!(
            "{} embedding values for {} windows of dimension {dim}",
            embeddings.len(),
            windows.len()
        )));
    }
    let batch = embeddings_batch(windows, dim, embeddings)?;
    let properties = WriterProperties::builder()
        .set_created_by(format!("ecgfm {}", env!("CARGO_PKG_VERSION")))
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_key_value_metadata(Some(
            metadata
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
                .collect(),
        ))
        .build();
    let parquet_error = |source| DataError::Parquet {
        path: store::redact_url(url),
        source,
    };
    let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(properties))
        .map_err(parquet_error)?;
    writer.write(&batch).map_err(parquet_error)?;
    let bytes = writer.into_inner().map_err(parquet_error)?;
    let (object_store, location) = store::open_url(url)?;
    store::block_on(store::put_bytes(
        object_store.as_ref(),
        &location,
        Bytes::from(bytes),
    ))
}

fn embeddings_batch(
    windows: &[WindowInfo],
    dim: usize,
    embeddings: &[f32],
) -> Result<RecordBatch, DataError> {
    let text = |f: &dyn Fn(&WindowInfo) -> String| -> ArrayRef {
        Arc::new(windows.iter().map(|w| Some(f(w))).collect::<StringArray>())
    };
    let mut labels =
        ListBuilder::new(StringBuilder::new()).with_field(list_item(DataType::Utf8, false));
    for w in windows {
        for label in &w.labels {
            labels.values().append_value(label);
        }
        labels.append(true);
    }
    let item = list_item(DataType::Float32, false);
    let embedding = FixedSizeListArray::try_new(
        item.clone(),
        dim as i32,
        Arc::new(Float32Array::from(embeddings.to_vec())),
        None,
    )
    .map_err(|e| DataError::Config(format!("embedding column: {e}")))?;
    let schema = Schema::new(vec![
        Field::new("window_id", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("record_id", DataType::Utf8, false),
        Field::new("window_index", DataType::Int32, false),
        Field::new("split", DataType::Utf8, false),
        Field::new(
            "labels",
            DataType::List(list_item(DataType::Utf8, false)),
            false,
        ),
        Field::new(
            "embedding",
            DataType::FixedSizeList(item, dim as i32),
            false,
        ),
    ]);
    let columns: Vec<ArrayRef> = vec![
        text(&WindowInfo::window_id),
        text(&|w| w.source.clone()),
        text(&|w| w.record_id.clone()),
        Arc::new(
            windows
                .iter()
                .map(|w| w.window_index)
                .collect::<Int32Array>(),
        ),
        text(&|w| w.split.clone()),
        Arc::new(labels.finish()),
        Arc::new(embedding),
    ];
    RecordBatch::try_new(Arc::new(schema), columns)
        .map_err(|e| DataError::Config(format!("embedding table: {e}")))
}
