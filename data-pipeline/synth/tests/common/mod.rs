//! Test-side ECG analysis, independent of the generator's internals: a slope-based QRS detector
//! (Pan-Tompkins-like), QRS durations, RR statistics and segment levels measured on the signal.

#![allow(dead_code)]

use ecgfm_synth::{Condition, NoiseConfig, SynthConfig, SynthRecord};

/// Rows of the independent leads I, II, V1..V6.
pub const INDEPENDENT: [usize; 8] = [0, 1, 6, 7, 8, 9, 10, 11];
pub const LEAD_II: usize = 1;

/// Only `condition`, without noise.
pub fn clean(condition: Condition) -> SynthConfig {
    SynthConfig {
        noise: NoiseConfig::none(),
        ..SynthConfig::only(condition)
    }
}

fn seconds(fs: f32, s: f32) -> usize {
    (fs * s).round() as usize
}

/// Moving average of `x` over `window` samples, centred.
fn moving_average(x: &[f32], window: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    let mut sum = 0.0f32;
    for t in 0..x.len() {
        sum += x[t];
        if t >= window {
            sum -= x[t - window];
        }
        out[t.saturating_sub(window / 2)] = sum / window.min(t + 1) as f32;
    }
    out
}

/// Absolute slope summed over `leads` (difference across 16 ms of the 16 ms-smoothed signal, which
/// keeps the QRS band and rejects muscle noise and mains), averaged over `window` samples: the
/// total variation per window, large for a QRS and small for P and T waves.
fn slope_activity(record: &SynthRecord, leads: &[usize], window: usize) -> Vec<f32> {
    let n = record.samples;
    let half = seconds(record.sampling_rate, 0.008).max(1);
    let mut activity = vec![0.0f32; n];
    for &lead in leads {
        let x = moving_average(record.lead(lead), 2 * half);
        for t in half..n - half {
            let d = x[t + half] - x[t - half];
            activity[t] += d.abs();
        }
    }
    moving_average(&activity, window)
}

/// QRS complexes detected on `leads`: the slope activity over 100 ms is thresholded at
/// `fraction` of its 99th percentile; regions closer than 250 ms merge; each beat is placed at the
/// activity maximum of its region. Returns sample indices.
pub fn detect_beats(record: &SynthRecord, leads: &[usize], fraction: f32) -> Vec<usize> {
    let fs = record.sampling_rate;
    let activity = slope_activity(record, leads, seconds(fs, 0.1));
    let mut sorted = activity.clone();
    sorted.sort_by(f32::total_cmp);
    let threshold = fraction * sorted[(sorted.len() * 99) / 100];
    let refractory = seconds(fs, 0.25);
    let mut beats: Vec<usize> = Vec::new();
    let mut t = 0;
    while t < activity.len() {
        if activity[t] <= threshold {
            t += 1;
            continue;
        }
        let start = t;
        while t < activity.len() && activity[t] > threshold {
            t += 1;
        }
        let peak = (start..t)
            .max_by(|&a, &b| activity[a].total_cmp(&activity[b]))
            .unwrap();
        match beats.last_mut() {
            Some(last) if peak - *last < refractory => {
                if activity[peak] > activity[*last] {
                    *last = peak;
                }
            }
            _ => beats.push(peak),
        }
    }
    beats
}

/// Beats on lead II refined to the R-peak sample (largest value within 60 ms of the detection).
pub fn r_peaks_lead_ii(record: &SynthRecord) -> Vec<usize> {
    let x = record.lead(LEAD_II);
    let reach = seconds(record.sampling_rate, 0.06);
    detect_beats(record, &[LEAD_II], 0.4)
        .into_iter()
        .map(|b| {
            let range = b.saturating_sub(reach)..(b + reach).min(x.len());
            range.max_by(|&a, &c| x[a].total_cmp(&x[c])).unwrap()
        })
        .collect()
}

/// RR intervals in seconds.
pub fn rr_intervals(beats: &[usize], fs: f32) -> Vec<f64> {
    beats
        .windows(2)
        .map(|w| (w[1] - w[0]) as f64 / fs as f64)
        .collect()
}

/// Mean rate in bpm over the detected beats.
pub fn heart_rate(beats: &[usize], fs: f32) -> f64 {
    let span = (beats[beats.len() - 1] - beats[0]) as f64 / fs as f64;
    60.0 * (beats.len() - 1) as f64 / span
}

/// Coefficient of variation of the RR intervals.
pub fn rr_variation(beats: &[usize], fs: f32) -> f64 {
    let rr = rr_intervals(beats, fs);
    let mean = rr.iter().sum::<f64>() / rr.len() as f64;
    let var = rr.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / rr.len() as f64;
    var.sqrt() / mean
}

/// QRS durations (s). The spatial slope over the independent leads marks depolarisation (P and
/// T waves are far less steep): a complex starts where it exceeds 20% of its 99th percentile, is
/// centred on its steepest point within 200 ms, and extends from there while the slope exceeds 10%
/// of that peak, with gaps of at most 16 ms and at most 150 ms each way. Complexes near the
/// record's edges are skipped.
pub fn qrs_durations(record: &SynthRecord) -> Vec<f64> {
    let n = record.samples;
    let fs = record.sampling_rate;
    let slope: Vec<f32> = (0..n)
        .map(|t| {
            if t == 0 || t + 1 == n {
                return 0.0;
            }
            let energy: f32 = INDEPENDENT
                .iter()
                .map(|&l| (record.lead(l)[t + 1] - record.lead(l)[t - 1]).powi(2))
                .sum();
            energy.sqrt()
        })
        .collect();
    let mut sorted = slope.clone();
    sorted.sort_by(f32::total_cmp);
    let onset = 0.2 * sorted[(n * 99) / 100];
    let (reach, gap, settle) = (
        seconds(fs, 0.15),
        seconds(fs, 0.016).max(1),
        seconds(fs, 0.2),
    );
    let mut durations = Vec::new();
    let mut t = reach + gap;
    while t + settle + reach + gap < n {
        if slope[t] <= onset {
            t += 1;
            continue;
        }
        let peak = (t..t + settle)
            .max_by(|&a, &b| slope[a].total_cmp(&slope[b]))
            .unwrap();
        let active = |i: usize| slope[i] > 0.1 * slope[peak];
        let (mut first, mut last) = (peak, peak);
        while first > peak - reach && (1..=gap).any(|k| active(first - k)) {
            first -= 1;
        }
        while last < peak + reach && (1..=gap).any(|k| active(last + k)) {
            last += 1;
        }
        durations.push((last - first + 1) as f64 / fs as f64);
        t = last + 1;
    }
    durations
}

/// Mean of `lead` over `[at - 8 ms, at + 8 ms]` seconds relative to sample `beat`.
pub fn level(record: &SynthRecord, lead: usize, beat: usize, at_s: f32) -> f32 {
    let fs = record.sampling_rate;
    let x = record.lead(lead);
    let center = beat as f32 + at_s * fs;
    let half = 0.008 * fs;
    let (lo, hi) = (
        (center - half).round() as usize,
        (center + half).round() as usize,
    );
    x[lo..=hi].iter().sum::<f32>() / (hi - lo + 1) as f32
}

pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
