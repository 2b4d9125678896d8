//! Helpers of the host-harness tests: a seeded generator, padded buffers (every op runs at a
//! non-zero view offset, with NaN around the tensor) and the comparison against the CPU backend.

#![allow(dead_code)] // each test file uses a subset

use ecgfm_kernels::{View, ViewMut};

/// Elements before every tensor in its buffer.
pub const PAD: usize = 3;

/// SplitMix64.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-scale, scale).
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale)
            .collect()
    }
}

/// `data` between PAD leading and 2 trailing NaNs.
pub fn padded(data: &[f32]) -> Vec<f32> {
    let mut v = vec![f32::NAN; PAD];
    v.extend_from_slice(data);
    v.extend_from_slice(&[f32::NAN; 2]);
    v
}

pub fn padded_idx(data: &[u32]) -> Vec<u32> {
    let mut v = vec![u32::MAX; PAD];
    v.extend_from_slice(data);
    v
}

pub fn v(buf: &Vec<f32>) -> View<'_, Vec<f32>> {
    View::new(buf, PAD)
}

pub fn vm(buf: &mut Vec<f32>) -> ViewMut<'_, Vec<f32>> {
    ViewMut::new(buf, PAD)
}

pub fn vi(buf: &Vec<u32>) -> View<'_, Vec<u32>> {
    View::new(buf, PAD)
}

/// Cumulative offsets of sequence lengths (B + 1 entries, from 0).
pub fn cu_seqlens(lengths: &[usize]) -> Vec<u32> {
    let mut cu = vec![0u32];
    for &l in lengths {
        cu.push(cu.last().unwrap() + l as u32);
    }
    cu
}

/// Asserts |got - want| <= tol (1 + |want|) elementwise, and that both padded buffers still
/// hold their NaN padding (nothing written outside the view).
pub fn assert_close(name: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if w.is_nan() {
            assert!(g.is_nan(), "{name}[{i}]: got {g}, want NaN (written outside the view?)");
            continue;
        }
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{name}[{i}]: host kernels {g}, CPU backend {w}"
        );
    }
}

/// Asserts bit-for-bit equality.
pub fn assert_bits(name: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits(),
            "{name}[{i}]: host kernels {g} ({:#x}), CPU backend {w} ({:#x})",
            g.to_bits(),
            w.to_bits()
        );
    }
}
