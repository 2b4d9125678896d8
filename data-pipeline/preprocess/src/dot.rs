//! Dot-product kernels for the resampler's polyphase rows: a portable build and an AVX2 build that
//! perform the same additions and multiplications in the same order (no FMA), so both give bitwise
//! identical results. Rows are whole blocks of [`BLOCK`] lanes, one accumulator per lane.

/// Lanes per block; rows are zero-padded to whole blocks.
pub(crate) const BLOCK: usize = 8;

/// The two kernels a resampling loop needs.
pub(crate) trait DotKernel {
    /// `Σ h[i]·x[i]` over whole blocks.
    fn dot(h: &[f64], x: &[f64]) -> f64;
    /// `Σ h[i]·(a[i] + b[i])` over whole blocks.
    fn dot_folded(h: &[f64], a: &[f64], b: &[f64]) -> f64;
}

/// Plain Rust; the compiler vectorises what it can.
pub(crate) struct Portable;

impl DotKernel for Portable {
    #[inline(always)]
    fn dot(h: &[f64], x: &[f64]) -> f64 {
        let mut acc = [0.0f64; BLOCK];
        for (h, x) in h.chunks_exact(BLOCK).zip(x.chunks_exact(BLOCK)) {
            for i in 0..BLOCK {
                acc[i] += h[i] * x[i];
            }
        }
        reduce(acc)
    }

    #[inline(always)]
    fn dot_folded(h: &[f64], a: &[f64], b: &[f64]) -> f64 {
        let mut acc = [0.0f64; BLOCK];
        let blocks = h.chunks_exact(BLOCK).zip(a.chunks_exact(BLOCK));
        for ((h, x), y) in blocks.zip(b.chunks_exact(BLOCK)) {
            for i in 0..BLOCK {
                acc[i] += h[i] * (x[i] + y[i]);
            }
        }
        reduce(acc)
    }
}

/// Sums the lane accumulators: upper half onto lower half, then pairwise.
#[inline(always)]
fn reduce(acc: [f64; BLOCK]) -> f64 {
    let s: [f64; 4] = std::array::from_fn(|i| acc[i] + acc[i + 4]);
    (s[0] + s[1]) + (s[2] + s[3])
}

/// AVX2 intrinsics; use only where the CPU has AVX2 and from code compiled with it enabled.
#[cfg(target_arch = "x86_64")]
pub(crate) struct Avx2;

#[cfg(target_arch = "x86_64")]
impl DotKernel for Avx2 {
    #[inline(always)]
    fn dot(h: &[f64], x: &[f64]) -> f64 {
        // SAFETY: `Avx2` is only used after checking that the CPU supports AVX2.
        unsafe { avx2::dot(h, x) }
    }

    #[inline(always)]
    fn dot_folded(h: &[f64], a: &[f64], b: &[f64]) -> f64 {
        // SAFETY: as above.
        unsafe { avx2::dot_folded(h, a, b) }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use super::BLOCK;
    use std::arch::x86_64::{
        __m256d, _mm256_add_pd, _mm256_loadu_pd, _mm256_mul_pd, _mm256_setzero_pd, _mm256_storeu_pd,
    };

    /// Loads `x[at..at + 4]` (also used by the decimator's kernel).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn load(x: &[f64], at: usize) -> __m256d {
        let lanes = &x[at..at + 4];
        // SAFETY: `lanes` holds exactly the four doubles read.
        unsafe { _mm256_loadu_pd(lanes.as_ptr()) }
    }

    /// The portable reduction on the two 4-lane accumulators (lanes 0-3 and 4-7).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn reduce(low: __m256d, high: __m256d) -> f64 {
        let mut s = [0.0f64; 4];
        // SAFETY: `s` has room for the four doubles written.
        unsafe { _mm256_storeu_pd(s.as_mut_ptr(), _mm256_add_pd(low, high)) };
        (s[0] + s[1]) + (s[2] + s[3])
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn dot(h: &[f64], x: &[f64]) -> f64 {
        let (mut low, mut high) = (_mm256_setzero_pd(), _mm256_setzero_pd());
        for (h, x) in h.chunks_exact(BLOCK).zip(x.chunks_exact(BLOCK)) {
            low = _mm256_add_pd(low, _mm256_mul_pd(load(h, 0), load(x, 0)));
            high = _mm256_add_pd(high, _mm256_mul_pd(load(h, 4), load(x, 4)));
        }
        reduce(low, high)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn dot_folded(h: &[f64], a: &[f64], b: &[f64]) -> f64 {
        let (mut low, mut high) = (_mm256_setzero_pd(), _mm256_setzero_pd());
        let blocks = h.chunks_exact(BLOCK).zip(a.chunks_exact(BLOCK));
        for ((h, x), y) in blocks.zip(b.chunks_exact(BLOCK)) {
            let pair_low = _mm256_add_pd(load(x, 0), load(y, 0));
            let pair_high = _mm256_add_pd(load(x, 4), load(y, 4));
            low = _mm256_add_pd(low, _mm256_mul_pd(load(h, 0), pair_low));
            high = _mm256_add_pd(high, _mm256_mul_pd(load(h, 4), pair_high));
        }
        reduce(low, high)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values of mixed sign and magnitude.
    fn values(n: usize, seed: u64) -> Vec<f64> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 11) as f64 / (1u64 << 53) as f64 - 0.5)
                    * 10f64.powi((state % 7) as i32 - 3)
            })
            .collect()
    }

    #[test]
    fn portable_kernels_match_a_plain_sum() {
        let (h, a, b) = (values(64, 1), values(64, 2), values(64, 3));
        let plain: f64 = h
            .iter()
            .zip(&a)
            .zip(&b)
            .map(|((h, a), b)| h * (a + b))
            .sum();
        let folded = Portable::dot_folded(&h, &a, &b);
        assert!((folded - plain).abs() <= 1e-12 * plain.abs().max(1.0));
        let plain: f64 = h.iter().zip(&a).map(|(h, a)| h * a).sum();
        assert!((Portable::dot(&h, &a) - plain).abs() <= 1e-12 * plain.abs().max(1.0));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_kernels_are_bitwise_identical_to_portable() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            println!("skipping: this CPU has no AVX2");
            return;
        }
        for (len, seed) in [(8, 10), (64, 11), (136, 12)] {
            let (h, a, b) = (
                values(len, seed),
                values(len, seed + 100),
                values(len, seed + 200),
            );
            assert_eq!(Avx2::dot(&h, &a).to_bits(), Portable::dot(&h, &a).to_bits());
            assert_eq!(
                Avx2::dot_folded(&h, &a, &b).to_bits(),
                Portable::dot_folded(&h, &a, &b).to_bits()
            );
        }
    }
}
