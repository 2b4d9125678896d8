//! The scaling-law fits of the report, each with bootstrap 95% intervals:
//! - `fit_loss_vs_n`: L(N) = E + A N^-alpha (one fit per data size);
//! - `fit_loss_vs_nd`: L(N, D) = E + A/N^alpha + B/D^beta (Chinchilla's third approach);
//! - `isoflop`: the loss-minimising N of each iso-FLOP budget and its trend with C.
//!
//! A fit with no more distinct points than parameters is `determined = false`, and its
//! resamples with too few distinct points count as unbounded, so its intervals come out wide or
//! infinite rather than falsely tight.

pub mod bootstrap;
pub mod isoflop;
pub mod law;
pub mod lbfgs;

use bootstrap::{percentile_interval, Bootstrap, Estimate, Resampling};
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
}

/// L(N) = E + A N^-alpha over `obs` (which should share one data size).
pub fn fit_loss_vs_n(obs: &[Observation], seed: u64) -> Option<LawFit> {
    fit_with_ci(obs, 1, seed)
}

/// L(N, D) = E + A/N^alpha + B/D^beta. `Err` says why the data cannot carry it (N or D does
/// not vary).
pub fn fit_loss_vs_nd(obs: &[Observation], seed: u64) -> Result<LawFit, String> {
    let distinct = |f: fn(&Observation) -> f64| {
        let mut v: Vec<f64> = obs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        v.len()
    };
    if distinct(|o| o.n) < 2 {
        return Err("N does not vary".into());
    }
    if distinct(|o| o.d) < 2 {
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
    let starts = law::refit_starts(&law, k);
    // Each resample's parameters, NaN where the resample cannot determine them.
    let draws: Vec<Vec<f64>> = boot
        .resamples(seed)
        .iter()
        .map(|r| {
            let fitted = (boot.distinct_in(r) >= params)
                .then(|| {
                    let sample: Vec<Point> = r.iter().map(|&i| points[i].clone()).collect();
                    law::fit(&sample, k, &starts)
                })
                .flatten();
            match fitted {
                Some(l) => std::iter::once(l.e)
                    .chain(l.coefficients)
                    .chain(l.exponents)
                    .collect(),
                None => vec![f64::NAN; params],
            }
        })
        .collect();
    let estimate = |value: f64, index: usize| {
        let column: Vec<f64> = draws.iter().map(|d| d[index]).collect();
        Estimate {
            value,
            ci: percentile_interval(&column),
        }
    };
    Some(LawFit {
        e: estimate(law.e, 0),
        coefficients: (0..k)
            .map(|j| estimate(law.coefficients[j], 1 + j))
            .collect(),
        exponents: (0..k)
            .map(|j| estimate(law.exponents[j], 1 + k + j))
            .collect(),
        law,
        points: points.len(),
        distinct: boot.distinct(),
        params,
        determined: boot.distinct() > params,
        resampling: boot.resampling,
    })
}
