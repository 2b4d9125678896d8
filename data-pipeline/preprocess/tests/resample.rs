//! The polyphase resampler: lengths, alignment, pass-band accuracy, anti-aliasing, mask transfer.

mod common;

use common::sine;
use ecgfm_preprocess::{Resampler, ResamplerConfig};

const RATIOS: [(f64, f64); 7] = [
    (500.0, 250.0),
    (300.0, 250.0),
    (1000.0, 250.0),
    (360.0, 250.0),
    (257.0, 250.0),
    (125.0, 250.0),
    (128.5, 250.0),
];

fn resampler(from: f64, to: f64) -> Resampler {
    Resampler::new(from, to, &ResamplerConfig::default()).unwrap()
}

/// Largest deviation of `y` (at `to` Hz) from the exact sine, over samples whose time lies at
/// least `margin_s` from both ends.
fn sine_error(y: &[f64], to: f64, freq: f64, margin_s: f64) -> f64 {
    let skip = (margin_s * to) as usize;
    let reference = sine(y.len(), to, freq, 1.0);
    y.iter()
        .zip(&reference)
        .skip(skip)
        .take(y.len().saturating_sub(2 * skip))
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()))
}

#[test]
fn output_length_is_rounded_ratio() {
    for (from, to) in RATIOS {
        let r = resampler(from, to);
        for n in [1usize, 2, 7, 999, 5000, 5001, 10007] {
            let y = r.resample(&vec![0.5; n]);
            let expected = ((n as f64 * to / from).round() as usize).max(1);
            assert_eq!(y.len(), expected, "{from}->{to} n={n}");
            assert_eq!(r.output_len(n), expected);
        }
    }
}

#[test]
fn ratios_are_reduced() {
    assert_eq!(resampler(500.0, 250.0).ratio(), (1, 2));
    assert_eq!(resampler(360.0, 250.0).ratio(), (25, 36));
    assert_eq!(resampler(257.0, 250.0).ratio(), (250, 257));
    assert_eq!(resampler(125.0, 250.0).ratio(), (2, 1));
    assert_eq!(resampler(128.5, 250.0).ratio(), (500, 257));
}

#[test]
fn in_band_sines_pass_aligned_with_tiny_error() {
    for (from, to) in RATIOS {
        let r = resampler(from, to);
        let freqs: &[f64] = if from < 200.0 {
            &[5.0, 30.0]
        } else {
            &[5.0, 40.0, 80.0]
        };
        for &freq in freqs {
            let x = sine((12.0 * from) as usize, from, freq, 1.0);
            let y = r.resample(&x);
            let interior = sine_error(&y, to, freq, 0.5);
            let whole = sine_error(&y, to, freq, 0.0);
            println!("{from}->{to} Hz, {freq} Hz sine: interior max error {interior:.1e}, with edges {whole:.1e}");
            assert!(interior < 2e-4, "{from}->{to} {freq} Hz: {interior}");
            if freq <= 5.0 {
                assert!(whole < 1e-2, "{from}->{to} {freq} Hz edges: {whole}");
            }
        }
    }
}

#[test]
fn sines_above_the_new_nyquist_are_suppressed() {
    for (from, freq) in [
        (500.0, 180.0),
        (1000.0, 300.0),
        (360.0, 160.0),
        (300.0, 140.0),
    ] {
        let r = resampler(from, 250.0);
        let y = r.resample(&sine((10.0 * from) as usize, from, freq, 1.0));
        let skip = 125;
        let peak = y[skip..y.len() - skip]
            .iter()
            .fold(0.0f64, |m, v| m.max(v.abs()));
        println!("{from}->250 Hz, {freq} Hz sine: residual peak {peak:.1e}");
        assert!(peak < 1e-3, "{from} Hz input, {freq} Hz tone leaks {peak}");
    }
}

#[test]
fn constants_pass_exactly_and_ramps_closely_including_edges() {
    for (from, to) in RATIOS {
        let r = resampler(from, to);
        let constant = r.resample(&vec![-1.25; 3000]);
        assert!(constant.iter().all(|v| (v + 1.25).abs() < 1e-12));
        let ramp: Vec<f64> = (0..3000).map(|i| 0.001 * i as f64 - 1.0).collect();
        let y = r.resample(&ramp);
        for (k, v) in y.iter().enumerate() {
            let t = k as f64 * from / to;
            let err = (v - (0.001 * t - 1.0)).abs();
            assert!(err < 1e-6, "{from}->{to} k={k}: {err}");
        }
    }
}

/// The kernel spans `half_width_zeros` periods of the lower rate on each side, its ends
/// excluded: halving 500 Hz with 32 zeros, an impulse at input 1000 reaches the outputs at input
/// times within 64 samples of it (k = 469..=531) and no further.
#[test]
fn an_impulse_reaches_only_the_outputs_within_the_kernel_half_width() {
    let mut x = vec![0.0; 2000];
    x[1000] = 1.0;
    let y = resampler(500.0, 250.0).resample(&x);
    let reached: Vec<usize> = (0..y.len()).filter(|&k| y[k] != 0.0).collect();
    assert_eq!(reached.first(), Some(&469));
    assert_eq!(reached.last(), Some(&531));
}

#[test]
fn identity_ratio_copies() {
    let r = resampler(250.0, 250.0);
    let x: Vec<f64> = (0..100).map(|i| (i as f64).sin()).collect();
    assert_eq!(r.resample(&x), x);
}

#[test]
fn missing_mask_follows_time() {
    let r = resampler(500.0, 250.0);
    let mut mask = vec![false; 1000];
    mask[400..500].iter_mut().for_each(|m| *m = true);
    let out = r.resample_mask(&mask);
    assert_eq!(out.len(), 500);
    let marked: Vec<usize> = (0..500).filter(|&k| out[k]).collect();
    assert_eq!(marked.first(), Some(&200));
    assert_eq!(marked.last(), Some(&250));
    assert_eq!(marked.len(), 51);
    let up = resampler(125.0, 250.0).resample_mask(&[false, false, true, false, false]);
    assert_eq!(
        up,
        vec![false, false, false, true, true, true, false, false, false, false]
    );
}

#[test]
fn bad_rates_and_settings_are_rejected() {
    let cfg = ResamplerConfig::default();
    assert!(Resampler::new(0.0, 250.0, &cfg).is_err());
    assert!(Resampler::new(f64::NAN, 250.0, &cfg).is_err());
    let bad = ResamplerConfig {
        rolloff: 1.5,
        ..cfg
    };
    assert!(Resampler::new(500.0, 250.0, &bad).is_err());
}
