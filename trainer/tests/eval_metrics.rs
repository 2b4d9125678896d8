//! The evaluation metrics against scikit-learn: per-class and macro AUROC (`roc_auc_score`,
//! with tied scores), F1 at given thresholds (`f1_score`), accuracy (`accuracy_score`), on
//! seeded random multi-label and single-label data.

use std::process::Command;

use ecgfm_test_support::python_stdout;
use ecgfm_trainer::eval::metrics::{
    accuracy, macro_auroc, macro_f1, per_class_auroc, per_class_f1,
};
use ecgfm_trainer::model::rng::SplitMix64;

const ORACLE: &str = r#"
import json, sys
import numpy as np
from sklearn.metrics import roc_auc_score, f1_score, accuracy_score
d = json.load(open(sys.argv[1]))
k = d["k"]
s = np.array(d["scores"]).reshape(-1, k)
y = np.array(d["targets"]).reshape(-1, k).astype(int)
t = np.array(d["thresholds"])
pred = (s >= t).astype(int)
both = [0 < y[:, c].sum() < len(y) for c in range(k)]
out = {
    "per_class_auroc": [roc_auc_score(y[:, c], s[:, c]) if both[c] else None for c in range(k)],
    "macro_auroc": roc_auc_score(y, s, average="macro") if all(both) else None,
    "per_class_f1": [f1_score(y[:, c], pred[:, c]) for c in range(k)],
    "macro_f1": f1_score(y, pred, average="macro"),
    "accuracy": accuracy_score(y.argmax(1), s.argmax(1)),
}
print(json.dumps(out))
"#;

/// Seeded data: n rows, k classes, scores correlated with the targets and rounded to two
/// decimals (so many ties), each class with positives and negatives.
fn data(n: usize, k: usize, single_label: bool, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = SplitMix64::new(seed);
    let mut targets = vec![0.0; n * k];
    for r in 0..n {
        if single_label {
            targets[r * k + (r % k)] = 1.0;
        } else {
            for c in 0..k {
                targets[r * k + c] = f64::from(u8::from(rng.next_f64() < 0.3 + 0.1 * c as f64));
            }
        }
    }
    let scores = targets
        .iter()
        .map(|&t| ((0.6 * t + rng.next_f64()) * 100.0).round() / 100.0)
        .collect();
    (scores, targets)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[test]
fn auroc_f1_and_accuracy_match_scikit_learn() {
    for (single_label, seed) in [(false, 1), (true, 2), (false, 3)] {
        let (n, k) = (300, 4);
        let (scores, mut targets) = data(n, k, single_label, seed);
        if seed == 3 {
            // Class 1 absent but predicted: its F1 is 0 and counts in the macro, as
            // scikit-learn's (it was left out, raising the macro F1, until 2026-12-06).
            (0..n).for_each(|r| targets[r * k + 1] = 0.0);
        }
        let thresholds = [0.5, 0.62, 0.7, 0.81];
        let file = std::env::temp_dir().join(format!(
            "ecgfm-metrics-{}-{single_label}.json",
            std::process::id()
        ));
        let json = serde_json::json!({
            "k": k, "scores": scores, "targets": targets, "thresholds": thresholds,
        });
        std::fs::write(&file, json.to_string()).unwrap();
        let mut python = Command::new("python3");
        python.args(["-c", ORACLE, file.to_str().unwrap()]);
        let Some(stdout) = python_stdout(&mut python, &["sklearn", "numpy"], "scikit-learn oracle")
        else {
            return;
        };
        std::fs::remove_file(&file).unwrap();
        let want: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
        let rows: Vec<usize> = (0..n).collect();
        let per_class = per_class_auroc(&scores, &targets, k, &rows);
        for (c, got) in per_class.iter().enumerate() {
            // scikit-learn has no AUROC for a class without positives either.
            let Some(w) = want["per_class_auroc"][c].as_f64() else {
                assert_eq!(*got, None, "class {c}");
                continue;
            };
            assert!(close(got.unwrap(), w), "class {c}: {got:?} vs {w}");
        }
        if let Some(macro_want) = want["macro_auroc"].as_f64() {
            assert!(close(
                macro_auroc(&scores, &targets, k, &rows).unwrap(),
                macro_want
            ));
        }
        let f1 = per_class_f1(&scores, &targets, k, &rows, &thresholds);
        for (c, got) in f1.iter().enumerate() {
            let w = want["per_class_f1"][c].as_f64().unwrap();
            assert!(close(got.unwrap(), w), "F1 class {c}: {got:?} vs {w}");
        }
        let f1_want = want["macro_f1"].as_f64().unwrap();
        assert!(close(
            macro_f1(&scores, &targets, k, &rows, &thresholds).unwrap(),
            f1_want
        ));
        if single_label {
            let classes: Vec<u32> = (0..n).map(|r| (r % k) as u32).collect();
            let acc = accuracy(&scores, &classes, k, &rows).unwrap();
            assert!(close(acc, want["accuracy"].as_f64().unwrap()), "{acc}");
        }
    }
}

#[test]
fn a_class_without_positives_has_no_auroc_and_no_nan() {
    let (scores, mut targets) = data(50, 3, false, 3);
    for r in 0..50 {
        targets[r * 3 + 1] = 0.0;
    }
    let rows: Vec<usize> = (0..50).collect();
    let per_class = per_class_auroc(&scores, &targets, 3, &rows);
    assert!(per_class[1].is_none());
    let m = macro_auroc(&scores, &targets, 3, &rows).unwrap();
    assert!(close(
        m,
        (per_class[0].unwrap() + per_class[2].unwrap()) / 2.0
    ));
    assert!(macro_f1(&scores, &targets, 3, &rows, &[0.5; 3])
        .unwrap()
        .is_finite());
}
