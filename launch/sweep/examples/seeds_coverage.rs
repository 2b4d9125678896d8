//! How often the seeds bootstrap's 95% intervals of L(N) hold the true E, A and alpha, by seeds
//! a size, on a known law (6 sizes, noise sd 0.005, 60 repeats): the numbers docs/sweeps.md
//! quotes. A measurement, not a test (about a minute): `cargo run --release -p ecgfm-sweep
//! --example seeds_coverage`.

use ecgfm_sweep::fit::{fit_loss_vs_n, Observation};
use ecgfm_trainer::model::rng::SplitMix64;

fn main() {
    let (e, a, alpha) = (0.8, 5.0, 0.3);
    let reps = 60;
    for seeds in 1..=3 {
        let mut rng = SplitMix64::new(1000 + seeds);
        let (mut bounded, mut hits) = (0, [0; 3]);
        for rep in 0..reps {
            let mut obs = Vec::new();
            for n in [1e4, 3e4, 1e5, 3e5, 1e6, 3e6] {
                for _ in 0..seeds {
                    obs.push(Observation {
                        n,
                        d: 1e7,
                        loss: e + a * f64::powf(n, -alpha) + 0.005 * rng.normal(),
                    });
                }
            }
            let fit = fit_loss_vs_n(&obs, rep).unwrap();
            let ests = [fit.e, fit.coefficients[0], fit.exponents[0]];
            if ests.iter().all(|x| x.ci.is_bounded()) {
                bounded += 1;
                for (hit, (est, truth)) in hits.iter_mut().zip(ests.iter().zip([e, a, alpha])) {
                    *hit += est.ci.contains(truth) as usize;
                }
            }
        }
        println!(
            "{seeds} seed(s): bounded {bounded}/{reps}; held E {}, A {}, alpha {} of {bounded}",
            hits[0], hits[1], hits[2]
        );
    }
}
