//! Helpers of the comparisons against the CPU backend: a seeded generator, padded device buffers
//! (every op runs at a non-zero view offset, with NaN around the tensor) and the assertions.

use ecgfm_kernels::{Backend, View, ViewMut};

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

/// Trailing NaNs after each tensor.
const TAIL: usize = 2;

/// A device buffer holding `data` between PAD leading and TAIL trailing NaNs.
pub fn up<B: Backend>(be: &B, data: &[f32]) -> B::Buf {
    let mut host = vec![f32::NAN; PAD];
    host.extend_from_slice(data);
    host.extend_from_slice(&[f32::NAN; TAIL]);
    let mut buf = be.alloc(host.len());
    be.upload(&host, (&mut buf).into());
    buf
}

/// An index buffer holding `data` after PAD elements.
pub fn up_idx<B: Backend>(be: &B, data: &[u32]) -> B::IdxBuf {
    let mut host = vec![u32::MAX; PAD];
    host.extend_from_slice(data);
    let mut buf = be.alloc_idx(host.len());
    be.upload_idx(&host, (&mut buf).into());
    buf
}

/// The whole buffer made by [`up`] for a tensor of n elements, padding included.
pub fn down<B: Backend>(be: &B, buf: &B::Buf, n: usize) -> Vec<f32> {
    let mut host = vec![0.0; PAD + n + TAIL];
    be.download(buf.into(), &mut host);
    host
}

pub fn v<T>(buf: &T) -> View<'_, T> {
    View::new(buf, PAD)
}

pub fn vm<T>(buf: &mut T) -> ViewMut<'_, T> {
    ViewMut::new(buf, PAD)
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
