//! Quality flags fire on synthetic bad signals (flat, clipped, NaN, noisy, huge) and stay quiet on
//! a clean ECG-like signal; the hard-fail rule quarantines records with nothing usable.

mod common;

use common::{ecg_like, Rng};
use ecgfm_preprocess::quality::{
    LeadWindow, QualityChecker, FLAG_AMPLITUDE, FLAG_CLIPPING, FLAG_FLAT, FLAG_HF_NOISE,
    FLAG_MISSING,
};
use ecgfm_preprocess::{
    Pipeline, PipelineConfig, PreprocessError, ProcessedRecord, QualityConfig, STANDARD_LEADS,
};

const RATE: f64 = 500.0;
const N: usize = 5000;

/// A clean 12-lead record: ECG-like waves with per-lead gain, slight wander and noise.
fn clean_record(seed: u64) -> Vec<Vec<f64>> {
    let mut rng = Rng::new(seed);
    (0..12)
        .map(|lead| {
            let gain = 0.5 + 0.1 * lead as f64;
            let wander = 0.1 + 0.05 * rng.uniform();
            ecg_like(N, RATE, gain)
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let t = i as f64 / RATE;
                    v + wander * (2.0 * std::f64::consts::PI * 0.2 * t).sin() + 0.005 * rng.normal()
                })
                .collect()
        })
        .collect()
}

fn run(record: &[Vec<f64>]) -> Result<ProcessedRecord, PreprocessError> {
    run_with(record, PipelineConfig::default())
}

fn run_with(
    record: &[Vec<f64>],
    config: PipelineConfig,
) -> Result<ProcessedRecord, PreprocessError> {
    Pipeline::new(config)
        .unwrap()
        .process(RATE, &STANDARD_LEADS, record)
}

/// Flags of lead `lead` in the only window.
fn flags_of(out: &ProcessedRecord, lead: usize) -> u8 {
    assert_eq!(out.windows.len(), 1);
    out.windows[0].quality_flags[lead]
}

#[test]
fn clean_ecg_raises_no_flag_and_scores_one() {
    let out = run(&clean_record(1)).unwrap();
    let w = &out.windows[0];
    assert_eq!(w.quality_flags, [0; 12], "flags on a clean record");
    assert_eq!(w.quality_score, 1.0);
    assert!(!w.hard_fail);
}

#[test]
fn flat_lead_is_flagged_flat_and_lowers_the_window_score() {
    let mut record = clean_record(2);
    record[3] = vec![0.2; N];
    let out = run(&record).unwrap();
    assert_ne!(flags_of(&out, 3) & FLAG_FLAT, 0);
    assert!(out.windows[0].quality_score < 0.5);
    assert!((0..12).filter(|&l| l != 3).all(|l| flags_of(&out, l) == 0));
    assert!(!out.windows[0].hard_fail);
}

#[test]
fn tiny_noise_only_lead_is_flat() {
    let mut record = clean_record(3);
    let mut rng = Rng::new(9);
    record[0] = (0..N).map(|_| 0.001 * rng.normal()).collect();
    let out = run(&record).unwrap();
    assert_ne!(flags_of(&out, 0) & FLAG_FLAT, 0);
}

#[test]
fn clipped_lead_is_flagged() {
    let mut record = clean_record(4);
    record[6] = ecg_like(N, RATE, 2.0)
        .iter()
        .map(|v| v.clamp(-0.25, 0.6))
        .collect();
    let out = run(&record).unwrap();
    assert_ne!(
        flags_of(&out, 6) & FLAG_CLIPPING,
        0,
        "{:?}",
        out.windows[0].quality_flags
    );
    assert_eq!(flags_of(&out, 7) & FLAG_CLIPPING, 0);
}

/// A clipping run is at least 2 samples long even where `clip_min_run_s` is one sample (10 ms at
/// 100 Hz): a wave whose every peak and trough is one sample is not clipped, the same wave
/// holding each for two samples is.
#[test]
fn one_sample_peaks_are_not_clipping_at_a_low_input_rate() {
    let checker = QualityChecker::new(QualityConfig::default(), 250.0).unwrap();
    let clipping = |period: &[f64]| {
        let x: Vec<f64> = period.iter().cycle().take(1000).map(|v| 0.2 * v).collect();
        let view = LeadWindow {
            input: &x,
            input_missing: None,
            input_rate: 100.0,
            clean: &x,
            high: None,
            missing: None,
        };
        checker.assess(&view).flags & FLAG_CLIPPING
    };
    let sharp = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 4.0, 3.0, 2.0, 1.0];
    let held = [0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 4.0, 3.0, 2.0, 1.0];
    assert_eq!(clipping(&sharp), 0);
    assert_ne!(clipping(&held), 0);
}

/// The missing fraction is over the window's samples: 4 missing of 100 is 4%, 0.8 of the 5%
/// threshold, which scores 1.5 - 0.8 = 0.7 and raises no flag (a sharp triangle wave passes
/// every other check).
#[test]
fn four_missing_samples_of_a_hundred_score_seven_tenths() {
    let checker = QualityChecker::new(QualityConfig::default(), 250.0).unwrap();
    let period = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 0.8, 0.6, 0.4, 0.2];
    let x: Vec<f64> = period.iter().cycle().take(100).copied().collect();
    let missing: Vec<bool> = (0..100).map(|i| i % 25 == 3).collect();
    let quality = checker.assess(&LeadWindow {
        input: &x,
        input_missing: None,
        input_rate: 250.0,
        clean: &x,
        high: None,
        missing: Some(&missing),
    });
    assert_eq!(quality.flags, 0);
    assert!((quality.score - 0.7).abs() < 1e-6, "{}", quality.score);
}

#[test]
fn missing_samples_are_flagged_and_zeroed() {
    let mut record = clean_record(5);
    record[1][1000..1600].iter_mut().for_each(|v| *v = f64::NAN);
    let out = run(&record).unwrap();
    assert_ne!(flags_of(&out, 1) & FLAG_MISSING, 0);
    let w = &out.windows[0];
    let row = &w.signal[2500..5000];
    assert!(row[510..790].iter().all(|&v| v == 0.0));
    assert!(row.iter().all(|v| v.is_finite()));
    assert!(row[..490].iter().any(|&v| v != 0.0));
    assert!(!w.hard_fail);
}

#[test]
fn broadband_noise_is_flagged_as_high_frequency() {
    let mut record = clean_record(6);
    let mut rng = Rng::new(11);
    record[9].iter_mut().for_each(|v| *v += 0.5 * rng.normal());
    let out = run(&record).unwrap();
    assert_ne!(flags_of(&out, 9) & FLAG_HF_NOISE, 0);
    assert_eq!(flags_of(&out, 8), 0);
}

#[test]
fn noise_on_a_quiet_lead_is_flagged_only_when_it_is_large() {
    // A near-isoelectric lead (0.05 mV waves): 15 uV of broadband noise is a large share of its
    // energy (the ratio test alone flags it) but harmless; 100 uV is not.
    let quiet = ecg_like(N, RATE, 0.05);
    let noisy = |sigma: f64, config: PipelineConfig| {
        let mut record = clean_record(8);
        let mut rng = Rng::new(12);
        record[4] = quiet.iter().map(|v| v + sigma * rng.normal()).collect();
        flags_of(&run_with(&record, config).unwrap(), 4) & FLAG_HF_NOISE
    };
    let mut ratio_only = PipelineConfig::default();
    ratio_only.quality.min_hf_rms = 1e-9;
    assert_ne!(noisy(0.015, ratio_only), 0);
    assert_eq!(noisy(0.015, PipelineConfig::default()), 0);
    assert_ne!(noisy(0.1, PipelineConfig::default()), 0);
}

#[test]
fn implausible_amplitude_is_flagged() {
    let mut record = clean_record(7);
    record[10] = ecg_like(N, RATE, 12.0);
    record[11] = ecg_like(N, RATE, 0.02);
    let out = run(&record).unwrap();
    assert_ne!(flags_of(&out, 10) & FLAG_AMPLITUDE, 0);
    assert_ne!(flags_of(&out, 11) & FLAG_AMPLITUDE, 0);
}

#[test]
fn all_leads_flat_is_a_hard_fail() {
    let record = vec![vec![0.0; N]; 12];
    match run(&record) {
        Err(PreprocessError::AllWindowsFailed { windows: 1 }) => {}
        other => panic!("expected quarantine, got {other:?}"),
    }
    let keep = PipelineConfig {
        drop_hard_failed_windows: false,
        ..PipelineConfig::default()
    };
    let out = run_with(&record, keep).unwrap();
    assert!(out.windows[0].hard_fail);
    assert_eq!(out.windows[0].quality_score, 0.0);
}

#[test]
fn entirely_missing_lead_is_absent_not_flagged() {
    let mut record = clean_record(8);
    record[4] = vec![f64::NAN; N];
    let out = run(&record).unwrap();
    assert!(!out.windows[0].lead_mask[4]);
    assert_eq!(out.report.empty_leads, vec!["aVL".to_string()]);
    assert_eq!(out.windows[0].quality_flags[4], 0);
    assert_eq!(out.windows[0].quality_score, 1.0);
}

#[test]
fn all_missing_record_is_quarantined() {
    let record = vec![vec![f64::NAN; N]; 12];
    assert_eq!(run(&record).unwrap_err(), PreprocessError::AllLeadsMissing);
}

#[test]
fn a_bridged_gap_is_missing_not_flat_or_clipped() {
    // 1.1 s (11%) missing at the start of every lead, and 1.5 s in the middle of lead II: bridged
    // gaps are straight lines longer than `flat_max_constant_s`, but only observed samples are
    // judged flat or clipped, so the 50% hard-fail limit on missing samples governs.
    let mut record = clean_record(11);
    for lead in &mut record {
        lead[..550].iter_mut().for_each(|v| *v = f64::NAN);
    }
    record[1][2000..2750].iter_mut().for_each(|v| *v = f64::NAN);
    let out = run(&record).unwrap();
    let w = &out.windows[0];
    assert!(!w.hard_fail);
    assert_eq!(out.report.hard_failed_windows, 0);
    for lead in 0..12 {
        assert_eq!(flags_of(&out, lead), FLAG_MISSING, "{:?}", w.quality_flags);
    }
    // A lead missing for more than half the window is still unusable, and a window where every
    // lead is is hard-failed.
    let mut record = clean_record(12);
    for lead in &mut record {
        lead[..2600].iter_mut().for_each(|v| *v = f64::NAN);
    }
    match run(&record) {
        Err(PreprocessError::AllWindowsFailed { windows: 1 }) => {}
        other => panic!("expected a hard fail, got {other:?}"),
    }
}

#[test]
fn a_flat_stretch_between_gaps_is_still_flat() {
    // A constant run of observed samples longer than `flat_max_constant_s` is flat even when gaps
    // surround it.
    let mut record = clean_record(13);
    record[2][1000..1100].iter_mut().for_each(|v| *v = f64::NAN);
    record[2][1100..1800].iter_mut().for_each(|v| *v = 0.3);
    record[2][1800..1900].iter_mut().for_each(|v| *v = f64::NAN);
    let out = run(&record).unwrap();
    assert_ne!(flags_of(&out, 2) & FLAG_FLAT, 0);
}

#[test]
fn a_window_judges_every_input_sample_it_reaches_at_a_non_integer_rate_ratio() {
    // At 360 Hz in and 250 Hz out, a window of 1,001 output samples ends at input sample
    // 1,441.44, so input sample 1,441 contributes to it and belongs to its raw-signal checks. A
    // constant stretch from sample `first` to the record's end then runs 1,442 - `first` samples
    // inside the first window, against the 360 (1 s at 360 Hz) tolerated: 361 is flat, 360 is not.
    let rate = 360.0;
    let mut config = PipelineConfig::default();
    config.window.window_samples = 1001;
    let flat_from = |first: usize| {
        let mut rng = Rng::new(14);
        let mut record: Vec<Vec<f64>> = (0..12)
            .map(|lead| {
                let wave = ecg_like(3600, rate, 0.5 + 0.1 * lead as f64);
                wave.iter().map(|v| v + 0.005 * rng.normal()).collect()
            })
            .collect();
        record[3][first..].iter_mut().for_each(|v| *v = 0.37);
        let out = Pipeline::new(config.clone())
            .unwrap()
            .process(rate, &STANDARD_LEADS, &record)
            .unwrap();
        assert_eq!(out.windows[0].n_valid, 1001);
        out.windows[0].quality_flags[3] & FLAG_FLAT != 0
    };
    assert!(flat_from(1081), "a 361-sample run inside the window");
    assert!(!flat_from(1082), "a 360-sample run inside the window");
}
