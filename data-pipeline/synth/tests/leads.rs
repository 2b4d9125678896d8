//! The 12 leads are one consistent projection: Einthoven/Goldberger identities hold exactly, values
//! are finite and within physiological range, for every condition, rate and length.

use ecgfm_synth::{generate, Condition, NoiseConfig, SynthConfig, LEAD_NAMES};

#[test]
fn limb_lead_identities_hold_exactly() {
    for condition in Condition::all() {
        for index in 0..5 {
            let record = generate(&SynthConfig::only(condition), 21, index);
            let (i, ii) = (record.lead(0), record.lead(1));
            for t in 0..record.samples {
                assert_eq!(record.lead(2)[t], ii[t] - i[t], "III at {t}");
                assert_eq!(record.lead(3)[t], -(i[t] + ii[t]) / 2.0, "aVR at {t}");
                assert_eq!(record.lead(4)[t], i[t] - ii[t] / 2.0, "aVL at {t}");
                assert_eq!(record.lead(5)[t], ii[t] - i[t] / 2.0, "aVF at {t}");
                // Goldberger's leads sum to zero.
                let sum = record.lead(3)[t] + record.lead(4)[t] + record.lead(5)[t];
                assert!(sum.abs() < 1e-5, "aVR + aVL + aVF = {sum}");
            }
        }
    }
}

#[test]
fn signals_are_finite_bounded_and_shaped_as_configured() {
    for (sampling_rate, samples) in [(250.0, 2500), (500.0, 5000), (100.0, 1000), (250.0, 100)] {
        let cfg = SynthConfig {
            sampling_rate,
            samples,
            ..SynthConfig::default()
        };
        for index in 0..40 {
            let record = generate(&cfg, 8, index);
            assert_eq!(record.signal.len(), LEAD_NAMES.len() * samples);
            assert_eq!(
                (record.samples, record.sampling_rate),
                (samples, sampling_rate)
            );
            assert!(
                record.signal.iter().all(|v| v.is_finite()),
                "non-finite sample in {}",
                record.condition
            );
            let peak = record.signal.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(peak < 6.0, "{} peaks at {peak} mV", record.condition);
            if samples as f32 / sampling_rate >= 2.0 {
                assert!(peak > 0.3, "{} is nearly flat: {peak} mV", record.condition);
            }
            assert!(record.sex == 'M' || record.sex == 'F');
            assert!((18.0..=92.0).contains(&record.age));
        }
    }
}

#[test]
fn every_lead_carries_signal() {
    let cfg = SynthConfig {
        noise: NoiseConfig::none(),
        ..SynthConfig::default()
    };
    for index in 0..30 {
        let record = generate(&cfg, 13, index);
        for (lead, name) in LEAD_NAMES.iter().enumerate() {
            let x = record.lead(lead);
            let range = x.iter().cloned().fold(f32::MIN, f32::max)
                - x.iter().cloned().fold(f32::MAX, f32::min);
            assert!(
                range > 0.05,
                "lead {name} of {} spans only {range} mV",
                record.condition
            );
        }
    }
}
