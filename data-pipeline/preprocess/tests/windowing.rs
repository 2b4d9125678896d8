//! Window cutting: short records kept padded, trailing-part policies, stride, validation.

use ecgfm_preprocess::windowing::{window_spans, WindowSpan};
use ecgfm_preprocess::{TrailingPolicy, WindowConfig};

fn spans(
    n: usize,
    window: usize,
    stride: Option<usize>,
    trailing: TrailingPolicy,
) -> Vec<(usize, usize)> {
    let config = WindowConfig {
        window_samples: window,
        stride_samples: stride,
        trailing,
    };
    config.validate().unwrap();
    window_spans(n, &config)
        .into_iter()
        .map(|WindowSpan { start, n_valid }| (start, n_valid))
        .collect()
}

const HALF: TrailingPolicy = TrailingPolicy::KeepIfAtLeast { min_fraction: 0.5 };

#[test]
fn exact_multiple_gives_full_windows_only() {
    assert_eq!(
        spans(7500, 2500, None, HALF),
        vec![(0, 2500), (2500, 2500), (5000, 2500)]
    );
    assert_eq!(spans(2500, 2500, None, HALF), vec![(0, 2500)]);
}

#[test]
fn record_shorter_than_a_window_is_kept_whole() {
    for policy in [HALF, TrailingPolicy::Drop, TrailingPolicy::AlignEnd] {
        assert_eq!(spans(900, 2500, None, policy), vec![(0, 900)]);
        assert_eq!(spans(1, 2500, None, policy), vec![(0, 1)]);
    }
    assert!(spans(0, 2500, None, HALF).is_empty());
}

#[test]
fn default_policy_keeps_trailing_part_of_at_least_half_a_window() {
    assert_eq!(spans(3749, 2500, None, HALF), vec![(0, 2500)]);
    assert_eq!(spans(3750, 2500, None, HALF), vec![(0, 2500), (2500, 1250)]);
    assert_eq!(spans(4999, 2500, None, HALF), vec![(0, 2500), (2500, 2499)]);
}

#[test]
fn drop_and_align_end_policies() {
    assert_eq!(
        spans(4999, 2500, None, TrailingPolicy::Drop),
        vec![(0, 2500)]
    );
    assert_eq!(
        spans(4000, 2500, None, TrailingPolicy::AlignEnd),
        vec![(0, 2500), (1500, 2500)]
    );
    assert_eq!(
        spans(5000, 2500, None, TrailingPolicy::AlignEnd),
        vec![(0, 2500), (2500, 2500)]
    );
}

#[test]
fn overlapping_stride() {
    assert_eq!(
        spans(5000, 2500, Some(1250), HALF),
        vec![(0, 2500), (1250, 2500), (2500, 2500)]
    );
    assert_eq!(
        spans(5600, 2500, Some(1250), HALF),
        vec![(0, 2500), (1250, 2500), (2500, 2500), (3750, 1850)]
    );
    assert_eq!(
        spans(5600, 2500, Some(1250), TrailingPolicy::AlignEnd),
        vec![(0, 2500), (1250, 2500), (2500, 2500), (3100, 2500)]
    );
}

#[test]
fn stride_longer_than_window_skips_samples() {
    assert_eq!(
        spans(9000, 2500, Some(4000), HALF),
        vec![(0, 2500), (4000, 2500)]
    );
    assert_eq!(
        spans(9500, 2500, Some(4000), HALF),
        vec![(0, 2500), (4000, 2500), (8000, 1500)]
    );
}

#[test]
fn invalid_settings_are_rejected() {
    let bad = [
        WindowConfig {
            window_samples: 0,
            ..WindowConfig::default()
        },
        WindowConfig {
            stride_samples: Some(0),
            ..WindowConfig::default()
        },
        WindowConfig {
            trailing: TrailingPolicy::KeepIfAtLeast { min_fraction: 0.0 },
            ..WindowConfig::default()
        },
    ];
    for config in bad {
        assert!(config.validate().is_err(), "{config:?}");
    }
}
