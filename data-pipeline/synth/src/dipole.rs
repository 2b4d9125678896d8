//! Renders the beat stream into the three heart-vector traces X, Y, Z: every wave of every beat is
//! evaluated in closed form (the ECGSYN z-equation solved along the limit cycle is a sum of
//! Gaussian bumps in phase), only over the samples where it is non-negligible.

use crate::fastmath::exp_neg;
use crate::morphology::Morphology;
use crate::rhythm::{Beat, BeatKind};
use crate::wave::Wave;

/// A bump is evaluated out to this many standard deviations (exp(-12.5) < 4e-6 of its peak).
const SUPPORT_SIGMAS: f64 = 5.0;

/// Adds `vector * exp(k d^2)` for `d = d0 + i / fs` to the traces, sample `i` of each slice.
fn add_half(
    x: &mut [f32],
    y: &mut [f32],
    z: &mut [f32],
    d0: f32,
    dt: f32,
    k: f32,
    vector: [f32; 3],
) {
    let [vx, vy, vz] = vector;
    for (i, ((x, y), z)) in x.iter_mut().zip(y.iter_mut()).zip(z.iter_mut()).enumerate() {
        let d = d0 + i as f32 * dt;
        let g = exp_neg(k * d * d);
        *x += vx * g;
        *y += vy * g;
        *z += vz * g;
    }
}

/// Adds one wave of a beat with R peak at `r_s` to the traces.
fn add_wave(wave: &Wave, r_s: f64, rr_prev_s: f64, fs: f64, xyz: [&mut [f32]; 3]) {
    let (offset, rise, fall) = wave.timing(rr_prev_s);
    let peak = r_s + offset;
    let samples = xyz[0].len();
    let first = ((peak - SUPPORT_SIGMAS * rise) * fs).ceil().max(0.0);
    let end = ((peak + SUPPORT_SIGMAS * fall) * fs).floor() + 1.0;
    let end = end.min(samples as f64);
    if end <= first {
        return;
    }
    let (first, end) = (first as usize, end as usize);
    // Samples before the peak use the rise width, the others the fall width.
    let split = ((peak * fs).ceil().max(first as f64) as usize).min(end);
    let dt = (1.0 / fs) as f32;
    let [x, y, z] = xyz;
    let rise_k = (-0.5 / (rise * rise)) as f32;
    let fall_k = (-0.5 / (fall * fall)) as f32;
    let d_first = (first as f64 / fs - peak) as f32;
    let d_split = (split as f64 / fs - peak) as f32;
    add_half(
        &mut x[first..split],
        &mut y[first..split],
        &mut z[first..split],
        d_first,
        dt,
        rise_k,
        wave.vector,
    );
    add_half(
        &mut x[split..end],
        &mut y[split..end],
        &mut z[split..end],
        d_split,
        dt,
        fall_k,
        wave.vector,
    );
}

/// Renders every beat into `x`, `y`, `z` (each one lead long, added to their contents) and returns
/// the realised mean heart rate (bpm) over the beats whose R peak lies inside the record, or
/// `fallback_bpm` when fewer than two do.
pub(crate) fn render_beats(
    beats: impl Iterator<Item = Beat>,
    morphology: &Morphology,
    fs: f64,
    xyz: [&mut [f32]; 3],
    fallback_bpm: f64,
) -> f64 {
    let [x, y, z] = xyz;
    let duration_s = x.len() as f64 / fs;
    let mut inside = 0usize;
    let mut first_r = 0.0;
    let mut last_r = 0.0;
    for beat in beats {
        if (0.0..duration_s).contains(&beat.r_s) {
            if inside == 0 {
                first_r = beat.r_s;
            }
            last_r = beat.r_s;
            inside += 1;
        }
        let sets = match beat.kind {
            BeatKind::Sinus => [
                morphology.atrial.as_slice(),
                morphology.ventricular.as_slice(),
            ],
            BeatKind::Conducted => [&[][..], morphology.ventricular.as_slice()],
            BeatKind::Ectopic => [&[][..], morphology.ectopic.as_slice()],
        };
        for wave in sets.into_iter().flatten() {
            add_wave(
                wave,
                beat.r_s,
                beat.rr_prev_s,
                fs,
                [&mut *x, &mut *y, &mut *z],
            );
        }
    }
    if inside >= 2 && last_r > first_r {
        60.0 * (inside - 1) as f64 / (last_r - first_r)
    } else {
        fallback_bpm
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::condition::Condition;
    use crate::rng::{Rng, Stream};

    #[test]
    fn wave_peaks_at_its_offset_with_its_vector_and_is_clipped_at_edges() {
        let fs = 250.0;
        let (mut x, mut y, mut z) = (vec![0.0f32; 250], vec![0.0f32; 250], vec![0.0f32; 250]);
        let wave = Wave::fixed(0.1, 0.01, [1.0, -0.5, 2.0]);
        add_wave(&wave, 0.3, 1.0, fs, [&mut x, &mut y, &mut z]);
        assert_eq!(x[100], 1.0);
        assert_eq!(y[100], -0.5);
        assert_eq!(z[100], 2.0);
        assert!((x[103] - (-0.5f32 * 1.2 * 1.2).exp()).abs() < 1e-5);
        assert_eq!(x[80], 0.0);
        add_wave(&wave, 0.88, 1.0, fs, [&mut x, &mut y, &mut z]);
        assert!(x[249] > 0.2 && x[245] == 1.0);
        add_wave(&wave, 5.0, 1.0, fs, [&mut x, &mut y, &mut z]);
        assert!(x.iter().all(|v| v.is_finite()));
    }

    /// The reported rate counts only the R peaks inside the record, however close the margin
    /// beats are; with fewer than two inside it is the fallback.
    #[test]
    fn rate_is_measured_over_the_r_peaks_inside_the_record() {
        let morphology = Morphology::draw(
            Condition::Normal,
            'M',
            &mut Rng::for_record(1, 0, Stream::Morphology),
        );
        let rate = |peaks: &[f64]| {
            let beats = peaks.iter().map(|&r_s| Beat {
                r_s,
                rr_prev_s: 1.0,
                kind: BeatKind::Sinus,
            });
            let (mut x, mut y, mut z) = (vec![0.0f32; 650], vec![0.0f32; 650], vec![0.0f32; 650]);
            render_beats(beats, &morphology, 250.0, [&mut x, &mut y, &mut z], 42.0)
        };
        // A 2.6 s record: 0.5, 1.5 and 2.5 s are inside, one second apart.
        assert!((rate(&[-0.2, 0.5, 1.5, 2.5, 2.7]) - 60.0).abs() < 1e-9);
        assert_eq!(rate(&[-0.9, 1.0, 2.9]), 42.0);
    }
}
