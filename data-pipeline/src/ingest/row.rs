//! One dataset row (one window of one record) in memory, and the conversion of a run of rows
//! into an Arrow `RecordBatch` with the schema of `schema::window_schema`.

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{
    ArrayRef, BooleanArray, FixedSizeListArray, Float32Array, Int16Array, Int32Array, Int8Array,
    RecordBatch, StringArray, UInt8Array,
};
use arrow_schema::DataType;

use crate::error::DataError;
use crate::schema::{list_item, window_schema, N_LEADS};
use crate::split::Split;

/// One window of one record, ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowRow {
    pub record_id: String,
    pub patient_id: String,
    pub source: String,
    pub window_index: i32,
    pub sampling_rate: f32,
    /// Valid samples per lead (the rest of each lead row is zero padding).
    pub n_samples: i32,
    /// The record's own lead names, in its own order.
    pub lead_names: Vec<String>,
    pub lead_mask: [bool; N_LEADS],
    /// `N_LEADS × window_samples`, lead-major, in units of the manifest's `signal_scale`.
    pub signal: Vec<i16>,
    pub labels: Vec<String>,
    pub age: Option<f32>,
    /// `M` or `F`.
    pub sex: Option<String>,
    pub quality_score: f32,
    pub quality_flags: [u8; N_LEADS],
    pub split: Split,
    pub fold: Option<i8>,
}

/// Converts physical values to stored units: `round(v / scale)`, saturating at the `i16` range,
/// NaN stored as 0.
pub fn quantize(values: &[f32], scale: f32, out: &mut Vec<i16>) {
    let inverse = 1.0 / scale;
    out.clear();
    out.extend(values.iter().map(|v| {
        (v * inverse)
            .round()
            .clamp(i16::MIN as f32, i16::MAX as f32) as i16
    }));
}

fn string_list<'a>(lists: impl Iterator<Item = &'a Vec<String>>) -> ArrayRef {
    let mut builder =
        ListBuilder::new(StringBuilder::new()).with_field(list_item(DataType::Utf8, false));
    for list in lists {
        for value in list {
            builder.values().append_value(value);
        }
        builder.append(true);
    }
    Arc::new(builder.finish())
}

fn fixed_list(values: ArrayRef, len: usize) -> Result<ArrayRef, arrow_schema::ArrowError> {
    let field = list_item(values.data_type().clone(), false);
    Ok(Arc::new(FixedSizeListArray::try_new(
        field, len as i32, values, None,
    )?))
}

/// Builds one Arrow batch from `rows`; every row's signal must hold `N_LEADS × window_samples`
/// values (`what` names the output in the error otherwise).
pub fn rows_to_batch(
    rows: &[WindowRow],
    window_samples: usize,
    what: &str,
) -> Result<RecordBatch, DataError> {
    let signal_len = N_LEADS * window_samples;
    if let Some(bad) = rows.iter().find(|r| r.signal.len() != signal_len) {
        return Err(DataError::Corrupt {
            path: what.to_string(),
            reason: format!(
                "window {} of record {} holds {} samples, expected {signal_len}",
                bad.window_index,
                bad.record_id,
                bad.signal.len()
            ),
        });
    }
    let strings = |f: fn(&WindowRow) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
    };
    let mut signal = Vec::with_capacity(rows.len() * signal_len);
    rows.iter()
        .for_each(|r| signal.extend_from_slice(&r.signal));
    let mask: BooleanArray = rows
        .iter()
        .flat_map(|r| r.lead_mask.iter().map(|b| Some(*b)))
        .collect();
    let flags = UInt8Array::from_iter_values(rows.iter().flat_map(|r| r.quality_flags));
    let arrow_err = |e: arrow_schema::ArrowError| DataError::Corrupt {
        path: what.to_string(),
        reason: format!("cannot build Arrow batch: {e}"),
    };
    let columns: Vec<ArrayRef> = vec![
        strings(|r| &r.record_id),
        strings(|r| &r.patient_id),
        strings(|r| &r.source),
        Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|r| r.window_index),
        )),
        Arc::new(Float32Array::from_iter_values(
            rows.iter().map(|r| r.sampling_rate),
        )),
        Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|r| r.n_samples),
        )),
        string_list(rows.iter().map(|r| &r.lead_names)),
        fixed_list(Arc::new(mask), N_LEADS).map_err(arrow_err)?,
        fixed_list(Arc::new(Int16Array::from(signal)), signal_len).map_err(arrow_err)?,
        string_list(rows.iter().map(|r| &r.labels)),
        Arc::new(rows.iter().map(|r| r.age).collect::<Float32Array>()),
        Arc::new(
            rows.iter()
                .map(|r| r.sex.as_deref())
                .collect::<StringArray>(),
        ),
        Arc::new(Float32Array::from_iter_values(
            rows.iter().map(|r| r.quality_score),
        )),
        fixed_list(Arc::new(flags), N_LEADS).map_err(arrow_err)?,
        strings(|r| r.split.as_str()),
        Arc::new(rows.iter().map(|r| r.fold).collect::<Int8Array>()),
    ];
    RecordBatch::try_new(window_schema(window_samples), columns).map_err(arrow_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::types::Int16Type;
    use arrow_array::{cast::AsArray, Array};

    pub(crate) fn row(record: &str, window: i32, w: usize) -> WindowRow {
        WindowRow {
            record_id: record.into(),
            patient_id: format!("test:{record}"),
            source: "test".into(),
            window_index: window,
            sampling_rate: 250.0,
            n_samples: w as i32,
            lead_names: vec!["II".into(), "V5".into()],
            lead_mask: std::array::from_fn(|i| i == 1 || i == 10),
            signal: (0..N_LEADS * w).map(|i| i as i16 - 7).collect(),
            labels: vec!["x:a".into()],
            age: (window == 0).then_some(61.5),
            sex: None,
            quality_score: 0.5,
            quality_flags: [1; N_LEADS],
            split: Split::Val,
            fold: None,
        }
    }

    #[test]
    fn batch_holds_the_rows() {
        let rows = vec![row("a", 0, 4), row("a", 1, 4)];
        let batch = rows_to_batch(&rows, 4, "mem").unwrap();
        assert_eq!(batch.num_rows(), 2);
        let signal = batch.column(8).as_fixed_size_list();
        let second = signal.value(1);
        let second = second.as_primitive::<Int16Type>();
        assert_eq!(second.len(), 48);
        assert_eq!(second.value(0), -7);
        assert!(batch.column(10).is_null(1));
        assert!(!batch.column(10).is_null(0));
        assert_eq!(batch.column(14).as_string::<i32>().value(0), "val");
    }

    #[test]
    fn wrong_signal_length_is_an_error() {
        let rows = vec![row("a", 0, 4)];
        let err = rows_to_batch(&rows, 5, "out/shard-1").unwrap_err();
        assert!(err.to_string().contains("out/shard-1"), "{err}");
    }

    #[test]
    fn quantize_rounds_and_saturates() {
        let mut out = Vec::new();
        quantize(&[0.0016, -0.0004, 100.0, -100.0], 0.001, &mut out);
        assert_eq!(out, vec![2, 0, i16::MAX, i16::MIN]);
    }
}
