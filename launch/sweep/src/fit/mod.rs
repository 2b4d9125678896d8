//! The scaling-law fits of the report, each with bootstrap 95% intervals:
//! - `fit_loss_vs_n`: L(N) = E + A N^-alpha (one fit per data size);
//! - `fit_loss_vs_nd`: L(N, D) = E + A/N^alpha + B/D^beta (Chinchilla's third approach);
//! - `isoflop`: the loss-minimising N of each iso-FLOP budget and its trend with C.
//!
//! A fit with no more distinct points than parameters is `determined = false`: it interpolates
//! its points exactly, so it gets no resamples and every interval is unbounded. (Under the seeds
//! bootstrap every resample keeps every grid point, so a resample could never show that.) A
//! resample of a determined fit needs more distinct points than parameters too, else it counts
//! as unbounded. A fit whose exponent is not positive (`LawFit::not_falling`) is no power-law
//! decrease: the loss does not fall with that input over the points, whatever E and A say.

pub mod bootstrap;
pub mod isoflop;
pub mod law;
pub mod lbfgs;

use bootstrap::{percentile_interval, Bootstrap, Estimate, Interval, Resampling};
use law::{Law, Point};

/// One finished run as the fits see it.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// Non-embedding parameters N.
    pub n: f64,
    /// Samples seen D.
    pub d: f64,
    /// Final validation loss.
    pub loss: f64,
}

/// A fitted law with intervals on every parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct LawFit {
    pub law: Law,
    pub e: Estimate,
    pub coefficients: Vec<Estimate>,
    pub exponents: Vec<Estimate>,
    pub points: usize,
    pub distinct: usize,
    pub params: usize,
    /// More distinct points than parameters.
    pub determined: bool,
    pub resampling: Resampling,
    /// The fewest runs of any grid point (the seeds per point under `Resampling::Seeds`).
    pub replicas: usize,
    /// Bootstrap resamples drawn (none when not `determined`), of them `thin` with no more
    /// distinct points than parameters and `failed` where no start gave a finite fit: each is
    /// unbounded.
    pub resamples: usize,
    pub thin: usize,
    pub failed: usize,
    /// Parameters whose bootstrap interval excluded the fit's own estimate (the resamples'
    /// fits found another minimum): every interval is then unbounded.
    pub excluded: usize,
}

impl LawFit {
    /// The indices of the exponents that are not positive: the fitted loss does not fall with
    /// that input (N, or D), so the fit is not a scaling law in it.
    pub fn not_falling(&self) -> Vec<usize> {
        (0..self.exponents.len())
            .filter(|&j| self.exponents[j].value <= 0.0 || self.exponents[j].value.is_nan())
            .collect()
    }
}

/// The number of distinct values of `f` over `obs`.
fn distinct(obs: &[Observation], f: fn(&Observation) -> f64) -> usize {
    let mut v: Vec<f64> = obs.iter().map(f).collect();
    v.sort_by(f64::total_cmp);
    v.dedup();
    v.len()
}

/// L(N) = E + A N^-alpha over `obs` (which should share one data size); `None` where
/// `try_fit_loss_vs_n` says why not.
pub fn fit_loss_vs_n(obs: &[Observation], seed: u64) -> Option<LawFit> {
    try_fit_loss_vs_n(obs, seed).ok()
}

/// L(N) = E + A N^-alpha over `obs`. `Err` says why the data cannot carry it (N does not vary,
/// or no start gave a finite fit).
pub fn try_fit_loss_vs_n(obs: &[Observation], seed: u64) -> Result<LawFit, String> {
    if distinct(obs, |o| o.n) < 2 {
        return Err("N does not vary".into());
    }
    fit_with_ci(obs, 1, seed).ok_or_else(|| "no start of the optimiser gave a finite fit".into())
}

/// L(N, D) = E + A/N^alpha + B/D^beta. `Err` says why the data cannot carry it (N or D does
/// not vary).
pub fn fit_loss_vs_nd(obs: &[Observation], seed: u64) -> Result<LawFit, String> {
    if distinct(obs, |o| o.n) < 2 {
        return Err("N does not vary".into());
    }
    if distinct(obs, |o| o.d) < 2 {
        return Err(
            "D does not vary (one data fraction under equal steps): only L(N) applies".into(),
        );
    }
    fit_with_ci(obs, 2, seed).ok_or_else(|| "no start of the optimiser gave a finite fit".into())
}

fn inputs(o: &Observation, k: usize) -> Vec<f64> {
    if k == 1 {
        vec![o.n]
    } else {
        vec![o.n, o.d]
    }
}

fn fit_with_ci(obs: &[Observation], k: usize, seed: u64) -> Option<LawFit> {
    let points: Vec<Point> = obs
        .iter()
        .map(|o| Point {
            x: inputs(o, k),
            loss: o.loss,
        })
        .collect();
    if points.is_empty() || points.iter().any(|p| !(p.loss > 0.0 && p.loss.is_finite())) {
        return None;
    }
    let law = law::fit_grid(&points, k)?;
    let keys: Vec<Vec<u64>> = points
        .iter()
        .map(|p| p.x.iter().map(|x| x.to_bits()).collect())
        .collect();
    let boot = Bootstrap::new(&keys);
    let params = 1 + 2 * k;
    let determined = boot.distinct() > params;
    let starts = law::refit_starts(&law, k);
    let (mut thin, mut failed) = (0, 0);
    // Each resample's parameters, NaN where the resample cannot determine them.
    let resamples = if determined {
        boot.resamples(seed)
    } else {
        Vec::new()
    };
    let draws: Vec<Vec<f64>> = resamples
        .iter()
        .map(|r| {
            if boot.distinct_in(r) <= params {
                thin += 1;
                return vec![f64::NAN; params];
            }
            let sample: Vec<Point> = r.iter().map(|&i| points[i].clone()).collect();
            match law::fit(&sample, k, &starts) {
                Some(l) => std::iter::once(l.e)
                    .chain(l.coefficients)
                    .chain(l.exponents)
                    .collect(),
                None => {
                    failed += 1;
                    vec![f64::NAN; params]
                }
            }
        })
        .collect();
    let values: Vec<f64> = std::iter::once(law.e)
        .chain(law.coefficients.iter().copied())
        .chain(law.exponents.iter().copied())
        .collect();
    let mut cis: Vec<Interval> = (0..params)
        .map(|index| match determined {
            true => percentile_interval(&draws.iter().map(|d| d[index]).collect::<Vec<f64>>()),
            false => Interval::UNBOUNDED,
        })
        .collect();
    // Resamples refit from the fit's own neighbourhood; where an interval still excludes its
    // estimate, they found another minimum the data cannot tell from the fit's: no bound holds.
    let excluded = values
        .iter()
        .zip(&cis)
        .filter(|(v, ci)| !ci.contains(**v))
        .count();
    if excluded > 0 {
        cis = vec![Interval::UNBOUNDED; params];
    }
    let estimate = |index: usize| Estimate {
        value: values[index],
        ci: cis[index],
    };
    Some(LawFit {
        e: estimate(0),
        coefficients: (0..k).map(|j| estimate(1 + j)).collect(),
        exponents: (0..k).map(|j| estimate(1 + k + j)).collect(),
        excluded,
        law,
        points: points.len(),
        distinct: boot.distinct(),
        params,
        determined,
        resampling: boot.resampling,
        replicas: boot.min_replicas(),
        resamples: resamples.len(),
        thin,
        failed,
    })
}
