//! The whole pipeline: shapes, padding, lead placement, alignment, standardisation, settings
//! serialisation, determinism and the errors that quarantine a record.

mod common;

use common::{ecg_like, Rng};
use ecgfm_preprocess::{
    DropReason, Pipeline, PipelineConfig, PreprocessError, Standardization, StandardizeConfig,
    STANDARD_LEADS,
};

fn twelve_leads(n: usize, rate: f64) -> Vec<Vec<f64>> {
    let mut rng = Rng::new(3);
    (0..12)
        .map(|l| {
            ecg_like(n, rate, 0.4 + 0.1 * l as f64)
                .into_iter()
                .map(|v| v + 0.003 * rng.normal())
                .collect()
        })
        .collect()
}

fn pipeline() -> Pipeline {
    Pipeline::new(PipelineConfig::default()).unwrap()
}

#[test]
fn ten_second_twelve_lead_record_gives_one_full_window() {
    let out = pipeline()
        .process(500.0, &STANDARD_LEADS, &twelve_leads(5000, 500.0))
        .unwrap();
    assert_eq!(out.windows.len(), 1);
    let w = &out.windows[0];
    assert_eq!((w.window_index, w.start_sample, w.n_valid), (0, 0, 2500));
    assert_eq!(w.signal.len(), 12 * 2500);
    assert_eq!(w.lead_mask, [true; 12]);
    assert!(w.signal.iter().all(|v| v.is_finite()));
    assert_eq!(out.report.resampled_samples, 2500);
    assert!(out.report.dropped_leads.is_empty());
}

#[test]
fn single_lead_alivecor_record_fills_lead_one_only() {
    let x = ecg_like(9150, 300.0, 1.0);
    let out = pipeline().process(300.0, &["ECG"], &[x]).unwrap();
    assert_eq!(out.report.resampled_samples, 7625);
    assert_eq!(out.windows.len(), 3);
    for w in &out.windows {
        let mut mask = [false; 12];
        mask[0] = true;
        assert_eq!(w.lead_mask, mask);
        assert!(w.signal[2500..].iter().all(|&v| v == 0.0));
        assert!(w.signal[..2500].iter().any(|&v| v != 0.0));
        assert_eq!(w.quality_flags[1..], [0; 11]);
    }
}

#[test]
fn short_record_is_one_padded_window() {
    let out = pipeline()
        .process(500.0, &STANDARD_LEADS, &twelve_leads(2000, 500.0))
        .unwrap();
    assert_eq!(out.windows.len(), 1);
    let w = &out.windows[0];
    assert_eq!(w.n_valid, 1000);
    for lead in 0..12 {
        let row = &w.signal[lead * 2500..(lead + 1) * 2500];
        assert!(row[1000..].iter().all(|&v| v == 0.0));
        assert!(row[..1000].iter().any(|&v| v != 0.0));
    }
}

#[test]
fn leads_land_in_standard_slots_and_extras_are_reported() {
    let n = 5000;
    let names = ["V6", "MLII", "vx", "aVR"];
    let signals: Vec<Vec<f64>> = [1.0, 2.0, 3.0, 4.0]
        .iter()
        .map(|&g| ecg_like(n, 500.0, g))
        .collect();
    let out = pipeline().process(500.0, &names, &signals).unwrap();
    let w = &out.windows[0];
    let present: Vec<usize> = (0..12).filter(|&l| w.lead_mask[l]).collect();
    assert_eq!(present, vec![1, 3, 11]);
    let peak = |lead: usize| {
        w.signal[lead * 2500..(lead + 1) * 2500]
            .iter()
            .fold(0.0f32, |m, v| m.max(*v))
    };
    assert!(
        peak(11) < peak(1) && peak(1) < peak(3),
        "rows hold the right leads"
    );
    assert_eq!(out.report.dropped_leads.len(), 1);
    assert_eq!(out.report.dropped_leads[0].name, "vx");
    assert_eq!(out.report.dropped_leads[0].reason, DropReason::Unknown);
}

/// A Cabrera-sequence export names its inverted aVR `-aVR` (or `−aVR`) and stores the inverted
/// signal: it lands in the aVR slot negated back, the same window as the record storing aVR.
#[test]
fn a_lead_named_as_its_negation_is_negated_into_its_slot() {
    let record = twelve_leads(5000, 500.0);
    let plain = pipeline().process(500.0, &STANDARD_LEADS, &record).unwrap();
    for minus in ["-aVR", "\u{2212}aVR", " - aVR"] {
        let mut names = STANDARD_LEADS.to_vec();
        names[3] = minus;
        let mut inverted = record.clone();
        inverted[3] = inverted[3].iter().map(|v| -v).collect();
        let out = pipeline().process(500.0, &names, &inverted).unwrap();
        assert_eq!(out.windows, plain.windows, "{minus}");
        assert!(out.report.dropped_leads.is_empty(), "{minus}");
    }
    let as_stored = pipeline().process(500.0, &STANDARD_LEADS, &{
        let mut r = record.clone();
        r[3] = r[3].iter().map(|v| -v).collect();
        r
    });
    assert_ne!(
        as_stored.unwrap().windows,
        plain.windows,
        "the inversion shows"
    );
}

#[test]
fn r_peaks_keep_their_time_through_resampling_and_band_pass() {
    for rate in [500.0, 360.0, 1000.0, 125.0] {
        let n = (10.0 * rate) as usize;
        let out = pipeline()
            .process(rate, &["II"], &[ecg_like(n, rate, 1.0)])
            .unwrap();
        let row = &out.windows[0].signal[2500..5000];
        let peak = (0..2500)
            .max_by(|&a, &b| row[a].total_cmp(&row[b]))
            .unwrap();
        let beat = 60.0 / 72.0 * 250.0;
        let phase = (peak as f64 % beat) / 250.0;
        assert!(
            (phase - 0.35).abs() <= 0.5 / 250.0 + 1e-9,
            "{rate} Hz: R peak at {phase} s into the beat"
        );
    }
}

#[test]
fn per_lead_standardisation_gives_unit_variance_and_survives_flat_leads() {
    let mut record = twelve_leads(5000, 500.0);
    record[2] = vec![0.3; 5000];
    let config = PipelineConfig {
        standardize: StandardizeConfig {
            mode: Standardization::PerLead,
            min_std: 0.01,
        },
        ..PipelineConfig::default()
    };
    let out = Pipeline::new(config)
        .unwrap()
        .process(500.0, &STANDARD_LEADS, &record)
        .unwrap();
    let w = &out.windows[0];
    for lead in 0..12 {
        let row: Vec<f64> = w.signal[lead * 2500..(lead + 1) * 2500]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let mean = row.iter().sum::<f64>() / 2500.0;
        let std = (row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / 2500.0).sqrt();
        if lead == 2 {
            assert!(row.iter().all(|v| v.abs() < 1e-3), "flat lead stays near 0");
        } else {
            assert!(
                mean.abs() < 1e-3 && (std - 1.0).abs() < 1e-3,
                "lead {lead}: {mean} {std}"
            );
        }
    }
}

#[test]
fn per_record_standardisation_keeps_relative_amplitudes() {
    let config = PipelineConfig {
        standardize: StandardizeConfig {
            mode: Standardization::PerRecord,
            min_std: 0.01,
        },
        ..PipelineConfig::default()
    };
    let record = twelve_leads(5000, 500.0);
    let plain = pipeline().process(500.0, &STANDARD_LEADS, &record).unwrap();
    let scaled = Pipeline::new(config)
        .unwrap()
        .process(500.0, &STANDARD_LEADS, &record)
        .unwrap();
    let (a, b) = (&plain.windows[0].signal, &scaled.windows[0].signal);
    let ratio = |i: usize, j: usize| (a[i] / a[j], b[i] / b[j]);
    let (r0, r1) = ratio(11 * 2500 + 87, 2500 + 87);
    assert!((r0 - r1).abs() < 0.05 * r0.abs(), "{r0} vs {r1}");
    let all: Vec<f64> = b.iter().map(|&v| f64::from(v)).collect();
    let mean = all.iter().sum::<f64>() / all.len() as f64;
    let var = all.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / all.len() as f64;
    assert!((var - 1.0).abs() < 1e-3, "record variance {var}");
}

#[test]
fn results_are_deterministic_across_runs_and_threads() {
    let p = pipeline();
    let record = twelve_leads(7500, 360.0);
    let first = p.process(360.0, &STANDARD_LEADS, &record).unwrap();
    let again = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| s.spawn(|| p.process(360.0, &STANDARD_LEADS, &record).unwrap()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    for other in again {
        assert_eq!(other, first);
    }
    let as_f32: Vec<Vec<f32>> = record
        .iter()
        .map(|l| l.iter().map(|&v| v as f32).collect())
        .collect();
    let from_f32 = p.process(360.0, &STANDARD_LEADS, &as_f32).unwrap();
    let diff = from_f32.windows[0]
        .signal
        .iter()
        .zip(&first.windows[0].signal)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(diff < 1e-5, "f32 and f64 inputs differ by {diff}");
}

#[test]
fn bad_records_get_typed_errors() {
    let p = pipeline();
    let ok = vec![vec![0.1; 100]];
    assert_eq!(
        p.process(0.0, &["I"], &ok).unwrap_err(),
        PreprocessError::InvalidSamplingRate(0.0)
    );
    // Rates a damaged header can claim: refused before a filter or an output is sized by them.
    for rate in [1e9, 0.001, f64::NAN] {
        let err = p.process(rate, &["I"], &ok).unwrap_err();
        assert!(
            matches!(err, PreprocessError::InvalidSamplingRate(r) if r.to_bits() == rate.to_bits()),
            "{rate}: {err}"
        );
        assert!(err.to_string().contains("1 Hz to 100 kHz"), "{err}");
    }
    assert_eq!(
        p.process(500.0, &["I", "II"], &ok).unwrap_err(),
        PreprocessError::LeadCountMismatch {
            names: 2,
            signals: 1
        }
    );
    assert_eq!(
        p.process(500.0, &["I", "II"], &[vec![0.0; 100], vec![0.0; 99]])
            .unwrap_err(),
        PreprocessError::LeadLengthMismatch {
            lead: 1,
            expected: 100,
            found: 99
        }
    );
    assert_eq!(
        p.process(500.0, &["I"], &[Vec::<f64>::new()]).unwrap_err(),
        PreprocessError::EmptyRecord
    );
    assert!(matches!(
        p.process(500.0, &["PLETH", "RESP"], &[vec![0.0; 10], vec![0.0; 10]]).unwrap_err(),
        PreprocessError::NoKnownLeads(names) if names == ["PLETH", "RESP"]
    ));
}

#[test]
fn settings_serialise_with_defaults_and_reject_unknown_fields() {
    let config = PipelineConfig::default();
    let json = serde_json::to_string(&config).unwrap();
    assert_eq!(
        serde_json::from_str::<PipelineConfig>(&json).unwrap(),
        config
    );
    assert_eq!(
        serde_json::from_str::<PipelineConfig>("{}").unwrap(),
        config
    );
    let partial: PipelineConfig = serde_json::from_str(
        r#"{"target_rate_hz": 500, "window": {"trailing": {"policy": "align_end"}}}"#,
    )
    .unwrap();
    assert_eq!(partial.target_rate_hz, 500.0);
    assert_eq!(partial.window.window_samples, 2500);
    assert!(serde_json::from_str::<PipelineConfig>(r#"{"target_rate": 500}"#).is_err());
    let no_filter: PipelineConfig = serde_json::from_str(r#"{"band_pass": null}"#).unwrap();
    assert!(no_filter.band_pass.is_none());
}

#[test]
fn invalid_settings_are_rejected() {
    let nyquist_violation = PipelineConfig {
        target_rate_hz: 60.0,
        ..PipelineConfig::default()
    };
    assert!(matches!(
        Pipeline::new(nyquist_violation),
        Err(PreprocessError::InvalidConfig(_))
    ));
    let zero_rate = PipelineConfig {
        target_rate_hz: 0.0,
        ..PipelineConfig::default()
    };
    assert!(Pipeline::new(zero_rate).is_err());
    let absurd_rate = PipelineConfig {
        target_rate_hz: 1e8,
        ..PipelineConfig::default()
    };
    assert!(
        matches!(Pipeline::new(absurd_rate), Err(PreprocessError::InvalidConfig(m)) if m.contains("at most 100000 Hz"))
    );
    let highest = PipelineConfig {
        target_rate_hz: ecgfm_preprocess::pipeline::MAX_RECORD_RATE_HZ,
        ..PipelineConfig::default()
    };
    assert!(Pipeline::new(highest).is_ok());
    let mut zero_threshold = PipelineConfig::default();
    zero_threshold.quality.max_hf_ratio = 0.0;
    assert!(
        matches!(Pipeline::new(zero_threshold), Err(PreprocessError::InvalidConfig(m)) if m.contains("max_hf_ratio"))
    );
    let mut bad_resampler = PipelineConfig::default();
    bad_resampler.resampler.half_width_zeros = 0;
    assert!(Pipeline::new(bad_resampler).is_err());
}
