//! Helpers of the comparisons against the CPU backend: the kernel tests' padded buffers
//! (tests/common) and the assertions.

pub use super::base::{down, up, up_idx, v, vm, Rng, PAD};

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
            assert!(
                g.is_nan(),
                "{name}[{i}]: got {g}, want NaN (written outside the view?)"
            );
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
