//! Physiology measured on the generated signals with the test-side detector (tests/common):
//! heart rate, RR irregularity in AF, wide premature beats, ST elevation, R amplitudes.

mod common;

use common::*;
use ecgfm_synth::{generate, Condition, SynthConfig};

const RECORDS: u64 = 40;

#[test]
fn lead_ii_detection_recovers_the_heart_rate_of_noisy_sinus_records() {
    for (sampling_rate, samples) in [(250.0, 2500), (500.0, 5000)] {
        let cfg = SynthConfig {
            sampling_rate,
            samples,
            ..SynthConfig::only(Condition::Normal)
        };
        for index in 0..RECORDS {
            let record = generate(&cfg, 100, index);
            assert!(
                (45.0..=115.0).contains(&record.heart_rate_bpm),
                "{}",
                record.heart_rate_bpm
            );
            let peaks = r_peaks_lead_ii(&record);
            let measured = heart_rate(&peaks, sampling_rate);
            assert!(
                (measured - record.heart_rate_bpm as f64).abs() < 3.0,
                "record {index} at {sampling_rate} Hz: detected {measured:.1} bpm, generated {:.1} bpm",
                record.heart_rate_bpm
            );
        }
    }
}

#[test]
fn atrial_fibrillation_is_far_more_irregular_than_sinus_rhythm() {
    let variation = |condition: Condition| -> Vec<f64> {
        let cfg = SynthConfig::only(condition);
        (0..RECORDS)
            .map(|index| {
                let record = generate(&cfg, 200, index);
                rr_variation(
                    &detect_beats(&record, &INDEPENDENT, 0.3),
                    record.sampling_rate,
                )
            })
            .collect()
    };
    let sinus = variation(Condition::Normal);
    let af = variation(Condition::AtrialFibrillation);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(sinus.iter().all(|&cv| cv < 0.05), "sinus RR CV {sinus:?}");
    assert!(af.iter().all(|&cv| cv > 0.07), "AF RR CV {af:?}");
    assert!(mean(&af) > 3.0 * mean(&sinus));
}

fn widest(durations: &[f64]) -> f64 {
    durations.iter().cloned().fold(0.0, f64::max)
}

/// The widest QRS over the sinus records (about 0.09-0.10 s).
fn widest_sinus_qrs() -> f64 {
    let widest = (0..RECORDS)
        .map(|i| widest(&qrs_durations(&generate(&clean(Condition::Normal), 300, i))))
        .fold(0.0, f64::max);
    assert!(
        widest > 0.06 && widest < 0.12,
        "sinus QRS up to {widest:.3} s"
    );
    widest
}

#[test]
fn premature_ventricular_records_have_beats_much_wider_than_sinus_beats() {
    let sinus = widest_sinus_qrs();
    for index in 0..RECORDS {
        let mut durations = qrs_durations(&generate(
            &clean(Condition::PrematureVentricular),
            300,
            index,
        ));
        let wide = widest(&durations);
        assert!(
            wide > 1.4 * sinus,
            "record {index}: widest QRS {wide:.3} s, sinus up to {sinus:.3} s"
        );
        let typical = median(&mut durations);
        assert!(
            typical < 1.15 * sinus,
            "record {index}: most beats should stay narrow, median {typical:.3} s"
        );
    }
}

#[test]
fn wide_qrs_records_have_bundle_branch_block_durations() {
    let sinus = widest_sinus_qrs();
    for index in 0..RECORDS {
        let typical = median(&mut qrs_durations(&generate(
            &clean(Condition::WideQrs),
            300,
            index,
        )));
        assert!(
            typical >= 0.12 && typical > 1.3 * sinus,
            "record {index}: typical QRS {typical:.3} s, sinus up to {sinus:.3} s"
        );
    }
}

#[test]
fn st_elevation_raises_the_st_segment() {
    // Largest over leads of the per-beat median of the ST level (R + 80 ms) above the PR segment
    // (R - 60 ms).
    let st_score = |condition: Condition, index: u64| {
        let record = generate(&clean(condition), 400, index);
        let beats = r_peaks_lead_ii(&record);
        let inner = &beats[1..beats.len() - 1];
        (0..12)
            .map(|lead| {
                let mut deviations: Vec<f64> = inner
                    .iter()
                    .map(|&b| {
                        (level(&record, lead, b, 0.08) - level(&record, lead, b, -0.06)) as f64
                    })
                    .collect();
                median(&mut deviations)
            })
            .fold(f64::MIN, f64::max)
    };
    for index in 0..RECORDS {
        let sinus = st_score(Condition::Normal, index);
        let elevated = st_score(Condition::StElevation, index);
        assert!(
            sinus.abs() < 0.05,
            "record {index}: sinus ST deviation {sinus:.3} mV"
        );
        assert!(
            elevated > 0.1,
            "record {index}: ST elevation only {elevated:.3} mV"
        );
    }
}

#[test]
fn sinus_r_waves_on_lead_ii_are_physiological() {
    let cfg = clean(Condition::Normal);
    for index in 0..RECORDS {
        let record = generate(&cfg, 500, index);
        let peaks = r_peaks_lead_ii(&record);
        let mut amplitudes: Vec<f64> = peaks[1..peaks.len() - 1]
            .iter()
            .map(|&b| (record.lead(LEAD_II)[b] - level(&record, LEAD_II, b, -0.06)) as f64)
            .collect();
        let r = median(&mut amplitudes);
        assert!(
            (0.5..=3.0).contains(&r),
            "record {index}: R amplitude {r:.2} mV on lead II"
        );
    }
}
