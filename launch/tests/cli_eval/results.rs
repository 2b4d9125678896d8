//! `ecgfm eval` with every protocol and fraction: metrics, intervals, scored test units,
//! learning above chance, exact repeats, `ecgfm compare` and TensorBoard scalars.

use std::path::Path;
use std::process::Command;

use crate::common::{ecgfm_env, run_err, run_ok};
use crate::{eval_args, fixture, read_json};
use ecgfm_test_support::python_stdout;
use ecgfm_trainer::eval::metrics::{macro_auroc, macro_f1};
use ecgfm_trainer::eval::UnitScores;

#[test]
fn eval_runs_every_protocol_and_fraction_and_repeats_exactly() {
    let (data, run) = fixture();
    let (data, run) = (data.to_str().unwrap(), run.to_str().unwrap());
    let dir = std::env::temp_dir().join(format!("ecgfm-cli-eval-out-{}", std::process::id()));
    // File names of their own: the run's copy of another test's evaluation (the run is shared)
    // under the same name is kept, and this one's copy would take the next free name.
    let (a, b) = (dir.join("every-a.json"), dir.join("every-b.json"));
    let stdout = run_ok(&eval_args(data, run, a.to_str().unwrap(), "all"));
    for protocol in ["probe", "finetune", "scratch", "random_probe"] {
        assert!(
            stdout.contains(protocol),
            "table lacks {protocol}:\n{stdout}"
        );
    }
    for (protocol, fraction) in [("probe", "100%"), ("finetune", "25%")] {
        let line = format!("{protocol} against scratch with {fraction} of the labels: ");
        assert!(stdout.contains(&line), "no {line:?}:\n{stdout}");
    }
    assert!(stdout.contains("device: cpu"), "{stdout}");
    assert!(stdout.contains("held in memory"), "{stdout}");
    let report = read_json(&a);
    assert_eq!(report["step"], 8);
    assert_eq!(report["device"], "cpu");
    assert_eq!(report["precision"], "fp32");
    assert_eq!(read_json(&Path::new(run).join("eval/every-a.json")), report);
    assert_eq!(report["classes"].as_array().unwrap().len(), 5);
    let counts = &report["counts"]["windows"];
    let total: u64 = ["train", "val", "test"]
        .iter()
        .map(|s| counts[s].as_u64().unwrap())
        .sum();
    assert_eq!(total, 600);
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 8);
    for r in results {
        let auroc = r["macro_auroc"].as_f64().unwrap();
        let ci = r["macro_auroc_ci"].as_array().unwrap();
        let (lo, hi) = (ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap());
        assert!(
            (0.0..=1.0).contains(&auroc) && lo <= hi && (0.0..=1.0).contains(&lo),
            "{r}"
        );
        assert!(r["accuracy"]["value"].as_f64().unwrap().is_finite());
        let f1 = |key: &str| r[key]["value"].as_f64().unwrap();
        assert!(f1("macro_f1_ovr_thresholded").is_finite());
        // Single-label: the argmax F1 too; the CinC 2017 challenge's F1 only for its labels.
        assert!((0.0..=1.0).contains(&f1("macro_f1_argmax")));
        assert!(r["cinc2017_f1"].is_null() && r.get("macro_f1").is_none());
        assert_eq!(r["per_class_auroc"].as_object().unwrap().len(), 5);
        let key = if r["protocol"].as_str().unwrap().ends_with("probe") {
            "l2"
        } else {
            "best_epoch"
        };
        assert!(r["selected"][key].is_number(), "{r}");
        check_test_units(r, &report);
    }
    check_learning(results);
    let train = |i: usize| results[i]["train_windows"].as_u64().unwrap();
    assert!(train(4) < train(0), "fraction 0.25 uses fewer windows");
    // The fraction drawn is recorded beside the one asked for, and tabled.
    let all_train = report["counts"]["records"]["train"].as_f64().unwrap();
    for r in results {
        let drawn = r["train_records"].as_f64().unwrap() / all_train;
        assert_eq!(r["achieved_fraction"].as_f64(), Some(drawn), "{r}");
        let kept = r["bootstrap_kept"].as_u64().unwrap();
        assert!((180..=200).contains(&kept), "{r}");
    }
    assert!(stdout.contains("achieved"), "{stdout}");
    assert!(stdout.contains(&format!(
        " {:.4} ",
        results[4]["achieved_fraction"].as_f64().unwrap()
    )));
    assert_eq!(train(0), counts["train"].as_u64().unwrap());
    for (i, r) in results.iter().enumerate() {
        assert_eq!(
            r["train_records"].as_u64(),
            Some(train(i)),
            "one window a record"
        );
        assert_eq!(
            r["test_patients"], r["test_records"],
            "one record a patient"
        );
    }
    let warned = report["warnings"].as_array().unwrap().iter();
    assert!(
        !warned
            .map(|w| w.as_str().unwrap())
            .any(|w| w.contains("no patient ids")),
        "synthetic records are each their own patient: {report}"
    );
    check_tensorboard(&Path::new(run).join("eval"), results);
    // The same command gives the same numbers, also with fine-tuning recomputing every block, the
    // windows in a scratch file (which leaves nothing behind) and scored per record (one window
    // each here, so a record's mean is its window).
    let mut again = eval_args(data, run, b.to_str().unwrap(), "all");
    let scratch = dir.join("scratch");
    let scratch_dir = scratch.to_str().unwrap();
    again.extend(["--recompute", "blocks", "--hold-windows", "disk"]);
    again.extend(["--scratch-dir", scratch_dir, "--score-by", "record"]);
    let stdout = run_ok(&again);
    assert!(
        stdout.contains(&format!("held in a scratch file in {scratch_dir}")),
        "{stdout}"
    );
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);
    let again = read_json(&b);
    assert_eq!(again["finetune_settings"]["recompute"], "blocks");
    assert_eq!(
        (&report["scored_by"], &again["scored_by"]),
        (&"window".into(), &"record".into())
    );
    for (x, y) in results.iter().zip(again["results"].as_array().unwrap()) {
        for key in [
            "macro_auroc",
            "macro_auroc_ci",
            "per_class_auroc",
            "macro_f1_ovr_thresholded",
            "macro_f1_argmax",
            "accuracy",
        ] {
            assert_eq!(x[key], y[key], "{key} differs between identical runs");
        }
    }
    check_compare(&a, &b, &dir);
    // A later evaluation of the same checkpoint with other protocols adds its scalars beside the
    // earlier ones (its file's START event dropped every earlier tag until 2026-12-06).
    let c = dir.join("every-c.json");
    run_ok(&eval_args(data, run, c.to_str().unwrap(), "random_probe"));
    let mut all = results.clone();
    all.extend(read_json(&c)["results"].as_array().unwrap().iter().cloned());
    check_tensorboard(&Path::new(run).join("eval"), &all);
    std::fs::remove_dir_all(dir).unwrap();
}

/// An evaluation that dies after some units (a protocol at a fraction) finished, run again with
/// the same command, goes on from them and gives the results of one never interrupted; the units
/// of an evaluation with other settings are discarded.
#[test]
fn an_interrupted_evaluation_goes_on_from_the_units_it_finished() {
    let (data, run) = fixture();
    let (data, run) = (data.to_str().unwrap(), run.to_str().unwrap());
    let dir = std::env::temp_dir().join(format!("ecgfm-cli-eval-units-{}", std::process::id()));
    let (a, b) = (dir.join("a.json"), dir.join("b.json"));
    let (a_s, b_s) = (a.to_str().unwrap(), b.to_str().unwrap());
    run_ok(&eval_args(data, run, a_s, "probe,finetune"));
    let units = dir.join("b.json.units.jsonl");
    let abort_after = |units: &str, args: &[&str]| {
        let out = ecgfm_env(args, &[("ECGFM_FAULT_EVAL_ABORT_AFTER_UNITS", units)]);
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    // Probe and fine-tuning at fraction 1 finish; the process dies before the rest.
    abort_after("2", &eval_args(data, run, b_s, "probe,finetune"));
    assert!(!b.exists());
    assert_eq!(std::fs::read_to_string(&units).unwrap().lines().count(), 3);
    let output = ecgfm_env(&eval_args(data, run, b_s, "probe,finetune"), &[]);
    assert!(output.status.success());
    let (stdout, logs) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        stdout.contains("resuming: 2 finished protocol and fraction pairs kept"),
        "{stdout}"
    );
    for kept in ["probe", "finetune"] {
        let said = format!("{kept} at label fraction 1: kept from an interrupted run");
        assert!(logs.contains(&said), "{logs}");
        // And not run again (its line would name its training windows).
        let started = format!("{kept} at label fraction 1: ");
        assert_eq!(logs.matches(&started).count(), 1, "{logs}");
    }
    assert!(logs.contains("probe at label fraction 0.25: "), "{logs}");
    assert!(!units.exists(), "the units file outlived the result");
    // Every figure as the uninterrupted run's, but for the time each unit took.
    let without_seconds = |path: &Path| {
        let mut results = read_json(path)["results"].clone();
        for r in results.as_array_mut().unwrap() {
            r.as_object_mut().unwrap().remove("seconds");
        }
        results
    };
    assert_eq!(without_seconds(&a), without_seconds(&b));
    // A later unit's failure (fine-tuning diverging) says what is kept and keeps it.
    let c = dir.join("c.json");
    let mut diverging = eval_args(data, run, c.to_str().unwrap(), "probe,finetune");
    diverging.extend(["--lr", "1e30"]);
    let err = run_err(&diverging);
    let kept = dir.join("c.json.units.jsonl");
    assert!(
        err.contains(&format!(
            "evaluating (1 finished protocol and fraction pairs are kept in {}: the same command \
             goes on from them): training diverged",
            kept.display()
        )),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&kept).unwrap().lines().count(), 2);
    // Run again at the usual learning rate, it keeps the probe (which the learning rate does
    // not touch) and fine-tunes afresh.
    let output = ecgfm_env(
        &eval_args(data, run, c.to_str().unwrap(), "probe,finetune"),
        &[],
    );
    assert!(output.status.success());
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        said.contains("resuming: 1 finished protocol and fraction pairs kept"),
        "{said}"
    );
    assert_eq!(without_seconds(&c), without_seconds(&a));
    // Another seed is another evaluation: the units of the first are not used.
    std::fs::remove_file(&b).unwrap();
    abort_after("1", &eval_args(data, run, b_s, "probe,finetune"));
    let mut other = eval_args(data, run, b_s, "probe,finetune");
    other.extend(["--seed", "1"]);
    let stdout = abort_after("1", &other);
    assert!(
        stdout.contains("held 1 finished units of an evaluation with other settings")
            && !stdout.contains("resuming"),
        "{stdout}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// The protocols learn: with all the labels the probe and fine-tuning score the test windows
/// well above chance, and the random encoder's probe is not the checkpoint's (it would be if
/// `random_probe` loaded the checkpoint: the same features, split and L2 grid).
fn check_learning(results: &[serde_json::Value]) {
    let result = |protocol: &str, fraction: f64| {
        (results.iter())
            .find(|r| r["protocol"] == protocol && r["fraction"].as_f64() == Some(fraction))
            .unwrap_or_else(|| panic!("no {protocol} at {fraction}"))
    };
    // Measured 2026-12-04 (8-step nano encoder, 2 epochs, 55 test windows): test macro AUROC
    // 0.715 [0.616, 0.836] for the probe, 0.700 [0.626, 0.773] for fine-tuning (0.730 for the
    // random encoder's probe, 0.708 from scratch). Scores of noise on these test windows have a
    // macro AUROC of 0.50 with standard deviation 0.048, at or above 0.62 about once in 170.
    for protocol in ["probe", "finetune"] {
        let r = result(protocol, 1.0);
        let auroc = r["macro_auroc"].as_f64().unwrap();
        let low = r["macro_auroc_ci"][0].as_f64().unwrap();
        assert!(
            auroc >= 0.62 && low > 0.5,
            "{protocol} learnt nothing: test macro AUROC {auroc}, interval from {low}"
        );
    }
    for fraction in [1.0, 0.25] {
        let scores = |protocol| &result(protocol, fraction)["test_units"]["scores"];
        assert_ne!(
            scores("random_probe"),
            scores("probe"),
            "random_probe at {fraction} scores as the checkpoint's probe"
        );
    }
}

/// `ecgfm compare` on two result files of the same encoder (one window per record, so scored
/// by window and by record they hold the same units and scores): every protocol and fraction
/// differs by exactly 0; the probe against the random encoder's probe in one file gets an
/// interval; a file without scored units, or of another task, is refused.
fn check_compare(a: &Path, b: &Path, dir: &Path) {
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let same = run_ok(&["compare", "--a", a, "--b", b, "--bootstrap", "200"]);
    let rows: Vec<&str> = same
        .lines()
        .skip(1)
        .filter(|l| l.contains(" vs "))
        .collect();
    assert_eq!(rows.len(), 8, "{same}");
    for row in rows {
        assert!(
            row.contains("+0.000     [+0.000, +0.000]  not established"),
            "{row}"
        );
    }
    // Two evaluations of one encoder are not two seeds (cli_compare draws real seeds).
    let err = run_err(&["compare", "--a", a, "--a", b, "--b", b, "--b", a]);
    assert!(err.contains("evaluates the same weights"), "{err}");
    let err = run_err(&[
        "compare",
        "--a",
        a,
        "--b",
        b,
        "--resample",
        "seeds-and-records",
    ]);
    assert!(
        err.contains("two or more evaluations a side (here 1 and 1)"),
        "{err}"
    );
    let f1 = run_ok(&["compare", "--a", a, "--b", b, "--metric", "f1"]);
    assert!(f1.lines().next().unwrap().contains("F1 (ovr) A"), "{f1}");
    let rows: Vec<&str> = f1.lines().skip(1).filter(|l| l.contains(" vs ")).collect();
    assert_eq!(rows.len(), 8, "{f1}");
    assert!(
        rows.iter()
            .all(|r| r.contains("+0.000     [+0.000, +0.000]")),
        "{f1}"
    );
    let args = ["compare", "--a", a, "--b", a, "--protocol", "random_probe"];
    for metric in ["auroc", "f1"] {
        let extra = ["--b-protocol", "probe", "--metric", metric];
        let against = run_ok(&[&args[..], &extra].concat());
        let row = against
            .lines()
            .find(|l| l.starts_with("random_probe vs probe"))
            .unwrap();
        assert!(row.contains('[') && !row.contains("n/a"), "{against}");
    }
    let mut report = read_json(Path::new(a));
    for r in report["results"].as_array_mut().unwrap() {
        r.as_object_mut().unwrap().remove("test_units");
    }
    let old = dir.join("old.json");
    std::fs::write(&old, report.to_string()).unwrap();
    let err = run_err(&["compare", "--a", old.to_str().unwrap(), "--b", a]);
    assert!(err.contains("no scored test units"), "{err}");
    let mut other = read_json(Path::new(a));
    other["vocabulary"] = "ptbxl_superclass".into();
    std::fs::write(&old, other.to_string()).unwrap();
    let err = run_err(&["compare", "--a", a, "--b", old.to_str().unwrap()]);
    assert!(err.contains("not the same task"), "{err}");
}

/// A result's `test_units` (scored by window here) hold one row per test window, the test
/// positives of each class, and scores whose macro AUROC and F1 are exactly the ones reported.
fn check_test_units(result: &serde_json::Value, report: &serde_json::Value) {
    let units: UnitScores = serde_json::from_value(result["test_units"].clone()).unwrap();
    let n = result["test_windows"].as_u64().unwrap() as usize;
    let classes = report["classes"].as_array().unwrap();
    let k = classes.len();
    assert_eq!(
        (units.records.len(), units.targets.len(), units.scores.len()),
        (n, n * k, n * k)
    );
    for (c, class) in classes.iter().enumerate() {
        let positives: u64 = (0..n).map(|u| u64::from(units.targets[u * k + c])).sum();
        let counted = &report["counts"]["positives"]["test"][class.as_str().unwrap()];
        assert_eq!(positives, counted.as_u64().unwrap(), "{class}");
    }
    let scores: Vec<f64> = units.scores.iter().map(|&s| f64::from(s)).collect();
    let targets: Vec<f64> = units.targets.iter().map(|&t| f64::from(t)).collect();
    let rows: Vec<usize> = (0..n).collect();
    let auroc = macro_auroc(&scores, &targets, k, &rows).unwrap();
    let reported = result["macro_auroc"].as_f64().unwrap();
    assert_eq!(auroc, reported, "the reported AUROC is not its units' own");
    let thresholds: Vec<f64> = classes
        .iter()
        .map(|c| result["thresholds"][c.as_str().unwrap()].as_f64().unwrap())
        .collect();
    let f1 = macro_f1(&scores, &targets, k, &rows, &thresholds);
    let reported = result["macro_f1_ovr_thresholded"]["value"].as_f64();
    assert_eq!(f1.is_some(), reported.is_some());
    if let (Some(f1), Some(reported)) = (f1, reported) {
        assert_eq!(f1, reported, "the reported F1 is not its units' own");
    }
}

/// The scalars under `events` (read by the `tensorboard` package) hold each result's AUROC at
/// the checkpoint's step.
fn check_tensorboard(events: &Path, results: &[serde_json::Value]) {
    let script = "import json, sys\n\
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator\n\
        acc = EventAccumulator(sys.argv[1]); acc.Reload()\n\
        print(json.dumps({t: [[e.step, e.value] for e in acc.Scalars(t)] for t in acc.Tags()['scalars']}))";
    let mut python = Command::new("python3");
    python.args(["-c", script, events.to_str().unwrap()]);
    let Some(stdout) = python_stdout(&mut python, &["tensorboard"], "tensorboard reader") else {
        return;
    };
    let scalars: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    for r in results {
        let fraction = r["fraction"].as_f64().unwrap();
        let tag = format!(
            "eval/synth/{}/{fraction}/macro_auroc",
            r["protocol"].as_str().unwrap()
        );
        let want = r["macro_auroc"].as_f64().unwrap() as f32;
        // The fixture's run is shared: other tests' evaluations may add points of their own.
        let points = scalars[&tag].as_array();
        let found = points
            .into_iter()
            .flatten()
            .any(|p| p[0] == 8 && p[1].as_f64().unwrap() as f32 == want);
        assert!(found, "{tag}: no {want} at step 8 in {scalars}");
    }
}
