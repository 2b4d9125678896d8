//! The scaling fits recover known laws from synthetic, noisy points, and admit it (wide or
//! unbounded intervals, `determined = false`) when given too few.

use ecgfm_sweep::fit::isoflop::{self, BudgetPoint, Optimum};
use ecgfm_sweep::fit::{fit_loss_vs_n, fit_loss_vs_nd, Observation};
use ecgfm_trainer::model::rng::SplitMix64;

const E: f64 = 0.45;
const A: f64 = 30.0;
const ALPHA: f64 = 0.34;
const B: f64 = 60.0;
const BETA: f64 = 0.28;

fn law(n: f64, d: f64) -> f64 {
    E + A * n.powf(-ALPHA) + B * d.powf(-BETA)
}

fn logspace(lo: f64, hi: f64, count: usize) -> Vec<f64> {
    (0..count)
        .map(|i| (lo.ln() + (hi.ln() - lo.ln()) * i as f64 / (count - 1) as f64).exp())
        .collect()
}

/// Multiplicative log-normal noise of `sigma` (0.01: 1% of the loss).
fn noisy(loss: f64, rng: &mut SplitMix64, sigma: f64) -> f64 {
    loss * (sigma * rng.normal()).exp()
}

#[test]
fn loss_vs_n_recovers_alpha_with_noise() {
    let mut rng = SplitMix64::new(1);
    let d = 1e7;
    let mut obs = Vec::new();
    for n in logspace(1e4, 1e8, 8) {
        for _seed in 0..3 {
            obs.push(Observation {
                n,
                d,
                loss: noisy(law(n, d), &mut rng, 0.01),
            });
        }
    }
    let fit = fit_loss_vs_n(&obs, 7).unwrap();
    let alpha = fit.exponents[0];
    assert!((alpha.value - ALPHA).abs() < 0.05, "alpha {alpha:?}");
    // E here absorbs the constant D term.
    let e_true = E + B * d.powf(-BETA);
    assert!(
        (fit.e.value - e_true).abs() < 0.05,
        "E {:?} vs {e_true}",
        fit.e
    );
    assert!(fit.determined);
    assert!(alpha.ci.contains(alpha.value) && alpha.ci.is_bounded());
    assert!(alpha.ci.width() < 0.3, "alpha interval {:?}", alpha.ci);
}

#[test]
fn loss_vs_n_and_d_recovers_alpha_and_beta_with_noise() {
    let mut rng = SplitMix64::new(2);
    let mut obs = Vec::new();
    for n in logspace(1e4, 1e7, 6) {
        for d in logspace(1e5, 1e8, 5) {
            obs.push(Observation {
                n,
                d,
                loss: noisy(law(n, d), &mut rng, 0.005),
            });
        }
    }
    let fit = fit_loss_vs_nd(&obs, 3).unwrap();
    let (alpha, beta) = (fit.exponents[0].value, fit.exponents[1].value);
    assert!((alpha - ALPHA).abs() < 0.05, "alpha {alpha}");
    assert!((beta - BETA).abs() < 0.05, "beta {beta}");
    assert!((fit.e.value - E).abs() < 0.1, "E {:?}", fit.e);
    for est in fit.exponents.iter().chain([&fit.e]) {
        assert!(est.ci.is_bounded() && est.ci.contains(est.value), "{est:?}");
    }
    // Without D varying, the joint law is refused with the reason.
    let one_d: Vec<Observation> = obs.iter().filter(|o| o.d == obs[0].d).cloned().collect();
    let err = fit_loss_vs_nd(&one_d, 3).unwrap_err();
    assert!(err.contains("D does not vary"), "{err}");
}

#[test]
fn too_few_points_give_wide_intervals_and_say_so() {
    let mut rng = SplitMix64::new(3);
    let d = 1e7;
    let obs: Vec<Observation> = logspace(1e4, 1e6, 3)
        .into_iter()
        .map(|n| Observation {
            n,
            d,
            loss: noisy(law(n, d), &mut rng, 0.01),
        })
        .collect();
    let fit = fit_loss_vs_n(&obs, 7).unwrap();
    assert!(!fit.determined);
    assert_eq!((fit.distinct, fit.params), (3, 3));
    let ci = fit.exponents[0].ci;
    assert!(
        !ci.is_bounded() || ci.width() > 1.0,
        "three points for three parameters gave a tight interval {ci:?}"
    );
}

#[test]
fn isoflop_profiles_find_the_optimum_and_its_trend() {
    // D = C / (k N): at fixed C a larger model sees fewer samples.
    let k = 6.0;
    let budgets = logspace(1e12, 1e15, 4);
    let mut rng = SplitMix64::new(4);
    let mut points = Vec::new();
    for &c in &budgets {
        // Sizes around the analytic optimum so the vertex lies inside.
        let g = (ALPHA * A / (BETA * B)).powf(1.0 / (ALPHA + BETA));
        let n_opt = g * (c / k).powf(BETA / (ALPHA + BETA));
        for n in logspace(n_opt / 30.0, n_opt * 30.0, 7) {
            for _seed in 0..2 {
                points.push(BudgetPoint {
                    budget: c,
                    n,
                    loss: noisy(law(n, c / (k * n)), &mut rng, 0.002),
                });
            }
        }
    }
    let profiles = isoflop::profiles(&points, 5);
    assert_eq!(profiles.len(), 4);
    for p in &profiles {
        assert!(
            matches!(p.optimum, Optimum::Interior { .. }),
            "{:?}",
            p.optimum
        );
    }
    let trend = isoflop::trend(&profiles).unwrap();
    let expected = BETA / (ALPHA + BETA);
    assert!(
        (trend.exponent.value - expected).abs() < 0.05,
        "N_opt ~ C^{:.3}, expected {expected:.3}",
        trend.exponent.value
    );
    assert!(trend.exponent.ci.is_bounded());

    // Two sizes per budget: no parabola, and no trend.
    let two: Vec<BudgetPoint> = points
        .iter()
        .filter(|p| {
            let ns: Vec<f64> = points
                .iter()
                .filter(|q| q.budget == p.budget)
                .map(|q| q.n)
                .collect();
            p.n == ns[0] || p.n == ns[ns.len() - 1]
        })
        .cloned()
        .collect();
    let profiles = isoflop::profiles(&two, 5);
    assert!(matches!(profiles[0].optimum, Optimum::TooFew { sizes: 2 }));
    assert!(isoflop::trend(&profiles).is_none());
}
