//! The fixed lead system: the Dower matrix projects the heart vector onto the eight independent
//! leads (I, II, V1-V6), and the other four limb leads are derived from I and II by Einthoven's
//! and Goldberger's identities, so the 12 leads are exactly consistent.

/// Standard 12-lead order; signals are lead-major in this order.
pub const LEAD_NAMES: [&str; 12] = [
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
];

/// Rows of the independent leads in the 12-lead layout (I, II, V1..V6).
pub(crate) const INDEPENDENT_LEADS: [usize; 8] = [0, 1, 6, 7, 8, 9, 10, 11];

/// Rows of the output used as scratch for the heart-vector traces X, Y, Z before the derived
/// limb leads overwrite them.
pub(crate) const DIPOLE_ROWS: [usize; 3] = [2, 3, 4];

/// Dower's heart-vector-to-lead coefficients (Frank X, Y, Z) for I, II, V1..V6.
const DOWER: [[f32; 3]; 8] = [
    [0.632, -0.235, 0.059],
    [0.235, 1.066, -0.132],
    [-0.515, 0.157, -0.917],
    [0.044, 0.164, -1.387],
    [0.882, 0.098, -1.277],
    [1.213, 0.127, -0.601],
    [1.125, 0.127, -0.086],
    [0.831, 0.076, 0.230],
];

/// Length of the heart vector `v` as seen on the surface: the norm of its eight independent
/// lead values.
pub(crate) fn surface_magnitude(v: [f32; 3]) -> f32 {
    DOWER
        .iter()
        .map(|row| (row[0] * v[0] + row[1] * v[1] + row[2] * v[2]).powi(2))
        .sum::<f32>()
        .sqrt()
}

/// The rows of the independent leads ([`INDEPENDENT_LEADS`]) of a 12-row signal.
pub(crate) fn independent_rows(signal: &mut [f32], samples: usize) -> [&mut [f32]; 8] {
    let (limb, rest) = signal.split_at_mut(2 * samples);
    let precordial = &mut rest[4 * samples..];
    let mut rows = limb
        .chunks_exact_mut(samples)
        .chain(precordial.chunks_exact_mut(samples));
    std::array::from_fn(|_| rows.next().expect("eight independent lead rows"))
}

/// Projects the traces held in [`DIPOLE_ROWS`] of `signal` (12 rows of `samples`) onto the rows of
/// the independent leads, replacing their contents.
pub(crate) fn project(signal: &mut [f32], samples: usize) {
    let (low, high) = signal.split_at_mut(5 * samples);
    let (limb, dipole) = low.split_at_mut(2 * samples);
    let (x, rest) = dipole.split_at(samples);
    let (y, z) = rest.split_at(samples);
    let z = &z[..samples];
    let precordial = &mut high[samples..];
    let targets = limb
        .chunks_exact_mut(samples)
        .chain(precordial.chunks_exact_mut(samples));
    for (row, [cx, cy, cz]) in targets.zip(DOWER) {
        for (((out, &vx), &vy), &vz) in row.iter_mut().zip(x).zip(y).zip(z) {
            *out = cx * vx + cy * vy + cz * vz;
        }
    }
}

/// Fills III, aVR, aVL and aVF from I and II, exactly as `III = II - I`, `aVR = -(I + II) / 2`,
/// `aVL = I - II / 2`, `aVF = II - I / 2` in f32.
pub(crate) fn derive_limb_leads(signal: &mut [f32], samples: usize) {
    let (independent, derived) = signal.split_at_mut(2 * samples);
    let (lead_i, lead_ii) = independent.split_at(samples);
    let (iii, rest) = derived.split_at_mut(samples);
    let (avr, rest) = rest.split_at_mut(samples);
    let (avl, rest) = rest.split_at_mut(samples);
    let avf = &mut rest[..samples];
    for t in 0..samples {
        let (i, ii) = (lead_i[t], lead_ii[t]);
        iii[t] = ii - i;
        avr[t] = -(i + ii) / 2.0;
        avl[t] = i - ii / 2.0;
        avf[t] = ii - i / 2.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_uses_dower_rows_and_writes_only_independent_leads() {
        let samples = 3;
        let mut signal = vec![7.0f32; 12 * samples];
        signal[2 * samples..3 * samples].fill(1.0);
        signal[3 * samples..4 * samples].fill(0.0);
        signal[4 * samples..5 * samples].fill(0.0);
        project(&mut signal, samples);
        for (k, &row) in INDEPENDENT_LEADS.iter().enumerate() {
            assert_eq!(signal[row * samples], DOWER[k][0], "row {row}");
        }
        assert_eq!(signal[5 * samples], 7.0, "aVF row untouched");
    }

    #[test]
    fn a_purely_inferior_vector_is_positive_in_ii_iii_avf_and_negative_in_avr() {
        let samples = 1;
        let mut signal = vec![0.0f32; 12];
        signal[3] = 1.0;
        project(&mut signal, samples);
        derive_limb_leads(&mut signal, samples);
        assert!(signal[1] > 1.0 && signal[2] > 1.0 && signal[5] > 1.0);
        assert!(signal[3] < -0.3);
    }
}
