//! The fixed 1-D sin-cos position table of MAE (docs/model.md, `pos(n, W)`).

/// Table (N, W): row n is `[sin(n * omega_i) for i < W/2] ++ [cos(n * omega_i) for i < W/2]`
/// with `omega_i = 1 / 10000^(i / (W/2))`, computed in f64 and stored as f32. W must be even.
pub(crate) fn sincos_table(patches: usize, width: usize) -> Vec<f32> {
    let half = width / 2;
    let mut table = vec![0.0f32; patches * width];
    for n in 0..patches {
        let row = &mut table[n * width..(n + 1) * width];
        for i in 0..half {
            let omega = 1.0 / 10000f64.powf(i as f64 / half as f64);
            let angle = n as f64 * omega;
            row[i] = angle.sin() as f32;
            row[half + i] = angle.cos() as f32;
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_formula() {
        let t = sincos_table(3, 4);
        assert_eq!(&t[0..4], &[0.0, 0.0, 1.0, 1.0]);
        // Row 2: omega = [1, 0.01].
        let expected = [2f64.sin(), 0.02f64.sin(), 2f64.cos(), 0.02f64.cos()];
        for (a, b) in t[8..12].iter().zip(expected) {
            assert_eq!(*a, b as f32);
        }
    }
}
