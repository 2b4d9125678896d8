//! Loader throughput benchmark behind `ecgfm bench loader --data URL`: open the dataset, pull
//! one batch (startup latency), then time `batches` more and report ECG windows per second.

use std::time::Instant;

use serde::Serialize;

use crate::error::DataError;

use super::{Batch, Loader, LoaderConfig};

/// What `bench_loader` measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LoaderBenchResult {
    /// Cropped windows delivered per second in steady state.
    pub ecgs_per_s: f64,
    /// Windows per batch.
    pub batch_size: usize,
    /// Decode threads used.
    pub threads: usize,
    /// Batches timed (after the first).
    pub batches: usize,
    /// Seconds the timed batches took.
    pub seconds: f64,
    /// Seconds to open the dataset (manifest and footers).
    pub open_s: f64,
    /// Seconds from open to the first batch.
    pub first_batch_s: f64,
    /// Samples per lead after cropping.
    pub crop_samples: usize,
    /// Samples of the split in one epoch.
    pub samples_per_epoch: u64,
    /// Samples per lead of the dataset's windows (a longer crop is zero-padded).
    pub window_samples: usize,
}

/// Opens `url` with `config` and times `batches` batches after a first, untimed one.
pub fn bench_loader(
    url: &str,
    config: LoaderConfig,
    batches: usize,
) -> Result<LoaderBenchResult, DataError> {
    let start = Instant::now();
    let mut loader = Loader::open(url, config.clone())?;
    let open_s = start.elapsed().as_secs_f64();
    let mut batch = Batch::default();
    let first = Instant::now();
    loader.next_batch(&mut batch)?;
    let first_batch_s = first.elapsed().as_secs_f64();
    let timed = Instant::now();
    for _ in 0..batches {
        loader.next_batch(&mut batch)?;
    }
    let seconds = timed.elapsed().as_secs_f64();
    Ok(LoaderBenchResult {
        ecgs_per_s: (batches * config.batch_size) as f64 / seconds.max(1e-9),
        batch_size: config.batch_size,
        threads: config.decode_threads,
        batches,
        seconds,
        open_s,
        first_batch_s,
        crop_samples: config.crop_samples,
        samples_per_epoch: loader.samples_per_epoch(),
        window_samples: loader.window_samples(),
    })
}
