//! A small L-BFGS minimiser (two-loop recursion, backtracking Armijo line search) for the few
//! parameters of a scaling law. Chinchilla's third approach fits its law with L-BFGS too.

/// Where the minimiser stopped.
#[derive(Clone, Debug, PartialEq)]
pub struct Minimum {
    pub x: Vec<f64>,
    pub value: f64,
    pub iterations: usize,
}

/// Pairs (s, y) remembered between iterations.
const MEMORY: usize = 8;
/// Armijo sufficient-decrease constant.
const ARMIJO: f64 = 1e-4;

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Minimises `f` from `x0`. `f(x, grad)` returns the value at `x` and writes its gradient.
/// Stops after `max_iter` iterations, when the gradient vanishes, or when no step decreases
/// the value any more.
pub fn minimize(f: &dyn Fn(&[f64], &mut [f64]) -> f64, x0: &[f64], max_iter: usize) -> Minimum {
    let n = x0.len();
    let mut x = x0.to_vec();
    let mut g = vec![0.0; n];
    let mut value = f(&x, &mut g);
    let mut history: Vec<(Vec<f64>, Vec<f64>, f64)> = Vec::with_capacity(MEMORY);
    let mut trial = vec![0.0; n];
    let mut g_trial = vec![0.0; n];
    let mut iterations = 0;
    while iterations < max_iter && value.is_finite() {
        let g_norm = dot(&g, &g).sqrt();
        if g_norm < 1e-12 {
            break;
        }
        let mut direction = two_loop(&g, &history);
        let mut slope = dot(&direction, &g);
        if slope.is_nan() || slope >= 0.0 {
            // Not a descent direction (curvature went wrong): restart from steepest descent.
            history.clear();
            direction = g.iter().map(|v| -v).collect();
            slope = -g_norm * g_norm;
        }
        // The first step of steepest descent is scaled to move by at most 1 in norm.
        let mut step = if history.is_empty() {
            (1.0 / g_norm).min(1.0)
        } else {
            1.0
        };
        let mut accepted = None;
        for _ in 0..60 {
            for i in 0..n {
                trial[i] = x[i] + step * direction[i];
            }
            let v = f(&trial, &mut g_trial);
            if v.is_finite() && v <= value + ARMIJO * step * slope {
                accepted = Some(v);
                break;
            }
            step *= 0.5;
        }
        let Some(new_value) = accepted else { break };
        let s: Vec<f64> = trial.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g_trial.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-12 * dot(&y, &y).max(1e-300) {
            if history.len() == MEMORY {
                history.remove(0);
            }
            history.push((s, y, 1.0 / sy));
        }
        let improvement = value - new_value;
        x.copy_from_slice(&trial);
        g.copy_from_slice(&g_trial);
        value = new_value;
        iterations += 1;
        if improvement <= 1e-15 * value.abs().max(1e-300) {
            break;
        }
    }
    Minimum {
        x,
        value,
        iterations,
    }
}

/// The L-BFGS direction -H g from the remembered pairs (Nocedal & Wright, algorithm 7.4).
fn two_loop(g: &[f64], history: &[(Vec<f64>, Vec<f64>, f64)]) -> Vec<f64> {
    let mut q = g.to_vec();
    let mut alphas = vec![0.0; history.len()];
    for (i, (s, y, rho)) in history.iter().enumerate().rev() {
        alphas[i] = rho * dot(s, &q);
        for (qj, yj) in q.iter_mut().zip(y) {
            *qj -= alphas[i] * yj;
        }
    }
    if let Some((s, y, _)) = history.last() {
        let gamma = dot(s, y) / dot(y, y);
        q.iter_mut().for_each(|v| *v *= gamma);
    }
    for (i, (s, y, rho)) in history.iter().enumerate() {
        let beta = rho * dot(y, &q);
        for (qj, sj) in q.iter_mut().zip(s) {
            *qj += (alphas[i] - beta) * sj;
        }
    }
    q.iter_mut().for_each(|v| *v = -*v);
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_minimum_of_the_rosenbrock_valley() {
        let rosenbrock = |x: &[f64], g: &mut [f64]| {
            let (a, b) = (x[0], x[1]);
            g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
            g[1] = 200.0 * (b - a * a);
            (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
        };
        let m = minimize(&rosenbrock, &[-1.2, 1.0], 500);
        assert!(
            (m.x[0] - 1.0).abs() < 1e-5 && (m.x[1] - 1.0).abs() < 1e-5,
            "{m:?}"
        );
        assert!(m.value < 1e-10);
    }
}
