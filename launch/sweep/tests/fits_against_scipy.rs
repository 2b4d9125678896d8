//! The report's fits agree with an independent replication (`fits_oracle.py`: scipy's L-BFGS-B
//! on the Huber objective written in numpy, numpy's polynomial fits, the bootstrap redrawn in
//! Python): L(N) and L(N, D) with their bootstrap intervals, and the iso-FLOP optima and their
//! trend, on noisy points from known laws and on the points of the published sweeps.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use ecgfm_sweep::fit::bootstrap::{Interval, Resampling};
use ecgfm_sweep::fit::isoflop::{self, BudgetPoint, Optimum};
use ecgfm_sweep::fit::{fit_loss_vs_n, fit_loss_vs_nd, LawFit, Observation};
use ecgfm_sweep::record::SweepRecord;
use ecgfm_trainer::model::rng::SplitMix64;
use serde_json::{json, Value};

/// Loss of a Chinchilla-shaped law, E + A/N^alpha + B/D^beta.
fn law(n: f64, d: f64) -> f64 {
    0.45 + 30.0 * n.powf(-0.34) + 60.0 * d.powf(-0.28)
}

fn logspace(lo: f64, hi: f64, count: usize) -> Vec<f64> {
    (0..count)
        .map(|i| (lo.ln() + (hi.ln() - lo.ln()) * i as f64 / (count - 1) as f64).exp())
        .collect()
}

/// `seeds` observations of each (N, D), the law's loss times 1% log-normal noise.
fn noisy_grid(ns: &[f64], ds: &[f64], seeds: usize, rng_seed: u64) -> Vec<Observation> {
    let mut rng = SplitMix64::new(rng_seed);
    let mut obs = Vec::new();
    for &n in ns {
        for &d in ds {
            for _ in 0..seeds {
                let loss = law(n, d) * (0.01 * rng.normal()).exp();
                obs.push(Observation { n, d, loss });
            }
        }
    }
    obs
}

/// The records of a published sweep's `results/sweep.jsonl`.
fn published(name: &str) -> Vec<SweepRecord> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/sweeps")
        .join(name)
        .join("results/sweep.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn observations(records: &[SweepRecord]) -> Vec<Observation> {
    records
        .iter()
        .map(|r| Observation {
            n: r.n as f64,
            d: r.samples as f64,
            loss: r.final_val_loss.unwrap(),
        })
        .collect()
}

fn budget_points(records: &[SweepRecord]) -> Vec<BudgetPoint> {
    records
        .iter()
        .map(|r| BudgetPoint {
            budget: r.budget.unwrap(),
            n: r.n as f64,
            loss: r.final_val_loss.unwrap(),
        })
        .collect()
}

fn law_case(k: usize, obs: &[Observation], seed: u64) -> Value {
    let points: Vec<[f64; 3]> = obs.iter().map(|o| [o.n, o.d, o.loss]).collect();
    json!({"law": k, "points": points, "seed": seed})
}

fn isoflop_case(points: &[BudgetPoint], seed: u64) -> Value {
    let points: Vec<[f64; 3]> = points.iter().map(|p| [p.budget, p.n, p.loss]).collect();
    json!({"isoflop": true, "points": points, "seed": seed})
}

/// A number of the oracle's answer (infinities and NaN travel as strings).
fn number(v: &Value) -> f64 {
    match v {
        Value::String(s) => s.parse().unwrap(),
        v => v.as_f64().unwrap(),
    }
}

fn interval(v: &Value) -> Interval {
    Interval {
        low: number(&v[0]),
        high: number(&v[1]),
    }
}

/// Whether `a` and `b` agree to `rel` of their size (equal infinities agree).
fn close(a: f64, b: f64, rel: f64) -> bool {
    a == b || (a - b).abs() <= rel * a.abs().max(b.abs())
}

fn run_oracle(cases: &[Value]) -> Option<Vec<Value>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fits_oracle.py");
    if !ecgfm_test_support::python_has(&["numpy", "scipy"]) {
        ecgfm_test_support::skip_without_oracle("the fits' oracle (python3 with numpy, scipy)");
        return None;
    }
    let mut child = Command::new("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = serde_json::to_vec(cases).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "fits_oracle.py failed: {stderr}");
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

/// Our fit against the oracle's: the optimiser reaches the oracle's minimum (objective and
/// parameters), the bootstrap draws as many resamples with as many thin and failed ones, and
/// every interval end agrees.
fn check_law(what: &str, ours: &LawFit, oracle: &Value) {
    assert_eq!(oracle["fitted"], true, "{what}: the oracle found no fit");
    let objective = number(&oracle["objective"]);
    assert!(
        close(ours.law.objective, objective, 1e-6),
        "{what}: Huber objective {} at our minimum, {objective} at scipy's",
        ours.law.objective
    );
    let resampling = match ours.resampling {
        Resampling::Seeds => "seeds",
        Resampling::Points => "points",
    };
    assert_eq!(oracle["resampling"], resampling, "{what}");
    assert_eq!(oracle["determined"], ours.determined, "{what}");
    let counts = [ours.resamples, ours.thin, ours.failed];
    let oracle_counts = ["resamples", "thin", "failed"].map(|c| oracle[c].as_u64().unwrap());
    assert_eq!(
        counts.map(|c| c as u64),
        oracle_counts,
        "{what}: resamples, thin, failed"
    );
    let estimates = std::iter::once(ours.e)
        .chain(ours.coefficients.iter().copied())
        .chain(ours.exponents.iter().copied());
    let names = ["E", "A", "B"]
        .into_iter()
        .take(1 + ours.coefficients.len());
    let names = names.chain(["alpha", "beta"].into_iter().take(ours.exponents.len()));
    let params = oracle["params"].as_array().unwrap();
    let intervals = oracle["intervals"].as_array().unwrap();
    assert_eq!(params.len(), ours.params, "{what}");
    for (((name, estimate), param), ci) in names.zip(estimates).zip(params).zip(intervals) {
        let (param, ci) = (number(param), interval(ci));
        let agree = close(estimate.value, param, 1e-4)
            && close(estimate.ci.low, ci.low, 1e-4)
            && close(estimate.ci.high, ci.high, 1e-4);
        assert!(
            agree,
            "{what}: {name} {} [{}, {}], scipy {param} [{}, {}]",
            estimate.value, estimate.ci.low, estimate.ci.high, ci.low, ci.high
        );
    }
}

#[test]
fn law_fits_and_intervals_match_scipy() {
    let ns = logspace(1e4, 1e8, 8);
    let grid = noisy_grid(&logspace(1e4, 1e7, 4), &logspace(1e5, 1e8, 3), 2, 3);
    // Seeds and points resampling, one input and two, bounded intervals and (the published
    // sweep's eight runs of one seed) mostly thin resamples and unbounded ones.
    let cases = [
        (
            "L(N), 8 sizes x 3 seeds",
            1,
            noisy_grid(&ns, &[1e7], 3, 1),
            7,
        ),
        (
            "L(N), 8 sizes x 1 seed",
            1,
            noisy_grid(&ns, &[1e7], 1, 2),
            8,
        ),
        ("L(N, D), 4 N x 3 D x 2 seeds", 2, grid, 9),
        (
            "L(N, D) of docs/sweeps/demo",
            2,
            observations(&published("demo")),
            2024,
        ),
    ];
    let input: Vec<Value> = cases
        .iter()
        .map(|(_, k, obs, seed)| law_case(*k, obs, *seed))
        .collect();
    let Some(oracle) = run_oracle(&input) else {
        return;
    };
    for ((what, k, obs, seed), oracle) in cases.iter().zip(&oracle) {
        let ours = match k {
            1 => fit_loss_vs_n(obs, *seed).unwrap(),
            _ => fit_loss_vs_nd(obs, *seed).unwrap(),
        };
        check_law(what, &ours, oracle);
    }
}

/// `seeds` runs of each size at each budget, their loss a parabola in log N around an optimum
/// that grows as C^0.5, with 1% noise.
fn isoflop_grid(seeds: usize) -> Vec<BudgetPoint> {
    let mut rng = SplitMix64::new(11);
    let mut points = Vec::new();
    for budget in [1e15, 1e16, 1e17] {
        let log_opt = 0.5 * f64::ln(budget) - 3.0;
        for n in logspace(1e4, 1e8, 5) {
            for _ in 0..seeds {
                let loss = 0.6 + 0.02 * (n.ln() - log_opt).powi(2);
                points.push(BudgetPoint {
                    budget,
                    n,
                    loss: loss * (0.01 * rng.normal()).exp(),
                });
            }
        }
    }
    points
}

#[test]
fn isoflop_optima_and_trend_match_numpy() {
    let cases = [
        ("5 sizes x 2 seeds at 3 budgets", isoflop_grid(2), 5),
        ("5 sizes x 1 seed at 3 budgets", isoflop_grid(1), 6),
        ("docs/sweeps/long", budget_points(&published("long")), 2024),
        ("docs/sweeps/demo", budget_points(&published("demo")), 2024),
    ];
    let input: Vec<Value> = cases
        .iter()
        .map(|(_, p, seed)| isoflop_case(p, *seed))
        .collect();
    let Some(oracle) = run_oracle(&input) else {
        return;
    };
    let mut interior = 0;
    for ((what, points, seed), oracle) in cases.iter().zip(&oracle) {
        let profiles = isoflop::profiles(points, *seed);
        let theirs = oracle["profiles"].as_array().unwrap();
        assert_eq!(profiles.len(), theirs.len(), "{what}: budgets");
        for (profile, theirs) in profiles.iter().zip(theirs) {
            let what = format!("{what}, C = {:e}", profile.budget);
            let means: Vec<(f64, f64)> = serde_json::from_value(theirs["means"].clone()).unwrap();
            assert_eq!(profile.means.len(), means.len(), "{what}");
            for (a, b) in profile.means.iter().zip(&means) {
                assert!(
                    close(a.0, b.0, 1e-12) && close(a.1, b.1, 1e-12),
                    "{what}: {a:?} {b:?}"
                );
            }
            let draws = theirs["draws"].as_array().unwrap();
            assert_eq!(profile.draws.len(), draws.len(), "{what}");
            for (r, (a, b)) in profile.draws.iter().zip(draws).enumerate() {
                let b = number(b);
                let same = (a.is_nan() && b.is_nan()) || close(*a, b, 1e-9);
                assert!(same, "{what}: resample {r}: N_opt {a}, numpy {b}");
            }
            match &profile.optimum {
                Optimum::Interior { n_opt, .. } => {
                    interior += 1;
                    let ci = interval(&theirs["interval"]);
                    let agree = close(n_opt.value, number(&theirs["n_opt"]), 1e-9)
                        && close(n_opt.ci.low, ci.low, 1e-9)
                        && close(n_opt.ci.high, ci.high, 1e-9);
                    assert!(
                        agree,
                        "{what}: N_opt {n_opt:?}, numpy {} {}",
                        theirs["n_opt"], theirs["interval"]
                    );
                }
                _ => assert!(
                    theirs["n_opt"].is_null(),
                    "{what}: numpy found {}",
                    theirs["n_opt"]
                ),
            }
        }
        match (isoflop::trend(&profiles), &oracle["trend"]) {
            (None, Value::Null) => {}
            (Some(trend), theirs) if !theirs.is_null() => {
                let ci = interval(&theirs["interval"]);
                let agree = close(trend.exponent.value, number(&theirs["slope"]), 1e-9)
                    && close(trend.intercept, number(&theirs["intercept"]), 1e-9)
                    && close(trend.exponent.ci.low, ci.low, 1e-9)
                    && close(trend.exponent.ci.high, ci.high, 1e-9)
                    && trend.unbounded as u64 == theirs["unbounded"].as_u64().unwrap();
                assert!(agree, "{what}: trend {trend:?}, numpy {theirs}");
            }
            (ours, theirs) => panic!("{what}: trend {ours:?}, numpy {theirs}"),
        }
    }
    // The synthetic profiles bracket their optima: the vertex and the trend were compared.
    assert!(interior >= 6, "{interior} interior optima");
}
