//! One deflection of the cardiac dipole (a split Gaussian bump along a 3-D direction) and a small
//! fixed-capacity set of them; this is the closed-form term of the ECGSYN-style model.

/// A Gaussian bump of the heart vector, timed relative to its beat's R peak. ECGSYN places such
/// bumps at angles of a limit cycle; here the angle is expressed as a time offset from the R peak
/// so QRS timing stays fixed while repolarisation follows the cycle length.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Wave {
    /// Peak time relative to the R peak, seconds, at a 1 s cycle length.
    pub offset_s: f32,
    /// Standard deviation before the peak, seconds, at a 1 s cycle length.
    pub rise_s: f32,
    /// Standard deviation after the peak, seconds, at a 1 s cycle length.
    pub fall_s: f32,
    /// Peak dipole, millivolts, in Frank axes (X left, Y feet, Z back).
    pub vector: [f32; 3],
    /// When true, offset and widths scale with sqrt(preceding RR) (Bazett-like QT adaptation).
    pub rate_adaptive: bool,
}

impl Wave {
    /// A symmetric bump at a fixed time.
    pub(crate) fn fixed(offset_s: f32, width_s: f32, vector: [f32; 3]) -> Self {
        Wave {
            offset_s,
            rise_s: width_s,
            fall_s: width_s,
            vector,
            rate_adaptive: false,
        }
    }

    /// A bump whose timing follows the cycle length (repolarisation).
    pub(crate) fn adaptive(offset_s: f32, rise_s: f32, fall_s: f32, vector: [f32; 3]) -> Self {
        Wave {
            offset_s,
            rise_s,
            fall_s,
            vector,
            rate_adaptive: true,
        }
    }

    /// `(offset, rise, fall)` in seconds after the preceding RR interval `rr_s`.
    pub(crate) fn timing(&self, rr_s: f64) -> (f64, f64, f64) {
        let scale = if self.rate_adaptive { rr_s.sqrt() } else { 1.0 };
        (
            self.offset_s as f64 * scale,
            self.rise_s as f64 * scale,
            self.fall_s as f64 * scale,
        )
    }
}

/// Up to [`WaveSet::CAPACITY`] waves, stored inline (no allocation per record).
#[derive(Clone, Copy, Debug)]
pub(crate) struct WaveSet {
    waves: [Wave; WaveSet::CAPACITY],
    len: usize,
}

impl WaveSet {
    pub(crate) const CAPACITY: usize = 8;

    pub(crate) fn new() -> Self {
        WaveSet {
            waves: [Wave::fixed(0.0, 1.0, [0.0; 3]); Self::CAPACITY],
            len: 0,
        }
    }

    /// Appends a wave; panics past capacity (a programming error, the sets are built in-crate).
    pub(crate) fn push(&mut self, wave: Wave) {
        assert!(self.len < Self::CAPACITY, "WaveSet capacity exceeded");
        self.waves[self.len] = wave;
        self.len += 1;
    }

    pub(crate) fn as_slice(&self) -> &[Wave] {
        &self.waves[..self.len]
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [Wave] {
        &mut self.waves[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_timing_follows_sqrt_rr_and_fixed_does_not() {
        let t = Wave::adaptive(0.3, 0.05, 0.04, [1.0; 3]);
        let (o, r, f) = t.timing(0.64);
        assert!((o - 0.24).abs() < 1e-6 && (r - 0.04).abs() < 1e-6 && (f - 0.032).abs() < 1e-6);
        let q = Wave::fixed(-0.02, 0.01, [1.0; 3]);
        assert_eq!(
            q.timing(0.64),
            (-0.02f32 as f64, 0.01f32 as f64, 0.01f32 as f64)
        );
    }

    #[test]
    fn set_keeps_insertion_order() {
        let mut set = WaveSet::new();
        set.push(Wave::fixed(0.1, 0.01, [1.0, 0.0, 0.0]));
        set.push(Wave::fixed(0.2, 0.01, [0.0, 2.0, 0.0]));
        assert_eq!(set.as_slice().len(), 2);
        assert_eq!(set.as_slice()[1].vector, [0.0, 2.0, 0.0]);
    }
}
