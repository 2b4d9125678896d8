//! Label fractions: a stratified, seeded subset of the training records (1%, 10%, 100% of the
//! labelled records), so the protocols can be compared where labels are scarce. A record's
//! windows share its labels, so the fraction draws records and keeps every window of each: 10%
//! of the labels is 10% of the records however many windows each was cut into.
//!
//! Records are grouped into strata: single-label tasks by class; multi-label tasks by the rarest
//! class the record has (over the training records), records without any class in a stratum of
//! their own. Each stratum keeps `ceil(fraction * size)` records (at least one), drawn by a
//! seeded shuffle of the stratum; the result is their rows in dataset order. A fraction of 1
//! keeps every row.

use std::collections::BTreeMap;

use super::metrics::record_groups;
use crate::model::rng::SplitMix64;

/// The kept subset of `rows` (ascending), for `fraction` in (0, 1], with targets (., K) and
/// `records[r]` the record of row `r`.
pub fn stratified_subset(
    rows: &[usize],
    targets: &[f64],
    k: usize,
    records: &[u32],
    fraction: f64,
    seed: u64,
) -> Vec<usize> {
    if fraction >= 1.0 {
        return rows.to_vec();
    }
    let of_rows: Vec<u32> = rows.iter().map(|&r| records[r]).collect();
    // Each record's rows, as rows of the dataset; its labels are its first row's.
    let groups: Vec<Vec<usize>> = record_groups(&of_rows)
        .into_iter()
        .map(|g| g.into_iter().map(|i| rows[i]).collect())
        .collect();
    let has = |g: &Vec<usize>, c: usize| targets[g[0] * k + c] > 0.5;
    let frequency: Vec<usize> = (0..k)
        .map(|c| groups.iter().filter(|g| has(g, c)).count())
        .collect();
    let mut strata: BTreeMap<usize, Vec<&Vec<usize>>> = BTreeMap::new();
    for g in &groups {
        let rarest = (0..k)
            .filter(|&c| has(g, c))
            .min_by_key(|&c| (frequency[c], c))
            .unwrap_or(k);
        strata.entry(rarest).or_default().push(g);
    }
    let mut kept = Vec::new();
    for (stratum, mut members) in strata {
        let mut rng = SplitMix64::from_words(&[seed, 0xF4AC_7105, stratum as u64]);
        for i in (1..members.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            members.swap(i, j);
        }
        let take = ((fraction * members.len() as f64).ceil() as usize).clamp(1, members.len());
        kept.extend(members[..take].iter().flat_map(|g| g.iter().copied()));
    }
    kept.sort_unstable();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_every_class_and_is_seeded() {
        // 90 rows of class 0, 10 of class 1 (single-label, K = 2), one record each.
        let rows: Vec<usize> = (0..100).collect();
        let records: Vec<u32> = (0..100).collect();
        let mut targets = vec![0.0; 200];
        for r in 0..100 {
            targets[r * 2 + usize::from(r % 10 == 3)] = 1.0;
        }
        let subset =
            |fraction, seed| stratified_subset(&rows, &targets, 2, &records, fraction, seed);
        assert_eq!(subset(0.1, 5).len(), 10);
        assert_eq!(subset(0.1, 5).iter().filter(|&&r| r % 10 == 3).count(), 1);
        assert_eq!(subset(0.1, 5), subset(0.1, 5));
        assert_ne!(subset(0.1, 5), subset(0.1, 6));
        assert!(subset(0.1, 5).windows(2).all(|w| w[0] < w[1]));
        assert_eq!(subset(0.01, 5).len(), 2, "one record per stratum at least");
        assert_eq!(subset(1.0, 5), rows);
    }

    #[test]
    fn a_fraction_counts_records_and_keeps_their_windows_together() {
        // 40 records of 3 windows each (rows 3i..3i+3); records 0..30 class 0, 30..40 class 1.
        let rows: Vec<usize> = (0..120).collect();
        let records: Vec<u32> = rows.iter().map(|&r| (r / 3) as u32).collect();
        let mut targets = vec![0.0; 240];
        for r in 0..120 {
            targets[r * 2 + usize::from(r / 3 >= 30)] = 1.0;
        }
        let kept = stratified_subset(&rows, &targets, 2, &records, 0.1, 9);
        let mut kept_records: Vec<u32> = kept.iter().map(|&r| records[r]).collect();
        kept_records.dedup();
        assert_eq!(kept_records.len(), 4, "10% of 30 and of 10 records: 3 + 1");
        assert_eq!(kept.len(), 12, "every window of a kept record");
        assert_eq!(kept_records.iter().filter(|&&g| g >= 30).count(), 1);
    }

    /// The shuffle is uniform (Fisher-Yates): with one stratum of ten records and a fraction
    /// keeping one, over many seeds every record, the first and the last included, is the one
    /// kept about a tenth of the time (within 5 standard deviations of a fair draw's count).
    #[test]
    fn every_record_is_equally_likely_to_be_kept() {
        let n = 10;
        let rows: Vec<usize> = (0..n).collect();
        let records: Vec<u32> = (0..n as u32).collect();
        let targets = vec![1.0; n];
        let seeds = 3000;
        let mut counts = vec![0usize; n];
        for seed in 0..seeds {
            let kept = stratified_subset(&rows, &targets, 1, &records, 0.1, seed);
            assert_eq!(kept.len(), 1);
            counts[kept[0]] += 1;
        }
        let p = 1.0 / n as f64;
        let expected = seeds as f64 * p;
        let sigma = (seeds as f64 * p * (1.0 - p)).sqrt();
        for (r, &c) in counts.iter().enumerate() {
            assert!(
                (c as f64 - expected).abs() < 5.0 * sigma,
                "record {r} kept {c} times, expected {expected} +- {sigma:.1}: {counts:?}"
            );
        }
    }

    /// A stratum keeps ceil(fraction x its records): 12% of 10 records is 2 and of 20 is 3,
    /// where rounding to the nearest or down would keep 1 and 2.
    #[test]
    fn a_stratum_keeps_its_share_rounded_up() {
        for (records, want) in [(10, 2), (20, 3)] {
            let rows: Vec<usize> = (0..records).collect();
            let ids: Vec<u32> = (0..records as u32).collect();
            let kept = stratified_subset(&rows, &vec![1.0; records], 1, &ids, 0.12, 4);
            assert_eq!(kept.len(), want, "12% of {records}");
        }
    }

    /// A multi-label record is stratified by its rarest class: two records that have the rare
    /// class 1 besides the common class 0 form a stratum of their own, so every draw keeps one
    /// of them, where a stratum by the commonest class would often keep neither.
    #[test]
    fn multi_label_records_are_stratified_by_their_rarest_class() {
        // K = 2; records 0..20 have class 0 only, records 20 and 21 classes 0 and 1.
        let n = 22;
        let rows: Vec<usize> = (0..n).collect();
        let records: Vec<u32> = (0..n as u32).collect();
        let targets: Vec<f64> = (0..n)
            .flat_map(|r| [1.0, f64::from(u8::from(r >= 20))])
            .collect();
        for seed in 0..20 {
            let kept = stratified_subset(&rows, &targets, 2, &records, 0.05, seed);
            assert_eq!(kept.len(), 2, "seed {seed}: {kept:?}");
            let rare = kept.iter().filter(|&&r| r >= 20).count();
            assert_eq!(rare, 1, "seed {seed}: {kept:?}");
        }
    }
}
