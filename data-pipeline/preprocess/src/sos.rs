//! Second-order-section IIR filtering: a causal pass with steady-state initial conditions
//! (`scipy.signal.sosfilt` with `sosfilt_zi`) and the zero-phase forward-backward pass with odd
//! reflective padding (`scipy.signal.sosfiltfilt`, `padtype='odd'`, default `padlen`).

/// One biquad: H(z) = (b0 + b1 z⁻¹ + b2 z⁻²) / (1 + a1 z⁻¹ + a2 z⁻²); `a[0]` is always 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Section {
    /// Numerator coefficients.
    pub b: [f64; 3],
    /// Denominator coefficients, `a[0] == 1`.
    pub a: [f64; 3],
}

/// A cascade of sections with its unit-step steady state, ready to filter many signals.
#[derive(Debug, Clone)]
pub struct SosFilter {
    sections: Vec<Section>,
    /// Per-section transposed-direct-form-II state for a constant input of 1.
    steady: Vec<[f64; 2]>,
}

impl SosFilter {
    /// Wraps a cascade (as produced by [`crate::butterworth`]).
    pub fn new(sections: Vec<Section>) -> Self {
        let mut scale = 1.0;
        let steady = sections
            .iter()
            .map(|s| {
                let gain = s.b.iter().sum::<f64>() / s.a.iter().sum::<f64>();
                let state = [scale * (gain - s.b[0]), scale * (s.b[2] - s.a[2] * gain)];
                scale *= gain;
                state
            })
            .collect();
        Self { sections, steady }
    }

    /// The sections.
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// scipy's default `padlen` for `sosfiltfilt`: 3·(2·sections + 1 - trailing zero coefficients).
    pub fn default_padlen(&self) -> usize {
        let zero_b2 = self.sections.iter().filter(|s| s.b[2] == 0.0).count();
        let zero_a2 = self.sections.iter().filter(|s| s.a[2] == 0.0).count();
        3 * (2 * self.sections.len() + 1 - zero_b2.min(zero_a2))
    }

    /// Causal filtering in place, starting from the steady state of a constant `x[0]` (no start-up
    /// transient on a level signal).
    pub fn filter_in_place(&self, x: &mut [f64]) {
        if let Some(&first) = x.first() {
            self.run(x, first, Direction::Forward);
        }
    }

    /// Zero-phase forward-backward filtering with `padlen` samples of odd reflection at each end;
    /// `padlen` is [`Self::default_padlen`], shortened to `n - 1` for signals too short for it
    /// (where scipy would refuse).
    pub fn filtfilt(&self, x: &[f64]) -> Vec<f64> {
        let n = x.len();
        if n == 0 {
            return Vec::new();
        }
        let pad = self.default_padlen().min(n - 1);
        let (first, last) = (x[0], x[n - 1]);
        let mut ext = Vec::with_capacity(n + 2 * pad);
        ext.extend((1..=pad).rev().map(|i| 2.0 * first - x[i]));
        ext.extend_from_slice(x);
        ext.extend((1..=pad).map(|i| 2.0 * last - x[n - 1 - i]));
        let start = ext[0];
        self.run(&mut ext, start, Direction::Forward);
        let end = ext[ext.len() - 1];
        self.run(&mut ext, end, Direction::Backward);
        ext.truncate(n + pad);
        ext.drain(..pad);
        ext
    }

    /// Runs the cascade over `x` in place (in `direction`) from the steady state scaled by
    /// `level`. Sections go in groups of up to four: within a group all sections advance together
    /// sample by sample with their coefficients and state in registers, so their recurrences
    /// overlap in the CPU pipeline. Each section sees exactly the same inputs as in a one-at-a-time
    /// cascade, so grouping does not change the result.
    fn run(&self, x: &mut [f64], level: f64, direction: Direction) {
        let groups = self.sections.chunks(GROUP).zip(self.steady.chunks(GROUP));
        for (sections, steady) in groups {
            match direction {
                Direction::Forward => run_group(sections, steady, x.iter_mut(), level),
                Direction::Backward => run_group(sections, steady, x.iter_mut().rev(), level),
            }
        }
    }
}

/// Which way a pass walks the signal.
#[derive(Debug, Clone, Copy)]
enum Direction {
    Forward,
    Backward,
}

/// Runs up to [`GROUP`] cascaded sections over `samples` in place, from `steady` × `level`.
fn run_group<'a, I>(sections: &[Section], steady: &[[f64; 2]], samples: I, level: f64)
where
    I: Iterator<Item = &'a mut f64>,
{
    match sections.len() {
        1 => run_fixed::<1, I>(sections, steady, samples, level),
        2 => run_fixed::<2, I>(sections, steady, samples, level),
        3 => run_fixed::<3, I>(sections, steady, samples, level),
        _ => run_fixed::<GROUP, I>(sections, steady, samples, level),
    }
}

/// Most sections advanced together in one pass over the signal.
const GROUP: usize = 4;

/// Runs `N` cascaded sections over `samples` in place, starting from `steady` × `level`.
fn run_fixed<'a, const N: usize, I>(
    sections: &[Section],
    steady: &[[f64; 2]],
    samples: I,
    level: f64,
) where
    I: Iterator<Item = &'a mut f64>,
{
    let coeffs: [Section; N] = std::array::from_fn(|i| sections[i]);
    let mut state: [[f64; 2]; N] =
        std::array::from_fn(|i| [steady[i][0] * level, steady[i][1] * level]);
    for v in samples {
        let mut signal = *v;
        for (s, z) in coeffs.iter().zip(state.iter_mut()) {
            let y = s.b[0] * signal + z[0];
            z[0] = s.b[1] * signal - s.a[1] * y + z[1];
            z[1] = s.b[2] * signal - s.a[2] * y;
            signal = y;
        }
        *v = signal;
    }
}
