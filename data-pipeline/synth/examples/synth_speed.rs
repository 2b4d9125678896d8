//! Throughput of the generator on one core: records of 12 x 2500 at 250 Hz per second, with the
//! default mix and noise, per condition, and into a reused buffer (the training hot path).
//! Run: `cargo run --release -p ecgfm-synth --example synth_speed`.

use std::hint::black_box;
use std::time::Instant;

use ecgfm_synth::{generate, generate_into, Condition, SynthConfig, LEAD_NAMES};

fn measure(name: &str, cfg: &SynthConfig, records: u64) {
    let mut buffer = vec![0.0f32; LEAD_NAMES.len() * cfg.samples];
    for index in 0..records / 10 {
        generate_into(cfg, 1, index, &mut buffer);
    }
    let start = Instant::now();
    for index in 0..records {
        black_box(generate_into(cfg, 7, index, black_box(&mut buffer)));
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{name:<24} {:>9.0} records/s  {:>7.1} us/record",
        records as f64 / seconds,
        1e6 * seconds / records as f64
    );
}

fn main() {
    let records = 20_000;
    let default = SynthConfig::default();
    println!(
        "12 leads x {} samples at {} Hz, one core",
        default.samples, default.sampling_rate
    );
    measure("generate_into (mix)", &default, records);
    for condition in Condition::all() {
        measure(
            condition.label(),
            &SynthConfig::only(condition),
            records / 4,
        );
    }
    let clean = SynthConfig {
        noise: ecgfm_synth::NoiseConfig::none(),
        ..SynthConfig::default()
    };
    measure("generate_into (no noise)", &clean, records);
    let start = Instant::now();
    for index in 0..records / 4 {
        black_box(generate(&default, 7, index));
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{:<24} {:>9.0} records/s (allocating)",
        "generate (mix)",
        (records / 4) as f64 / seconds
    );
}
