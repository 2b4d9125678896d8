//! The fast path for whole-number decimation (out/in = 1/M, e.g. 500 -> 250 Hz): the symmetric
//! kernel `h[-K..=K]` is applied as `out[k] = h[0]·x[c] + Σ_{j=1..K} h[j]·(x[c - j] + x[c + j])`
//! at `c = k·M`. Splitting the padded input into its M polyphase components makes `x[c ± j]` a
//! contiguous run over k for every tap, so blocks of consecutive outputs accumulate side by side
//! (SIMD lanes) with no horizontal sums. Each output's sum runs in the same fixed order whatever
//! the block width or instruction set, so results are bitwise reproducible.

/// Consecutive outputs computed together.
const WIDTH: usize = 16;

/// A symmetric decimation kernel.
#[derive(Debug, Clone)]
pub(crate) struct Decimator {
    /// The decimation factor M.
    down: usize,
    /// `h[0]` (centre), `h[1]`, ..., `h[K]`.
    half_kernel: Vec<f64>,
}

/// One folded tap, resolved for one padded signal: weight and the polyphase offsets of x[c + j]
/// and x[c - j] for output 0.
#[derive(Debug, Clone, Copy)]
struct Tap {
    weight: f64,
    plus: usize,
    minus: usize,
}

impl Decimator {
    /// Wraps a palindromic kernel row of odd length for decimation by `down`.
    pub(crate) fn new(down: usize, row: &[f64]) -> Self {
        let k = row.len() / 2;
        Self {
            down,
            half_kernel: row[k..].to_vec(),
        }
    }

    /// Appends `n_out` outputs to `out`; output k is centred on `padded[pad + k·down]`, and
    /// `padded` must reach K samples past the last centre (`pad >= K`).
    pub(crate) fn run(&self, padded: &[f64], pad: usize, n_out: usize, out: &mut Vec<f64>) {
        let m = self.down;
        let stride = padded.len().div_ceil(m);
        let mut phases = vec![0.0; m * stride];
        for (i, chunk) in padded.chunks(m).enumerate() {
            for (r, &v) in chunk.iter().enumerate() {
                phases[r * stride + i] = v;
            }
        }
        let at = |i: usize| (i % m) * stride + i / m;
        let centre = at(pad);
        let taps: Vec<Tap> = self.half_kernel[1..]
            .iter()
            .enumerate()
            .map(|(j, &weight)| Tap {
                weight,
                plus: at(pad + j + 1),
                minus: at(pad - j - 1),
            })
            .collect();
        let h0 = self.half_kernel[0];
        out.reserve(n_out);
        let mut k = 0;
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            while k + WIDTH <= n_out {
                // SAFETY: the CPU supports AVX2, checked just above.
                out.extend(unsafe { avx2::block(&phases, h0, centre, &taps, k) });
                k += WIDTH;
            }
        }
        while k + WIDTH <= n_out {
            out.extend(block::<WIDTH>(&phases, h0, centre, &taps, k));
            k += WIDTH;
        }
        for k in k..n_out {
            out.extend(block::<1>(&phases, h0, centre, &taps, k));
        }
    }
}

/// Outputs k0..k0 + W, each summed centre first, then taps in order.
#[inline(always)]
fn block<const W: usize>(
    phases: &[f64],
    h0: f64,
    centre: usize,
    taps: &[Tap],
    k0: usize,
) -> [f64; W] {
    let mid = &phases[centre + k0..centre + k0 + W];
    let mut acc: [f64; W] = std::array::from_fn(|l| h0 * mid[l]);
    for tap in taps {
        let a = &phases[tap.plus + k0..tap.plus + k0 + W];
        let b = &phases[tap.minus + k0..tap.minus + k0 + W];
        for l in 0..W {
            acc[l] += tap.weight * (a[l] + b[l]);
        }
    }
    acc
}

/// [`block`] of [`WIDTH`] outputs with AVX2 intrinsics: the same operations in the same order per
/// output (no FMA), so bitwise the same results.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Tap, WIDTH};
    use crate::dot::avx2::load;
    use std::arch::x86_64::{
        __m256d, _mm256_add_pd, _mm256_mul_pd, _mm256_set1_pd, _mm256_storeu_pd,
    };

    /// Stores four lanes into `out[at..at + 4]`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn store(out: &mut [f64], at: usize, lanes: __m256d) {
        let dest = &mut out[at..at + 4];
        // SAFETY: `dest` has room for the four doubles written.
        unsafe { _mm256_storeu_pd(dest.as_mut_ptr(), lanes) };
    }

    /// `acc + weight · (a + b)` on four lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn step(acc: __m256d, weight: __m256d, a: __m256d, b: __m256d) -> __m256d {
        _mm256_add_pd(acc, _mm256_mul_pd(weight, _mm256_add_pd(a, b)))
    }

    #[inline(never)]
    #[target_feature(enable = "avx2")]
    pub(super) fn block(
        phases: &[f64],
        h0: f64,
        centre: usize,
        taps: &[Tap],
        k0: usize,
    ) -> [f64; WIDTH] {
        let mid = &phases[centre + k0..centre + k0 + WIDTH];
        let h = _mm256_set1_pd(h0);
        let mut acc0 = _mm256_mul_pd(h, load(mid, 0));
        let mut acc1 = _mm256_mul_pd(h, load(mid, 4));
        let mut acc2 = _mm256_mul_pd(h, load(mid, 8));
        let mut acc3 = _mm256_mul_pd(h, load(mid, 12));
        for tap in taps {
            let a = &phases[tap.plus + k0..tap.plus + k0 + WIDTH];
            let b = &phases[tap.minus + k0..tap.minus + k0 + WIDTH];
            let w = _mm256_set1_pd(tap.weight);
            acc0 = step(acc0, w, load(a, 0), load(b, 0));
            acc1 = step(acc1, w, load(a, 4), load(b, 4));
            acc2 = step(acc2, w, load(a, 8), load(b, 8));
            acc3 = step(acc3, w, load(a, 12), load(b, 12));
        }
        let mut out = [0.0; WIDTH];
        store(&mut out, 0, acc0);
        store(&mut out, 4, acc1);
        store(&mut out, 8, acc2);
        store(&mut out, 12, acc3);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_block_is_bitwise_identical_to_portable() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            println!("skipping: this CPU has no AVX2");
            return;
        }
        let phases: Vec<f64> = (0..400)
            .map(|i| ((i * 37 % 101) as f64 - 50.0) / 7.0)
            .collect();
        let taps: Vec<Tap> = (0..20)
            .map(|j| Tap {
                weight: 1.0 / (j as f64 + 1.5),
                plus: 200 + j,
                minus: 100 - j,
            })
            .collect();
        for k0 in [0, 3, 50] {
            // SAFETY: AVX2 support was checked above.
            let fast = unsafe { avx2::block(&phases, 0.3, 150, &taps, k0) };
            let plain = block::<WIDTH>(&phases, 0.3, 150, &taps, k0);
            assert!(fast
                .iter()
                .zip(&plain)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
            assert!(plain.iter().any(|v| *v != 0.0));
        }
    }
}
