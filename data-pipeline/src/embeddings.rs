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
//! | `labels` | `List<Utf8>` | every label of the window, `vocabulary:code` |
//! | `embedding` | FixedSizeList<Float32, F> | the encoder's features |
//!
//! The file's key-value metadata holds whatever the caller passes (the model and checkpoint).
//! [`EmbeddingsWriter`] writes it as the windows come, in row groups of at most 65,536 rows.

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{
    ArrayRef, FixedSizeListArray, Float32Array, Int32Array, RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::error::DataError;
use crate::object_sink::ObjectSink;
use crate::schema::list_item;
use crate::store;
use crate::windows::WindowInfo;

/// Rows per row group: the writer holds at most this many rows (about 200 MB of 768-wide
/// embeddings) before they go out.
const ROW_GROUP_ROWS: usize = 65_536;

/// The embedding file written as windows come: each [`EmbeddingsWriter::write`] adds rows,
/// [`EmbeddingsWriter::finish`] publishes the file (`object_sink`: never seen half-written).
pub struct EmbeddingsWriter {
    writer: ArrowWriter<ObjectSink>,
    schema: SchemaRef,
    dim: usize,
    url: String,
}

impl EmbeddingsWriter {
    /// Starts the file at `url` (a local path or object-store URL of the file itself) for
    /// embeddings of `dim` values, with `metadata` as key-values.
    pub fn create(url: &str, dim: usize, metadata: &[(String, String)]) -> Result<Self, DataError> {
        let properties = WriterProperties::builder()
            .set_created_by(format!("ecgfm {}", env!("CARGO_PKG_VERSION")))
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_key_value_metadata(Some(
                metadata
                    .iter()
                    .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
                    .collect(),
            ))
            .build();
        let (object_store, location) = store::open_url(url)?;
        let sink = ObjectSink::create(object_store.as_ref(), &location)?;
        // In the Arrow schema too, where pyarrow and pandas readers look (`table.schema.metadata`
        // was empty until 2026-12-06: the key-values alone sit beside the stored Arrow schema).
        let arrow_metadata: std::collections::HashMap<String, String> =
            metadata.iter().cloned().collect();
        let schema = Arc::new(schema(dim).with_metadata(arrow_metadata));
        let writer = ArrowWriter::try_new(sink, schema.clone(), Some(properties))
            .map_err(parquet_error(url))?;
        Ok(EmbeddingsWriter {
            writer,
            schema,
            dim,
            url: url.to_string(),
        })
    }

    /// Adds `windows` and their `embeddings` ((windows, dim), row-major).
    pub fn write(&mut self, windows: &[WindowInfo], embeddings: &[f32]) -> Result<(), DataError> {
        let dim = self.dim;
        if embeddings.len() != windows.len() * dim {
            return Err(DataError::Internal(format!(
                "{} embedding values for {} windows of dimension {dim}",
                embeddings.len(),
                windows.len()
            )));
        }
        let batch = embeddings_batch(&self.schema, windows, dim, embeddings)?;
        self.writer.write(&batch).map_err(parquet_error(&self.url))
    }

    /// Writes the footer and publishes the file.
    pub fn finish(self) -> Result<(), DataError> {
        let sink = self.writer.into_inner().map_err(parquet_error(&self.url))?;
        sink.finish()
    }
}

fn parquet_error(url: &str) -> impl FnOnce(parquet::errors::ParquetError) -> DataError {
    let path = store::redact_url(url);
    move |source| DataError::Parquet { path, source }
}

/// The file's columns for embeddings of `dim` values.
fn schema(dim: usize) -> Schema {
    Schema::new(vec![
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
            DataType::FixedSizeList(list_item(DataType::Float32, false), dim as i32),
            false,
        ),
    ])
}

fn embeddings_batch(
    schema: &SchemaRef,
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
    let embedding = FixedSizeListArray::try_new(
        list_item(DataType::Float32, false),
        dim as i32,
        Arc::new(Float32Array::from(embeddings.to_vec())),
        None,
    )
    .map_err(|e| DataError::Internal(format!("embedding column: {e}")))?;
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
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| DataError::Internal(format!("embedding table: {e}")))
}
