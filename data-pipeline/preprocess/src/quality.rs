//! Signal-quality checks per lead and window.
//!
//! Each check measures a "badness ratio" r that is 1 exactly at its threshold; it raises its flag
//! bit when r > 1 and scores `clamp(1.5 - r, 0, 1)` (1 while r <= 0.5, 0.5 at the threshold, 0 from
//! r = 1.5). A lead's score is the minimum of its checks; a window's is the minimum over present
//! leads. The checks see four views of a lead's window: `input` (the record's own samples at its
//! own rate, gaps bridged: for clipping and constant runs, which resampling would smear),
//! `clean` (resampled and band-passed: for flatness and amplitude), `high` (a high-pass of the
//! resampled signal above `hf_cutoff_hz`: for noise) and the missing masks of both rates.
//!
//! Every check but the missing one measures observed samples only: a bridged gap is a straight
//! line, and counting it as a constant run (or a flat, clipped or quiet stretch) would fail a lead
//! for missing data long before `hard_fail_missing_fraction` says it has too much. Runs end at a
//! missing sample, and a window with nothing observed is judged by its missing fraction alone.
//!
//! | bit | check | ratio r |
//! |---|---|---|
//! | 1 | missing | missing fraction / `max_missing_fraction` |
//! | 2 | flat | max(`flat_min_std` / std(clean), longest constant run of input / `flat_max_constant_s`) |
//! | 4 | clipping | fraction of input samples in runs (>= `clip_min_run_s`) within `clip_level_tolerance` × range of the max or min, / `max_clip_fraction` |
//! | 8 | amplitude | max(p2p(clean) / `max_peak_to_peak`, `min_peak_to_peak` / p2p(clean)) |
//! | 16 | high-frequency noise | min(E(high) / (E(high) + E(clean - mean)) / `max_hf_ratio`, rms(high) / `min_hf_rms`) |
//!
//! Hard fail (the window is unusable): every present lead is flat or has more than
//! `hard_fail_missing_fraction` missing samples.

use crate::butterworth::butter_highpass;
use crate::error::PreprocessError;
use crate::leads::N_LEADS;
use crate::sos::SosFilter;
use serde::{Deserialize, Serialize};

/// Flag bit: missing (NaN) samples.
pub const FLAG_MISSING: u8 = 1;
/// Flag bit: flat line.
pub const FLAG_FLAT: u8 = 2;
/// Flag bit: clipping / saturation.
pub const FLAG_CLIPPING: u8 = 4;
/// Flag bit: implausible amplitude.
pub const FLAG_AMPLITUDE: u8 = 8;
/// Flag bit: high-frequency noise.
pub const FLAG_HF_NOISE: u8 = 16;

/// Quality thresholds (amplitudes in signal units, mV).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QualityConfig {
    /// Missing fraction above which the missing flag is raised.
    pub max_missing_fraction: f64,
    /// Missing fraction above which a lead counts as unusable for the hard-fail rule.
    pub hard_fail_missing_fraction: f64,
    /// Standard deviation of the band-passed signal below which a lead is flat.
    pub flat_min_std: f64,
    /// Longest tolerated run of constant input samples, seconds.
    pub flat_max_constant_s: f64,
    /// Consecutive input samples closer than this are "constant".
    pub flat_constant_tolerance: f64,
    /// Closeness to the window's max or min counting as "at the rail", as a fraction of the range.
    pub clip_level_tolerance: f64,
    /// Shortest run of at-the-rail input samples that counts as clipping, seconds (at least 2
    /// samples).
    pub clip_min_run_s: f64,
    /// Fraction of clipped samples above which the clipping flag is raised.
    pub max_clip_fraction: f64,
    /// Smallest plausible peak-to-peak amplitude.
    pub min_peak_to_peak: f64,
    /// Largest plausible peak-to-peak amplitude.
    pub max_peak_to_peak: f64,
    /// Lower edge of the "high-frequency" band, Hz (check skipped when >= 0.95 × Nyquist).
    pub hf_cutoff_hz: f64,
    /// Order of the Butterworth high-pass that isolates that band.
    pub hf_filter_order: usize,
    /// High-band energy fraction above which the noise flag is raised.
    pub max_hf_ratio: f64,
    /// High-band RMS (mV) below which the noise flag is never raised, whatever the fraction: a
    /// near-isoelectric lead carrying a few microvolts of noise is still a usable lead.
    pub min_hf_rms: f64,
}

impl Default for QualityConfig {
    fn default() -> Self {
        Self {
            max_missing_fraction: 0.05,
            hard_fail_missing_fraction: 0.5,
            flat_min_std: 0.01,
            flat_max_constant_s: 1.0,
            flat_constant_tolerance: 1e-4,
            clip_level_tolerance: 0.002,
            clip_min_run_s: 0.01,
            max_clip_fraction: 0.02,
            min_peak_to_peak: 0.05,
            max_peak_to_peak: 10.0,
            hf_cutoff_hz: 40.0,
            hf_filter_order: 4,
            max_hf_ratio: 0.2,
            min_hf_rms: 0.03,
        }
    }
}

impl QualityConfig {
    /// Checks that every threshold is a positive finite number and the amplitude range is ordered.
    pub fn validate(&self) -> Result<(), PreprocessError> {
        let named = [
            ("max_missing_fraction", self.max_missing_fraction),
            (
                "hard_fail_missing_fraction",
                self.hard_fail_missing_fraction,
            ),
            ("flat_min_std", self.flat_min_std),
            ("flat_max_constant_s", self.flat_max_constant_s),
            ("flat_constant_tolerance", self.flat_constant_tolerance),
            ("clip_level_tolerance", self.clip_level_tolerance),
            ("clip_min_run_s", self.clip_min_run_s),
            ("max_clip_fraction", self.max_clip_fraction),
            ("min_peak_to_peak", self.min_peak_to_peak),
            ("max_peak_to_peak", self.max_peak_to_peak),
            ("hf_cutoff_hz", self.hf_cutoff_hz),
            ("max_hf_ratio", self.max_hf_ratio),
            ("min_hf_rms", self.min_hf_rms),
        ];
        if let Some((name, value)) = named.iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
            return Err(PreprocessError::InvalidConfig(format!(
                "quality.{name} must be a positive number, got {value}"
            )));
        }
        if self.min_peak_to_peak >= self.max_peak_to_peak {
            return Err(PreprocessError::InvalidConfig(
                "quality.min_peak_to_peak must be below max_peak_to_peak".into(),
            ));
        }
        Ok(())
    }
}

/// The views of one lead over one window (`input` and `input_missing` at the record's rate,
/// the others at the target rate).
#[derive(Debug, Clone, Copy)]
pub struct LeadWindow<'a> {
    /// The record's own samples over the window's time span (gaps bridged).
    pub input: &'a [f64],
    /// Which `input` samples were missing (bridged), when the lead had any.
    pub input_missing: Option<&'a [bool]>,
    /// The record's own sampling rate, Hz.
    pub input_rate: f64,
    /// Resampled and band-passed (only resampled when there is no band-pass).
    pub clean: &'a [f64],
    /// High-passed resampled signal, when the noise check is active.
    pub high: Option<&'a [f64]>,
    /// Missing samples, when the lead had any.
    pub missing: Option<&'a [bool]>,
}

/// Verdict on one lead in one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeadQuality {
    /// Flag bits.
    pub flags: u8,
    /// Score in [0, 1].
    pub score: f32,
    /// Flat or mostly missing.
    pub unusable: bool,
}

/// Verdict on one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowQuality {
    /// Flag bits per standard lead (0 for absent leads).
    pub flags: [u8; N_LEADS],
    /// Minimum score over present leads (0 when none is present).
    pub score: f32,
    /// Every present lead is unusable.
    pub hard_fail: bool,
}

/// Runs the checks on signals resampled to one rate.
#[derive(Debug, Clone)]
pub struct QualityChecker {
    config: QualityConfig,
    high_pass: Option<SosFilter>,
}

impl QualityChecker {
    /// Builds the checker for signals at `rate` Hz.
    pub fn new(config: QualityConfig, rate: f64) -> Result<Self, PreprocessError> {
        config.validate()?;
        let high_pass = if config.hf_cutoff_hz < 0.95 * rate / 2.0 {
            let sections = butter_highpass(config.hf_filter_order, config.hf_cutoff_hz, rate)?;
            Some(SosFilter::new(sections))
        } else {
            None
        };
        Ok(Self { config, high_pass })
    }

    /// The high-passed copies of whole resampled leads, or `None` each when the noise check is off.
    pub fn high_bands(&self, raws: &[&[f64]]) -> Vec<Option<Vec<f64>>> {
        match &self.high_pass {
            Some(filter) => filter.filter_many(raws).into_iter().map(Some).collect(),
            None => vec![None; raws.len()],
        }
    }

    /// Checks one lead over one window.
    pub fn assess(&self, view: &LeadWindow) -> LeadQuality {
        let c = &self.config;
        let n = view.clean.len().max(1) as f64;
        let missing = view
            .missing
            .map_or(0.0, |m| m.iter().filter(|&&b| b).count() as f64 / n);
        let input = InputProfile::of(view.input, view.input_missing, c.flat_constant_tolerance);
        let constant_run =
            input.longest_constant_run as f64 / (c.flat_max_constant_s * view.input_rate);
        let min_run = ((c.clip_min_run_s * view.input_rate).round() as usize).max(2);
        let clipping = clipped_fraction(
            view.input,
            view.input_missing,
            &input,
            c.clip_level_tolerance,
            min_run,
        ) / c.max_clip_fraction;
        let (flat, amplitude, noise) = match Summary::of(view.clean, view.missing) {
            Some(clean) => {
                let std = (clean.squared_deviations / clean.n).sqrt();
                let p2p = clean.hi - clean.lo;
                let amplitude = (p2p / c.max_peak_to_peak).max(c.min_peak_to_peak / p2p);
                // Flagged only when the high band is both a large share of the energy and large
                // itself.
                let noise = view.high.map_or(0.0, |high| {
                    let observed = observed(high, view.missing);
                    let e_high: f64 = observed.clone().map(|v| v * v).sum();
                    let total = e_high + clean.squared_deviations;
                    if total > 0.0 {
                        let rms = (e_high / observed.count() as f64).sqrt();
                        (e_high / total / c.max_hf_ratio).min(rms / c.min_hf_rms)
                    } else {
                        0.0
                    }
                });
                ((c.flat_min_std / std).max(constant_run), amplitude, noise)
            }
            None => (constant_run, 0.0, 0.0),
        };
        let checks = [
            (FLAG_MISSING, missing / c.max_missing_fraction),
            (FLAG_FLAT, flat),
            (FLAG_CLIPPING, clipping),
            (FLAG_AMPLITUDE, amplitude),
            (FLAG_HF_NOISE, noise),
        ];
        let mut flags = 0;
        let mut score: f64 = 1.0;
        for (bit, ratio) in checks {
            if ratio.is_nan() || ratio > 1.0 {
                flags |= bit;
            }
            let s = if ratio.is_nan() { 0.0 } else { 1.5 - ratio };
            score = score.min(s.clamp(0.0, 1.0));
        }
        LeadQuality {
            flags,
            score: score as f32,
            unusable: flags & FLAG_FLAT != 0 || missing > c.hard_fail_missing_fraction,
        }
    }
}

/// Combines per-lead verdicts (`None` = absent lead) into the window verdict.
pub fn combine(leads: &[Option<LeadQuality>; N_LEADS]) -> WindowQuality {
    let present = leads.iter().flatten();
    let score = present
        .clone()
        .map(|q| q.score)
        .reduce(f32::min)
        .unwrap_or(0.0);
    let hard_fail = present.clone().all(|q| q.unusable);
    WindowQuality {
        flags: leads.map(|q| q.map_or(0, |q| q.flags)),
        score,
        hard_fail,
    }
}

/// The samples of `x` not marked in `missing`.
fn observed<'a>(
    x: &'a [f64],
    missing: Option<&'a [bool]>,
) -> impl Iterator<Item = f64> + Clone + 'a {
    x.iter()
        .enumerate()
        .filter(move |&(i, _)| missing.is_none_or(|m| !m[i]))
        .map(|(_, &v)| v)
}

/// One pass for the sum and range, a second for the squared deviations from the mean, over the
/// observed samples.
struct Summary {
    /// Observed sample count (at least 1).
    n: f64,
    lo: f64,
    hi: f64,
    /// Σ (x - mean)².
    squared_deviations: f64,
}

impl Summary {
    /// `None` when no sample is observed.
    fn of(x: &[f64], missing: Option<&[bool]>) -> Option<Self> {
        let (mut count, mut sum, mut lo, mut hi) = (0usize, 0.0, f64::INFINITY, f64::NEG_INFINITY);
        for v in observed(x, missing) {
            count += 1;
            sum += v;
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if count == 0 {
            return None;
        }
        let n = count as f64;
        let mean = sum / n;
        let squared_deviations = observed(x, missing).map(|v| (v - mean) * (v - mean)).sum();
        Some(Self {
            n,
            lo,
            hi,
            squared_deviations,
        })
    }
}

/// Range, longest constant run and count of the observed input samples, in one pass.
struct InputProfile {
    lo: f64,
    hi: f64,
    /// Longest run of consecutive observed samples whose successive differences stay within the
    /// tolerance.
    longest_constant_run: usize,
    observed: usize,
}

impl InputProfile {
    fn of(x: &[f64], missing: Option<&[bool]>, tolerance: f64) -> Self {
        let (mut lo, mut hi, mut prev) = (f64::INFINITY, f64::NEG_INFINITY, f64::NAN);
        let (mut best, mut run, mut observed) = (0usize, 0usize, 0usize);
        for (i, &v) in x.iter().enumerate() {
            if missing.is_some_and(|m| m[i]) {
                run = 0;
                continue;
            }
            lo = lo.min(v);
            hi = hi.max(v);
            // `prev` is NaN at the start, so the first comparison is false and a run starts at 1;
            // after a missing sample `run` is 0, so the run restarts there too.
            run = usize::from(run > 0 && (v - prev).abs() <= tolerance) * run + 1;
            best = best.max(run);
            prev = v;
            observed += 1;
        }
        Self {
            lo,
            hi,
            longest_constant_run: best,
            observed,
        }
    }
}

/// Fraction of observed samples lying in runs of at least `min_run` observed samples within
/// `tolerance` × range of the maximum, or of the minimum (a missing sample ends a run).
fn clipped_fraction(
    x: &[f64],
    missing: Option<&[bool]>,
    profile: &InputProfile,
    tolerance: f64,
    min_run: usize,
) -> f64 {
    let (lo, hi) = (profile.lo, profile.hi);
    if profile.observed == 0 || hi <= lo {
        return 0.0;
    }
    let band = tolerance * (hi - lo);
    let (upper, lower) = (hi - band, lo + band);
    let (mut clipped, mut run, mut side) = (0usize, 0usize, 0i8);
    for (c, chunk) in x.chunks(8).enumerate() {
        let near_rail = chunk
            .iter()
            .fold(false, |any, &v| any | (v >= upper) | (v <= lower));
        if side == 0 && !near_rail {
            // Off both rails before and throughout: the scan state would not change.
            continue;
        }
        for (j, &v) in chunk.iter().enumerate() {
            let here = if missing.is_some_and(|m| m[c * 8 + j]) {
                0
            } else {
                i8::from(v >= upper) - i8::from(v <= lower)
            };
            let continues = here != 0 && here == side;
            let credited = !continues && side != 0 && run >= min_run;
            clipped += usize::from(credited) * run;
            run = usize::from(continues) * run + 1;
            side = here;
        }
    }
    if side != 0 && run >= min_run {
        clipped += run;
    }
    clipped as f64 / profile.observed as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The clipped fraction by the definition: maximal runs of observed samples at one rail,
    /// counted when long enough, over the observed samples.
    fn reference(x: &[f64], missing: &[bool], tolerance: f64, min_run: usize) -> f64 {
        let seen = || x.iter().zip(missing).filter(|(_, &m)| !m).map(|(&v, _)| v);
        let (lo, hi) = seen().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(v), h.max(v))
        });
        if hi <= lo {
            return 0.0;
        }
        let band = tolerance * (hi - lo);
        let rail: Vec<i8> = x
            .iter()
            .zip(missing)
            .map(|(&v, &m)| {
                if m {
                    0
                } else {
                    i8::from(v >= hi - band) - i8::from(v <= lo + band)
                }
            })
            .collect();
        let mut clipped = 0;
        let mut i = 0;
        while i < rail.len() {
            let j = (i..rail.len())
                .find(|&j| rail[j] != rail[i])
                .unwrap_or(rail.len());
            if rail[i] != 0 && j - i >= min_run {
                clipped += j - i;
            }
            i = j;
        }
        clipped as f64 / seen().count() as f64
    }

    #[test]
    fn clipped_fraction_matches_the_definition_across_block_edges() {
        let mut state = 5u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            state
        };
        for len in [1usize, 7, 8, 9, 63, 200] {
            for round in 0..40 {
                let x: Vec<f64> = (0..len)
                    .map(|_| {
                        let r = next();
                        match r >> 61 {
                            0 | 1 => 1.0,
                            2 => -1.0,
                            _ => ((r >> 11) % 1000) as f64 / 1000.0 - 0.5,
                        }
                    })
                    .collect();
                // Half the rounds without missing samples, half with about one in eight missing.
                let missing: Vec<bool> = (0..len)
                    .map(|_| round % 2 == 1 && next() >> 61 == 0)
                    .collect();
                let mask = (round % 2 == 1).then_some(missing.as_slice());
                let profile = InputProfile::of(&x, mask, 1e-4);
                for min_run in [2, 3] {
                    let fast = clipped_fraction(&x, mask, &profile, 0.002, min_run);
                    let expected = if profile.observed == 0 {
                        0.0
                    } else {
                        reference(&x, &missing, 0.002, min_run)
                    };
                    assert_eq!(fast, expected, "{x:?} {missing:?}");
                }
            }
        }
    }
}
