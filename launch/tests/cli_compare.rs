//! `ecgfm compare` through the real binary on hand-made result files: one seed counts once (a
//! file given twice, two files of the same weights under probe or finetune, or of the same
//! evaluation seed under scratch or random_probe, on one side are refused, and one file on both
//! sides under one protocol), an error prints no table header before it, and files that give the
//! same patients are resampled by patient. The table: B minus A with its verdict either way, each
//! label fraction against its own, only the protocol asked for; the resamples: seeds only with
//! several files on both sides, the same for one `--seed`, at least 200; `--metric f1` compares
//! each side's thresholded predictions, and refuses a file without thresholds, naming it.

mod common;

use common::{ecgfm_env, path_str, run_err, run_ok, run_refused, temp_dir};
use std::path::{Path, PathBuf};

/// Writes `dir/NAME.json`: an `ecgfm eval` result file of the weights `weights` whose probe and
/// scratch results score `records` test records (two classes), the scores shifted by `shift`.
fn result_file(dir: &Path, name: &str, weights: &str, records: u32, shift: f64) -> PathBuf {
    let targets: Vec<u8> = (0..records)
        .flat_map(|i| [u8::from(i % 3 == 0), u8::from(i % 3 != 0)])
        .collect();
    let scores: Vec<f64> = targets
        .iter()
        .enumerate()
        .map(|(i, &t)| 0.3 * f64::from(t) + ((i * 37 % 101) as f64 / 101.0 + shift).fract())
        .collect();
    let result = |protocol: &str| {
        serde_json::json!({
            "protocol": protocol, "fraction": 1.0, "macro_auroc": 0.8,
            "test_units": {"records": (0..records).collect::<Vec<u32>>(), "targets": targets,
                           "scores": scores},
        })
    };
    let file = serde_json::json!({
        "vocabulary": "synth", "classes": ["a", "b"], "weights_sha256": weights,
        "results": [result("probe"), result("scratch")],
    });
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, file.to_string()).unwrap();
    path
}

/// Rewrites the result file at `path` through `change`.
fn edit(path: &Path, change: impl FnOnce(&mut serde_json::Value)) {
    let mut file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    change(&mut file);
    std::fs::write(path, file.to_string()).unwrap();
}

#[test]
fn one_encoder_counts_once() {
    let dir = temp_dir("compare-once");
    let file = |name: &str, weights: &str| result_file(&dir, name, weights, 60, 0.0);
    let (a1, a2, b1, b2) = (
        file("a1", "w1"),
        file("a2", "w2"),
        file("b1", "w3"),
        file("b2", "w4"),
    );
    let a1_again = file("a1-again", "w1");
    let p = |p: &PathBuf| path_str(p).to_string();
    let compare = |args: &[&PathBuf], extra: &[&str]| -> Vec<String> {
        let mut all = vec!["compare".to_string()];
        for (flag, path) in ["--a", "--a", "--b", "--b"].iter().zip(args) {
            all.extend([flag.to_string(), p(path)]);
        }
        all.extend(extra.iter().map(|s| s.to_string()));
        all
    };
    // Two seeds a side, four encoders: compared.
    let said = run_ok(&compare(&[&a1, &a2, &b1, &b2], &[]));
    assert!(said.contains("probe vs probe"), "{said}");
    assert!(
        said.contains("resamples of each side's files (seeds), then the test records"),
        "{said}"
    );
    // The same file twice on side A.
    let err = run_err(&compare(&[&a1, &a1, &b1, &b2], &[]));
    assert!(
        err.contains(&format!("{} on side A is the same file as", p(&a1)))
            && err.contains("one seed would count as two"),
        "{err}"
    );
    // Another file of the same weights on side A.
    let err = run_err(&compare(&[&a1, &a1_again, &b1, &b2], &[]));
    assert!(
        err.contains("on side A evaluates the same weights (weights_sha256 w1)"),
        "{err}"
    );
    // Evaluation seeds of one encoder: one seed of probe, distinct seeds of scratch, whose
    // network the evaluation seed alone draws; with no --protocol, refused.
    let seeded = |name: &str, weights: &str, seed: u64| {
        let path = file(name, weights);
        edit(&path, |json| json["seed"] = seed.into());
        path
    };
    let (e0, e1, other_e0) = (
        seeded("e0", "w1", 0),
        seeded("e1", "w1", 1),
        seeded("o0", "w5", 0),
    );
    let said = run_ok(&compare(&[&e0, &e1, &b1, &b2], &["--protocol", "scratch"]));
    assert!(said.contains("scratch vs scratch"), "{said}");
    assert!(
        !said.contains("probe vs"),
        "only the protocol asked for: {said}"
    );
    for protocol in [None, Some("probe")] {
        let extra: Vec<&str> = protocol.iter().flat_map(|p| ["--protocol", p]).collect();
        let err = run_err(&compare(&[&e0, &e1, &b1, &b2], &extra));
        assert!(
            err.contains("evaluates the same weights (weights_sha256 w1)"),
            "{err}"
        );
    }
    let said = run_ok(&compare(
        &[&e0, &other_e0, &b1, &b2],
        &["--protocol", "probe"],
    ));
    assert!(said.contains("probe vs probe"), "{said}");
    let err = run_err(&compare(
        &[&e0, &other_e0, &b1, &b2],
        &["--protocol", "scratch"],
    ));
    assert!(
        err.contains("on side A has the same evaluation seed (0), which alone draws"),
        "{err}"
    );
    // The same file on both sides under one protocol.
    let err = run_err(&["compare", "--a", &p(&a1), "--b", &p(&a1)]);
    assert!(err.contains("is on both sides"), "{err}");
    // A --b-protocol that names A's protocol is one protocol too.
    let same = ["--protocol", "probe", "--b-protocol", "probe"];
    let err = run_err(&[&["compare", "--a", &p(&a1), "--b", &p(&a1)][..], &same].concat());
    assert!(err.contains("is on both sides"), "{err}");
    // Under two protocols it is pretrained against from scratch: allowed.
    let said = run_ok(&[
        "compare",
        "--a",
        &p(&a1),
        "--b",
        &p(&a1),
        "--protocol",
        "scratch",
        "--b-protocol",
        "probe",
    ]);
    assert!(said.contains("scratch vs probe"), "{said}");
    // A protocol misspelt is named (it read as sides with nothing in common until 2026-12-06).
    for (flag, typo) in [("--protocol", "finetun"), ("--b-protocol", "prob")] {
        let err = run_refused(&["compare", "--a", &p(&a1), "--b", &p(&a1), flag, typo]);
        let said = format!("{flag} {typo}: unknown protocol (one of probe, finetune, scratch");
        assert!(err.contains(&said), "{err}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_error_prints_no_table_header() {
    let dir = temp_dir("compare-header");
    let a = result_file(&dir, "a", "w1", 60, 0.0);
    let b = result_file(&dir, "b", "w2", 90, 0.5);
    let output = ecgfm_env(&["compare", "--a", path_str(&a), "--b", path_str(&b)], &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("different test units"), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_single_seed_of_a_trained_protocol_gets_no_verdict() {
    let dir = temp_dir("compare-noise");
    let a = result_file(&dir, "a", "w1", 90, 0.0);
    // B scores every record by its label: far better than A on the same test units.
    let b = result_file(&dir, "b", "w2", 90, 0.0);
    edit(&b, |file| {
        for r in file["results"].as_array_mut().unwrap() {
            r["test_units"]["scores"] = r["test_units"]["targets"].clone();
        }
    });
    let (a, b) = (path_str(&a), path_str(&b));
    // The probe at fraction 1 does not move with the evaluation seed: the interval decides.
    let probe = run_ok(&["compare", "--a", a, "--b", b, "--protocol", "probe"]);
    assert!(
        probe.contains("B higher: the interval excludes 0"),
        "{probe}"
    );
    // From scratch, one seed a side: the same gap is no verdict, since the seed is not drawn.
    let scratch = run_ok(&["compare", "--a", a, "--b", b, "--protocol", "scratch"]);
    assert!(
        scratch.contains("no verdict: test-set noise only; training seed not resampled"),
        "{scratch}"
    );
    let err = run_refused(&["compare", "--a", a, "--b", b, "--bootstrap", "50"]);
    assert!(
        err.contains("--bootstrap 50: give at least 200 resamples"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn files_with_the_same_patients_resample_patients() {
    let dir = temp_dir("compare-patients");
    let (a, b) = (
        result_file(&dir, "a", "w1", 90, 0.0),
        result_file(&dir, "b", "w2", 90, 0.3),
    );
    let compare = || run_ok(&["compare", "--a", path_str(&a), "--b", path_str(&b)]);
    assert!(compare().contains("resamples of the test records"));
    // Three records a patient, in both files: the interval draws patients, and is wider.
    for path in [&a, &b] {
        edit(path, |file| {
            for r in file["results"].as_array_mut().unwrap() {
                r["test_units"]["patients"] = (0..90u32).map(|i| i / 3).collect();
            }
        });
    }
    let said = compare();
    assert!(
        said.contains("resamples of the test patients (each with all its units)"),
        "{said}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// The `B - A` column of the row of `protocol vs protocol` in `said` (checked against the row's
/// two means) and the row.
fn difference(said: &str, protocol: &str) -> (f64, String) {
    let row = said
        .lines()
        .find(|l| l.starts_with(&format!("{protocol} vs {protocol} ")))
        .unwrap_or_else(|| panic!("no {protocol} row: {said}"));
    let words: Vec<&str> = row.split_whitespace().collect();
    let (a, b, diff): (f64, f64, f64) = (
        words[4].parse().unwrap(),
        words[5].parse().unwrap(),
        words[6].parse().unwrap(),
    );
    assert!((diff - (b - a)).abs() < 2e-3, "B - A is {diff}: {row}");
    (diff, row.to_string())
}

#[test]
fn the_difference_is_b_minus_a_and_either_side_can_be_higher() {
    let dir = temp_dir("compare-sides");
    let worse = result_file(&dir, "worse", "w1", 90, 0.0);
    // Scores that rank every record by its label: far better on the same test units.
    let better = result_file(&dir, "better", "w2", 90, 0.0);
    edit(&better, |file| {
        for r in file["results"].as_array_mut().unwrap() {
            r["test_units"]["scores"] = r["test_units"]["targets"].clone();
            r["macro_auroc"] = 1.0.into();
        }
    });
    let compare = |a: &Path, b: &Path| {
        let said = run_ok(&["compare", "--a", path_str(a), "--b", path_str(b)]);
        difference(&said, "probe")
    };
    let (up, row) = compare(&worse, &better);
    assert!(
        up > 0.0 && row.ends_with("B higher: the interval excludes 0"),
        "{row}"
    );
    let (down, row) = compare(&better, &worse);
    assert!(
        down < 0.0 && row.ends_with("B lower: the interval excludes 0"),
        "{row}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn each_label_fraction_is_compared_with_its_own_results() {
    let dir = temp_dir("compare-fractions");
    let (a, b) = (
        result_file(&dir, "a", "w1", 60, 0.0),
        result_file(&dir, "b", "w2", 60, 0.3),
    );
    // A probe on a tenth of the labels too, scoring lower than on all of them.
    for (path, auroc) in [(&a, 0.6), (&b, 0.7)] {
        edit(path, |file| {
            let mut tenth = file["results"][0].clone();
            tenth["fraction"] = 0.1.into();
            tenth["macro_auroc"] = auroc.into();
            file["results"].as_array_mut().unwrap().push(tenth);
        });
    }
    let said = run_ok(&["compare", "--a", path_str(&a), "--b", path_str(&b)]);
    let rows: Vec<Vec<&str>> = said
        .lines()
        .filter(|l| l.starts_with("probe vs probe "))
        .map(|l| l.split_whitespace().take(6).collect())
        .collect();
    assert_eq!(
        rows,
        [
            ["probe", "vs", "probe", "1", "0.800", "0.800"],
            ["probe", "vs", "probe", "0.1", "0.600", "0.700"],
        ],
        "{said}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn resamples_draw_seeds_with_several_files_on_both_sides_and_follow_the_seed() {
    let dir = temp_dir("compare-resamples");
    let file = |name: &str, shift: f64| result_file(&dir, name, name, 60, shift);
    let (a1, a2, b1) = (file("a1", 0.0), file("a2", 0.1), file("b1", 0.3));
    let compare = |files: &[(&str, &PathBuf)], extra: &[&str]| {
        let mut args = vec!["compare"];
        for (flag, path) in files {
            args.extend([*flag, path_str(path)]);
        }
        args.extend(extra);
        run_ok(&args)
    };
    // Two files on side A, one on B: the seeds are not drawn.
    let said = compare(&[("--a", &a1), ("--a", &a2), ("--b", &b1)], &[]);
    assert!(said.contains("resamples of the test records"), "{said}");
    // The interval is the seed's: the same for the same --seed, another for another.
    let one = [("--a", &a1), ("--b", &b1)];
    let interval = |seed: &str| {
        let said = compare(&one, &["--bootstrap", "200", "--seed", seed]);
        let (_, row) = difference(&said, "probe");
        row.split_whitespace()
            .skip(7)
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(interval("1"), interval("1"));
    assert_ne!(interval("1"), interval("2"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn f1_compares_the_predictions_at_each_sides_thresholds() {
    let dir = temp_dir("compare-f1");
    // The same scores on both sides (AUROC cannot tell them apart); A's thresholds predict no
    // record positive (F1 0), B's split the scores.
    let (a, b) = (
        result_file(&dir, "a", "w1", 90, 0.0),
        result_file(&dir, "b", "w2", 90, 0.0),
    );
    // Files without thresholds (written before they were kept) cannot be compared by F1.
    let err = run_err(&[
        "compare",
        "--a",
        path_str(&a),
        "--b",
        path_str(&b),
        "--metric",
        "f1",
    ]);
    let says = format!(
        "{}: the probe result keeps no decision threshold for every class (written before ecgfm \
         kept them), which --metric f1 needs",
        a.display()
    );
    assert!(err.contains(&says), "{err}");
    for (path, threshold, f1) in [(&a, 2.0, 0.0), (&b, 0.65, 0.7)] {
        edit(path, |file| {
            for r in file["results"].as_array_mut().unwrap() {
                r["thresholds"] = serde_json::json!({"a": threshold, "b": threshold});
                r["macro_f1_ovr_thresholded"] = serde_json::json!({"value": f1});
            }
        });
    }
    let compare = |metric: &str| {
        let (a, b) = (path_str(&a), path_str(&b));
        run_ok(&[
            "compare",
            "--a",
            a,
            "--b",
            b,
            "--protocol",
            "probe",
            "--metric",
            metric,
        ])
    };
    let (_, row) = difference(&compare("auroc"), "probe");
    assert!(
        row.ends_with("not established: the interval includes 0"),
        "{row}"
    );
    let said = compare("f1");
    assert!(said.contains("F1 (ovr) A"), "{said}");
    let (diff, row) = difference(&said, "probe");
    assert!(
        diff > 0.0 && row.ends_with("B higher: the interval excludes 0"),
        "{row}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
