//! Ingest of the shared PTB-XL sample (500 records, 12 leads, 500 Hz): every record ingested,
//! folds honoured (1-8 train, 9 val, 10 test), SCP codes and superclasses as labels, patients in
//! one split, manifest counts equal to the rows read back, and the shards open in pyarrow,
//! pandas and DuckDB, which decode the same signals as ecgfm's reader.

use crate::ingest_support;

use std::collections::{BTreeMap, HashMap};

use ecgfm_data::ingest::SourceFormat;
use ingest_support::{
    assert_python_reads_the_same_signals, ingest_shared, python_summary, read_dataset,
};

#[test]
fn ptbxl_500_ingests_with_folds_labels_and_python_readback() {
    let Some((out, _, report)) = ingest_shared("ptbxl-500") else {
        return;
    };
    assert_eq!(report.format, SourceFormat::Ptbxl);
    assert!(report.complete);
    assert_eq!(report.records_planned, 500);
    assert_eq!(report.records_ingested, 500);
    assert_eq!(report.records_quarantined, 0);
    assert!(report.shards > 1, "4 MB shards must split 500 records");

    let (manifest, rows) = read_dataset(out.path().to_str().unwrap(), &[]);
    assert_eq!(manifest.counts.rows, rows.len() as u64);
    assert_eq!(manifest.counts.records, 500);
    assert_eq!(manifest.sources[0].format, "ptbxl");
    // 10 s at 250 Hz is exactly one 2500-sample window per record.
    assert_eq!(rows.len(), 500);
    assert!(rows
        .iter()
        .all(|r| r.n_samples == 2500 && r.window_index == 0));
    assert!(rows.iter().all(|r| r.lead_mask.iter().all(|m| *m)));
    assert!(rows.iter().all(|r| r.lead_names.len() == 12));
    let first = &rows[0];
    assert_eq!(first.record_id, "00001_hr");
    assert_eq!(first.patient_id, "ptbxl:15709");
    assert_eq!(first.age, Some(56.0));
    assert_eq!(first.sex.as_deref(), Some("F"));
    assert_eq!(first.fold, Some(3));
    assert_eq!(first.split, "train");
    assert!(first.labels.contains(&"scp:NORM".to_string()));
    assert!(first.labels.contains(&"ptbxl_superclass:NORM".to_string()));
    assert!(first.signal_abs_sum > 0);

    let mut patient_split: HashMap<&str, &str> = HashMap::new();
    for row in &rows {
        let expected = match row.fold.unwrap() {
            1..=8 => "train",
            9 => "val",
            10 => "test",
            f => panic!("fold {f}"),
        };
        assert_eq!(row.split, expected, "{}", row.record_id);
        let previous = patient_split.insert(&row.patient_id, &row.split);
        assert!(
            previous.is_none_or(|s| s == row.split),
            "{}",
            row.patient_id
        );
        assert!(row.age.is_none_or(|a| (0.0..=90.0).contains(&a)));
    }
    let mut labels: BTreeMap<String, u64> = BTreeMap::new();
    let mut splits: BTreeMap<String, u64> = BTreeMap::new();
    for row in &rows {
        for label in &row.labels {
            *labels.entry(label.clone()).or_default() += 1;
        }
        *splits.entry(row.split.clone()).or_default() += 1;
    }
    assert_eq!(manifest.counts.labels, labels);
    assert_eq!(manifest.counts.splits, splits);
    for class in ["NORM", "MI", "STTC", "CD", "HYP"] {
        assert!(labels[&format!("ptbxl_superclass:{class}")] > 0, "{class}");
    }

    let Some(py) = python_summary(out.path()) else {
        return;
    };
    assert_eq!(py["pyarrow_rows"], 500);
    assert_eq!(py["pandas_rows"], 500);
    assert_eq!(py["duckdb_rows"], 500);
    assert_eq!(py["duckdb_records"], 500);
    assert_eq!(py["shards"], manifest.shards.len());
    assert_eq!(py["signal_len"], 12 * 2500);
    assert_eq!(py["pandas_first_record"], "00001_hr");
    let columns: Vec<String> = serde_json::from_value(py["columns"].clone()).unwrap();
    assert_eq!(columns[0], "record_id");
    assert_eq!(columns.len(), 16);
    assert!(columns.contains(&"quality_flags".to_string()));
    for (split, n) in &splits {
        assert_eq!(py["duckdb_splits"][split], *n, "{split}");
    }
    let first_sum: i64 = serde_json::from_value(py["first_signal_sum"].clone()).unwrap();
    assert_ne!(first_sum, 0);
    assert_python_reads_the_same_signals(&py, &rows);
}
