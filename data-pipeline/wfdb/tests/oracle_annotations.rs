//! Compares the annotations of MIT-BIH record 100 with `wfdb.rdann`: count, sum of sample
//! positions, histogram of symbols and of aux texts.

mod oracle;

use ecgfm_test_support::shared_data;
use std::collections::BTreeMap;

use ecgfm_wfdb::read_annotations;

fn histogram<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for item in items {
        *counts.entry(item).or_default() += 1;
    }
    counts
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(";")
}

#[test]
fn record_100_annotations_match_the_wfdb_package() {
    let Some(data) = shared_data("") else {
        return;
    };
    let args = ["annotations", "wfdb-formats/100", "atr"].map(String::from);
    let Some(expected) = oracle::run_oracle(&data, &args) else {
        return;
    };
    let row = &expected[0];
    let annotations = read_annotations(&data.join("wfdb-formats/100"), "atr").unwrap();
    assert_eq!(annotations.len().to_string(), row[1], "count");
    let sample_sum: i64 = annotations.iter().map(|a| a.sample).sum();
    assert_eq!(sample_sum.to_string(), row[2], "sum of sample positions");
    assert_eq!(
        histogram(annotations.iter().map(|a| a.symbol)),
        row[3],
        "symbols"
    );
    let aux = annotations
        .iter()
        .filter(|a| !a.aux.is_empty())
        .map(|a| a.aux.as_str());
    assert_eq!(histogram(aux), row[4], "aux texts");
    assert!(annotations.windows(2).all(|w| w[0].sample <= w[1].sample));
}
