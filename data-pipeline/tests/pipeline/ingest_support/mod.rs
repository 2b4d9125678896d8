//! Helpers shared by the ingest integration tests: default test options, reading a written
//! dataset back (manifest + every row) and the Python read-back check.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use arrow_array::types::{Float32Type, Int16Type, Int32Type, Int8Type};
use arrow_array::{cast::AsArray, Array};
use ecgfm_data::ingest::{ingest, IngestOptions, IngestReport};
use ecgfm_data::manifest::Manifest;
use ecgfm_data::store;
use ecgfm_data::synth_dataset::{write_synth_dataset, SynthDatasetOptions};
use ecgfm_test_support::python_stdout;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// Ingests the shared data folder `folder` with the test `options` into a fresh temporary
/// folder; `None` (after a skip message) when the shared data is absent.
pub fn ingest_shared(folder: &str) -> Option<(tempfile::TempDir, IngestOptions, IngestReport)> {
    let source = ecgfm_test_support::shared_data(folder)?;
    let out = tempfile::tempdir().unwrap();
    let opts = options(&source, out.path().to_str().unwrap());
    let report = ingest(&opts, &hidden()).unwrap();
    println!("{report}");
    Some((out, opts, report))
}

/// Options for a test ingest of `source` into `out`: small shards, all cores.
pub fn options(source: &Path, out: &str) -> IngestOptions {
    IngestOptions {
        source: source.display().to_string(),
        out: out.to_string(),
        shard_target_bytes: 4 << 20,
        row_group_rows: 64,
        ..IngestOptions::default()
    }
}

/// What a test checks of one row.
#[derive(Debug, Clone, PartialEq)]
pub struct RowView {
    pub record_id: String,
    pub patient_id: String,
    pub source: String,
    pub window_index: i32,
    pub n_samples: i32,
    pub lead_names: Vec<String>,
    pub lead_mask: Vec<bool>,
    pub labels: Vec<String>,
    pub age: Option<f32>,
    pub sex: Option<String>,
    pub quality_score: f32,
    pub split: String,
    pub fold: Option<i8>,
    /// Sum of |stored value| over the whole signal, a fingerprint of the samples.
    pub signal_abs_sum: i64,
    /// Sum of |stored value| per standard lead.
    pub lead_abs_sums: Vec<i64>,
}

/// The store and root of the dataset at `url`, opened with owned `options` pairs, and its
/// manifest.
pub fn open_dataset(url: &str, options: &[(String, String)]) -> (store::StoreRoot, Manifest) {
    let (object_store, root) = store::open_url_with(url, options).unwrap();
    let manifest = Manifest::load(object_store.as_ref(), &root).unwrap();
    ((object_store, root), manifest)
}

/// The manifest and every row (in shard order) of the dataset at `url`.
pub fn read_dataset(url: &str, options: &[(String, String)]) -> (Manifest, Vec<RowView>) {
    let ((object_store, root), manifest) = open_dataset(url, options);
    let mut rows = Vec::new();
    for shard in &manifest.shards {
        let bytes = store::block_on(store::get_bytes(
            object_store.as_ref(),
            &store::join(&root, &shard.path),
        ))
        .unwrap();
        assert_eq!(bytes.len() as u64, shard.bytes, "{}", shard.path);
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        let groups: Vec<u64> = reader
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows() as u64)
            .collect();
        assert_eq!(groups, shard.row_groups, "{}", shard.path);
        for batch in reader.build().unwrap() {
            let batch = batch.unwrap();
            let column = |name: &str| batch.column_by_name(name).unwrap().clone();
            let strings = |name: &str| column(name).as_string::<i32>().clone();
            let (record, patient, source, split, sex) = (
                strings("record_id"),
                strings("patient_id"),
                strings("source"),
                strings("split"),
                strings("sex"),
            );
            let window = column("window_index").as_primitive::<Int32Type>().clone();
            let n_samples = column("n_samples").as_primitive::<Int32Type>().clone();
            let age = column("age").as_primitive::<Float32Type>().clone();
            let quality = column("quality_score")
                .as_primitive::<Float32Type>()
                .clone();
            let fold = column("fold").as_primitive::<Int8Type>().clone();
            let lead_names = column("lead_names").as_list::<i32>().clone();
            let labels = column("labels").as_list::<i32>().clone();
            let mask = column("lead_mask").as_fixed_size_list().clone();
            let signal = column("signal").as_fixed_size_list().clone();
            let string_list = |list: &arrow_array::ListArray, i: usize| -> Vec<String> {
                let values = list.value(i);
                let values = values.as_string::<i32>();
                (0..values.len())
                    .map(|j| values.value(j).to_string())
                    .collect()
            };
            for i in 0..batch.num_rows() {
                let samples = signal.value(i);
                let samples = samples.as_primitive::<Int16Type>();
                let per_lead = samples.len() / 12;
                let lead_abs_sums: Vec<i64> = (0..12)
                    .map(|l| {
                        samples.values()[l * per_lead..(l + 1) * per_lead]
                            .iter()
                            .map(|v| i64::from(*v).abs())
                            .sum()
                    })
                    .collect();
                let mask_values = mask.value(i);
                let mask_values = mask_values.as_boolean();
                rows.push(RowView {
                    record_id: record.value(i).to_string(),
                    patient_id: patient.value(i).to_string(),
                    source: source.value(i).to_string(),
                    window_index: window.value(i),
                    n_samples: n_samples.value(i),
                    lead_names: string_list(&lead_names, i),
                    lead_mask: (0..12).map(|j| mask_values.value(j)).collect(),
                    labels: string_list(&labels, i),
                    age: age.is_valid(i).then(|| age.value(i)),
                    sex: sex.is_valid(i).then(|| sex.value(i).to_string()),
                    quality_score: quality.value(i),
                    split: split.value(i).to_string(),
                    fold: fold.is_valid(i).then(|| fold.value(i)),
                    signal_abs_sum: lead_abs_sums.iter().sum(),
                    lead_abs_sums,
                });
            }
        }
    }
    (manifest, rows)
}

/// Runs `read_shards.py` on a local dataset and returns its JSON summary (`None`: skipped, the
/// Python packages are missing).
pub fn python_summary(dataset: &Path) -> Option<serde_json::Value> {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pipeline/ingest_support/read_shards.py");
    let stdout = python_stdout(
        Command::new("python3").arg(&script).arg(dataset),
        &["pyarrow", "pandas", "duckdb"],
        "read_shards.py",
    )?;
    Some(serde_json::from_slice(&stdout).unwrap())
}

/// Asserts that `read_shards.py`'s summary `py` decodes the signals ecgfm's reader gave as
/// `rows`: each window's sum of |stored value| per lead (pyarrow) and the whole sum (DuckDB).
pub fn assert_python_reads_the_same_signals(py: &serde_json::Value, rows: &[RowView]) {
    let by_window = py["lead_abs_sums"].as_object().unwrap();
    assert_eq!(by_window.len(), rows.len());
    for row in rows {
        let key = format!("{}#{}", row.record_id, row.window_index);
        let sums: Vec<i64> = serde_json::from_value(by_window[&key].clone()).unwrap();
        assert_eq!(sums, row.lead_abs_sums, "window {key}");
    }
    let total: i64 = rows.iter().map(|r| r.signal_abs_sum).sum();
    assert_eq!(py["duckdb_abs_sum"], total);
}

/// A synthetic dataset at `url` of `records` records (seed `seed`) in shards of about 40 kB and
/// row groups of `row_group_rows` rows, so it has several of each; its manifest.
pub fn small_shards_synth(url: &str, records: u64, seed: u64, row_group_rows: usize) -> Manifest {
    let opts = SynthDatasetOptions {
        out: url.to_string(),
        records,
        seed,
        shard_target_bytes: 40_000,
        row_group_rows,
        threads: 1,
        ..SynthDatasetOptions::default()
    };
    write_synth_dataset(&opts, &hidden()).unwrap().manifest
}

/// A progress bar that draws nothing.
pub fn hidden() -> indicatif::ProgressBar {
    indicatif::ProgressBar::hidden()
}
