//! Recording artefacts added to the independent leads: baseline wander (a respiration-rate
//! sinusoid plus slow drift), powerline interference and burst-modulated band-limited muscle
//! (EMG) noise. Applied before the limb-lead derivation, so III, aVR, aVL and aVF inherit the
//! electrode noise of I and II exactly as in a real recording.

use std::f64::consts::TAU;

use crate::config::NoiseConfig;
use crate::fastmath::Phasor;
use crate::leads::INDEPENDENT_LEADS;
use crate::rng::Rng;

const LEADS: usize = INDEPENDENT_LEADS.len();

/// Sinusoidal components shared by the record: respiration, two drifts, mains.
const TONES: usize = 4;

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
    let envelope_step = Phasor::at(TAU * rng.uniform(0.1, 0.5) / fs);
    let envelope_depth = rng.uniform(0.0, 0.9) as f32;
    if wander == 0.0 && mains == 0.0 && muscle == 0.0 {
        return;
    }

    let mut filter = BandPass::new((0.3 * fs).min(80.0), 0.5, fs);
    let unit = 1.0 / filter.noise_gain();
    emg_gain = emg_gain.map(|g| g * unit);
    let tone_steps = tone_hz.map(|hz| Phasor::at(TAU * hz / fs));
    let mut tones = [Phasor::at(0.0); TONES];
    let mut envelope = Phasor::at(0.0);
    for t in 0..samples {
        let mut value = [0.0f32; LEADS];
        for tone in 0..TONES {
            let (cos, sin) = (tones[tone].cos as f32, tones[tone].sin as f32);
            for lead in 0..LEADS {
                value[lead] += cos_mix[tone][lead] * cos - sin_mix[tone][lead] * sin;
            }
        }
        if muscle > 0.0 {
            let mut emg = [0.0f32; LEADS];
            for e in &mut emg {
                *e = rng.fast_normal();
            }
            filter.step(&mut emg);
            let burst = 1.0 + envelope_depth * envelope.sin as f32;
            for lead in 0..LEADS {
                value[lead] += emg_gain[lead] * burst * emg[lead];
            }
        }
        for (lead, &row) in INDEPENDENT_LEADS.iter().enumerate() {
            signal[row * samples + t] += value[lead];
        }
        for (tone, step) in tones.iter_mut().zip(tone_steps) {
            tone.turn(step);
        }
        envelope.turn(envelope_step);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Stream;

    fn noise_only(config: &NoiseConfig, fs: f64, samples: usize) -> Vec<f32> {
        let mut signal = vec![0.0f32; 12 * samples];
        add_noise(
            config,
            0.25,
            fs,
            &mut Rng::for_record(9, 0, Stream::Noise),
            &mut signal,
            samples,
        );
        signal
    }

    /// Amplitude of the `hz` component of `x` (single-bin DFT).
    fn tone_amplitude(x: &[f32], hz: f64, fs: f64) -> f64 {
        let (mut re, mut im) = (0.0, 0.0);
        for (n, &v) in x.iter().enumerate() {
            let angle = TAU * hz * n as f64 / fs;
            re += v as f64 * angle.cos();
            im += v as f64 * angle.sin();
        }
        2.0 * (re * re + im * im).sqrt() / x.len() as f64
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
        let rms = (v1.iter().map(|v| (v * v) as f64).sum::<f64>() / v1.len() as f64).sqrt();
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
}
