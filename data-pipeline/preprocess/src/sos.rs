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
            let (lanes, _) = x.as_chunks_mut::<1>();
            self.run(lanes, [first], Direction::Forward);
        }
    }

    /// [`Self::filter_in_place`] on copies of several signals; bitwise the same results, faster
    /// (equal-length signals are filtered [`LANES`] at a time in lockstep).
    pub fn filter_many(&self, signals: &[&[f64]]) -> Vec<Vec<f64>> {
        let group = |xs: &[&[f64]; LANES]| {
            let mut lanes = interleave(xs);
            let first = lanes[0];
            self.run(&mut lanes, first, Direction::Forward);
            deinterleave(&lanes, 0, xs[0].len())
        };
        let one = |x: &[f64]| {
            let mut y = x.to_vec();
            self.filter_in_place(&mut y);
            y
        };
        in_lane_groups(signals, group, one)
    }

    /// Zero-phase forward-backward filtering with `padlen` samples of odd reflection at each end;
    /// `padlen` is [`Self::default_padlen`], shortened to `n - 1` for signals too short for it
    /// (where scipy would refuse).
    pub fn filtfilt(&self, x: &[f64]) -> Vec<f64> {
        if x.is_empty() {
            return Vec::new();
        }
        let [y] = self.filtfilt_lanes(&[x]);
        y
    }

    /// [`Self::filtfilt`] of several signals; bitwise the same results, faster (equal-length
    /// signals are filtered [`LANES`] at a time in lockstep).
    pub fn filtfilt_many(&self, signals: &[&[f64]]) -> Vec<Vec<f64>> {
        in_lane_groups(signals, |xs| self.filtfilt_lanes(xs), |x| self.filtfilt(x))
    }

    /// [`Self::filtfilt`] of `L` non-empty signals of equal length in lockstep.
    fn filtfilt_lanes<const L: usize>(&self, xs: &[&[f64]; L]) -> [Vec<f64>; L] {
        let n = xs[0].len();
        let pad = self.default_padlen().min(n - 1);
        let mut ext = Vec::with_capacity(n + 2 * pad);
        ext.extend((1..=pad).rev().map(|i| lane(xs, |x| 2.0 * x[0] - x[i])));
        ext.extend((0..n).map(|i| lane(xs, |x| x[i])));
        ext.extend((1..=pad).map(|i| lane(xs, |x| 2.0 * x[n - 1] - x[n - 1 - i])));
        let start = ext[0];
        self.run(&mut ext, start, Direction::Forward);
        let end = ext[ext.len() - 1];
        self.run(&mut ext, end, Direction::Backward);
        deinterleave(&ext, pad, n)
    }

    /// Runs the cascade over `x` in place (in `direction`) from the steady state scaled by
    /// `level`, each of the `L` lanes an independent signal. Sections go in groups of up to four:
    /// within a group all sections advance together sample by sample with their coefficients and
    /// state in registers, so their recurrences overlap in the CPU pipeline. Each section sees
    /// exactly the same inputs as in a one-at-a-time cascade, so grouping does not change the
    /// result.
    fn run<const L: usize>(&self, x: &mut [[f64; L]], level: [f64; L], direction: Direction) {
        let groups = self.sections.chunks(GROUP).zip(self.steady.chunks(GROUP));
        for (sections, steady) in groups {
            match direction {
                Direction::Forward => run_group(sections, steady, x.iter_mut(), level),
                Direction::Backward => run_group(sections, steady, x.iter_mut().rev(), level),
            }
        }
    }
}

/// Signals filtered together in lockstep (one per SIMD lane).
pub const LANES: usize = 4;

/// Maps `signals` through `group` [`LANES`] at a time while the next that many have equal,
/// non-zero lengths, and the rest through `one`; output order follows input order.
fn in_lane_groups<G, O>(signals: &[&[f64]], group: G, one: O) -> Vec<Vec<f64>>
where
    G: Fn(&[&[f64]; LANES]) -> [Vec<f64>; LANES],
    O: Fn(&[f64]) -> Vec<f64>,
{
    let mut out = Vec::with_capacity(signals.len());
    let mut rest = signals;
    while let Some((xs, tail)) = rest.split_first_chunk::<LANES>() {
        let n = xs[0].len();
        if n == 0 || xs.iter().any(|x| x.len() != n) {
            break;
        }
        out.extend(group(xs));
        rest = tail;
    }
    out.extend(rest.iter().map(|x| one(x)));
    out
}

/// One sample of each lane, `value(signal)` per lane.
#[inline(always)]
fn lane<const L: usize>(xs: &[&[f64]; L], value: impl Fn(&[f64]) -> f64) -> [f64; L] {
    std::array::from_fn(|l| value(xs[l]))
}

/// The lanes of `xs` (of equal length) as one interleaved signal.
fn interleave<const L: usize>(xs: &[&[f64]; L]) -> Vec<[f64; L]> {
    (0..xs[0].len()).map(|i| lane(xs, |x| x[i])).collect()
}

/// Samples `from..from + n` of each lane as separate signals.
fn deinterleave<const L: usize>(x: &[[f64; L]], from: usize, n: usize) -> [Vec<f64>; L] {
    std::array::from_fn(|l| x[from..from + n].iter().map(|v| v[l]).collect())
}

/// Which way a pass walks the signal.
#[derive(Debug, Clone, Copy)]
enum Direction {
    Forward,
    Backward,
}

/// Most sections advanced together in one pass over the signal.
const GROUP: usize = 4;

/// Runs up to [`GROUP`] cascaded sections over `samples` in place, from `steady` × `level`.
fn run_group<'a, const L: usize, I>(
    sections: &[Section],
    steady: &[[f64; 2]],
    samples: I,
    level: [f64; L],
) where
    I: Iterator<Item = &'a mut [f64; L]>,
{
    match sections.len() {
        1 => run_fixed::<1, L, I>(sections, steady, samples, level),
        2 => run_fixed::<2, L, I>(sections, steady, samples, level),
        3 => run_fixed::<3, L, I>(sections, steady, samples, level),
        _ => run_fixed::<GROUP, L, I>(sections, steady, samples, level),
    }
}

/// Runs `N` cascaded sections over `samples` (of `L` lanes) in place, from `steady` × `level`.
#[inline(always)]
fn run_fixed<'a, const N: usize, const L: usize, I>(
    sections: &[Section],
    steady: &[[f64; 2]],
    samples: I,
    level: [f64; L],
) where
    I: Iterator<Item = &'a mut [f64; L]>,
{
    let coeffs: [Section; N] = std::array::from_fn(|i| sections[i]);
    let mut state: [[[f64; L]; 2]; N] = std::array::from_fn(|i| {
        let scaled = |k: usize| std::array::from_fn(|l| steady[i][k] * level[l]);
        [scaled(0), scaled(1)]
    });
    for v in samples {
        let mut signal = *v;
        for (s, z) in coeffs.iter().zip(state.iter_mut()) {
            let y: [f64; L] = std::array::from_fn(|l| s.b[0] * signal[l] + z[0][l]);
            z[0] = std::array::from_fn(|l| s.b[1] * signal[l] - s.a[1] * y[l] + z[1][l]);
            z[1] = std::array::from_fn(|l| s.b[2] * signal[l] - s.a[2] * y[l]);
            signal = y;
        }
        *v = signal;
    }
}
