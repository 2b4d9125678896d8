//! Per-record beat shapes: the P wave, the conducted QRS-T and (for PVC records) the ectopic
//! ventricular complex, drawn around physiological templates and modified per condition.
//!
//! Vectors are in Frank axes (X to the patient's left, Y to the feet, Z to the back) in mV, so the
//! normal QRS points left-inferior, its septal onset right-anterior and its terminal part
//! posterior-superior, and the Dower lead matrix turns them into the familiar 12-lead pattern.

use crate::condition::Condition;
use crate::leads::surface_magnitude;
use crate::rng::Rng;
use crate::wave::{Wave, WaveSet};

/// The waves of one record's beats.
#[derive(Clone, Debug)]
pub(crate) struct Morphology {
    /// Atrial depolarisation preceding a sinus beat (empty in atrial fibrillation).
    pub atrial: WaveSet,
    /// The conducted ventricular complex: QRS and T (and ST or R' changes).
    pub ventricular: WaveSet,
    /// The premature ventricular complex (empty unless the record has PVCs).
    pub ectopic: WaveSet,
}

fn add(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

fn scale(a: [f32; 3], k: f32) -> [f32; 3] {
    a.map(|v| v * k)
}

fn normalize(a: [f32; 3]) -> [f32; 3] {
    let norm = (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt().max(1e-6);
    scale(a, 1.0 / norm)
}

fn u(rng: &mut Rng, lo: f64, hi: f64) -> f32 {
    rng.uniform(lo, hi) as f32
}

/// `v` with every component perturbed by a normal of `spread` times its length.
fn jitter(v: [f32; 3], spread: f32, rng: &mut Rng) -> [f32; 3] {
    let len = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    v.map(|c| c + spread * len * rng.normal() as f32)
}

/// A direction drawn uniformly on the unit sphere.
fn random_direction(rng: &mut Rng) -> [f32; 3] {
    normalize([
        rng.normal() as f32,
        rng.normal() as f32,
        rng.normal() as f32,
    ])
}

/// Rotates every wave by `frontal` radians in the X-Y plane (electrical axis) and `horizontal`
/// radians in the X-Z plane (precordial transition).
fn rotate(set: &mut WaveSet, frontal: f32, horizontal: f32) {
    let (sf, cf) = frontal.sin_cos();
    let (sh, ch) = horizontal.sin_cos();
    for wave in set.as_mut_slice() {
        let [x, y, z] = wave.vector;
        let (x, y) = (cf * x - sf * y, sf * x + cf * y);
        let (x, z) = (ch * x - sh * z, sh * x + ch * z);
        wave.vector = [x, y, z];
    }
}

impl Morphology {
    /// Draws the shapes of one record.
    pub(crate) fn draw(condition: Condition, sex: char, rng: &mut Rng) -> Self {
        let amplitude = u(rng, 0.8, 1.6) * if sex == 'F' { 0.9 } else { 1.0 };
        let qrs_scale = u(rng, 0.85, 1.05);
        let pr_s = u(rng, 0.13, 0.19);
        let t_peak_s = u(rng, 0.24, 0.29) + if sex == 'F' { 0.01 } else { 0.0 };
        let t_width_s = u(rng, 0.040, 0.050);

        let mut atrial = WaveSet::new();
        let p_vector = jitter(scale([0.08, 0.13, -0.02], u(rng, 0.7, 1.4)), 0.15, rng);
        atrial.push(Wave::fixed(-pr_s, u(rng, 0.018, 0.026), p_vector));

        let q = Wave::fixed(
            -0.026 * qrs_scale,
            0.009 * qrs_scale,
            jitter(
                scale([-0.12, 0.04, -0.22], amplitude * u(rng, 0.5, 1.3)),
                0.1,
                rng,
            ),
        );
        let r = Wave::fixed(
            0.0,
            0.011 * qrs_scale,
            jitter(scale([0.9, 0.9, 0.25], amplitude), 0.08, rng),
        );
        let s = Wave::fixed(
            0.028 * qrs_scale,
            0.011 * qrs_scale,
            jitter(
                scale([-0.25, -0.2, 0.45], amplitude * u(rng, 0.5, 1.3)),
                0.1,
                rng,
            ),
        );
        let t = Wave::adaptive(
            t_peak_s,
            1.2 * t_width_s,
            0.8 * t_width_s,
            jitter(
                scale([0.28, 0.22, -0.12], amplitude.sqrt() * u(rng, 0.6, 1.3)),
                0.1,
                rng,
            ),
        );

        let mut ventricular = WaveSet::new();
        let mut ectopic = WaveSet::new();
        match condition {
            Condition::Normal | Condition::AtrialFibrillation => {
                for wave in [q, r, s, t] {
                    ventricular.push(wave);
                }
            }
            Condition::PrematureVentricular => {
                for wave in [q, r, s, t] {
                    ventricular.push(wave);
                }
                ectopic = ectopic_complex(r.vector, rng);
            }
            Condition::WideQrs => {
                ventricular = if rng.chance(0.5) {
                    right_bundle_branch_like(q, r, s, t, amplitude, rng)
                } else {
                    left_bundle_branch_like(t, amplitude, rng)
                };
            }
            Condition::StElevation => {
                ventricular = st_elevated(q, r, s, t, rng);
            }
        }
        if condition == Condition::AtrialFibrillation {
            atrial = WaveSet::new();
        }

        let frontal = u(rng, -20.0, 20.0).to_radians();
        let horizontal = u(rng, -15.0, 15.0).to_radians();
        for set in [&mut atrial, &mut ventricular] {
            rotate(set, frontal, horizontal);
        }
        Morphology {
            atrial,
            ventricular,
            ectopic,
        }
    }
}

/// A PVC from one ectopic focus: a broad main deflection in a random direction, as large on the
/// surface leads as 1-1.6 times the sinus R wave `sinus_r`, a notch, and a discordant T wave.
fn ectopic_complex(sinus_r: [f32; 3], rng: &mut Rng) -> WaveSet {
    let main = random_direction(rng);
    let notch = random_direction(rng);
    let size = surface_magnitude(sinus_r) / surface_magnitude(main) * u(rng, 1.0, 1.6);
    let mut set = WaveSet::new();
    set.push(Wave::fixed(0.0, u(rng, 0.032, 0.042), scale(main, size)));
    set.push(Wave::fixed(
        u(rng, 0.03, 0.05),
        u(rng, 0.02, 0.03),
        scale(notch, size * u(rng, 0.2, 0.4)),
    ));
    set.push(Wave::fixed(
        u(rng, 0.26, 0.32),
        u(rng, 0.055, 0.07),
        scale(main, -size * u(rng, 0.2, 0.4)),
    ));
    set
}

/// Right-bundle-branch-like: normal onset, then a slow terminal rightward-anterior R' (rSR' in V1,
/// broad S in I and V6) and T inversion in the right precordial leads.
fn right_bundle_branch_like(
    q: Wave,
    r: Wave,
    s: Wave,
    t: Wave,
    amplitude: f32,
    rng: &mut Rng,
) -> WaveSet {
    let r_prime = Wave::fixed(
        u(rng, 0.06, 0.08),
        u(rng, 0.018, 0.026),
        jitter(
            scale([-0.4, 0.05, -0.6], amplitude * u(rng, 0.7, 1.2)),
            0.1,
            rng,
        ),
    );
    let mut t = t;
    t.vector = add(t.vector, [0.0, 0.0, 0.15]);
    let mut set = WaveSet::new();
    for wave in [q, r, s, r_prime, t] {
        set.push(wave);
    }
    set
}

/// Left-bundle-branch-like: no septal q, a broad notched leftward-posterior R (QS in V1, broad R
/// in I and V6) and a discordant T wave.
fn left_bundle_branch_like(t: Wave, amplitude: f32, rng: &mut Rng) -> WaveSet {
    let width = u(rng, 0.018, 0.024);
    let first = jitter(scale([0.75, 0.35, 0.55], amplitude), 0.08, rng);
    let second = jitter(scale([0.85, 0.15, 0.75], amplitude), 0.08, rng);
    let discordant = jitter(scale([-0.22, 0.08, -0.3], u(rng, 0.7, 1.2)), 0.1, rng);
    let mut set = WaveSet::new();
    set.push(Wave::fixed(-0.012, width, first));
    set.push(Wave::fixed(0.04, width, second));
    set.push(Wave::adaptive(
        t.offset_s + 0.02,
        t.rise_s,
        t.fall_s,
        discordant,
    ));
    set
}

/// ST elevation over an inferior or anterior injury: a plateau that rises at the J point and
/// merges into a hyperacute T wave along the injury vector.
fn st_elevated(q: Wave, r: Wave, s: Wave, t: Wave, rng: &mut Rng) -> WaveSet {
    let territory = if rng.chance(0.5) {
        [0.05, 1.0, 0.1]
    } else {
        [0.25, 0.1, -1.0]
    };
    let injury = scale(normalize(jitter(territory, 0.1, rng)), u(rng, 0.15, 0.35));
    let plateau = Wave::adaptive(0.07, 0.012, 0.6 * (t.offset_s - 0.07), injury);
    let mut hyperacute = t;
    hyperacute.vector = add(t.vector, scale(injury, u(rng, 0.6, 1.2)));
    let mut set = WaveSet::new();
    for wave in [q, r, s, plateau, hyperacute] {
        set.push(wave);
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Stream;

    fn draw(condition: Condition, index: u64) -> Morphology {
        Morphology::draw(
            condition,
            'M',
            &mut Rng::for_record(3, index, Stream::Morphology),
        )
    }

    #[test]
    fn af_has_no_p_wave_and_only_pvc_records_have_ectopic_beats() {
        for index in 0..20 {
            assert!(draw(Condition::AtrialFibrillation, index)
                .atrial
                .as_slice()
                .is_empty());
            assert_eq!(draw(Condition::Normal, index).atrial.as_slice().len(), 1);
            assert!(draw(Condition::Normal, index).ectopic.as_slice().is_empty());
            assert_eq!(
                draw(Condition::PrematureVentricular, index)
                    .ectopic
                    .as_slice()
                    .len(),
                3
            );
        }
    }

    #[test]
    fn wide_qrs_spreads_depolarisation_later_than_normal() {
        let last_fixed = |m: &Morphology| {
            m.ventricular
                .as_slice()
                .iter()
                .filter(|w| !w.rate_adaptive)
                .map(|w| w.offset_s + 2.0 * w.fall_s)
                .fold(f32::MIN, f32::max)
        };
        for index in 0..20 {
            assert!(last_fixed(&draw(Condition::WideQrs, index)) > 0.07);
            assert!(last_fixed(&draw(Condition::Normal, index)) < 0.06);
        }
    }

    /// Whatever direction the ectopic focus takes, the PVC's main deflection is 1-1.6 times as
    /// large on the surface leads as the sinus R wave it replaces.
    #[test]
    fn pvc_main_deflection_is_sized_against_the_sinus_r_on_the_surface() {
        for (index, sinus_r) in [[0.9, 0.9, 0.25], [0.3, 1.2, -0.4], [1.5, 0.2, 0.6]]
            .into_iter()
            .enumerate()
        {
            for draw in 0..20 {
                let mut rng = Rng::for_record(index as u64, draw, Stream::Morphology);
                let main = ectopic_complex(sinus_r, &mut rng).as_slice()[0].vector;
                let ratio = surface_magnitude(main) / surface_magnitude(sinus_r);
                assert!(
                    (0.999..1.601).contains(&ratio),
                    "PVC/R surface ratio {ratio}"
                );
            }
        }
    }
}
