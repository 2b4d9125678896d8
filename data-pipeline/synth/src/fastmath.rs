//! Fast, portable elementary functions for the per-sample loops: branch-free `exp` (so the
//! Gaussian loops vectorise and results do not depend on the platform's libm) and unit phasors
//! advanced by small, possibly varying angles without trigonometric calls.

/// `e^x` for `x <= 0`: relative error below 2e-6 on [-13, 0] (the Gaussian range used here) and
/// below 1e-5 down to -80, dominated by rounding `x log2(e)` in f32; returns 0 below -87.
#[inline(always)]
pub(crate) fn exp_neg(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer.
    let y = (x * LOG2_E).max(-126.0);
    let n = (y + ROUND) - ROUND;
    let f = (y - n) * std::f32::consts::LN_2; // |f| <= ln2 / 2
    let p = 1.0
        + f * (1.0
            + f * (0.5
                + f * (1.0 / 6.0 + f * (1.0 / 24.0 + f * (1.0 / 120.0 + f * (1.0 / 720.0))))));
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    if x < -87.0 {
        0.0
    } else {
        p * scale
    }
}

/// A unit complex number `cos(angle) + i sin(angle)` advanced by small angle steps.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Phasor {
    pub cos: f64,
    pub sin: f64,
}

impl Phasor {
    pub(crate) fn at(angle: f64) -> Self {
        let (sin, cos) = angle.sin_cos();
        Phasor { cos, sin }
    }

    /// Rotates by the angle of the unit phasor `by` (a fixed step, computed once with [`Phasor::at`]).
    #[inline(always)]
    pub(crate) fn turn(&mut self, by: Phasor) {
        self.set_normalised(
            self.cos * by.cos - self.sin * by.sin,
            self.sin * by.cos + self.cos * by.sin,
        );
    }

    /// Rotates by `step` radians (|step| <= 0.6; the angle error is below 2e-8 per step there) and
    /// renormalises to unit length, so long runs do not drift.
    #[inline(always)]
    pub(crate) fn rotate(&mut self, step: f64) {
        let s2 = step * step;
        let c = 1.0 - s2 * (0.5 - s2 * (1.0 / 24.0 - s2 * (1.0 / 720.0)));
        let s = step * (1.0 - s2 * (1.0 / 6.0 - s2 * (1.0 / 120.0 - s2 * (1.0 / 5040.0))));
        self.set_normalised(self.cos * c - self.sin * s, self.sin * c + self.cos * s);
    }

    /// Stores `(cos, sin)` pulled back to unit length (one Newton step, enough for tiny errors).
    #[inline(always)]
    fn set_normalised(&mut self, cos: f64, sin: f64) {
        let norm = 0.5 * (3.0 - (cos * cos + sin * sin));
        self.cos = cos * norm;
        self.sin = sin * norm;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_neg_matches_std_exp() {
        let worst = |low: f32| {
            (0..=200_000)
                .map(|i| low * i as f32 / 200_000.0)
                .map(|x| ((exp_neg(x) as f64) - (x as f64).exp()).abs() / (x as f64).exp())
                .fold(0.0f64, f64::max)
        };
        assert!(worst(-13.0) < 2e-6, "relative error {}", worst(-13.0));
        assert!(worst(-80.0) < 1e-5, "relative error {}", worst(-80.0));
        assert_eq!(exp_neg(0.0), 1.0);
        assert_eq!(exp_neg(-100.0), 0.0);
    }

    #[test]
    fn phasor_tracks_the_accumulated_angle() {
        let mut phasor = Phasor::at(0.3);
        let mut angle = 0.3f64;
        for i in 0..100_000 {
            let step = 0.05 + 0.2 * ((i % 7) as f64 / 7.0);
            phasor.rotate(step);
            angle += step;
        }
        assert!(
            (phasor.cos - angle.cos()).abs() < 1e-6,
            "{} vs {}",
            phasor.cos,
            angle.cos()
        );
        assert!((phasor.sin - angle.sin()).abs() < 1e-6);
        let step = Phasor::at(0.01);
        for _ in 0..1_000_000 {
            phasor.turn(step);
        }
        angle += 1_000_000.0 * 0.01;
        assert!((phasor.cos - angle.cos()).abs() < 1e-6 && (phasor.sin - angle.sin()).abs() < 1e-6);
    }
}
