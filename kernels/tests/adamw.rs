//! AdamW against a two-step example worked out by hand (torch.optim.AdamW semantics), with and
//! without weight decay (lr 0.1, betas (0.9, 0.95), eps 1e-8, wd 0.05, p0 = 1, g1 = 0.5,
//! g2 = -0.25), and against one where eps decides the step.

#[macro_use]
mod common;

use common::{body, up, PAD};
use ecgfm_kernels::{AdamW, Backend, View, ViewMut};

fn adamw_two_steps_match_the_hand_computed_values_on<B: Backend>(be: &B) {
    let (mut param, mut m, mut vv) = (up(be, &[1.0, 1.0]), up(be, &[0.0; 2]), up(be, &[0.0; 2]));
    for (step, g) in [(1u32, 0.5f32), (2, -0.25)] {
        let hp = AdamW {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.05,
            step,
        };
        let grad = up(be, &[g, g]);
        // Element 0 with weight decay, element 1 without.
        for (off, decay) in [(PAD, true), (PAD + 1, false)] {
            be.adamw(
                ViewMut::new(&mut param, off),
                View::new(&grad, off),
                ViewMut::new(&mut m, off),
                ViewMut::new(&mut vv, off),
                1,
                &hp,
                decay,
            );
        }
    }
    // Step 1: decay 1 - 0.1 * 0.05 = 0.995; m = 0.05, v = 0.0125; bias corrections 0.1 and 0.05
    // give m^ = 0.5, sqrt(v^) = 0.5, so p = 0.995 - 0.1 * 0.5 / (0.5 + 1e-8) = 0.895000002.
    // Step 2: p = 0.895000002 * 0.995; m = 0.045 - 0.025 = 0.02; v = 0.011875 + 0.003125 = 0.015;
    // bias corrections 0.19 and 0.0975: m^ = 0.1052632, sqrt(v^) = 0.3922323,
    // update = 0.1 * 0.1052632 / 0.3922323 = 0.0268369, p = 0.8636881.
    // Without decay the same updates apply to 1: 1 - 0.1 - 0.0268369 = 0.8731631.
    let want = [0.863_688_06f32, 0.873_163_06];
    for (got, want) in body(be, &param, 2).iter().zip(want) {
        assert!((got - want).abs() < 2e-6, "param {got} != {want}");
    }
    for (got, want) in body(be, &m, 2).iter().zip([0.02f32, 0.02]) {
        assert!((got - want).abs() < 1e-7, "m {got} != {want}");
    }
    for (got, want) in body(be, &vv, 2).iter().zip([0.015f32, 0.015]) {
        assert!((got - want).abs() < 1e-7, "v {got} != {want}");
    }
}

/// eps is added to sqrt(v^), as torch does, not under the root: with a gradient of 1e-8 and eps
/// 1e-8 the first step's m^ = 1e-8 and sqrt(v^) = 1e-8 give an update of lr * 1e-8 / 2e-8 =
/// lr / 2 (under the root it would be lr * 1e-8 / 1e-4, 5,000 times smaller).
fn adamw_adds_eps_to_the_root_on<B: Backend>(be: &B) {
    let (mut param, mut m, mut vv) = (up(be, &[1.0]), up(be, &[0.0]), up(be, &[0.0]));
    let hp = AdamW {
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.0,
        step: 1,
    };
    be.adamw(
        ViewMut::new(&mut param, PAD),
        View::new(&up(be, &[1e-8]), PAD),
        ViewMut::new(&mut m, PAD),
        ViewMut::new(&mut vv, PAD),
        1,
        &hp,
        false,
    );
    let got = body(be, &param, 1)[0];
    assert!((got - 0.95).abs() < 1e-6, "param {got} != 0.95");
}

on_every_backend! {
    adamw_two_steps_match_the_hand_computed_values => adamw_two_steps_match_the_hand_computed_values_on,
    adamw_adds_eps_to_the_root => adamw_adds_eps_to_the_root_on,
}
