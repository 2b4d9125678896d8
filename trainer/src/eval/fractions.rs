//! Label fractions: a stratified, seeded subset of the training rows (1%, 10%, 100% of the
//! labels), so the protocols can be compared where labels are scarce.
//!
//! Rows are grouped into strata: single-label tasks by class; multi-label tasks by the rarest
//! class the row has (over the training rows), rows without any class in a stratum of their own.
//! Each stratum keeps `ceil(fraction * size)` rows (at least one), drawn by a seeded shuffle of
//! the stratum; the result is in dataset order. A fraction of 1 keeps every row.

use std::collections::BTreeMap;

use crate::model::rng::SplitMix64;

/// The kept subset of `rows` (ascending), for `fraction` in (0, 1], with targets (., K).
pub fn stratified_subset(
    rows: &[usize],
    targets: &[f64],
    k: usize,
    fraction: f64,
    seed: u64,
) -> Vec<usize> {
    if fraction >= 1.0 {
        return rows.to_vec();
    }
    let frequency: Vec<usize> = (0..k)
        .map(|c| rows.iter().filter(|&&r| targets[r * k + c] > 0.5).count())
        .collect();
    let mut strata: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &r in rows {
        let rarest = (0..k)
            .filter(|&c| targets[r * k + c] > 0.5)
            .min_by_key(|&c| (frequency[c], c))
            .unwrap_or(k);
        strata.entry(rarest).or_default().push(r);
    }
    let mut kept = Vec::new();
    for (stratum, mut members) in strata {
        let mut rng = SplitMix64::from_words(&[seed, 0xF4AC_7105, stratum as u64]);
        for i in (1..members.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            members.swap(i, j);
        }
        let take = ((fraction * members.len() as f64).ceil() as usize).clamp(1, members.len());
        kept.extend_from_slice(&members[..take]);
    }
    kept.sort_unstable();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_every_class_and_is_seeded() {
        // 90 rows of class 0, 10 of class 1 (single-label, K = 2).
        let rows: Vec<usize> = (0..100).collect();
        let mut targets = vec![0.0; 200];
        for r in 0..100 {
            targets[r * 2 + usize::from(r % 10 == 3)] = 1.0;
        }
        let subset = stratified_subset(&rows, &targets, 2, 0.1, 5);
        assert_eq!(subset.len(), 10);
        assert_eq!(subset.iter().filter(|&&r| r % 10 == 3).count(), 1);
        assert_eq!(subset, stratified_subset(&rows, &targets, 2, 0.1, 5));
        assert_ne!(subset, stratified_subset(&rows, &targets, 2, 0.1, 6));
        assert!(subset.windows(2).all(|w| w[0] < w[1]));
        let tiny = stratified_subset(&rows, &targets, 2, 0.01, 5);
        assert_eq!(tiny.len(), 2, "one row per stratum at least");
        assert_eq!(stratified_subset(&rows, &targets, 2, 1.0, 5), rows);
    }
}
