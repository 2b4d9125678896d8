//! `ecgfm eval` on real PhysioNet data from `../shared/data` at small size: PTB-XL diagnostic
//! superclasses (multi-label, folds 1-8 / 9 / 10) and CinC 2017 rhythm (single-label, the
//! first 600 records), each ingested, then every protocol run against a short nano run
//! (input 750 samples, one fine-tuning epoch). Skips when the shared folder is absent.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{fixture_dir, run_ok, short_run};
use ecgfm_test_support::shared_data;

fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| fixture_dir("eval-shared"))
}

/// An 8-step nano run on the synthetic generator (`common::short_run`), made once.
fn run_dir() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| short_run(root(), None, &[]))
}

/// Ingests `folder` of the shared data (at most `limit` records) and runs every protocol on
/// `labels`; returns the result file's JSON, or `None` when the folder is absent.
fn ingest_and_eval(
    folder: &str,
    format: &str,
    limit: &str,
    labels: &str,
) -> Option<(serde_json::Value, String)> {
    let source = shared_data(folder)?;
    let data = root().join(folder);
    let out = root().join(format!("{folder}.json"));
    let p = |p: &Path| p.to_str().unwrap().to_string();
    run_ok(&[
        "data",
        "ingest",
        &p(&source),
        "--format",
        format,
        "--out",
        &p(&data),
        "--threads",
        "2",
        "--limit",
        limit,
    ]);
    let stdout = run_ok(&[
        "eval",
        "--run",
        &p(run_dir()),
        "--data",
        &p(&data),
        "--labels",
        labels,
        "--protocol",
        "all",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--bootstrap",
        "200",
        "--threads",
        "2",
        "--out",
        &p(&out),
    ]);
    println!("{stdout}");
    let report = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    std::fs::remove_dir_all(data).unwrap();
    Some((report, stdout))
}

/// Every protocol has a macro AUROC in [0, 1] with an interval (or a warning why not), and
/// per-class values that are
/// numbers or, for classes the test split cannot score, null with a warning.
fn check_results(report: &serde_json::Value, classes: &[&str]) {
    let got: Vec<&str> = report["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(got, classes);
    let results = report["results"].as_array().unwrap();
    let protocols: Vec<&str> = results
        .iter()
        .map(|r| r["protocol"].as_str().unwrap())
        .collect();
    assert_eq!(protocols, ["probe", "finetune", "scratch", "random_probe"]);
    for r in results {
        let auroc = r["macro_auroc"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&auroc), "{r}");
        // An interval, or none with a warning where too many resamples lost a class (CinC
        // 2017's few noisy `~` records).
        let kept = r["bootstrap_kept"].as_u64().unwrap();
        match r["macro_auroc_ci"].as_array() {
            Some(ci) => {
                assert!(kept >= 180, "{r}");
                assert!(ci[0].as_f64().unwrap() <= ci[1].as_f64().unwrap());
            }
            None => {
                let says = format!("only {kept} of 200 bootstrap resamples keep every class");
                let warned = (report["warnings"].as_array().unwrap().iter())
                    .any(|w| w.as_str().unwrap().contains(&says));
                assert!(kept < 180 && warned, "{r}");
            }
        }
        for (class, value) in r["per_class_auroc"].as_object().unwrap() {
            let warned = report["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w.as_str().unwrap().contains(&format!("class {class} ")));
            assert!(
                value.is_f64() || (value.is_null() && warned),
                "{class}: {value}"
            );
        }
    }
}

#[test]
fn ptbxl_superclasses_all_protocols() {
    let Some((report, stdout)) = ingest_and_eval("ptbxl-500", "ptbxl", "500", "ptbxl_superclass")
    else {
        return;
    };
    // A window of a multi-label task is never skipped for having two classes: not said.
    assert!(
        stdout.contains("unlabelled, ") && !stdout.contains("two classes"),
        "{stdout}"
    );
    check_results(&report, &["NORM", "MI", "STTC", "CD", "HYP"]);
    assert_eq!(report["multi_label"], true);
    let counts = &report["counts"];
    let kept: u64 = ["train", "val", "test"]
        .iter()
        .map(|s| counts["windows"][s].as_u64().unwrap())
        .sum();
    let skipped = counts["skipped_unlabelled"].as_u64().unwrap();
    assert_eq!(
        kept + skipped,
        500,
        "every window is kept or counted as skipped"
    );
    assert!(counts["windows"]["test"].as_u64().unwrap() > 30);
    // Ten-second records give one window each; some patients have several records, and the
    // bootstrap resamples patients.
    assert_eq!(counts["records"], counts["windows"]);
    let patients = counts["patients"]["test"].as_u64().unwrap();
    assert!(
        patients < counts["records"]["test"].as_u64().unwrap(),
        "{counts}"
    );
    for r in report["results"].as_array().unwrap() {
        assert_eq!(r["test_patients"], patients, "{r}");
        let units = r["test_units"]["patients"].as_array().unwrap();
        assert_eq!(units.len() as u64, r["test_windows"].as_u64().unwrap());
    }
    let warned = report["warnings"].as_array().unwrap().iter();
    assert!(!warned
        .map(|w| w.as_str().unwrap())
        .any(|w| w.contains("no patient ids")));
}

#[test]
fn cinc2017_rhythm_all_protocols() {
    let Some((report, stdout)) = ingest_and_eval("cinc2017", "cinc2017", "600", "cinc2017") else {
        return;
    };
    assert!(stdout.contains(" with two classes, "), "{stdout}");
    check_results(&report, &["N", "A", "O", "~"]);
    assert_eq!(report["multi_label"], false);
    // CinC 2017 has no patient ids: each record is its own patient, and the result says so.
    let warned = report["warnings"].as_array().unwrap().iter();
    assert!(
        warned
            .map(|w| w.as_str().unwrap())
            .any(|w| w.starts_with("source cinc2017 has no patient ids")),
        "{}",
        report["warnings"]
    );
    assert_eq!(report["counts"]["patients"], report["counts"]["records"]);
    assert_eq!(report["counts"]["skipped_unlabelled"], 0);
    // Records of 9-61 s give several windows each: the intervals resample records.
    let counts = &report["counts"];
    let (windows, records) = (&counts["windows"]["test"], &counts["records"]["test"]);
    assert!(
        records.as_u64().unwrap() < windows.as_u64().unwrap(),
        "{counts}"
    );
    for r in report["results"].as_array().unwrap() {
        assert!(r["accuracy"]["value"].as_f64().unwrap() > 0.0, "{r}");
        assert_eq!(&r["test_records"], records, "{r}");
        // The challenge's F1 (argmax, mean over N, A, O) recomputed from the scored units.
        let units = &r["test_units"];
        let n = units["records"].as_array().unwrap().len();
        let at = |key: &str, i: usize| units[key][i].as_f64().unwrap();
        let argmax = |key: &str, u: usize| {
            (0..4).fold(0, |b, c| {
                if at(key, u * 4 + c) > at(key, u * 4 + b) {
                    c
                } else {
                    b
                }
            })
        };
        let f1 = |c: usize| {
            let (mut tp, mut both) = (0.0, 0.0);
            for u in 0..n {
                let (p, t) = (argmax("scores", u), argmax("targets", u));
                tp += f64::from(p == c && t == c);
                both += f64::from(p == c) + f64::from(t == c);
            }
            2.0 * tp / both
        };
        let want = (f1(0) + f1(1) + f1(2)) / 3.0;
        let got = r["cinc2017_f1"]["value"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-12, "{got} {want}");
    }
}
