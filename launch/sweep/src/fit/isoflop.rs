//! IsoFLOP profiles (Chinchilla's second approach): at each compute budget C, the final loss
//! against log N is fitted by a parabola; its vertex is the loss-minimising N_opt(C). Across
//! budgets, log N_opt = c + a log C gives the trend N_opt ~ C^a. Intervals come from bootstrap
//! resamples (seeds or points) within each budget.
//!
//! An optimum is only called interior when the data bracket it: the lowest mean loss is at a size
//! strictly between the smallest and the largest, and the parabola is convex with its vertex
//! inside the sizes trained. A convex parabola through losses that only rise (or only fall) with
//! N can still have its vertex inside the range, below every measured loss: that is not an
//! optimum. Each resample is held to the same rule; one that fails it is unbounded (NaN).

use super::bootstrap::{percentile_interval, Bootstrap, Estimate, Resampling};

/// One run at a budget.
#[derive(Clone, Debug, PartialEq)]
pub struct BudgetPoint {
    pub budget: f64,
    pub n: f64,
    pub loss: f64,
}

/// Where the loss is lowest at one budget.
#[derive(Clone, Debug, PartialEq)]
pub enum Optimum {
    /// The minimum is bracketed (see the module comment): N_opt with its interval, and the
    /// parabola's loss there.
    Interior { n_opt: Estimate, loss: f64 },
    /// No bracketed minimum: `best_n` is the size with the lowest mean loss, `best` where it lies.
    Unbracketed { best_n: f64, best: Best },
    /// Fewer than three distinct sizes: no parabola.
    TooFew { sizes: usize },
}

/// Where the best measured size of an unbracketed profile lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Best {
    /// At the smallest size: the optimum, if any, is at a smaller N.
    Smallest,
    /// At the largest size: the optimum, if any, is at a larger N.
    Largest,
    /// Between them, but the losses are not U-shaped: the parabola through them is not convex,
    /// or its vertex falls outside the sizes (noise, or too few seeds).
    MiddleNotConvex,
}

/// One budget's profile.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    pub budget: f64,
    /// (N, mean loss over seeds), by increasing N.
    pub means: Vec<(f64, f64)>,
    pub optimum: Optimum,
    /// N_opt of each bootstrap resample (NaN where a resample has no bracketed minimum).
    pub draws: Vec<f64>,
    /// What the resamples redrew, and the fewest runs of any size (the seeds per size when
    /// `Seeds`).
    pub resampling: Resampling,
    pub replicas: usize,
}

/// N_opt ~ C^exponent over the budgets with an interior optimum.
#[derive(Clone, Debug, PartialEq)]
pub struct Trend {
    pub exponent: Estimate,
    /// log N_opt at log C = 0.
    pub intercept: f64,
    pub budgets: usize,
    /// Resamples in which some of those budgets had no bracketed minimum (unbounded), of
    /// `resamples`.
    pub unbounded: usize,
    pub resamples: usize,
}

/// Least-squares parabola y = a x^2 + b x + c.
fn parabola(xs: &[f64], ys: &[f64]) -> Option<(f64, f64, f64)> {
    // Normal equations over centred x for conditioning.
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let mut s = [0.0f64; 5];
    let mut t = [0.0f64; 3];
    for (&x, &y) in xs.iter().zip(ys) {
        let u = x - mean;
        let mut p = 1.0;
        for (k, sk) in s.iter_mut().enumerate() {
            *sk += p;
            if k < 3 {
                t[k] += p * y;
            }
            p *= u;
        }
    }
    let m = [[s[4], s[3], s[2]], [s[3], s[2], s[1]], [s[2], s[1], s[0]]];
    let rhs = [t[2], t[1], t[0]];
    let (a, b, c) = solve3(m, rhs)?;
    // Undo the centring: a (x - m)^2 + b (x - m) + c.
    Some((a, b - 2.0 * a * mean, a * mean * mean - b * mean + c))
}

fn det3(m: &[[f64; 3]; 3]) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

/// Cramer's rule.
fn solve3(m: [[f64; 3]; 3], rhs: [f64; 3]) -> Option<(f64, f64, f64)> {
    let d = det3(&m);
    if d.abs() < 1e-300 || !d.is_finite() {
        return None;
    }
    let column = |j: usize| {
        let mut mj = m;
        for (row, r) in mj.iter_mut().zip(rhs) {
            row[j] = r;
        }
        det3(&mj) / d
    };
    Some((column(0), column(1), column(2)))
}

/// (N, mean loss) per distinct N, by increasing N.
fn means(points: &[&BudgetPoint]) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64, usize)> = Vec::new();
    for p in points {
        match out.iter_mut().find(|(n, _, _)| *n == p.n) {
            Some(entry) => {
                entry.1 += p.loss;
                entry.2 += 1;
            }
            None => out.push((p.n, p.loss, 1)),
        }
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out.into_iter().map(|(n, s, c)| (n, s / c as f64)).collect()
}

/// The parabola `loss = a (log N)^2 + b log N + c` through a profile's means (three or more).
pub fn fitted_parabola(profile: &Profile) -> Option<(f64, f64, f64)> {
    if profile.means.len() < 3 {
        return None;
    }
    let xs: Vec<f64> = profile.means.iter().map(|m| m.0.ln()).collect();
    let ys: Vec<f64> = profile.means.iter().map(|m| m.1).collect();
    parabola(&xs, &ys)
}

/// The index of the lowest mean (the first of equal ones).
fn lowest(means: &[(f64, f64)]) -> usize {
    (0..means.len())
        .min_by(|&i, &j| means[i].1.total_cmp(&means[j].1))
        .expect("a profile has sizes")
}

/// The vertex log N of the parabola through (log N, loss) when the minimum is bracketed: three
/// or more sizes, the lowest mean strictly below both ends' and at neither end, and a convex
/// parabola whose vertex lies within the sizes.
fn bracketed_vertex(means: &[(f64, f64)]) -> Option<f64> {
    if means.len() < 3 {
        return None;
    }
    let last = means.len() - 1;
    let best = lowest(means);
    let below_ends = means[best].1 < means[0].1 && means[best].1 < means[last].1;
    if !below_ends {
        return None;
    }
    let xs: Vec<f64> = means.iter().map(|m| m.0.ln()).collect();
    let ys: Vec<f64> = means.iter().map(|m| m.1).collect();
    let (a, b, _) = parabola(&xs, &ys)?;
    let x = -b / (2.0 * a);
    (a > 0.0 && x >= xs[0] && x <= xs[last]).then_some(x)
}

/// The profile of every budget, with bootstrap intervals on interior optima.
pub fn profiles(points: &[BudgetPoint], seed: u64) -> Vec<Profile> {
    let mut budgets: Vec<f64> = points.iter().map(|p| p.budget).collect();
    budgets.sort_by(f64::total_cmp);
    budgets.dedup();
    budgets
        .into_iter()
        .enumerate()
        .map(|(index, budget)| {
            let here: Vec<&BudgetPoint> = points.iter().filter(|p| p.budget == budget).collect();
            let m = means(&here);
            let keys: Vec<u64> = here.iter().map(|p| p.n.to_bits()).collect();
            let boot = Bootstrap::new(&keys);
            let draws: Vec<f64> = boot
                .resamples(seed ^ index as u64)
                .iter()
                .map(|r| {
                    let sample: Vec<&BudgetPoint> = r.iter().map(|&i| here[i]).collect();
                    bracketed_vertex(&means(&sample)).map_or(f64::NAN, f64::exp)
                })
                .collect();
            let optimum = optimum(&m, &draws);
            Profile {
                budget,
                means: m,
                optimum,
                draws,
                resampling: boot.resampling,
                replicas: boot.min_replicas(),
            }
        })
        .collect()
}

fn optimum(m: &[(f64, f64)], draws: &[f64]) -> Optimum {
    if m.len() < 3 {
        return Optimum::TooFew { sizes: m.len() };
    }
    match bracketed_vertex(m) {
        Some(x) => {
            let xs: Vec<f64> = m.iter().map(|p| p.0.ln()).collect();
            let ys: Vec<f64> = m.iter().map(|p| p.1).collect();
            let (a, b, c) = parabola(&xs, &ys).expect("bracketed_vertex found one");
            Optimum::Interior {
                n_opt: Estimate {
                    value: x.exp(),
                    ci: percentile_interval(draws),
                },
                loss: a * x * x + b * x + c,
            }
        }
        None => {
            let best = lowest(m);
            Optimum::Unbracketed {
                best_n: m[best].0,
                best: if best == 0 {
                    Best::Smallest
                } else if m[best].1 >= m[m.len() - 1].1 {
                    Best::Largest
                } else {
                    Best::MiddleNotConvex
                },
            }
        }
    }
}

/// Ordinary least squares slope and intercept of y on x.
fn line(xs: &[f64], ys: &[f64]) -> Option<(f64, f64)> {
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let slope = sxy / sxx;
    Some((slope, my - slope * mx))
}

/// The trend of N_opt with C over the budgets with an interior optimum, its interval from the
/// same resamples: resample r refits the line through every budget's N_opt of resample r, and is
/// unbounded (NaN) when any of those budgets has no bracketed minimum in it. `None` with fewer
/// than two such budgets.
pub fn trend(profiles: &[Profile]) -> Option<Trend> {
    let interior: Vec<&Profile> = profiles
        .iter()
        .filter(|p| matches!(p.optimum, Optimum::Interior { .. }))
        .collect();
    if interior.len() < 2 {
        return None;
    }
    let xs: Vec<f64> = interior.iter().map(|p| p.budget.ln()).collect();
    let ys: Vec<f64> = interior
        .iter()
        .map(|p| match &p.optimum {
            Optimum::Interior { n_opt, .. } => n_opt.value.ln(),
            _ => unreachable!("filtered to interior optima"),
        })
        .collect();
    let (slope, intercept) = line(&xs, &ys)?;
    let resamples = interior.iter().map(|p| p.draws.len()).min().unwrap_or(0);
    let draws: Vec<f64> = (0..resamples)
        .map(|r| {
            let y: Option<Vec<f64>> = interior
                .iter()
                .map(|p| p.draws[r].is_finite().then(|| p.draws[r].ln()))
                .collect();
            y.and_then(|y| line(&xs, &y)).map_or(f64::NAN, |l| l.0)
        })
        .collect();
    Some(Trend {
        exponent: Estimate {
            value: slope,
            ci: percentile_interval(&draws),
        },
        intercept,
        budgets: interior.len(),
        unbounded: draws.iter().filter(|d| d.is_nan()).count(),
        resamples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parabola_recovers_its_coefficients() {
        let xs = [1.0, 2.0, 3.0, 4.0, 5.0];
        let ys: Vec<f64> = xs.iter().map(|x| 0.5 * x * x - 3.0 * x + 2.0).collect();
        let (a, b, c) = parabola(&xs, &ys).unwrap();
        assert!((a - 0.5).abs() < 1e-9 && (b + 3.0).abs() < 1e-9 && (c - 2.0).abs() < 1e-9);
    }
}
