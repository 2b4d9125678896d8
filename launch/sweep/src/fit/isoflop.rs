//! IsoFLOP profiles (Chinchilla's second approach): at each compute budget C, the final loss
//! against log N is fitted by a parabola; its vertex is the loss-minimising N_opt(C). Across
//! budgets, log N_opt = c + a log C gives the trend N_opt ~ C^a. Intervals come from bootstrap
//! resamples (seeds or points) within each budget.

use super::bootstrap::{percentile_interval, Bootstrap, Estimate};

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
    /// The parabola's vertex lies within the sizes trained: N_opt with its interval.
    Interior { n_opt: Estimate, loss: f64 },
    /// The parabola has no minimum inside the sizes trained: the best measured size is at the
    /// smallest (`at_smallest`) or largest end; a larger range of sizes is needed.
    Edge { best_n: f64, at_smallest: bool },
    /// Fewer than three distinct sizes: no parabola.
    TooFew { sizes: usize },
}

/// One budget's profile.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    pub budget: f64,
    /// (N, mean loss over seeds), by increasing N.
    pub means: Vec<(f64, f64)>,
    pub optimum: Optimum,
    /// N_opt of each bootstrap resample (NaN where a resample has no interior minimum).
    pub draws: Vec<f64>,
}

/// N_opt ~ C^exponent over the budgets with an interior optimum.
#[derive(Clone, Debug, PartialEq)]
pub struct Trend {
    pub exponent: Estimate,
    /// log N_opt at log C = 0.
    pub intercept: f64,
    pub budgets: usize,
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

/// The vertex log N of the parabola through (log N, loss), if it is a minimum inside the range.
fn vertex(means: &[(f64, f64)]) -> Option<f64> {
    let xs: Vec<f64> = means.iter().map(|m| m.0.ln()).collect();
    let ys: Vec<f64> = means.iter().map(|m| m.1).collect();
    let (a, b, _) = parabola(&xs, &ys)?;
    let x = -b / (2.0 * a);
    let (lo, hi) = (xs[0], xs[xs.len() - 1]);
    (a > 0.0 && x >= lo && x <= hi).then_some(x)
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
                    let sm = means(&sample);
                    if sm.len() < 3 {
                        return f64::NAN;
                    }
                    vertex(&sm).map_or(f64::NAN, f64::exp)
                })
                .collect();
            let optimum = optimum(&m, &draws);
            Profile {
                budget,
                means: m,
                optimum,
                draws,
            }
        })
        .collect()
}

fn optimum(m: &[(f64, f64)], draws: &[f64]) -> Optimum {
    if m.len() < 3 {
        return Optimum::TooFew { sizes: m.len() };
    }
    match vertex(m) {
        Some(x) => {
            let xs: Vec<f64> = m.iter().map(|p| p.0.ln()).collect();
            let ys: Vec<f64> = m.iter().map(|p| p.1).collect();
            let (a, b, c) = parabola(&xs, &ys).expect("vertex found one");
            Optimum::Interior {
                n_opt: Estimate {
                    value: x.exp(),
                    ci: percentile_interval(draws),
                },
                loss: a * x * x + b * x + c,
            }
        }
        None => {
            let best = m
                .iter()
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .expect("three sizes");
            Optimum::Edge {
                best_n: best.0,
                at_smallest: best.0 <= m[0].0,
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
/// same resamples: resample r refits the line through every budget's N_opt of resample r.
/// `None` with fewer than two such budgets.
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
            let (x, y): (Vec<f64>, Vec<f64>) = interior
                .iter()
                .zip(&xs)
                .filter(|(p, _)| p.draws[r].is_finite())
                .map(|(p, &x)| (x, p.draws[r].ln()))
                .unzip();
            if x.len() < 2 {
                return f64::NAN;
            }
            line(&x, &y).map_or(f64::NAN, |l| l.0)
        })
        .collect();
    Some(Trend {
        exponent: Estimate {
            value: slope,
            ci: percentile_interval(&draws),
        },
        intercept,
        budgets: interior.len(),
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
