//! `standardize` on hand-made leads: the statistics the z-scores use, checked against values
//! worked out by hand.

use ecgfm_preprocess::standardize::standardize;
use ecgfm_preprocess::{Standardization, StandardizeConfig};

fn config(mode: Standardization) -> StandardizeConfig {
    StandardizeConfig {
        mode,
        min_std: 0.01,
    }
}

/// Per record, one mean and standard deviation cover every sample of every lead, so the spread
/// between lead means counts: leads of constant 1 and constant 3 have record mean 2 and
/// standard deviation 1 (every sample 1 away), and become -1 and +1.
#[test]
fn per_record_variance_includes_the_spread_between_lead_means() {
    let mut signals = vec![vec![1.0; 4], vec![3.0; 4]];
    standardize(
        &mut signals,
        &[None, None],
        &config(Standardization::PerRecord),
    );
    assert_eq!(signals, [vec![-1.0; 4], vec![1.0; 4]]);
}

/// Missing samples are left out of the statistics: a lead 1, 3 with a third, missing sample of
/// 100 has mean 2 and standard deviation 1, so its present samples become -1 and +1.
#[test]
fn missing_samples_are_left_out_of_the_moments() {
    let mut signals = vec![vec![1.0, 3.0, 100.0]];
    let missing = [Some(vec![false, false, true])];
    standardize(&mut signals, &missing, &config(Standardization::PerLead));
    assert_eq!(&signals[0][..2], [-1.0, 1.0]);
}
