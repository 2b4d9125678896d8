//! Throughput of the preprocessing pipeline on synthetic records, one thread:
//! `cargo bench -p ecgfm-preprocess` (or `... -- PTB` to run only the shapes whose label contains
//! `PTB`). Prints records/s per shape of record, against wall time and,
//! on Linux, against the thread's own CPU time (steadier on a busy machine).

#[path = "../tests/common/mod.rs"]
mod common;

use common::{ecg_like, Rng};
use ecgfm_preprocess::{Pipeline, PipelineConfig, STANDARD_LEADS};
use std::hint::black_box;
use std::time::Instant;

/// `leads` noisy ECG-like leads of `seconds` at `rate`, as f32 (the usual reader output).
fn record(leads: usize, rate: f64, seconds: f64, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    let n = (seconds * rate) as usize;
    (0..leads)
        .map(|l| {
            ecg_like(n, rate, 0.5 + 0.1 * l as f64)
                .into_iter()
                .map(|v| (v + 0.01 * rng.normal()) as f32)
                .collect()
        })
        .collect()
}

/// Nanoseconds this thread has spent on a CPU (Linux `schedstat`), if available.
fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

fn bench(label: &str, names: &[&str], rate: f64, seconds: f64, count: usize) {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if !filters.is_empty() && !filters.iter().any(|f| label.contains(f.as_str())) {
        return;
    }
    let pipeline = Pipeline::new(PipelineConfig::default()).expect("default settings are valid");
    let records: Vec<Vec<Vec<f32>>> = (0..8)
        .map(|s| record(names.len(), rate, seconds, s))
        .collect();
    pipeline
        .process(rate, names, &records[0])
        .expect("warm-up record processes");
    let start = Instant::now();
    let cpu_start = thread_cpu_ns();
    let mut windows = 0;
    for i in 0..count {
        let out = pipeline.process(rate, names, &records[i % records.len()]);
        windows += black_box(out).map_or(0, |o| o.windows.len());
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_start
        .zip(thread_cpu_ns())
        .map(|(a, b)| (b - a) as f64 * 1e-9);
    let per_cpu = cpu.map_or("n/a".to_string(), |c| format!("{:.1}", count as f64 / c));
    println!(
        "{label:36} {:8.1} records/s wall, {per_cpu:>8} records/s per CPU-second, {:9.1} windows/s wall",
        count as f64 / elapsed,
        windows as f64 / elapsed
    );
}

fn main() {
    bench(
        "12 leads, 500 Hz, 10 s (PTB-XL)",
        &STANDARD_LEADS,
        500.0,
        10.0,
        400,
    );
    bench(
        "12 leads, 1000 Hz, 10 s",
        &STANDARD_LEADS,
        1000.0,
        10.0,
        200,
    );
    bench(
        "1 lead, 300 Hz, 30 s (CinC 2017)",
        &["ECG"],
        300.0,
        30.0,
        1000,
    );
    bench(
        "2 leads, 360 Hz, 30 min (MIT-BIH)",
        &["MLII", "V5"],
        360.0,
        1800.0,
        10,
    );
}
