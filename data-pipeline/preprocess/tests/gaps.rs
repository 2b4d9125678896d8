//! Missing-sample bridging: interpolation inside, hold at the ends, masks, all-missing leads, and
//! tiny records passing the whole pipeline without panics.

use ecgfm_preprocess::gaps::{fill_gaps, GapFill};
use ecgfm_preprocess::{Pipeline, PipelineConfig};

#[test]
fn complete_signal_is_untouched() {
    let mut x = vec![1.0, 2.0, 3.0];
    assert_eq!(fill_gaps(&mut x), GapFill::Complete);
    assert_eq!(x, vec![1.0, 2.0, 3.0]);
}

#[test]
fn inner_gaps_are_interpolated_and_ends_held() {
    let nan = f64::NAN;
    let mut x = vec![nan, nan, 1.0, nan, nan, nan, 3.0, 4.0, f64::INFINITY, nan];
    let GapFill::Filled(mask) = fill_gaps(&mut x) else {
        panic!("expected a fill");
    };
    assert_eq!(x, vec![1.0, 1.0, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 4.0, 4.0]);
    let expected = [
        true, true, false, true, true, true, false, false, true, true,
    ];
    assert_eq!(mask, expected);
}

/// A gap after several valid samples is bridged from the sample just before it, not from the
/// first sample of the lead: 0, 0, 0, gap, 4 becomes 0, 0, 0, 2, 4.
#[test]
fn a_gap_after_several_valid_samples_starts_from_the_one_before_it() {
    let mut x = vec![0.0, 0.0, 0.0, f64::NAN, 4.0, 5.0, f64::NAN, f64::NAN, 8.0];
    let GapFill::Filled(mask) = fill_gaps(&mut x) else {
        panic!("expected a fill");
    };
    assert_eq!(x, vec![0.0, 0.0, 0.0, 2.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
    let expected = [false, false, false, true, false, false, true, true, false];
    assert_eq!(mask, expected);
}

#[test]
fn all_missing_is_reported() {
    let mut x = vec![f64::NAN; 4];
    assert_eq!(fill_gaps(&mut x), GapFill::AllMissing);
}

#[test]
fn tiny_records_pass_the_pipeline() {
    let keep_all = PipelineConfig {
        drop_hard_failed_windows: false,
        ..PipelineConfig::default()
    };
    let p = Pipeline::new(keep_all).unwrap();
    for n in [1usize, 2, 3, 17] {
        for rate in [125.0, 250.0, 500.0, 1000.0] {
            let x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.7).sin()).collect();
            let out = p.process(rate, &["II"], &[x]).unwrap();
            assert_eq!(out.windows.len(), 1, "n={n} rate={rate}");
            let w = &out.windows[0];
            assert_eq!(
                w.n_valid,
                ((n as f64 * 250.0 / rate).round() as usize).max(1)
            );
            assert!(w.signal.iter().all(|v| v.is_finite()));
        }
    }
}
