//! `ecgfm data synth` with windows longer than the generator's default 10 s records: every
//! window is whole signal (n_samples = the window), at the generator's rate and resampled.

use std::fs::File;

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use ecgfm_data::synth_dataset::{write_synth_dataset, SynthDatasetOptions};
use indicatif::ProgressBar;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// The `n_samples` of every row of the dataset in `dir`.
fn valid_samples(dir: &std::path::Path) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir.join("shards")).unwrap() {
        let file = File::open(entry.unwrap().path()).unwrap();
        for batch in ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
        {
            let batch = batch.unwrap();
            let column = batch.column_by_name("n_samples").unwrap();
            out.extend(column.as_primitive::<Int32Type>().values().iter().copied());
        }
    }
    out
}

#[test]
fn windows_longer_than_ten_seconds_hold_signal_to_their_end() {
    let dir = tempfile::tempdir().unwrap();
    for (rate, seconds) in [(250.0, 30), (500.0, 12), (250.0, 10)] {
        let out = dir.path().join(format!("synth-{rate}-{seconds}"));
        let mut opts = SynthDatasetOptions {
            out: out.display().to_string(),
            records: 4,
            threads: 1,
            ..SynthDatasetOptions::default()
        };
        opts.preprocessing.target_rate_hz = rate;
        let window = (rate as usize) * seconds;
        opts.preprocessing.window.window_samples = window;
        let manifest = write_synth_dataset(&opts, &ProgressBar::hidden())
            .unwrap()
            .manifest;
        assert_eq!(manifest.window_samples, window);
        let valid = valid_samples(&out);
        assert_eq!(
            valid.len(),
            4,
            "one window a record at {rate} Hz, {seconds} s"
        );
        assert!(
            valid.iter().all(|&n| n as usize == window),
            "{rate} Hz, {seconds} s windows: valid samples {valid:?}, not {window}"
        );
    }
}
