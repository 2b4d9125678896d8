//! Atrial fibrillatory f-waves: a 4-9 Hz quasi-periodic atrial dipole with wandering frequency and
//! amplitude and a second harmonic, pointing mostly toward V1 and the inferior leads.

use std::f64::consts::TAU;

use crate::fastmath::Phasor;
use crate::rng::Rng;

/// The per-record f-wave parameters.
#[derive(Clone, Debug)]
pub(crate) struct FibrillatoryWaves {
    direction: [f32; 3],
    amplitude_mv: f64,
    base_hz: f64,
    frequency_swing_hz: f64,
    frequency_rate_hz: f64,
    frequency_phase: f64,
    amplitude_depth: f64,
    amplitude_rate_hz: f64,
    amplitude_phase: f64,
    harmonic: f64,
    harmonic_phase: f64,
    start_phase: f64,
}

impl FibrillatoryWaves {
    pub(crate) fn draw(rng: &mut Rng) -> Self {
        let raw = [
            -0.3 + 0.1 * rng.normal() as f32,
            0.6 + 0.1 * rng.normal() as f32,
            -0.8 + 0.1 * rng.normal() as f32,
        ];
        let norm = raw.iter().map(|v| v * v).sum::<f32>().sqrt();
        FibrillatoryWaves {
            direction: raw.map(|v| v / norm),
            amplitude_mv: rng.uniform(0.04, 0.12),
            base_hz: rng.uniform(4.5, 8.0),
            frequency_swing_hz: rng.uniform(0.3, 1.0),
            frequency_rate_hz: rng.uniform(0.05, 0.3),
            frequency_phase: rng.uniform(0.0, TAU),
            amplitude_depth: rng.uniform(0.2, 0.6),
            amplitude_rate_hz: rng.uniform(0.1, 0.5),
            amplitude_phase: rng.uniform(0.0, TAU),
            harmonic: rng.uniform(0.15, 0.45),
            harmonic_phase: rng.uniform(0.0, TAU),
            start_phase: rng.uniform(0.0, TAU),
        }
    }

    /// Adds the f-waves to the heart-vector traces sampled at `fs` Hz.
    pub(crate) fn render(&self, fs: f64, xyz: [&mut [f32]; 3]) {
        let [x, y, z] = xyz;
        let [dx, dy, dz] = self.direction;
        let mut atrial = Phasor::at(self.start_phase);
        let mut frequency_wobble = Phasor::at(self.frequency_phase);
        let frequency_step = Phasor::at(TAU * self.frequency_rate_hz / fs);
        let mut amplitude_wobble = Phasor::at(self.amplitude_phase);
        let amplitude_step = Phasor::at(TAU * self.amplitude_rate_hz / fs);
        let harmonic = Phasor::at(self.harmonic_phase);
        for ((x, y), z) in x.iter_mut().zip(y.iter_mut()).zip(z.iter_mut()) {
            let hz = self.base_hz + self.frequency_swing_hz * frequency_wobble.sin;
            let envelope = self.amplitude_mv * (1.0 + self.amplitude_depth * amplitude_wobble.sin);
            // sin(2 phase + harmonic_phase) from the phasor squared.
            let (c, s) = (atrial.cos, atrial.sin);
            let second = 2.0 * s * c * harmonic.cos + (c * c - s * s) * harmonic.sin;
            let value = (envelope * (s + self.harmonic * second)) as f32;
            *x += dx * value;
            *y += dy * value;
            *z += dz * value;
            atrial.rotate(TAU * hz / fs);
            frequency_wobble.turn(frequency_step);
            amplitude_wobble.turn(amplitude_step);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Stream;
    use crate::tone::tone_amplitude;

    #[test]
    fn f_waves_oscillate_at_atrial_rates_with_bounded_amplitude() {
        let fs = 250.0;
        for index in 0..10 {
            let waves =
                FibrillatoryWaves::draw(&mut Rng::for_record(1, index, Stream::Fibrillation));
            let (mut x, mut y, mut z) =
                (vec![0.0f32; 2500], vec![0.0f32; 2500], vec![0.0f32; 2500]);
            waves.render(fs, [&mut x, &mut y, &mut z]);
            let crossings = y.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
            let hz = crossings as f64 / 10.0;
            assert!((3.0..10.0).contains(&hz), "f-wave rate {hz} Hz");
            let peak = y.iter().chain(&z).fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(peak > 0.01 && peak < 0.3, "f-wave peak {peak} mV");
        }
    }

    /// With steady rate and envelope, the f-wave is its fundamental at `base_hz` with the drawn
    /// amplitude plus a second harmonic of `harmonic` times that amplitude.
    #[test]
    fn f_waves_carry_a_second_harmonic_of_the_drawn_size() {
        let waves = FibrillatoryWaves {
            direction: [0.0, 1.0, 0.0],
            amplitude_mv: 0.1,
            base_hz: 6.0,
            frequency_swing_hz: 0.0,
            frequency_rate_hz: 0.1,
            frequency_phase: 0.0,
            amplitude_depth: 0.0,
            amplitude_rate_hz: 0.1,
            amplitude_phase: 0.0,
            harmonic: 0.3,
            harmonic_phase: 1.0,
            start_phase: 0.5,
        };
        let fs = 250.0;
        let (mut x, mut y, mut z) = (vec![0.0f32; 2500], vec![0.0f32; 2500], vec![0.0f32; 2500]);
        waves.render(fs, [&mut x, &mut y, &mut z]);
        let fundamental = tone_amplitude(&y, 6.0, fs);
        let second = tone_amplitude(&y, 12.0, fs);
        assert!(
            (fundamental - 0.1).abs() < 0.002,
            "fundamental {fundamental} mV"
        );
        assert!((second - 0.03).abs() < 0.002, "second harmonic {second} mV");
        assert!(x.iter().chain(&z).all(|&v| v == 0.0));
    }
}
