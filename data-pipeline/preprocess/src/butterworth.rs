//! Digital Butterworth filter design as second-order sections, the same construction as
//! `scipy.signal.butter(..., output='sos')`: analogue prototype poles, frequency transform
//! (low-pass -> band-pass or high-pass) at pre-warped edges, bilinear transform, then sections.
//!
//! A band-pass of order N has 2N poles (N sections); a high-pass of order N has N poles.

use crate::error::PreprocessError;
use crate::sos::Section;
use num_complex::Complex64;
use std::f64::consts::PI;

/// Band-pass Butterworth of order `order` between `low_hz` and `high_hz` at sampling rate `fs`.
pub fn butter_bandpass(
    order: usize,
    low_hz: f64,
    high_hz: f64,
    fs: f64,
) -> Result<Vec<Section>, PreprocessError> {
    check_edges(order, &[low_hz, high_hz], fs)?;
    if low_hz >= high_hz {
        return Err(PreprocessError::InvalidConfig(format!(
            "band-pass needs low < high, got {low_hz} Hz and {high_hz} Hz"
        )));
    }
    let (lo, hi) = (prewarp(low_hz, fs), prewarp(high_hz, fs));
    let (bandwidth, centre) = (hi - lo, (lo * hi).sqrt());
    let poles: Vec<Complex64> = analog_prototype(order)
        .into_iter()
        .flat_map(|p| {
            let p = p * (bandwidth / 2.0);
            let root = (p * p - centre * centre).sqrt();
            [p + root, p - root]
        })
        .collect();
    let gain = bandwidth.powi(order as i32);
    let mut zeros = vec![Complex64::new(1.0, 0.0); order];
    zeros.extend(vec![Complex64::new(-1.0, 0.0); order]);
    let analog_zeros = vec![Complex64::new(0.0, 0.0); order];
    Ok(bilinear_sections(&analog_zeros, &poles, gain, &zeros))
}

/// High-pass Butterworth of order `order` with cut-off `cut_hz` at sampling rate `fs`.
pub fn butter_highpass(
    order: usize,
    cut_hz: f64,
    fs: f64,
) -> Result<Vec<Section>, PreprocessError> {
    check_edges(order, &[cut_hz], fs)?;
    let warped = prewarp(cut_hz, fs);
    let prototype = analog_prototype(order);
    let poles: Vec<Complex64> = prototype.iter().map(|p| warped / p).collect();
    let gain = (1.0 / prototype.iter().map(|p| -p).product::<Complex64>()).re;
    let zeros = vec![Complex64::new(1.0, 0.0); order];
    let analog_zeros = vec![Complex64::new(0.0, 0.0); order];
    Ok(bilinear_sections(&analog_zeros, &poles, gain, &zeros))
}

fn check_edges(order: usize, edges: &[f64], fs: f64) -> Result<(), PreprocessError> {
    if !(fs.is_finite() && fs > 0.0) {
        return Err(PreprocessError::InvalidSamplingRate(fs));
    }
    if order == 0 || order > 16 {
        return Err(PreprocessError::InvalidConfig(format!(
            "Butterworth order must be 1..=16, got {order}"
        )));
    }
    match edges.iter().find(|&&f| !(f > 0.0 && f < fs / 2.0)) {
        Some(f) => Err(PreprocessError::InvalidConfig(format!(
            "filter edge {f} Hz must lie strictly between 0 and Nyquist {} Hz",
            fs / 2.0
        ))),
        None => Ok(()),
    }
}

/// Analogue angular frequency that the bilinear transform (with 2·fs = 4 after normalising the
/// rate to 2) maps onto `hz`.
fn prewarp(hz: f64, fs: f64) -> f64 {
    4.0 * (PI * hz / fs).tan()
}

/// Poles of the unit-cut-off analogue Butterworth low-pass of order n (left half-plane).
fn analog_prototype(n: usize) -> Vec<Complex64> {
    (0..n)
        .map(|k| {
            let m = 2.0 * k as f64 - n as f64 + 1.0;
            -Complex64::from_polar(1.0, PI * m / (2.0 * n as f64))
        })
        .collect()
}

/// Bilinear transform (2·fs = 4) of an analogue (zeros, poles, gain), grouped into sections with
/// the given digital zeros (the images of the analogue zeros plus those at Nyquist).
fn bilinear_sections(
    analog_zeros: &[Complex64],
    analog_poles: &[Complex64],
    gain: f64,
    digital_zeros: &[Complex64],
) -> Vec<Section> {
    let four = Complex64::new(4.0, 0.0);
    let poles: Vec<Complex64> = analog_poles
        .iter()
        .map(|p| (four + p) / (four - p))
        .collect();
    let num: Complex64 = analog_zeros.iter().map(|z| four - z).product();
    let den: Complex64 = analog_poles.iter().map(|p| four - p).product();
    let digital_gain = gain * (num / den).re;
    let pole_pairs = pair_conjugates(&poles);
    let zero_pairs = pair_conjugates(digital_zeros);
    let mut sections: Vec<Section> = pole_pairs
        .iter()
        .zip(zero_pairs.iter().map(Some).chain(std::iter::repeat(None)))
        .map(|(p, z)| Section {
            b: z.map_or([1.0, 0.0, 0.0], |z| quadratic(z)),
            a: quadratic(p),
        })
        .collect();
    if let Some(first) = sections.first_mut() {
        first.b.iter_mut().for_each(|b| *b *= digital_gain);
    }
    sections
}

/// Groups roots into pairs: each complex root with its conjugate, real roots two by two (a lone
/// real root last, paired with nothing).
fn pair_conjugates(roots: &[Complex64]) -> Vec<Vec<Complex64>> {
    let is_real = |r: &Complex64| r.im.abs() <= 1e-12 * r.norm().max(1.0);
    let mut pairs: Vec<Vec<Complex64>> = roots
        .iter()
        .filter(|r| !is_real(r) && r.im > 0.0)
        .map(|r| vec![*r, r.conj()])
        .collect();
    let mut reals: Vec<f64> = roots.iter().filter(|r| is_real(r)).map(|r| r.re).collect();
    reals.sort_by(|a, b| a.total_cmp(b));
    pairs.extend(
        reals
            .chunks(2)
            .map(|c| c.iter().map(|&r| Complex64::new(r, 0.0)).collect()),
    );
    pairs
}

/// Coefficients [1, -(r1 + r2), r1·r2] of the monic polynomial with the given one or two roots.
fn quadratic(roots: &[Complex64]) -> [f64; 3] {
    match roots {
        [r] => [1.0, -r.re, 0.0],
        [r1, r2] => [1.0, -(r1 + r2).re, (r1 * r2).re],
        _ => [1.0, 0.0, 0.0],
    }
}
