//! Recording artefacts added to the independent leads: baseline wander (a respiration-rate
//! sinusoid plus slow drift), powerline interference and burst-modulated band-limited muscle
//! (EMG) noise. Applied before the limb-lead derivation, so III, aVR, aVL and aVF inherit the
//! electrode noise of I and II exactly as in a real recording.

use std::f64::consts::TAU;

use crate::config::NoiseConfig;
use crate::leads::{independent_rows, INDEPENDENT_LEADS};
use crate::rng::{LaneRng, Rng};

const LEADS: usize = INDEPENDENT_LEADS.len();

/// Sinusoidal components shared by the record: respiration, two drifts, mains.
const TONES: usize = 4;

/// Samples processed per block: the sinusoids of a block are computed independently of each
/// other (no per-sample recurrence), and every lead row is updated contiguously.
const BLOCK: usize = 64;

/// Oscillators: the tones, then the EMG burst envelope.
const OSCILLATORS: usize = TONES + 1;

/// The record's sinusoids as unit phasors. Within a block, sample `i` is the block's start phasor
/// times the precomputed `i`-th power of the per-sample rotation.
struct Oscillators {
    start_cos: [f64; OSCILLATORS],
    start_sin: [f64; OSCILLATORS],
    power_cos: [[f64; BLOCK]; OSCILLATORS],
    power_sin: [[f64; BLOCK]; OSCILLATORS],
    block_cos: [f64; OSCILLATORS],
    block_sin: [f64; OSCILLATORS],
}

impl Oscillators {
    fn new(hz: [f64; OSCILLATORS], fs: f64) -> Self {
        let mut power_cos = [[0.0; BLOCK]; OSCILLATORS];
        let mut power_sin = [[0.0; BLOCK]; OSCILLATORS];
        let mut block_cos = [0.0; OSCILLATORS];
        let mut block_sin = [0.0; OSCILLATORS];
        for k in 0..OSCILLATORS {
            let (step_sin, step_cos) = (TAU * hz[k] / fs).sin_cos();
            let (mut c, mut s) = (1.0f64, 0.0f64);
            for i in 0..BLOCK {
                power_cos[k][i] = c;
                power_sin[k][i] = s;
                (c, s) = (c * step_cos - s * step_sin, s * step_cos + c * step_sin);
            }
            (block_cos[k], block_sin[k]) = (c, s);
        }
        Oscillators {
            start_cos: [1.0; OSCILLATORS],
            start_sin: [0.0; OSCILLATORS],
            power_cos,
            power_sin,
            block_cos,
            block_sin,
        }
    }

    /// Writes the cosines and sines of the current block, then moves to the next block.
    fn next_block(
        &mut self,
        cos: &mut [[f32; BLOCK]; OSCILLATORS],
        sin: &mut [[f32; BLOCK]; OSCILLATORS],
    ) {
        for k in 0..OSCILLATORS {
            let (c0, s0) = (self.start_cos[k], self.start_sin[k]);
            for i in 0..BLOCK {
                let (pc, ps) = (self.power_cos[k][i], self.power_sin[k][i]);
                cos[k][i] = (c0 * pc - s0 * ps) as f32;
                sin[k][i] = (s0 * pc + c0 * ps) as f32;
            }
            let c = c0 * self.block_cos[k] - s0 * self.block_sin[k];
            let s = s0 * self.block_cos[k] + c0 * self.block_sin[k];
            let norm = 0.5 * (3.0 - (c * c + s * s));
            self.start_cos[k] = c * norm;
            self.start_sin[k] = s * norm;
        }
    }
}

/// One second-order band-pass section (RBJ audio-cookbook form, 0 dB peak gain) run on every
/// independent lead at once, state stored per lead so the loop vectorises across leads.
#[derive(Clone, Copy)]
struct BandPass {
    b0: f32,
    a1: f32,
    a2: f32,
    x1: [f32; LEADS],
    x2: [f32; LEADS],
    y1: [f32; LEADS],
    y2: [f32; LEADS],
}

impl BandPass {
    fn new(center_hz: f64, q: f64, fs: f64) -> Self {
        let w0 = TAU * center_hz / fs;
        let alpha = w0.sin() / (2.0 * q);
        let a0 = 1.0 + alpha;
        BandPass {
            b0: (alpha / a0) as f32,
            a1: (-2.0 * w0.cos() / a0) as f32,
            a2: ((1.0 - alpha) / a0) as f32,
            x1: [0.0; LEADS],
            x2: [0.0; LEADS],
            y1: [0.0; LEADS],
            y2: [0.0; LEADS],
        }
    }

    /// Filters one sample of every lead in place.
    #[inline(always)]
    fn step(&mut self, x: &mut [f32; LEADS]) {
        for (l, x) in x.iter_mut().enumerate() {
            let y = self.b0 * (*x - self.x2[l]) - self.a1 * self.y1[l] - self.a2 * self.y2[l];
            self.x2[l] = self.x1[l];
            self.x1[l] = *x;
            self.y2[l] = self.y1[l];
            self.y1[l] = y;
            *x = y;
        }
    }

    /// Output RMS for unit-variance white input (square root of the impulse response energy).
    fn noise_gain(&self) -> f32 {
        let mut probe = *self;
        let mut sample = [1.0f32; LEADS];
        probe.step(&mut sample);
        let mut energy = sample[0] * sample[0];
        for _ in 0..1024 {
            let mut sample = [0.0f32; LEADS];
            probe.step(&mut sample);
            energy += sample[0] * sample[0];
        }
        energy.sqrt()
    }
}

/// Adds every artefact to the independent-lead rows of `signal` (12 rows of `samples`, sampled at
/// `fs` Hz). `resp_hz` is the breathing rate, shared with the heart-rate variability.
pub(crate) fn add_noise(
    config: &NoiseConfig,
    resp_hz: f64,
    fs: f64,
    rng: &mut Rng,
    signal: &mut [f32],
    samples: usize,
) {
    let wander = config.baseline_wander_mv as f64 * rng.uniform(0.5, 1.5);
    let representable = (config.powerline_hz as f64) < fs / 2.0;
    let mains =
        config.powerline_mv as f64 * rng.uniform(0.5, 1.5) * if representable { 1.0 } else { 0.0 };
    let muscle = config.muscle_mv as f64 * rng.uniform(0.5, 1.5);
    let drift_hz = [rng.uniform(0.01, 0.1), rng.uniform(0.01, 0.1)];
    let tone_hz = [
        resp_hz,
        drift_hz[0],
        drift_hz[1],
        config.powerline_hz as f64,
    ];
    // Per tone and lead: amplitude * cos(phase) and amplitude * sin(phase).
    let mut cos_mix = [[0.0f32; LEADS]; TONES];
    let mut sin_mix = [[0.0f32; LEADS]; TONES];
    let mut emg_gain = [0.0f32; LEADS];
    for lead in 0..LEADS {
        let amplitudes = [
            wander * rng.uniform(0.3, 1.0),
            wander * rng.uniform(0.0, 0.7),
            wander * rng.uniform(0.0, 0.7),
            mains * rng.uniform(0.5, 1.0),
        ];
        for (tone, amplitude) in amplitudes.into_iter().enumerate() {
            let (sin, cos) = rng.uniform(0.0, TAU).sin_cos();
            cos_mix[tone][lead] = (amplitude * cos) as f32;
            sin_mix[tone][lead] = (amplitude * sin) as f32;
        }
        emg_gain[lead] = (muscle * rng.uniform(0.5, 1.0)) as f32;
    }
    let envelope_hz = rng.uniform(0.1, 0.5);
    let envelope_depth = rng.uniform(0.0, 0.9) as f32;
    let mut white = LaneRng::from_rng(rng);
    if wander == 0.0 && mains == 0.0 && muscle == 0.0 {
        return;
    }

    let mut filter = BandPass::new((0.3 * fs).min(80.0), 0.5, fs);
    let unit = 1.0 / filter.noise_gain();
    emg_gain = emg_gain.map(|g| g * unit);
    let mut oscillators = Oscillators::new(
        [tone_hz[0], tone_hz[1], tone_hz[2], tone_hz[3], envelope_hz],
        fs,
    );
    let mut rows = independent_rows(signal, samples);
    let mut cos = [[0.0f32; BLOCK]; OSCILLATORS];
    let mut sin = [[0.0f32; BLOCK]; OSCILLATORS];
    let mut emg = [[0.0f32; BLOCK]; LEADS];
    for start in (0..samples).step_by(BLOCK) {
        let len = BLOCK.min(samples - start);
        oscillators.next_block(&mut cos, &mut sin);
        if muscle > 0.0 {
            for i in 0..len {
                let mut sample = white.next_noise();
                filter.step(&mut sample);
                let burst = 1.0 + envelope_depth * sin[TONES][i];
                for lead in 0..LEADS {
                    emg[lead][i] = emg_gain[lead] * burst * sample[lead];
                }
            }
        }
        for (lead, row) in rows.iter_mut().enumerate() {
            let out = &mut row[start..start + len];
            for (i, out) in out.iter_mut().enumerate() {
                let mut value = emg[lead][i];
                for tone in 0..TONES {
                    value +=
                        cos_mix[tone][lead] * cos[tone][i] - sin_mix[tone][lead] * sin[tone][i];
                }
                *out += value;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Stream;
    use crate::tone::tone_amplitude;

    fn noise_only(config: &NoiseConfig, fs: f64, samples: usize) -> Vec<f32> {
        noise_of_record(config, fs, samples, 0)
    }

    fn noise_of_record(config: &NoiseConfig, fs: f64, samples: usize, index: u64) -> Vec<f32> {
        let mut signal = vec![0.0f32; 12 * samples];
        add_noise(
            config,
            0.25,
            fs,
            &mut Rng::for_record(9, index, Stream::Noise),
            &mut signal,
            samples,
        );
        signal
    }

    /// RMS of `x` over consecutive windows of `window` samples.
    fn window_rms(x: &[f32], window: usize) -> Vec<f64> {
        x.chunks_exact(window)
            .map(|c| (c.iter().map(|&v| (v * v) as f64).sum::<f64>() / window as f64).sqrt())
            .collect()
    }

    /// Pearson correlation of two equally long series.
    fn correlation(a: &[f64], b: &[f64]) -> f64 {
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (ma, mb) = (mean(a), mean(b));
        let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
        let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
        let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
        cov / (va * vb).sqrt()
    }

    #[test]
    fn powerline_appears_at_its_frequency_with_configured_level() {
        let config = NoiseConfig {
            powerline_mv: 0.1,
            powerline_hz: 60.0,
            ..NoiseConfig::none()
        };
        let signal = noise_only(&config, 500.0, 5000);
        let lead_ii = &signal[5000..10000];
        let at_60 = tone_amplitude(lead_ii, 60.0, 500.0);
        assert!((0.02..=0.15).contains(&at_60), "60 Hz amplitude {at_60}");
        assert!(tone_amplitude(lead_ii, 50.0, 500.0) < 0.01 * at_60 + 1e-4);
        assert!(
            signal[2 * 5000..6 * 5000].iter().all(|&v| v == 0.0),
            "derived rows untouched"
        );
    }

    #[test]
    fn muscle_noise_is_high_frequency_with_configured_rms() {
        let config = NoiseConfig {
            muscle_mv: 0.05,
            ..NoiseConfig::none()
        };
        let signal = noise_only(&config, 250.0, 25_000);
        let v1 = &signal[6 * 25_000..7 * 25_000];
        let rms = window_rms(v1, v1.len())[0];
        assert!((0.01..0.1).contains(&rms), "EMG rms {rms}");
        let slow: f64 = v1
            .chunks(25)
            .map(|c| c.iter().map(|&v| v as f64).sum::<f64>() / 25.0)
            .map(|m| m * m)
            .sum::<f64>()
            / (v1.len() / 25) as f64;
        assert!(
            slow.sqrt() < 0.2 * rms,
            "EMG leaks into low frequencies: {}",
            slow.sqrt()
        );
    }

    #[test]
    fn wander_is_slow_and_no_noise_means_no_change() {
        let config = NoiseConfig {
            baseline_wander_mv: 0.2,
            ..NoiseConfig::none()
        };
        let signal = noise_only(&config, 250.0, 2500);
        let lead_i = &signal[..2500];
        let peak = lead_i.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let max_step = lead_i
            .windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0.0f32, f32::max);
        assert!(peak > 0.02 && peak < 0.8, "wander peak {peak}");
        assert!(max_step < 0.005, "wander is not slow: step {max_step}");
        assert!(noise_only(&NoiseConfig::none(), 250.0, 2500)
            .iter()
            .all(|&v| v == 0.0));
    }

    /// Mains exactly at the Nyquist frequency is left out, as the config documents.
    #[test]
    fn powerline_at_nyquist_is_left_out() {
        let config = NoiseConfig {
            powerline_mv: 0.1,
            powerline_hz: 50.0,
            ..NoiseConfig::none()
        };
        for index in 0..5 {
            let signal = noise_of_record(&config, 100.0, 1000, index);
            assert!(signal.iter().all(|&v| v == 0.0), "record {index}");
        }
    }

    /// Muscle noise averages its configured RMS times 0.75 (the mean per-lead factor) times the
    /// burst envelope's RMS: over many records and leads, between 0.7 and 0.9 of the setting.
    #[test]
    fn muscle_noise_rms_is_calibrated_to_the_configured_level() {
        let config = NoiseConfig {
            muscle_mv: 0.05,
            ..NoiseConfig::none()
        };
        let (samples, mut total, mut count) = (5000, 0.0, 0);
        for index in 0..40 {
            let signal = noise_of_record(&config, 250.0, samples, index);
            for &row in &INDEPENDENT_LEADS {
                total += window_rms(&signal[row * samples..(row + 1) * samples], samples)[0];
                count += 1;
            }
        }
        let ratio = total / count as f64 / 0.05;
        assert!(
            (0.7..0.9).contains(&ratio),
            "mean EMG rms {ratio} x configured"
        );
    }

    /// Muscle noise comes in bursts common to every lead: the short-term EMG level of one lead
    /// follows that of another, though their samples are independent.
    #[test]
    fn muscle_bursts_are_shared_by_the_leads() {
        let config = NoiseConfig {
            muscle_mv: 0.05,
            ..NoiseConfig::none()
        };
        let samples = 30_000;
        let mut total = 0.0;
        for index in 0..10 {
            let signal = noise_of_record(&config, 250.0, samples, index);
            let level =
                |lead: usize| window_rms(&signal[lead * samples..(lead + 1) * samples], 250);
            total += correlation(&level(0), &level(11));
        }
        let mean = total / 10.0;
        assert!(
            mean > 0.5,
            "EMG envelopes of I and V6 correlate only {mean}"
        );
    }
}
