//! What the finite-difference gradient checks of the model and the evaluation encoder share.

use ecgfm_trainer::ParamEntry;

/// `params` with every value moved a little, so no gradient path sits at a special point
/// (zero bias, unit norm).
pub fn perturbed(params: &[f32]) -> Vec<f32> {
    params
        .iter()
        .enumerate()
        .map(|(i, p)| p + 0.05 * ((i as f32 * 0.618).fract() - 0.5))
        .collect()
}

/// For every tensor of `entries`, compares its largest gradient entry in `grads` with a central
/// difference (step 1e-2) of `loss_at`, the loss at given parameters; prints each comparison and
/// returns the worst relative error. A zero gradient fails the test.
pub fn worst_gradient_error(
    entries: &[ParamEntry],
    params: &[f32],
    grads: &[f32],
    mut loss_at: impl FnMut(&[f32]) -> f64,
) -> f64 {
    let mut worst = 0.0f64;
    for e in entries {
        let (idx, g) = (e.offset..e.end())
            .map(|i| (i, grads[i] as f64))
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .unwrap();
        let h = 1e-2f32;
        let mut probe = params.to_vec();
        probe[idx] = params[idx] + h;
        let up = loss_at(&probe);
        probe[idx] = params[idx] - h;
        let down = loss_at(&probe);
        let numeric = (up - down) / (2.0 * h as f64);
        let err = (numeric - g).abs() / (g.abs() + 1e-3);
        println!(
            "{:<24} grad {g:+.6e} numeric {numeric:+.6e} rel {err:.2e}",
            e.name
        );
        assert!(g != 0.0, "{}: zero gradient", e.name);
        worst = worst.max(err);
    }
    println!("worst relative error {worst:.2e}");
    worst
}
