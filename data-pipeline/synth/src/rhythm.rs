//! Beat timing: the sinus RR tachogram with LF/HF heart-rate variability, the irregularly
//! irregular ventricular response of atrial fibrillation, and premature ventricular beats with a
//! fully compensatory pause. Beats are produced as a stream, so no per-record storage is needed.

use std::f64::consts::TAU;

use crate::condition::Condition;
use crate::rng::Rng;

/// What activated the ventricles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BeatKind {
    /// Sinus node, conducted: P wave then the normal complex.
    Sinus,
    /// Conducted without an organised P wave (atrial fibrillation).
    Conducted,
    /// Premature ventricular (ectopic) beat.
    Ectopic,
}

/// One ventricular activation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Beat {
    /// R-peak time, seconds from the start of the record (may be negative or past the end).
    pub r_s: f64,
    /// Interval from the previous ventricular beat, seconds.
    pub rr_prev_s: f64,
    pub kind: BeatKind,
}

/// One sinusoid of the RR tachogram, relative to the mean RR.
#[derive(Clone, Copy, Debug)]
struct Oscillation {
    amplitude: f64,
    hz: f64,
    phase: f64,
}

/// The per-record rhythm parameters.
#[derive(Clone, Debug)]
pub(crate) struct Rhythm {
    mean_rr_s: f64,
    /// Two Mayer-wave (LF, around 0.1 Hz) and two respiratory (HF) components.
    oscillations: [Oscillation; 4],
    /// Beat-to-beat white jitter, relative to the mean RR.
    jitter: f64,
    /// Atrial fibrillation: coefficient of variation of the i.i.d. RR intervals.
    af_variation: Option<f64>,
    /// PVC records: probability that an eligible sinus beat is replaced, and the coupling
    /// interval as a fraction of the sinus cycle.
    pvc: Option<(f64, f64)>,
}

/// Shortest RR the ventricles follow (refractory period), seconds.
const MIN_RR_S: f64 = 0.28;

impl Rhythm {
    /// Draws the rhythm of a record with mean rate `heart_rate_bpm` and breathing at `resp_hz`.
    pub(crate) fn draw(
        condition: Condition,
        heart_rate_bpm: f64,
        resp_hz: f64,
        rng: &mut Rng,
    ) -> Self {
        let lf_total = rng.uniform(0.01, 0.035);
        let hf_total = rng.uniform(0.005, 0.03);
        let lf_split = rng.uniform(0.3, 0.7);
        let hf_split = rng.uniform(0.3, 0.7);
        let mut oscillation = |amplitude: f64, hz: f64| Oscillation {
            amplitude,
            hz,
            phase: rng.uniform(0.0, TAU),
        };
        let lf1 = oscillation(lf_total * lf_split, 0.1);
        let lf2 = oscillation(lf_total * (1.0 - lf_split), 0.1);
        let hf1 = oscillation(hf_total * hf_split, resp_hz);
        let hf2 = oscillation(hf_total * (1.0 - hf_split), resp_hz);
        let mut oscillations = [lf1, lf2, hf1, hf2];
        for o in &mut oscillations[..2] {
            o.hz = (o.hz + 0.01 * rng.normal()).clamp(0.04, 0.15);
        }
        for o in &mut oscillations[2..] {
            o.hz = (o.hz + 0.01 * rng.normal()).clamp(0.12, 0.5);
        }
        let jitter = rng.uniform(0.002, 0.008);
        let af_variation =
            (condition == Condition::AtrialFibrillation).then(|| rng.uniform(0.18, 0.35));
        let pvc = (condition == Condition::PrematureVentricular)
            .then(|| (rng.uniform(0.1, 0.35), rng.uniform(0.5, 0.7)));
        Rhythm {
            mean_rr_s: 60.0 / heart_rate_bpm,
            oscillations,
            jitter,
            af_variation,
            pvc,
        }
    }

    /// The mean RR interval, seconds.
    pub(crate) fn mean_rr_s(&self) -> f64 {
        self.mean_rr_s
    }

    /// The sinus cycle starting at time `t_s`.
    fn sinus_rr(&self, t_s: f64, rng: &mut Rng) -> f64 {
        let modulation: f64 = self
            .oscillations
            .iter()
            .map(|o| o.amplitude * (TAU * o.hz * t_s + o.phase).sin())
            .sum();
        (self.mean_rr_s * (1.0 + modulation + self.jitter * rng.normal())).max(MIN_RR_S)
    }

    /// The next interval of an AF ventricular response.
    fn fibrillation_rr(&self, variation: f64, rng: &mut Rng) -> f64 {
        let z = rng.normal().clamp(-2.5, 2.5);
        (self.mean_rr_s * (1.0 + variation * z)).max(MIN_RR_S)
    }

    /// Every beat that touches a record of `duration_s` seconds, in time order: it starts early
    /// enough that the first sample sees a complete preceding beat's T wave and ends late enough
    /// that the last sample sees the next beat's P wave.
    pub(crate) fn beats(&self, duration_s: f64, mut rng: Rng) -> impl Iterator<Item = Beat> + '_ {
        let start = -1.0 - rng.unit() * self.mean_rr_s;
        let end = duration_s + 0.4;
        let mut sinus_r = start;
        let mut last_r = start - self.mean_rr_s;
        let mut last_kind = BeatKind::Sinus;
        let mut pvc_seen = false;
        std::iter::from_fn(move || {
            if sinus_r > end {
                return None;
            }
            let beat = if let Some(variation) = self.af_variation {
                let beat = Beat {
                    r_s: sinus_r,
                    rr_prev_s: sinus_r - last_r,
                    kind: BeatKind::Conducted,
                };
                sinus_r += self.fibrillation_rr(variation, &mut rng);
                beat
            } else {
                let cycle = self.sinus_rr(sinus_r, &mut rng);
                let next_sinus = sinus_r + cycle;
                let replace = self.pvc.is_some_and(|(probability, _)| {
                    let eligible =
                        last_kind == BeatKind::Sinus && sinus_r > 0.4 && sinus_r < duration_s - 0.6;
                    let forced = !pvc_seen && sinus_r > duration_s / 2.0;
                    eligible && (forced || rng.chance(probability))
                });
                let beat = if let (true, Some((_, coupling))) = (replace, self.pvc) {
                    pvc_seen = true;
                    let r_s = last_r + coupling * (sinus_r - last_r);
                    Beat {
                        r_s,
                        rr_prev_s: r_s - last_r,
                        kind: BeatKind::Ectopic,
                    }
                } else {
                    Beat {
                        r_s: sinus_r,
                        rr_prev_s: sinus_r - last_r,
                        kind: BeatKind::Sinus,
                    }
                };
                sinus_r = next_sinus;
                beat
            };
            last_r = beat.r_s;
            last_kind = beat.kind;
            Some(beat)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Stream;

    fn beats(condition: Condition, bpm: f64, index: u64) -> Vec<Beat> {
        let rhythm = Rhythm::draw(
            condition,
            bpm,
            0.25,
            &mut Rng::for_record(5, index, Stream::Rhythm),
        );
        rhythm
            .beats(10.0, Rng::for_record(5, index, Stream::Meta))
            .collect()
    }

    #[test]
    fn beats_cover_the_record_with_margins_and_consistent_intervals() {
        for index in 0..10 {
            let train = beats(Condition::Normal, 75.0, index);
            assert!(train.first().unwrap().r_s < -1.0);
            let last = train.last().unwrap().r_s;
            assert!(last > 9.4 && last <= 10.4, "last beat at {last} s");
            for pair in train.windows(2) {
                let rr = pair[1].r_s - pair[0].r_s;
                assert!((rr - pair[1].rr_prev_s).abs() < 1e-12);
                assert!((0.6..1.0).contains(&rr), "sinus RR {rr} at 75 bpm");
            }
        }
    }

    #[test]
    fn pvc_is_premature_with_a_compensatory_pause() {
        for index in 0..20 {
            let train = beats(Condition::PrematureVentricular, 70.0, index);
            let ectopic: Vec<usize> = (0..train.len())
                .filter(|&i| train[i].kind == BeatKind::Ectopic)
                .collect();
            assert!(!ectopic.is_empty(), "record {index} has no PVC");
            for &i in &ectopic {
                let (before, pvc, after) = (train[i - 1], train[i], train[i + 1]);
                assert_eq!(before.kind, BeatKind::Sinus);
                assert_eq!(after.kind, BeatKind::Sinus);
                let sinus_cycle = 60.0 / 70.0;
                assert!(
                    pvc.rr_prev_s < 0.75 * sinus_cycle,
                    "coupling {} s",
                    pvc.rr_prev_s
                );
                let around = after.r_s - before.r_s;
                assert!(
                    (around / sinus_cycle - 2.0).abs() < 0.25,
                    "pause spans {around} s"
                );
            }
        }
    }

    /// A PVC falls 50-70% of the way through the sinus cycle it interrupts (the drawn coupling),
    /// neither earlier nor later.
    #[test]
    fn pvc_coupling_is_half_to_seven_tenths_of_the_sinus_cycle() {
        for index in 0..20 {
            let train = beats(Condition::PrematureVentricular, 70.0, index);
            for i in (1..train.len() - 1).filter(|&i| train[i].kind == BeatKind::Ectopic) {
                // The PVC leaves the sinus node alone: the next sinus beat ends the interrupted cycle
                // plus one more, so half the span approximates the interrupted cycle.
                let cycle = (train[i + 1].r_s - train[i - 1].r_s) / 2.0;
                let fraction = train[i].rr_prev_s / cycle;
                assert!(
                    (0.47..0.73).contains(&fraction),
                    "record {index}: PVC at {fraction} of the cycle"
                );
            }
        }
    }
}
