//! Throughput of the generator on one core: records of 12 x 2500 at 250 Hz per second, with the
//! default mix and noise, per condition, without noise, and allocating. Each figure is the
//! median and the best of batches of 200 records (the best is the least disturbed by other load).
//! Run: `cargo run --release -p ecgfm-synth --example synth_speed`.

use std::hint::black_box;
use std::time::Instant;

use ecgfm_synth::{generate, generate_into, Condition, NoiseConfig, SynthConfig, LEAD_NAMES};

const BATCH: u64 = 200;

/// Median and best microseconds per record over `batches` batches of `run`.
fn time_batches(batches: u64, mut run: impl FnMut(u64)) -> (f64, f64) {
    let mut per_record: Vec<f64> = (0..batches)
        .map(|batch| {
            let start = Instant::now();
            for index in batch * BATCH..(batch + 1) * BATCH {
                run(index);
            }
            1e6 * start.elapsed().as_secs_f64() / BATCH as f64
        })
        .collect();
    per_record.sort_by(f64::total_cmp);
    (per_record[per_record.len() / 2], per_record[0])
}

fn report(name: &str, (median, best): (f64, f64)) {
    println!(
        "{name:<26} median {median:>7.1} us/record ({:>6.0} records/s), best {best:>7.1} us/record ({:>6.0} records/s)",
        1e6 / median,
        1e6 / best
    );
}

fn measure_into(name: &str, cfg: &SynthConfig, batches: u64) {
    let mut buffer = vec![0.0f32; LEAD_NAMES.len() * cfg.samples];
    time_batches(2, |index| {
        generate_into(cfg, 1, index, &mut buffer);
    });
    report(
        name,
        time_batches(batches, |index| {
            black_box(generate_into(cfg, 7, index, black_box(&mut buffer)));
        }),
    );
}

fn main() {
    let default = SynthConfig::default();
    println!(
        "12 leads x {} samples at {} Hz, one thread",
        default.samples, default.sampling_rate
    );
    measure_into("generate_into (mix)", &default, 50);
    for condition in Condition::all() {
        measure_into(condition.label(), &SynthConfig::only(condition), 15);
    }
    let clean = SynthConfig {
        noise: NoiseConfig::none(),
        ..SynthConfig::default()
    };
    measure_into("generate_into (no noise)", &clean, 15);
    report(
        "generate (mix, allocating)",
        time_batches(15, |index| {
            black_box(generate(&default, 7, index));
        }),
    );
}
