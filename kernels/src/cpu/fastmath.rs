//! Branch-free f32 math that auto-vectorises (std's `exp` is a scalar library call), used in the
//! GELU and attention inner loops. Pure elementwise code: bitwise deterministic.

/// exp(z) for z <= 0 (valid up to z = 88, so rounding just above 0 is fine), branch-free:
/// z = n ln2 + r with |r| <= ln2 / 2, e^r by its degree-7 Taylor polynomial (truncation error
/// < 6e-9 relative), scaled by 2^n through the exponent bits. Returns 0 below -87, where the
/// result would leave the normal f32 range.
#[inline(always)]
pub(crate) fn exp_nonpositive(z: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let zc = z.max(-87.0);
    // Round to nearest by adding 1.5 * 2^23 (exact for |v| < 2^22): the sum's low mantissa bits
    // then hold n as a two's-complement integer, so 2^n is built with integer ops only (a float to
    // int `as` cast would be scalarised for its saturation rules).
    const ROUND: f32 = 12_582_912.0;
    let shifted = zc * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = (zc - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.0 / 5040.0;
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p * r + c;
    }
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f32::from_bits(n_bits.wrapping_add(127) << 23);
    if z < -87.0 {
        0.0
    } else {
        p * scale
    }
}

/// Lanes of [`sum`]: eight independent running sums, combined in a fixed order.
const LANES: usize = 8;

/// Sum of `xs` in a fixed order that vectorises: eight interleaved partial sums, then the
/// partials pairwise, then the tail. The order depends only on the length, never on threads.
#[inline(always)]
pub(crate) fn sum(xs: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (a, &x) in acc.iter_mut().zip(chunk) {
            *a += x;
        }
    }
    let total = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
    tail.iter().fold(total, |s, &x| s + x)
}

/// Dot product of equal-length slices, in the same fixed lane order as [`sum`].
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (xa, xb) in ca.zip(cb) {
        for ((s, &x), &y) in acc.iter_mut().zip(xa).zip(xb) {
            *s += x * y;
        }
    }
    let total = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
    total + tail
}

/// Maximum of `xs` (NEG_INFINITY when empty), in the same fixed lane order as [`sum`].
#[inline(always)]
pub(crate) fn max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (a, &x) in acc.iter_mut().zip(chunk) {
            *a = a.max(x);
        }
    }
    let total = acc.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    tail.iter().fold(total, |m, &x| m.max(x))
}

/// `wide_simd_fn! { fn name(a: A, b: B) -> R { body } }` defines `name` with its body compiled
/// twice, for AVX2 (8 lanes) and for baseline SSE2 (4), and runs the AVX2 copy when the CPU has
/// it. The arithmetic is written out explicitly (no fused multiply-add, fixed summation lanes),
/// so every result bit is the same on both paths. The body is an `#[inline(always)]` function,
/// which the compiler must inline into the AVX2 copy: a closure handed to a `target_feature`
/// function is inlined only when the optimiser likes it, and when an unrelated change made it
/// stop, the GELU ran at half speed.
macro_rules! wide_simd_fn {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?
        $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if std::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2 (checked just above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use wide_simd_fn;
