//! Helpers of the comparisons against the CPU backend: the kernel tests' padded buffers
//! (tests/common) and the assertions.

pub use super::base::{body, cu_seqlens, down, packed, up, up_idx, v, vm, Rng, PAD};

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

/// The largest |got - want| / (1 + |want|) over finite elements.
pub fn max_gap(got: &[f32], want: &[f32]) -> f32 {
    got.iter()
        .zip(want)
        .filter(|(_, w)| w.is_finite())
        .map(|(&g, &w)| (g - w).abs() / (1.0 + w.abs()))
        .fold(0.0, f32::max)
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
