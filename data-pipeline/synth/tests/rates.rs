//! The mean heart rate a record reports: the drawn rate range of each condition, and what records
//! too short to hold two R peaks report.

use ecgfm_synth::{generate, Condition, SynthConfig};

/// The rates the first 20 records of `cfg` under `seed` report.
fn reported_rates(cfg: &SynthConfig, seed: u64) -> Vec<f64> {
    (0..20)
        .map(|index| generate(cfg, seed, index).heart_rate_bpm as f64)
        .collect()
}

/// Atrial fibrillation draws its ventricular response from 70-140 bpm whatever sinus range is
/// configured, so a slow sinus setting never yields a slow AF record.
#[test]
fn atrial_fibrillation_ignores_the_configured_sinus_rate_range() {
    let cfg = SynthConfig {
        heart_rate_bpm: [30.0, 32.0],
        ..SynthConfig::only(Condition::AtrialFibrillation)
    };
    let rates = reported_rates(&cfg, 5);
    assert!(rates.iter().all(|r| (50.0..180.0).contains(r)), "{rates:?}");
}

/// A record shorter than one beat reports the mean rate it was drawn with (here 60-61 bpm).
#[test]
fn a_record_too_short_for_two_beats_reports_its_drawn_rate() {
    let cfg = SynthConfig {
        samples: 100,
        heart_rate_bpm: [60.0, 61.0],
        ..SynthConfig::only(Condition::Normal)
    };
    let rates = reported_rates(&cfg, 6);
    assert!(rates.iter().all(|r| (60.0..61.0).contains(r)), "{rates:?}");
}
