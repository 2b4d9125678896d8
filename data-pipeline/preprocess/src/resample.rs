//! Anti-aliased rational resampling with a polyphase Kaiser-windowed sinc filter.
//!
//! The rate ratio out/in is written as L/M in lowest terms (rates that are not whole numbers are
//! approximated by a continued fraction with at most [`MAX_PHASES`] phases). Output sample k sits
//! exactly at input time t = k·M/L, so the output is aligned with the input (no group delay), and
//! has round(n·L/M) samples. Its value is `Σ_j x[j]·g(t - j)`, where g is a sinc low-pass with
//! cut-off `rolloff` × the lower of the two Nyquist frequencies, tapered by a Kaiser window that
//! spans `half_width_zeros` sample periods of the lower rate on each side. The L distinct
//! fractional delays are tabulated once ("phases"), each normalised to unit DC gain so constant
//! signals pass exactly. Beyond the ends the signal is extended by odd reflection
//! (`2·x[0] - x[i]`), which keeps level and slope continuous and avoids edge transients.
//!
//! Inputs must be finite; see [`crate::gaps`] for the missing-sample policy, and
//! [`Resampler::resample_mask`] to carry a missing mask across.

use crate::decimate::Decimator;
use crate::dot::{DotKernel, Portable, BLOCK};
use crate::error::PreprocessError;
use serde::{Deserialize, Serialize};

/// Most distinct fractional delays a resampler tabulates (bounds the numerator L).
pub const MAX_PHASES: u64 = 4096;

/// Resampling filter settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResamplerConfig {
    /// Kernel half-width in sample periods of the lower rate (longer = sharper transition).
    pub half_width_zeros: usize,
    /// Cut-off as a fraction of the lower Nyquist frequency.
    pub rolloff: f64,
    /// Kaiser window shape (8 gives about 80 dB stop-band attenuation).
    pub kaiser_beta: f64,
}

impl Default for ResamplerConfig {
    fn default() -> Self {
        Self {
            half_width_zeros: 32,
            rolloff: 0.9,
            kaiser_beta: 8.0,
        }
    }
}

impl ResamplerConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), PreprocessError> {
        let ok = self.half_width_zeros > 0
            && self.rolloff > 0.0
            && self.rolloff <= 1.0
            && self.kaiser_beta.is_finite()
            && self.kaiser_beta >= 0.0;
        if ok {
            Ok(())
        } else {
            Err(PreprocessError::InvalidConfig(format!(
                "resampler needs half_width_zeros > 0, 0 < rolloff <= 1, kaiser_beta >= 0, got {self:?}"
            )))
        }
    }
}

/// A resampler for one pair of rates; build once, apply to many signals.
#[derive(Debug, Clone)]
pub struct Resampler {
    up: u64,
    down: u64,
    /// Input offsets reach from -half around floor(t) (before trimming zero taps).
    half: usize,
    /// One entry per fractional delay p / up.
    phases: Vec<Phase>,
    /// The phases' coefficients, back to back (only the first half of a symmetric row).
    coeffs: Vec<f64>,
    /// The fast path for whole-number decimation (L = 1 with a symmetric kernel).
    decimator: Option<Decimator>,
}

/// The non-zero span of one phase's kernel row.
#[derive(Debug, Clone, Copy)]
struct Phase {
    /// First non-zero tap, counted from input offset -half.
    offset: usize,
    /// Non-zero taps.
    len: usize,
    /// Where the row starts in `coeffs`.
    coeff: usize,
    /// Coefficients stored for the row, zero-padded to a multiple of [`BLOCK`].
    stored: usize,
    /// The row is a palindrome and stored folded: tap i multiplies `x[i] + x[len - 1 - i]` (the
    /// middle tap of an odd row is halved, as it meets its own sample twice).
    folded: bool,
}

impl Resampler {
    /// Designs the resampler from `in_rate` to `out_rate` (Hz).
    pub fn new(
        in_rate: f64,
        out_rate: f64,
        config: &ResamplerConfig,
    ) -> Result<Self, PreprocessError> {
        for rate in [in_rate, out_rate] {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(PreprocessError::InvalidSamplingRate(rate));
            }
        }
        config.validate()?;
        let (up, down) = rational_ratio(out_rate / in_rate, in_rate, out_rate);
        let narrow = (up as f64 / down as f64).min(1.0);
        let cutoff = config.rolloff * narrow;
        let reach = config.half_width_zeros as f64 / narrow;
        let half = reach.ceil() as usize;
        let taps = 2 * half + 2;
        let beta_norm = bessel_i0(config.kaiser_beta);
        let mut table = vec![0.0; up as usize * taps];
        for (phase, row) in table.chunks_exact_mut(taps).enumerate() {
            let frac = phase as f64 / up as f64;
            for (i, tap) in row.iter_mut().enumerate() {
                let tau = (i as f64 - half as f64) - frac;
                *tap = if tau.abs() < reach {
                    let r = tau / reach;
                    let window = bessel_i0(config.kaiser_beta * (1.0 - r * r).sqrt()) / beta_norm;
                    cutoff * sinc(cutoff * tau) * window
                } else {
                    0.0
                };
            }
            let sum: f64 = row.iter().sum();
            row.iter_mut().for_each(|t| *t /= sum);
        }
        let decimator = (up == 1)
            .then(|| {
                let offset = table.iter().position(|&t| t != 0.0).unwrap_or(0);
                let end = table
                    .iter()
                    .rposition(|&t| t != 0.0)
                    .map_or(offset, |i| i + 1);
                let live = &table[offset..end];
                let centred = offset + live.len() / 2 == half && live.len() % 2 == 1;
                (centred && live.iter().eq(live.iter().rev()))
                    .then(|| Decimator::new(down as usize, live))
            })
            .flatten();
        let mut phases = Vec::with_capacity(up as usize);
        let mut coeffs = Vec::new();
        for row in table.chunks_exact(taps) {
            let offset = row.iter().position(|&t| t != 0.0).unwrap_or(0);
            let end = row
                .iter()
                .rposition(|&t| t != 0.0)
                .map_or(offset, |i| i + 1);
            let live = &row[offset..end];
            let folded = live.iter().eq(live.iter().rev());
            let coeff = coeffs.len();
            if folded {
                coeffs.extend_from_slice(&live[..live.len() / 2]);
                if live.len() % 2 == 1 {
                    coeffs.push(live[live.len() / 2] / 2.0);
                }
            } else {
                coeffs.extend_from_slice(live);
            }
            coeffs.resize(coeff + (coeffs.len() - coeff).next_multiple_of(BLOCK), 0.0);
            phases.push(Phase {
                offset,
                len: live.len(),
                coeff,
                stored: coeffs.len() - coeff,
                folded,
            });
        }
        Ok(Self {
            up,
            down,
            half,
            phases,
            coeffs,
            decimator,
        })
    }

    /// The reduced ratio (L, M) with out/in = L/M.
    pub fn ratio(&self) -> (u64, u64) {
        (self.up, self.down)
    }

    /// Output length for `n` input samples: round(n·L/M), at least 1 when n > 0.
    pub fn output_len(&self, n: usize) -> usize {
        let exact = (2 * n as u128 * self.up as u128 + self.down as u128) / (2 * self.down as u128);
        (exact as usize).max(usize::from(n > 0))
    }

    /// Resamples finite samples `x` into `out` (cleared first).
    pub fn resample_into(&self, x: &[f64], out: &mut Vec<f64>) {
        out.clear();
        if self.up == self.down || x.is_empty() {
            out.extend_from_slice(x);
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            unsafe { self.resample_avx2(x, out) };
            return;
        }
        self.resample_with::<Portable>(x, out);
    }

    /// The resampling loop compiled for AVX2 with the AVX2 dot kernels (bitwise identical to the
    /// portable build; see [`crate::dot`]).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn resample_avx2(&self, x: &[f64], out: &mut Vec<f64>) {
        self.resample_with::<crate::dot::Avx2>(x, out);
    }

    /// The resampling loop: walks the output with an incremental (base, phase) counter and takes
    /// one dot product per output sample over the phase's contiguous non-zero taps. A folded
    /// (symmetric) row pairs x[start + i] with x[start + len - 1 - i], read forwards from a
    /// reversed copy of the padded input.
    #[inline(always)]
    fn resample_with<K: DotKernel>(&self, x: &[f64], out: &mut Vec<f64>) {
        let n_out = self.output_len(x.len());
        let pad = self.half + 2 + BLOCK;
        let padded = odd_extend(x, pad);
        if let Some(decimator) = &self.decimator {
            decimator.run(&padded, pad, n_out, out);
            return;
        }
        let reversed: Vec<f64> = if self.phases.iter().any(|p| p.folded) {
            padded.iter().rev().copied().collect()
        } else {
            Vec::new()
        };
        let n = padded.len();
        let (up, step, carry) = (self.up, (self.down / self.up) as usize, self.down % self.up);
        let (mut base, mut phase) = (pad - self.half, 0u64);
        out.reserve(n_out);
        for _ in 0..n_out {
            let p = &self.phases[phase as usize];
            let start = base + p.offset;
            let h = &self.coeffs[p.coeff..p.coeff + p.stored];
            let value = if p.folded {
                let mirror = n - start - p.len;
                K::dot_folded(
                    h,
                    &padded[start..start + p.stored],
                    &reversed[mirror..mirror + p.stored],
                )
            } else {
                K::dot(h, &padded[start..start + p.stored])
            };
            out.push(value);
            base += step;
            phase += carry;
            if phase >= up {
                phase -= up;
                base += 1;
            }
        }
    }

    /// Resamples finite samples `x` into a new vector.
    pub fn resample(&self, x: &[f64]) -> Vec<f64> {
        let mut out = Vec::new();
        self.resample_into(x, &mut out);
        out
    }

    /// Carries a missing mask across: output sample k (at input time t = k·M/L) is missing when any
    /// input sample within half an output-or-input period (the longer) of t is missing.
    pub fn resample_mask(&self, mask: &[bool]) -> Vec<bool> {
        let n_out = self.output_len(mask.len());
        let mut prefix = Vec::with_capacity(mask.len() + 1);
        prefix.push(0u32);
        for &m in mask {
            prefix.push(prefix.last().copied().unwrap_or(0) + u32::from(m));
        }
        let (up, span) = (self.up as i128, self.up.max(self.down) as i128);
        let last = mask.len() as i128 - 1;
        (0..n_out as i128)
            .map(|k| {
                let twice_num = 2 * k * self.down as i128;
                let lo = (twice_num - span + 2 * up - 1).div_euclid(2 * up);
                let hi = (twice_num + span).div_euclid(2 * up);
                let (lo, hi) = (lo.clamp(0, last), hi.clamp(0, last));
                prefix[hi as usize + 1] > prefix[lo as usize]
            })
            .collect()
    }
}

/// Reduces out/in to L/M: exact for whole-number rates, else the last continued-fraction
/// convergent with L <= [`MAX_PHASES`].
fn rational_ratio(ratio: f64, in_rate: f64, out_rate: f64) -> (u64, u64) {
    let whole = |r: f64| (r - r.round()).abs() < 1e-9 && r.round() < 1e12;
    if whole(in_rate) && whole(out_rate) {
        let (a, b) = (out_rate.round() as u64, in_rate.round() as u64);
        let g = gcd(a, b);
        if a / g <= MAX_PHASES {
            return (a / g, b / g);
        }
    }
    let (mut p0, mut q0, mut p1, mut q1) = (0u64, 1u64, 1u64, 0u64);
    let mut rest = ratio;
    let mut best = (ratio.round().max(1.0) as u64, 1u64);
    for _ in 0..64 {
        let a = rest.floor();
        let (p2, q2) = (a as u64 * p1 + p0, a as u64 * q1 + q0);
        if p2 > MAX_PHASES {
            break;
        }
        if p2 > 0 {
            best = (p2, q2);
            if ((p2 as f64 / q2 as f64) / ratio - 1.0).abs() < 1e-12 {
                break;
            }
        }
        let frac = rest - a;
        if frac < 1e-12 {
            break;
        }
        (p0, q0, p1, q1) = (p1, q1, p2, q2);
        rest = 1.0 / frac;
    }
    best
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// `x` with `pad` samples of odd reflection on each side (clamped for very short inputs).
fn odd_extend(x: &[f64], pad: usize) -> Vec<f64> {
    let n = x.len();
    let (first, last) = (x[0], x[n - 1]);
    let mut out = Vec::with_capacity(n + 2 * pad);
    out.extend((1..=pad).rev().map(|i| 2.0 * first - x[i.min(n - 1)]));
    out.extend_from_slice(x);
    out.extend((1..=pad).map(|i| 2.0 * last - x[(n - 1).saturating_sub(i)]));
    out
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let px = std::f64::consts::PI * x;
        px.sin() / px
    }
}

/// Modified Bessel function of the first kind, order 0 (power series).
fn bessel_i0(x: f64) -> f64 {
    let quarter_sq = x * x / 4.0;
    let (mut term, mut sum) = (1.0, 1.0);
    for k in 1..200 {
        term *= quarter_sq / (k as f64 * k as f64);
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}
