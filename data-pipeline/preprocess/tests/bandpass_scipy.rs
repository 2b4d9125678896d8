//! The Butterworth design and filtering match scipy (`butter(..., output='sos')` with
//! `sosfiltfilt` / `sosfilt` + `sosfilt_zi`) to within 1e-6 of the signal peak.

mod common;

use common::{ecg_like, Rng};
use ecgfm_preprocess::butterworth::{butter_bandpass, butter_highpass};
use ecgfm_preprocess::sos::SosFilter;
use std::path::{Path, PathBuf};
use std::process::Command;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scipy_filter.py")
}

/// Runs the scipy helper on each (job arguments, input); `None` (test skipped) when python3 with
/// scipy is unavailable.
fn scipy(jobs: &[(Vec<String>, Vec<f64>)], tag: &str) -> Option<Vec<Vec<f64>>> {
    let dir = std::env::temp_dir().join(format!("ecgfm-preprocess-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut lines = String::new();
    for (i, (args, x)) in jobs.iter().enumerate() {
        let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(dir.join(format!("{i}.in")), bytes).unwrap();
        let (src, dst) = (dir.join(format!("{i}.in")), dir.join(format!("{i}.out")));
        lines += &format!("{} {} {}\n", args.join(" "), src.display(), dst.display());
    }
    std::fs::write(dir.join("jobs.txt"), lines).unwrap();
    let status = Command::new("python3")
        .arg(script())
        .arg(dir.join("jobs.txt"))
        .status();
    let outputs = match status {
        Ok(s) if s.success() => Some(
            (0..jobs.len())
                .map(|i| {
                    let out = std::fs::read(dir.join(format!("{i}.out"))).unwrap();
                    out.chunks_exact(8)
                        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                        .collect()
                })
                .collect(),
        ),
        Ok(s) if s.code() == Some(3) => None,
        Err(_) => None,
        Ok(s) => panic!("scipy helper failed: {s}"),
    };
    std::fs::remove_dir_all(&dir).ok();
    if outputs.is_none() {
        ecgfm_test_support::skip_without_oracle("python3 with numpy and scipy");
    }
    outputs
}

/// ECG-like signal with baseline offset, wander, mains hum and white noise.
fn test_signal(n: usize, rate: f64, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    let ecg = ecg_like(n, rate, 1.0);
    ecg.iter()
        .enumerate()
        .map(|(i, v)| {
            let t = i as f64 / rate;
            v + 0.8
                + 0.3 * (2.0 * std::f64::consts::PI * 0.3 * t).sin()
                + 0.05 * (2.0 * std::f64::consts::PI * 50.0 * t).sin()
                + 0.02 * rng.normal()
        })
        .collect()
}

fn max_error_relative_to_peak(ours: &[f64], theirs: &[f64]) -> f64 {
    assert_eq!(ours.len(), theirs.len());
    let peak = theirs.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let err = ours
        .iter()
        .zip(theirs)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    err / peak
}

#[test]
fn bandpass_filtfilt_matches_scipy() {
    let cases: [(usize, f64, f64, f64, usize); 7] = [
        (2, 0.67, 40.0, 250.0, 2500),
        (1, 0.67, 40.0, 250.0, 2500),
        (3, 0.5, 45.0, 250.0, 2500),
        (4, 1.0, 30.0, 250.0, 2500),
        (2, 0.67, 40.0, 500.0, 5000),
        (2, 0.67, 100.0, 360.0, 3600),
        (2, 0.67, 40.0, 250.0, 40),
    ];
    let jobs: Vec<(Vec<String>, Vec<f64>)> = cases
        .iter()
        .enumerate()
        .map(|(i, &(order, low, high, rate, n))| {
            let args = ["bandpass".to_string(), order.to_string(), low.to_string()]
                .into_iter()
                .chain([high.to_string(), rate.to_string()])
                .collect();
            (args, test_signal(n, rate, i as u64))
        })
        .collect();
    let Some(references) = scipy(&jobs, "bandpass") else {
        return;
    };
    for ((&(order, low, high, rate, n), (_, x)), reference) in
        cases.iter().zip(&jobs).zip(references)
    {
        let filter = SosFilter::new(butter_bandpass(order, low, high, rate).unwrap());
        let ours = filter.filtfilt(x);
        let err = max_error_relative_to_peak(&ours, &reference);
        println!("band-pass order {order} {low}-{high} Hz at {rate} Hz, n={n}: max error / peak = {err:.2e}");
        assert!(
            err < 1e-6,
            "order {order} {low}-{high} Hz at {rate} Hz: error {err}"
        );
    }
}

#[test]
fn highpass_with_steady_state_start_matches_scipy() {
    let cases = [
        (4usize, 40.0f64, 250.0f64),
        (3, 40.0, 500.0),
        (1, 10.0, 250.0),
    ];
    let jobs: Vec<(Vec<String>, Vec<f64>)> = cases
        .iter()
        .enumerate()
        .map(|(i, &(order, cut, rate))| {
            let args = vec![
                "highpass".into(),
                order.to_string(),
                cut.to_string(),
                rate.to_string(),
            ];
            (args, test_signal(3000, rate, 100 + i as u64))
        })
        .collect();
    let Some(references) = scipy(&jobs, "highpass") else {
        return;
    };
    for ((&(order, cut, rate), (_, x)), reference) in cases.iter().zip(&jobs).zip(references) {
        let mut ours = x.clone();
        SosFilter::new(butter_highpass(order, cut, rate).unwrap()).filter_in_place(&mut ours);
        let err = max_error_relative_to_peak(&ours, &reference);
        println!("high-pass order {order} {cut} Hz at {rate} Hz: max error / peak = {err:.2e}");
        assert!(
            err < 1e-6,
            "order {order} {cut} Hz at {rate} Hz: error {err}"
        );
    }
}

#[test]
fn bandpass_keeps_in_band_tone_and_removes_out_of_band_ones() {
    let rate = 250.0;
    let filter = SosFilter::new(butter_bandpass(2, 0.67, 40.0, rate).unwrap());
    let amplitude_after = |freq: f64| {
        let x = common::sine(5000, rate, freq, 1.0);
        let y = filter.filtfilt(&x);
        y[1000..4000].iter().fold(0.0f64, |m, v| m.max(v.abs()))
    };
    assert!((amplitude_after(10.0) - 1.0).abs() < 0.01);
    assert!(amplitude_after(100.0) < 0.01);
    assert!(amplitude_after(0.05) < 0.01);
}

#[test]
fn invalid_band_edges_are_rejected() {
    assert!(butter_bandpass(2, 40.0, 0.67, 250.0).is_err());
    assert!(butter_bandpass(2, 0.67, 125.0, 250.0).is_err());
    assert!(butter_bandpass(0, 0.67, 40.0, 250.0).is_err());
    assert!(butter_highpass(2, 0.0, 250.0).is_err());
}
