//! The linear probe's head, on the host in f64: L2-regularised logistic regression on frozen
//! features, softmax over the classes (single-label) or one sigmoid per class (multi-label),
//! fitted to convergence with L-BFGS. Features are standardised with the training rows' mean and
//! standard deviation; the bias is not penalised.
//!
//! Objective, W (K, F) and b (K), over the n training rows:
//! ```text
//! single-label: (1/n) sum_i [logsumexp(z_i) - z_i[y_i]]                     + (l2/2) |W|^2
//! multi-label:  (1/n) sum_i sum_k [softplus(z_ik) - y_ik z_ik]              + (l2/2) |W|^2
//! with z_i = W x_i + b
//! ```
//! Row sums run in fixed blocks on the rayon pool and are added in block order, so a fit gives
//! the same bits whatever the thread count.

use rayon::prelude::*;

/// Rows per partial sum of the objective.
const ROWS_PER_BLOCK: usize = 256;
/// L-BFGS history length.
const HISTORY: usize = 10;

/// A fitted probe head.
#[derive(Clone, Debug, PartialEq)]
pub struct Logistic {
    /// Features F.
    pub features: usize,
    /// Classes K.
    pub classes: usize,
    pub multi_label: bool,
    /// (K, F + 1): each class's weights, then its bias, over standardised features.
    pub weights: Vec<f64>,
    mean: Vec<f64>,
    inv_std: Vec<f64>,
}

/// What a fit is given: features (n, F), targets (n, K) of 0 / 1, the rows to fit on.
pub struct FitData<'a> {
    pub x: &'a [f64],
    pub features: usize,
    pub targets: &'a [f64],
    pub classes: usize,
    pub multi_label: bool,
    pub rows: &'a [usize],
}

impl Logistic {
    /// Fits with L2 strength `l2`, starting from `warm` when given (a fit of the same rows).
    pub fn fit(data: &FitData<'_>, l2: f64, warm: Option<&Logistic>) -> Logistic {
        let (f, k) = (data.features, data.classes);
        let (mean, inv_std) = standardisation(data);
        let x: Vec<f64> = data
            .rows
            .iter()
            .flat_map(|&r| {
                let row = &data.x[r * f..(r + 1) * f];
                (0..f)
                    .map(|j| (row[j] - mean[j]) * inv_std[j])
                    .collect::<Vec<_>>()
            })
            .collect();
        let y: Vec<f64> = data
            .rows
            .iter()
            .flat_map(|&r| data.targets[r * k..(r + 1) * k].iter().copied())
            .collect();
        let start = warm.map_or_else(|| vec![0.0; k * (f + 1)], |w| w.weights.clone());
        let problem = Problem {
            x: &x,
            y: &y,
            f,
            k,
            multi_label: data.multi_label,
            l2,
        };
        let weights = lbfgs(|w, g| problem.value_grad(w, g), start, 500, 1e-7);
        Logistic {
            features: f,
            classes: k,
            multi_label: data.multi_label,
            weights,
            mean,
            inv_std,
        }
    }

    /// Probabilities (n, K) for the rows `rows` of features x (., F): softmax or sigmoids.
    pub fn predict(&self, x: &[f64], rows: &[usize]) -> Vec<f64> {
        let (f, k) = (self.features, self.classes);
        let mut out = Vec::with_capacity(rows.len() * k);
        let mut z = vec![0.0; k];
        for &r in rows {
            let row: Vec<f64> = (0..f)
                .map(|j| (x[r * f + j] - self.mean[j]) * self.inv_std[j])
                .collect();
            logits(&self.weights, &row, f, &mut z);
            if self.multi_label {
                out.extend(z.iter().map(|&v| sigmoid(v)));
            } else {
                let lse = logsumexp(&z);
                out.extend(z.iter().map(|&v| (v - lse).exp()));
            }
        }
        out
    }
}

/// Mean and 1 / standard deviation of each feature over the fitted rows (1 for constants).
fn standardisation(data: &FitData<'_>) -> (Vec<f64>, Vec<f64>) {
    let f = data.features;
    let n = data.rows.len().max(1) as f64;
    let mut mean = vec![0.0; f];
    for &r in data.rows {
        for (m, v) in mean.iter_mut().zip(&data.x[r * f..(r + 1) * f]) {
            *m += v;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n);
    let mut var = vec![0.0; f];
    for &r in data.rows {
        for j in 0..f {
            let d = data.x[r * f + j] - mean[j];
            var[j] += d * d;
        }
    }
    let inv_std = var
        .iter()
        .map(|v| {
            let sd = (v / n).sqrt();
            if sd > 1e-8 {
                1.0 / sd
            } else {
                1.0
            }
        })
        .collect();
    (mean, inv_std)
}

/// z (K) = W row + b, with weights (K, F + 1).
fn logits(w: &[f64], row: &[f64], f: usize, z: &mut [f64]) {
    for (c, zc) in z.iter_mut().enumerate() {
        let wc = &w[c * (f + 1)..(c + 1) * (f + 1)];
        *zc = wc[f] + wc[..f].iter().zip(row).map(|(a, b)| a * b).sum::<f64>();
    }
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

fn logsumexp(z: &[f64]) -> f64 {
    let max = z.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
    max + z.iter().map(|&v| (v - max).exp()).sum::<f64>().ln()
}

/// The standardised training rows and the objective's settings.
struct Problem<'a> {
    x: &'a [f64],
    y: &'a [f64],
    f: usize,
    k: usize,
    multi_label: bool,
    l2: f64,
}

impl Problem<'_> {
    /// The objective at `w`; its gradient into `grad`.
    fn value_grad(&self, w: &[f64], grad: &mut [f64]) -> f64 {
        let (f, k) = (self.f, self.k);
        let n = self.x.len() / f.max(1);
        let partials: Vec<(f64, Vec<f64>)> = (0..n.div_ceil(ROWS_PER_BLOCK))
            .into_par_iter()
            .map(|block| {
                let mut g = vec![0.0; w.len()];
                let mut loss = 0.0;
                let mut z = vec![0.0; k];
                for i in block * ROWS_PER_BLOCK..((block + 1) * ROWS_PER_BLOCK).min(n) {
                    let row = &self.x[i * f..(i + 1) * f];
                    let y = &self.y[i * k..(i + 1) * k];
                    logits(w, row, f, &mut z);
                    if self.multi_label {
                        for c in 0..k {
                            // softplus(z) - y z, stable for large |z|.
                            loss += z[c].max(0.0) + (-z[c].abs()).exp().ln_1p() - y[c] * z[c];
                            z[c] = sigmoid(z[c]) - y[c];
                        }
                    } else {
                        let lse = logsumexp(&z);
                        for c in 0..k {
                            loss -= y[c] * (z[c] - lse);
                            z[c] = (z[c] - lse).exp() - y[c];
                        }
                    }
                    // z now holds d loss_i / d logits.
                    for c in 0..k {
                        let gc = &mut g[c * (f + 1)..(c + 1) * (f + 1)];
                        for (gj, xj) in gc[..f].iter_mut().zip(row) {
                            *gj += z[c] * xj;
                        }
                        gc[f] += z[c];
                    }
                }
                (loss, g)
            })
            .collect();
        grad.fill(0.0);
        let mut loss = 0.0;
        for (l, g) in partials {
            loss += l;
            grad.iter_mut().zip(&g).for_each(|(a, b)| *a += b);
        }
        let inv_n = 1.0 / n.max(1) as f64;
        loss *= inv_n;
        grad.iter_mut().for_each(|g| *g *= inv_n);
        for c in 0..k {
            for j in 0..f {
                let i = c * (f + 1) + j;
                loss += 0.5 * self.l2 * w[i] * w[i];
                grad[i] += self.l2 * w[i];
            }
        }
        loss
    }
}

/// Minimises a smooth function with L-BFGS (two-loop recursion, backtracking Armijo line
/// search) from `x`, until the largest gradient entry is below `tol` or `max_iter` iterations.
fn lbfgs(
    value_grad: impl Fn(&[f64], &mut [f64]) -> f64,
    mut x: Vec<f64>,
    max_iter: usize,
    tol: f64,
) -> Vec<f64> {
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
    let mut g = vec![0.0; x.len()];
    let mut value = value_grad(&x, &mut g);
    let mut history: Vec<(Vec<f64>, Vec<f64>, f64)> = Vec::new(); // (s, y, 1 / y.s)
    let (mut x_new, mut g_new) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    for _ in 0..max_iter {
        if g.iter().fold(0.0f64, |m, v| m.max(v.abs())) < tol {
            break;
        }
        // Direction d = -H g by the two-loop recursion.
        let mut d: Vec<f64> = g.iter().map(|v| -v).collect();
        let mut alphas = Vec::with_capacity(history.len());
        for (s, y, rho) in history.iter().rev() {
            let a = rho * dot(s, &d);
            d.iter_mut().zip(y).for_each(|(di, yi)| *di -= a * yi);
            alphas.push(a);
        }
        let gamma = history
            .last()
            .map_or(1.0 / dot(&g, &g).sqrt().max(1.0), |(s, y, _)| {
                dot(s, y) / dot(y, y)
            });
        d.iter_mut().for_each(|di| *di *= gamma);
        for ((s, y, rho), a) in history.iter().zip(alphas.iter().rev()) {
            let b = rho * dot(y, &d);
            d.iter_mut().zip(s).for_each(|(di, si)| *di += (a - b) * si);
        }
        let slope = dot(&g, &d);
        if slope >= 0.0 {
            history.clear();
            continue;
        }
        let mut step = 1.0;
        let mut accepted = false;
        for _ in 0..40 {
            x_new
                .iter_mut()
                .zip(&x)
                .zip(&d)
                .for_each(|((n, xi), di)| *n = xi + step * di);
            let v = value_grad(&x_new, &mut g_new);
            if v <= value + 1e-4 * step * slope {
                accepted = true;
                value = v;
                break;
            }
            step *= 0.5;
        }
        if !accepted {
            break;
        }
        let s: Vec<f64> = x_new.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
        let ys = dot(&y, &s);
        std::mem::swap(&mut x, &mut x_new);
        std::mem::swap(&mut g, &mut g_new);
        if ys > 1e-12 {
            if history.len() == HISTORY {
                history.remove(0);
            }
            history.push((s, y, 1.0 / ys));
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lbfgs_minimises_a_quadratic() {
        // f(x) = sum_i (i + 1) (x_i - i)^2 / 2.
        let f = |x: &[f64], g: &mut [f64]| {
            let mut v = 0.0;
            for (i, (xi, gi)) in x.iter().zip(g.iter_mut()).enumerate() {
                let a = (i + 1) as f64;
                v += 0.5 * a * (xi - i as f64).powi(2);
                *gi = a * (xi - i as f64);
            }
            v
        };
        let x = lbfgs(f, vec![0.0; 6], 200, 1e-10);
        for (i, xi) in x.iter().enumerate() {
            assert!((xi - i as f64).abs() < 1e-8, "{x:?}");
        }
    }

    #[test]
    fn gradient_matches_central_differences() {
        for multi_label in [false, true] {
            let (f, k, n) = (3, 3, 7);
            let x: Vec<f64> = (0..n * f)
                .map(|i| ((i * 37 % 11) as f64 - 5.0) / 4.0)
                .collect();
            let y: Vec<f64> = (0..n * k)
                .map(|i| match multi_label {
                    true => ((i * 7 % 3) == 0) as u8 as f64,
                    false => (i % k == (i / k) % k) as u8 as f64,
                })
                .collect();
            let p = Problem {
                x: &x,
                y: &y,
                f,
                k,
                multi_label,
                l2: 0.3,
            };
            let w: Vec<f64> = (0..k * (f + 1)).map(|i| (i as f64 * 0.37).sin()).collect();
            let mut g = vec![0.0; w.len()];
            p.value_grad(&w, &mut g);
            let mut scratch = vec![0.0; w.len()];
            for i in 0..w.len() {
                let (mut up, mut down) = (w.clone(), w.clone());
                up[i] += 1e-6;
                down[i] -= 1e-6;
                let numeric =
                    (p.value_grad(&up, &mut scratch) - p.value_grad(&down, &mut scratch)) / 2e-6;
                assert!(
                    (numeric - g[i]).abs() < 1e-6,
                    "{multi_label} {i}: {numeric} vs {}",
                    g[i]
                );
            }
        }
    }

    #[test]
    fn separates_separable_classes() {
        // Class = which of the two features is larger.
        let n = 200;
        let x: Vec<f64> = (0..n * 2)
            .map(|i| ((i * 7919) % 101) as f64 / 100.0)
            .collect();
        let mut targets = vec![0.0; n * 2];
        for r in 0..n {
            targets[r * 2 + usize::from(x[r * 2 + 1] > x[r * 2])] = 1.0;
        }
        let rows: Vec<usize> = (0..n).collect();
        let data = FitData {
            x: &x,
            features: 2,
            targets: &targets,
            classes: 2,
            multi_label: false,
            rows: &rows,
        };
        let model = Logistic::fit(&data, 1e-3, None);
        let p = model.predict(&x, &rows);
        let correct = (0..n)
            .filter(|&r| (p[r * 2 + 1] > 0.5) == (targets[r * 2 + 1] > 0.5))
            .count();
        assert!(correct >= 195, "{correct} of {n}");
        assert!((p[0] + p[1] - 1.0).abs() < 1e-12);
    }

    /// The bias is not penalised (module doc: the penalty is (l2/2) |W|^2 over the weights
    /// only): with every weight zero and the biases not, the L2 strength changes neither the
    /// objective nor any gradient entry, the biases' included.
    #[test]
    fn the_penalty_leaves_the_bias_out() {
        for multi_label in [false, true] {
            let (f, k, n) = (2, 3, 4);
            let x: Vec<f64> = (0..n * f).map(|i| i as f64 / 3.0 - 1.0).collect();
            let y: Vec<f64> = (0..n * k)
                .map(|i| f64::from(u8::from(i % k == (i / k) % k)))
                .collect();
            // Weights 0, biases 0.8, -0.5, 1.3.
            let mut w = vec![0.0; k * (f + 1)];
            for (c, b) in [0.8, -0.5, 1.3].into_iter().enumerate() {
                w[c * (f + 1) + f] = b;
            }
            let at = |l2: f64| {
                let p = Problem {
                    x: &x,
                    y: &y,
                    f,
                    k,
                    multi_label,
                    l2,
                };
                let mut g = vec![0.0; w.len()];
                let value = p.value_grad(&w, &mut g);
                (value, g)
            };
            let (free, strong) = (at(0.0), at(10.0));
            assert_eq!(free.0, strong.0, "objective, multi_label {multi_label}");
            for c in 0..k {
                let b = c * (f + 1) + f;
                assert_eq!(
                    free.1[b], strong.1[b],
                    "bias {c} gradient, multi_label {multi_label}"
                );
            }
        }
    }

    /// Two classes split by the first feature's sign, over `n` rows; the second feature is
    /// `second(row)`.
    fn split_by_sign(n: usize, second: impl Fn(usize) -> f64) -> (Vec<f64>, Vec<f64>) {
        let mut x = Vec::with_capacity(n * 2);
        let mut targets = vec![0.0; n * 2];
        for r in 0..n {
            let first = ((r * 7919) % 101) as f64 / 50.0 - 1.0;
            x.extend([first, second(r)]);
            targets[r * 2 + usize::from(first > 0.0)] = 1.0;
        }
        (x, targets)
    }

    fn fit_on(x: &[f64], targets: &[f64], rows: &[usize]) -> Logistic {
        let data = FitData {
            x,
            features: 2,
            targets,
            classes: 2,
            multi_label: false,
            rows,
        };
        Logistic::fit(&data, 1e-2, None)
    }

    /// Standardisation makes the probe blind to each feature's scale and offset: features
    /// scaled by 1000 and 0.001 and shifted give the same probabilities as the raw ones, since
    /// prediction standardises as the fit did.
    #[test]
    fn predictions_do_not_depend_on_the_features_scale() {
        let n = 200;
        let (x, targets) = split_by_sign(n, |r| ((r * 31) % 17) as f64);
        let scaled: Vec<f64> = (x.chunks(2))
            .flat_map(|row| [1000.0 * row[0] + 5.0, 0.001 * row[1] - 3.0])
            .collect();
        let rows: Vec<usize> = (0..n).collect();
        let raw = fit_on(&x, &targets, &rows).predict(&x, &rows);
        let rescaled = fit_on(&scaled, &targets, &rows).predict(&scaled, &rows);
        for (a, b) in raw.iter().zip(&rescaled) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    /// A feature constant over the training rows (a dead unit of the encoder) is left
    /// unscaled: dividing by its zero spread would make every probability NaN.
    #[test]
    fn a_constant_feature_leaves_the_probabilities_finite() {
        let n = 200;
        let (x, targets) = split_by_sign(n, |_| 0.25);
        let rows: Vec<usize> = (0..n).collect();
        let p = fit_on(&x, &targets, &rows).predict(&x, &rows);
        assert!(p.iter().all(|v| v.is_finite()), "{:?}", &p[..4]);
        let correct = (0..n)
            .filter(|&r| (p[r * 2 + 1] > 0.5) == (targets[r * 2 + 1] > 0.5))
            .count();
        assert!(correct >= 195, "{correct} of {n}");
    }

    /// The data term is the mean over the rows, not their sum, so an L2 strength means the
    /// same whatever the number of training rows: with every weight and bias zero the
    /// objective is ln K (softmax) or K ln 2 (sigmoids) for any n.
    #[test]
    fn the_objective_averages_over_the_rows() {
        for (multi_label, want) in [(false, 3f64.ln()), (true, 3.0 * 2f64.ln())] {
            for n in [4, 300] {
                let (f, k) = (2, 3);
                let x: Vec<f64> = (0..n * f).map(|i| (i % 7) as f64 - 3.0).collect();
                let y: Vec<f64> = (0..n * k)
                    .map(|i| f64::from(u8::from(i % k == (i / k) % k)))
                    .collect();
                let p = Problem {
                    x: &x,
                    y: &y,
                    f,
                    k,
                    multi_label,
                    l2: 0.5,
                };
                let w = vec![0.0; k * (f + 1)];
                let mut g = vec![0.0; w.len()];
                let value = p.value_grad(&w, &mut g);
                assert!(
                    (value - want).abs() < 1e-12,
                    "multi_label {multi_label}, n {n}: {value} vs {want}"
                );
            }
        }
    }

    /// Standardisation is scikit-learn's `StandardScaler`: the mean and the population
    /// standard deviation (over n, not n - 1) of the rows fitted on, the others ignored. The
    /// probe's L2 grid (`l2_grid`) means what it means there only on this scale.
    #[test]
    fn standardisation_is_the_population_spread_of_the_fitted_rows() {
        let x = [1.0, 10.0, 2.0, 10.0, 3.0, 10.0, 4.0, 10.0, 100.0, -50.0];
        let targets = [0.0; 5];
        let data = FitData {
            x: &x,
            features: 2,
            targets: &targets,
            classes: 1,
            multi_label: true,
            rows: &[3, 0, 2, 1],
        };
        let (mean, inv_std) = standardisation(&data);
        assert_eq!(mean, vec![2.5, 10.0]);
        assert!(
            (inv_std[0] - 1.0 / 1.25f64.sqrt()).abs() < 1e-15,
            "{inv_std:?}"
        );
        assert_eq!(inv_std[1], 1.0);
    }
}
