//! Scaling laws as sums of power laws, fitted as Chinchilla's third approach: the Huber loss
//! (delta 1e-3) of the log-loss residuals, minimised by L-BFGS from a grid of starting points.
//!
//! ```text
//! L(x_1..x_K) = E + sum_k A_k x_k^-alpha_k        K = 1: L(N);  K = 2: L(N, D)
//! log L = LSE(e, a_1 - alpha_1 log x_1, ..., a_K - alpha_K log x_K)   E = exp(e), A_k = exp(a_k)
//! objective = sum_i Huber_delta(log L(x_i) - log loss_i)
//! ```
//! Parameters are `[e, a_1..a_K, alpha_1..alpha_K]`.

use super::lbfgs;

/// Huber threshold on log-loss residuals (Chinchilla uses 1e-3).
pub const HUBER_DELTA: f64 = 1e-3;
const MAX_ITER: usize = 400;

/// One observation: the law's inputs (N, or N and D) and the measured loss.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub x: Vec<f64>,
    pub loss: f64,
}

/// A fitted law.
#[derive(Clone, Debug, PartialEq)]
pub struct Law {
    /// The irreducible loss E.
    pub e: f64,
    /// A_k.
    pub coefficients: Vec<f64>,
    /// alpha_k.
    pub exponents: Vec<f64>,
    /// Huber objective at the fit.
    pub objective: f64,
}

impl Law {
    /// L(x).
    pub fn predict(&self, x: &[f64]) -> f64 {
        self.e
            + self
                .coefficients
                .iter()
                .zip(&self.exponents)
                .zip(x)
                .map(|((a, alpha), x)| a * x.powf(-alpha))
                .sum::<f64>()
    }

    fn from_params(theta: &[f64], objective: f64) -> Law {
        let k = (theta.len() - 1) / 2;
        Law {
            e: theta[0].exp(),
            coefficients: theta[1..=k].iter().map(|a| a.exp()).collect(),
            exponents: theta[k + 1..].to_vec(),
            objective,
        }
    }

    fn params(&self) -> Vec<f64> {
        let mut theta = vec![self.e.ln()];
        theta.extend(self.coefficients.iter().map(|a| a.ln()));
        theta.extend(&self.exponents);
        theta
    }
}

fn huber(r: f64) -> (f64, f64) {
    if r.abs() <= HUBER_DELTA {
        (0.5 * r * r, r)
    } else {
        (
            HUBER_DELTA * (r.abs() - 0.5 * HUBER_DELTA),
            HUBER_DELTA * r.signum(),
        )
    }
}

/// The Huber objective and its gradient at `theta` over points given as (log x, log loss).
fn objective(theta: &[f64], logs: &[(Vec<f64>, f64)], grad: &mut [f64]) -> f64 {
    let k = (theta.len() - 1) / 2;
    grad.fill(0.0);
    let mut terms = vec![0.0; k + 1];
    let mut total = 0.0;
    for (log_x, log_loss) in logs {
        terms[0] = theta[0];
        for j in 0..k {
            terms[j + 1] = theta[1 + j] - theta[1 + k + j] * log_x[j];
        }
        let max = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = terms.iter().map(|t| (t - max).exp()).sum();
        let lse = max + sum.ln();
        let (h, dh) = huber(lse - log_loss);
        total += h;
        // d lse / d term_j is the softmax weight of term j.
        grad[0] += dh * (terms[0] - lse).exp();
        for j in 0..k {
            let w = (terms[j + 1] - lse).exp();
            grad[1 + j] += dh * w;
            grad[1 + k + j] -= dh * w * log_x[j];
        }
    }
    total
}

/// The starting grid: e in {-3, -1.5, -0.5, 0}, each a_k in {0, 3, 6, 10}, each alpha_k in
/// {0.1, 0.4, 0.8, 1.5}.
pub fn start_grid(k: usize) -> Vec<Vec<f64>> {
    const E: [f64; 4] = [-3.0, -1.5, -0.5, 0.0];
    const A: [f64; 4] = [0.0, 3.0, 6.0, 10.0];
    const ALPHA: [f64; 4] = [0.1, 0.4, 0.8, 1.5];
    let mut grid = vec![Vec::new()];
    let axes: Vec<&[f64]> = std::iter::once(&E[..])
        .chain(std::iter::repeat_n(&A[..], k))
        .chain(std::iter::repeat_n(&ALPHA[..], k))
        .collect();
    for axis in axes {
        grid = grid
            .into_iter()
            .flat_map(|prefix| {
                axis.iter().map(move |&v| {
                    let mut p = prefix.clone();
                    p.push(v);
                    p
                })
            })
            .collect();
    }
    grid
}

/// Fits a law with `k` inputs to `points` from each of `starts` (parameter vectors as in
/// `start_grid`) and keeps the best. `None` when no start gives a finite fit.
pub fn fit(points: &[Point], k: usize, starts: &[Vec<f64>]) -> Option<Law> {
    let logs: Vec<(Vec<f64>, f64)> = points
        .iter()
        .map(|p| (p.x.iter().map(|x| x.ln()).collect(), p.loss.ln()))
        .collect();
    let f = |theta: &[f64], grad: &mut [f64]| objective(theta, &logs, grad);
    starts
        .iter()
        .filter(|s| s.len() == 1 + 2 * k)
        .map(|s| lbfgs::minimize(&f, s, MAX_ITER))
        .filter(|m| m.value.is_finite() && m.x.iter().all(|v| v.is_finite()))
        .min_by(|a, b| a.value.total_cmp(&b.value))
        .map(|m| Law::from_params(&m.x, m.value))
}

/// Fits from the full grid.
pub fn fit_grid(points: &[Point], k: usize) -> Option<Law> {
    fit(points, k, &start_grid(k))
}

/// Starts for refitting a resample: the full fit's parameters and eight points spread over the
/// grid (enough to leave a wrong basin; the whole grid for each of hundreds of resamples would
/// take a minute).
pub fn refit_starts(full: &Law, k: usize) -> Vec<Vec<f64>> {
    let grid = start_grid(k);
    let stride = grid.len() / 8;
    let mut starts = vec![full.params()];
    starts.extend(grid.into_iter().skip(stride / 2).step_by(stride));
    starts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradient_matches_finite_differences() {
        let logs: Vec<(Vec<f64>, f64)> = [(1e4, 1e5, 1.1), (1e5, 1e6, 0.8), (1e6, 1e5, 0.9)]
            .iter()
            .map(|&(n, d, l): &(f64, f64, f64)| (vec![n.ln(), d.ln()], l.ln()))
            .collect();
        let theta = [-0.7, 3.0, 2.5, 0.35, 0.3];
        let mut grad = [0.0; 5];
        objective(&theta, &logs, &mut grad);
        for i in 0..5 {
            let h = 1e-6;
            let (mut up, mut down) = (theta, theta);
            up[i] += h;
            down[i] -= h;
            let mut scratch = [0.0; 5];
            let numeric = (objective(&up, &logs, &mut scratch)
                - objective(&down, &logs, &mut scratch))
                / (2.0 * h);
            assert!(
                (numeric - grad[i]).abs() < 1e-7 + 1e-4 * numeric.abs(),
                "param {i}: {numeric} vs {}",
                grad[i]
            );
        }
    }

    #[test]
    fn grid_covers_every_combination() {
        assert_eq!(start_grid(1).len(), 64);
        assert_eq!(start_grid(2).len(), 1024);
        assert!(start_grid(2).iter().all(|s| s.len() == 5));
    }
}
