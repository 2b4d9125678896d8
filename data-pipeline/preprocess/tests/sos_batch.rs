//! Filtering several signals together (lockstep lanes) gives bitwise the same results as filtering
//! each alone, for every mix of group sizes and lengths.

mod common;

use common::{ecg_like, Rng};
use ecgfm_preprocess::butterworth::{butter_bandpass, butter_highpass};
use ecgfm_preprocess::sos::SosFilter;

/// `count` noisy signals; lengths from `lengths` in turn.
fn signals(count: usize, lengths: &[usize]) -> Vec<Vec<f64>> {
    let mut rng = Rng::new(7);
    (0..count)
        .map(|i| {
            let n = lengths[i % lengths.len()];
            ecg_like(n, 250.0, 0.3 + 0.1 * i as f64)
                .into_iter()
                .map(|v| v + 0.05 * rng.normal())
                .collect()
        })
        .collect()
}

fn filters() -> Vec<SosFilter> {
    vec![
        SosFilter::new(butter_bandpass(2, 0.67, 40.0, 250.0).unwrap()),
        SosFilter::new(butter_bandpass(5, 0.5, 100.0, 250.0).unwrap()),
        SosFilter::new(butter_highpass(4, 40.0, 250.0).unwrap()),
    ]
}

#[test]
fn filtfilt_many_is_bitwise_filtfilt_of_each() {
    for (count, lengths) in [
        (12, vec![2500]),
        (5, vec![2500]),
        (7, vec![3000, 3000, 3000, 3000, 10, 1, 2]),
        (3, vec![0, 5, 400]),
        // Groups of four with one lane shorter or longer than the first: filtered one by one.
        (8, vec![3000, 3000, 3000, 3000, 3000, 3000, 2999, 3000]),
        (4, vec![5, 400, 400, 400]),
    ] {
        let xs = signals(count, &lengths);
        let views: Vec<&[f64]> = xs.iter().map(Vec::as_slice).collect();
        for filter in filters() {
            let many = filter.filtfilt_many(&views);
            assert_eq!(many.len(), count);
            for (x, y) in xs.iter().zip(&many) {
                let alone = filter.filtfilt(x);
                assert_eq!(y.len(), x.len());
                assert!(y
                    .iter()
                    .zip(&alone)
                    .all(|(a, b)| a.to_bits() == b.to_bits()));
            }
        }
    }
}

#[test]
fn filter_many_is_bitwise_filter_in_place_of_each() {
    let xs = signals(9, &[2500, 2500, 2500, 2500, 2500, 2500, 2500, 2400, 77]);
    let views: Vec<&[f64]> = xs.iter().map(Vec::as_slice).collect();
    for filter in filters() {
        let many = filter.filter_many(&views);
        for (x, y) in xs.iter().zip(&many) {
            let mut alone = x.clone();
            filter.filter_in_place(&mut alone);
            assert!(y
                .iter()
                .zip(&alone)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
            assert_eq!(y.len(), alone.len());
            assert_ne!(y, x, "the filter changed the signal");
        }
    }
}
