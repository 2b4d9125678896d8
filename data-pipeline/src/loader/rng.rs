//! The loader's own tiny deterministic randomness: a SplitMix64 generator seeded by hashing a
//! tuple of integers (seed, epoch, purpose tag, index...), and Fisher-Yates permutations from it.
//! Written here rather than taken from a crate so that epoch orders and crops stay bitwise
//! identical across dependency upgrades and platforms.

/// Purpose tags: each random decision draws from its own stream.
pub(crate) const TAG_SHARDS: u64 = 0x5348_4152_4453; // "SHARDS"
pub(crate) const TAG_ROW_GROUPS: u64 = 0x5247_524F_5550; // "RGROUP"
pub(crate) const TAG_ACROSS_SHARDS: u64 = 0x4143_524F_5353; // "ACROSS"
pub(crate) const TAG_WINDOW: u64 = 0x5749_4E44_4F57; // "WINDOW"
pub(crate) const TAG_CROP: u64 = 0x4352_4F50; // "CROP"
pub(crate) const TAG_PART: u64 = 0x5041_5254; // "PART"

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A 64-bit hash of a sequence of integers (order matters).
pub(crate) fn hash(parts: &[u64]) -> u64 {
    parts
        .iter()
        .fold(GOLDEN, |acc, &p| mix(acc.wrapping_add(GOLDEN) ^ mix(p)))
}

/// SplitMix64: small, fast, and good enough for shuffling and crop offsets.
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator whose stream is a pure function of `parts`.
    pub(crate) fn from_parts(parts: &[u64]) -> Self {
        Self(hash(parts))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    /// Uniform in `0..n` (n > 0), by Lemire's multiply-shift (bias below 2^-32 for our sizes).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// Shuffles `items` in place with Fisher-Yates driven by a generator seeded from `parts`.
pub(crate) fn shuffle<T>(items: &mut [T], parts: &[u64]) {
    let mut rng = SplitMix64::from_parts(parts);
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_is_a_deterministic_permutation() {
        let mut a: Vec<u32> = (0..1000).collect();
        let mut b = a.clone();
        shuffle(&mut a, &[1, 2, 3]);
        shuffle(&mut b, &[1, 2, 3]);
        assert_eq!(a, b);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        let mut c: Vec<u32> = (0..1000).collect();
        shuffle(&mut c, &[1, 2, 4]);
        assert_ne!(a, c);
        assert_ne!(a, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = SplitMix64::from_parts(&[7]);
        let mut seen = [0u32; 5];
        for _ in 0..5000 {
            seen[rng.below(5) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
    }
}
