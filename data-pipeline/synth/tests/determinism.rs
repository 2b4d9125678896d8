//! Records are pure functions of (config, seed, index): identical bits for the same key, different
//! signals for different keys, and the allocation-free path equals the owned one.

use ecgfm_synth::{
    generate, generate_into, generate_into_with_meta, Condition, NoiseConfig, SynthConfig,
};

#[test]
fn same_key_gives_identical_bits_for_every_condition() {
    for condition in Condition::all() {
        let cfg = SynthConfig::only(condition);
        for index in [0u64, 1, 17, 1 << 40] {
            let a = generate(&cfg, 42, index);
            let b = generate(&cfg, 42, index);
            assert_eq!(a.condition, condition);
            assert_eq!(a, b);
            let bits_a: Vec<u32> = a.signal.iter().map(|v| v.to_bits()).collect();
            let bits_b: Vec<u32> = b.signal.iter().map(|v| v.to_bits()).collect();
            assert_eq!(bits_a, bits_b);
        }
    }
}

#[test]
fn generate_into_matches_generate_and_overwrites_stale_contents() {
    let cfg = SynthConfig::default();
    let mut buffer = vec![f32::NAN; 12 * cfg.samples];
    for index in 0..20 {
        let record = generate(&cfg, 9, index);
        let condition = generate_into(&cfg, 9, index, &mut buffer);
        assert_eq!(condition, record.condition);
        assert!(buffer
            .iter()
            .zip(&record.signal)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        let meta = generate_into_with_meta(&cfg, 9, index, &mut buffer);
        assert_eq!(
            (meta.condition, meta.heart_rate_bpm, meta.age, meta.sex),
            (
                record.condition,
                record.heart_rate_bpm,
                record.age,
                record.sex
            )
        );
    }
}

#[test]
fn different_index_or_seed_gives_different_records() {
    let cfg = SynthConfig::default();
    let base = generate(&cfg, 1, 5);
    for other in [generate(&cfg, 1, 6), generate(&cfg, 2, 5)] {
        let differing = base
            .signal
            .iter()
            .zip(&other.signal)
            .filter(|(a, b)| a != b)
            .count();
        assert!(
            differing > base.signal.len() / 2,
            "only {differing} samples differ"
        );
    }
    let rates: Vec<f32> = (0..10)
        .map(|i| generate(&SynthConfig::only(Condition::Normal), 3, i).heart_rate_bpm)
        .collect();
    let spread = rates.iter().cloned().fold(f32::MIN, f32::max)
        - rates.iter().cloned().fold(f32::MAX, f32::min);
    assert!(
        spread > 10.0,
        "heart rates barely vary across records: {rates:?}"
    );
}

#[test]
fn noise_settings_do_not_change_the_underlying_record() {
    let noisy = SynthConfig::default();
    let clean = SynthConfig {
        noise: NoiseConfig::none(),
        ..noisy.clone()
    };
    for index in 0..10 {
        let a = generate(&noisy, 4, index);
        let b = generate(&clean, 4, index);
        assert_eq!(
            (a.condition, a.heart_rate_bpm, a.age, a.sex),
            (b.condition, b.heart_rate_bpm, b.age, b.sex)
        );
        let residual: f32 = a
            .signal
            .iter()
            .zip(&b.signal)
            .map(|(x, y)| (x - y).abs())
            .sum::<f32>()
            / a.signal.len() as f32;
        assert!(
            residual > 0.005 && residual < 0.3,
            "mean |noise| {residual} mV"
        );
    }
}

#[test]
fn conditions_follow_the_weights() {
    let cfg = SynthConfig {
        condition_weights: [2.0, 1.0, 1.0, 0.0, 0.0],
        ..SynthConfig::default()
    };
    let mut counts = [0usize; 5];
    for index in 0..2000 {
        counts[generate(&cfg, 11, index).condition.index()] += 1;
    }
    assert_eq!(counts[3] + counts[4], 0);
    assert!((900..1100).contains(&counts[0]), "{counts:?}");
    assert!(
        (400..600).contains(&counts[1]) && (400..600).contains(&counts[2]),
        "{counts:?}"
    );
}
