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
    // Round to nearest by adding and removing 1.5 * 2^23 (exact for |v| < 2^22); unlike
    // `round_ties_even` this needs no SSE4.1, so it vectorises on baseline x86-64.
    const ROUND: f32 = 12_582_912.0;
    let n = (zc * std::f32::consts::LOG2_E + ROUND) - ROUND;
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
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    if z < -87.0 {
        0.0
    } else {
        p * scale
    }
}
