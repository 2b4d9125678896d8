//! The Arrow schema of one dataset row (one window of one record), as fixed by
//! `docs/dataset-format.md`, with the column names as constants so writers and readers agree.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};

/// Version written to `manifest.json` and checked by readers.
pub const SCHEMA_VERSION: u32 = 1;

/// Number of standard leads every row carries.
pub const N_LEADS: usize = 12;

/// The standard 12-lead order used by `lead_mask`, `quality_flags` and `signal`.
pub const STANDARD_LEADS: [&str; N_LEADS] = [
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
];

/// Default physical value of one stored `signal` unit (mV per unit: the signal is in microvolts).
pub const DEFAULT_SIGNAL_SCALE: f32 = 0.001;

/// Column names, in schema order.
pub mod col {
    pub const RECORD_ID: &str = "record_id";
    pub const PATIENT_ID: &str = "patient_id";
    pub const SOURCE: &str = "source";
    pub const WINDOW_INDEX: &str = "window_index";
    pub const SAMPLING_RATE: &str = "sampling_rate";
    pub const N_SAMPLES: &str = "n_samples";
    pub const LEAD_NAMES: &str = "lead_names";
    pub const LEAD_MASK: &str = "lead_mask";
    pub const SIGNAL: &str = "signal";
    pub const LABELS: &str = "labels";
    pub const AGE: &str = "age";
    pub const SEX: &str = "sex";
    pub const QUALITY_SCORE: &str = "quality_score";
    pub const QUALITY_FLAGS: &str = "quality_flags";
    pub const SPLIT: &str = "split";
    pub const FOLD: &str = "fold";
}

/// Per-lead quality flag bits stored in `quality_flags`.
pub mod quality_flag {
    pub const MISSING: u8 = 1;
    pub const FLAT: u8 = 2;
    pub const CLIPPING: u8 = 4;
    pub const IMPLAUSIBLE_AMPLITUDE: u8 = 8;
    pub const HIGH_FREQUENCY_NOISE: u8 = 16;
}

/// Name of the item field inside list columns (Arrow's conventional `item`).
pub const LIST_ITEM: &str = "item";

/// The item field of a list column whose items are of `data_type`.
pub fn list_item(data_type: DataType, nullable: bool) -> Arc<Field> {
    Arc::new(Field::new(LIST_ITEM, data_type, nullable))
}

/// The schema of a dataset whose windows hold `window_samples` samples per lead.
pub fn window_schema(window_samples: usize) -> SchemaRef {
    let fixed =
        |item: DataType, len: usize| DataType::FixedSizeList(list_item(item, false), len as i32);
    Arc::new(Schema::new(vec![
        Field::new(col::RECORD_ID, DataType::Utf8, false),
        Field::new(col::PATIENT_ID, DataType::Utf8, false),
        Field::new(col::SOURCE, DataType::Utf8, false),
        Field::new(col::WINDOW_INDEX, DataType::Int32, false),
        Field::new(col::SAMPLING_RATE, DataType::Float32, false),
        Field::new(col::N_SAMPLES, DataType::Int32, false),
        Field::new(
            col::LEAD_NAMES,
            DataType::List(list_item(DataType::Utf8, false)),
            false,
        ),
        Field::new(col::LEAD_MASK, fixed(DataType::Boolean, N_LEADS), false),
        Field::new(
            col::SIGNAL,
            fixed(DataType::Int16, N_LEADS * window_samples),
            false,
        ),
        Field::new(
            col::LABELS,
            DataType::List(list_item(DataType::Utf8, false)),
            false,
        ),
        Field::new(col::AGE, DataType::Float32, true),
        Field::new(col::SEX, DataType::Utf8, true),
        Field::new(col::QUALITY_SCORE, DataType::Float32, false),
        Field::new(col::QUALITY_FLAGS, fixed(DataType::UInt8, N_LEADS), false),
        Field::new(col::SPLIT, DataType::Utf8, false),
        Field::new(col::FOLD, DataType::Int8, true),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_has_documented_columns_in_order() {
        let schema = window_schema(2500);
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "record_id",
                "patient_id",
                "source",
                "window_index",
                "sampling_rate",
                "n_samples",
                "lead_names",
                "lead_mask",
                "signal",
                "labels",
                "age",
                "sex",
                "quality_score",
                "quality_flags",
                "split",
                "fold"
            ]
        );
        match schema.field_with_name(col::SIGNAL).unwrap().data_type() {
            DataType::FixedSizeList(item, len) => {
                assert_eq!(*len, 12 * 2500);
                assert_eq!(item.data_type(), &DataType::Int16);
            }
            other => panic!("signal has type {other:?}"),
        }
        assert!(schema.field_with_name(col::AGE).unwrap().is_nullable());
        assert!(!schema.field_with_name(col::SPLIT).unwrap().is_nullable());
    }
}
