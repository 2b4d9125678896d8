//! `ecgfm eval` and `ecgfm embed` through the real binary on a small synthetic labelled dataset
//! and a short pretraining run: the result file holds every protocol and fraction with finite
//! metrics and intervals and the scored test units (whose scores give the reported AUROC and,
//! at the reported thresholds, F1), the probe and fine-tuning score well above chance, the
//! random encoder's probe is not the checkpoint's, the evaluation repeats bit for bit (also
//! recomputing activations), `ecgfm compare` pairs two of them (AUROC and F1), TensorBoard
//! scalars appear; the embeddings file holds the encoder's features of every window; bad input
//! is a clear error.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{fixture_dir, run_err, run_ok, short_run};
use ecgfm_data::windows::read_split_windows;
use ecgfm_kernels::CpuBackend;
use ecgfm_test_support::python_stdout;
use ecgfm_trainer::checkpoint;
use ecgfm_trainer::eval::metrics::{macro_auroc, macro_f1};
use ecgfm_trainer::eval::UnitScores;
use ecgfm_trainer::model::{Encoder, HeadSpec, Pooling};
use ecgfm_trainer::{ModelConfig, ParamLayout};

/// A synthetic dataset of 600 labelled records in several shards and an 8-step nano run
/// (`common::short_run`: input 750 samples, some single-lead records), made once for all tests
/// of this file.
fn fixture() -> &'static (PathBuf, PathBuf) {
    static FIXTURE: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let root = fixture_dir("eval");
        let data = root.join("synth");
        let p = |p: &Path| p.to_str().unwrap().to_string();
        run_ok(&[
            "data",
            "synth",
            "--out",
            &p(&data),
            // Enough that each class has several test positives: a bootstrap resample that
            // loses one is not counted, and too many lost withhold the interval.
            "--records",
            "600",
            "--threads",
            "2",
            "--row-group-rows",
            "32",
            // Several shards: evaluation reads across them, `ecgfm embed` one at a time.
            "--shard-mb",
            "1",
        ]);
        let run = short_run(&root, None, &[]);
        (data, run)
    })
}

fn eval_args<'a>(data: &'a str, run: &'a str, out: &'a str, protocol: &'a str) -> Vec<&'a str> {
    vec![
        "eval",
        "--run",
        run,
        "--data",
        data,
        "--labels",
        "synth",
        "--protocol",
        protocol,
        "--fractions",
        "1,0.25",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--bootstrap",
        "200",
        "--min-epoch-windows",
        "64",
        "--threads",
        "2",
        "--device",
        "cpu",
        "--out",
        out,
    ]
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn eval_runs_every_protocol_and_fraction_and_repeats_exactly() {
    let (data, run) = fixture();
    let (data, run) = (data.to_str().unwrap(), run.to_str().unwrap());
    let dir = std::env::temp_dir().join(format!("ecgfm-cli-eval-out-{}", std::process::id()));
    let (a, b) = (dir.join("a.json"), dir.join("b.json"));
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
    assert_eq!(read_json(&Path::new(run).join("eval/a.json")), report);
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

/// The scalars under `events` (read by the `tensorboard` package) hold each result's metrics at
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
        let got = &scalars[&tag][0];
        assert_eq!(got[0], 8, "{tag}: {scalars}");
        assert_eq!(got[1].as_f64().unwrap() as f32, want, "{tag}");
    }
}

#[test]
fn embed_writes_the_encoder_features_of_every_window() {
    let (data, run) = fixture();
    let out = std::env::temp_dir().join(format!("ecgfm-embed-{}.parquet", std::process::id()));
    let (run_s, data_s, out_s) = (
        run.to_str().unwrap(),
        data.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let embed = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["embed", "--run", run_s, "--data", data_s];
        args.extend(extra);
        args.iter().map(|a| a.to_string()).collect()
    };
    let stdout = run_ok(&embed(&[
        "--split",
        "test",
        "--batch-size",
        "8",
        "--threads",
        "2",
        "--out",
        out_s,
    ]));
    assert!(stdout.contains("64-dimensional"), "{stdout}");
    let folder = run_err(&embed(&["--out", "/tmp"]));
    assert!(folder.contains("--out /tmp is a folder"), "{folder}");
    let unknown = run_err(&embed(&["--split", "foo", "--out", out_s]));
    assert!(
        unknown.contains("unknown split foo (train, val, test or all)"),
        "{unknown}"
    );
    // A batch far past the machine's memory is refused naming the flag (the allocation aborted).
    let huge = run_err(&embed(&[
        "--device",
        "cpu",
        "--batch-size",
        "1000000000",
        "--out",
        out_s,
    ]));
    assert!(
        huge.contains("the encoder at --batch-size 1000000000 needs about"),
        "{huge}"
    );
    let manifest = std::fs::read_to_string(data.join("manifest.json")).unwrap();
    let shards: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert!(
        shards["shards"].as_array().unwrap().len() > 2,
        "one shard only"
    );
    assert!(stdout.contains("device: cpu"), "{stdout}");
    // The same forward pass through the library, on the same windows in the same batches.
    let config = ModelConfig {
        samples: 750,
        ..ModelConfig::preset("nano").unwrap()
    };
    let windows = read_split_windows(data.to_str().unwrap(), &[], "test", 750).unwrap();
    let ckpt = checkpoint::latest_complete(run).unwrap().unwrap();
    let encoder_params = checkpoint::load_params(&ckpt, &ParamLayout::encoder(&config)).unwrap();
    let head = HeadSpec {
        pooling: Pooling::Mean,
        classes: 1,
        multi_label: false,
    };
    let mut encoder = Encoder::new(CpuBackend::new(), config, head, 8).unwrap();
    encoder.load_encoder(&encoder_params).unwrap();
    let mut expected = Vec::new();
    let (mut x, mut mask) = (vec![0.0; 8 * 12 * 750], vec![0u8; 8 * 12]);
    for start in (0..windows.len()).step_by(8) {
        let n = (windows.len() - start).min(8);
        for b in 0..n {
            windows.fill(start + b, &mut x[b * 12 * 750..(b + 1) * 12 * 750]);
            mask[b * 12..(b + 1) * 12].copy_from_slice(windows.lead_mask(start + b));
        }
        expected.extend(
            encoder
                .embed(&x[..n * 12 * 750], &mask[..n * 12], n)
                .unwrap(),
        );
    }
    let script = "import sys, json, pyarrow.parquet as pq\n\
        f = pq.read_table(sys.argv[1])\n\
        t = f.to_pydict()\n\
        meta = {k.decode(): v.decode() for k, v in pq.read_metadata(sys.argv[1]).metadata.items()}\n\
        print(json.dumps({'ids': t['window_id'], 'split': t['split'], 'emb': t['embedding'], \
        'meta': meta}))";
    let mut python = Command::new("python3");
    python.args(["-c", script, out.to_str().unwrap()]);
    let Some(stdout) = python_stdout(&mut python, &["pyarrow"], "pyarrow reader") else {
        return;
    };
    let table: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    // The metadata names the weights (as `ecgfm eval` does) and the dataset embedded.
    let meta = &table["meta"];
    let sha = checkpoint::weights_sha256(&ckpt).unwrap();
    assert_eq!(meta["ecgfm_weights_sha256"].as_str(), Some(sha.as_str()));
    assert_eq!(meta["ecgfm_data"].as_str(), data.to_str());
    assert_eq!(meta["ecgfm_split"], "test");
    let ids = table["ids"].as_array().unwrap();
    assert_eq!(ids.len(), windows.len());
    assert_eq!(ids[0].as_str().unwrap(), windows.windows[0].window_id());
    assert!(table["split"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s == "test"));
    let got: Vec<f32> = table["emb"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
        })
        .collect();
    assert_eq!(got, expected);
    std::fs::remove_file(out).unwrap();
}

#[test]
fn bad_input_is_a_clear_error() {
    let (data, run) = fixture();
    let (data, run_s) = (data.to_str().unwrap(), run.to_str().unwrap());
    let out = std::env::temp_dir().join(format!("ecgfm-eval-bad-{}.json", std::process::id()));
    let out = out.to_str().unwrap();
    let mut args = eval_args(data, run_s, out, "probe");
    let labels = args.iter().position(|a| *a == "synth").unwrap();
    args[labels] = "cinc2017";
    let err = run_err(&args);
    assert!(
        err.contains("no `cinc2017:` label") && err.contains("synth"),
        "{err}"
    );
    args[labels] = "icd10";
    assert!(run_err(&args).contains("unknown label vocabulary `icd10`"));
    args[labels] = "synth";
    // Settings that could only fail after the data is read and the probe is fitted fail first.
    for (flag, value, says) in [
        (
            "--fractions",
            "1,1.5",
            "label fraction 1.5 is not in (0, 1]",
        ),
        (
            "--fractions",
            "1,0.1,1",
            "label fraction 1 is given twice (--fractions entry 3)",
        ),
        ("--epochs", "0", "--epochs must be at least 1"),
        ("--patience", "0", "--patience must be at least 1"),
        (
            "--bootstrap",
            "1",
            "--bootstrap must be 0 (no intervals) or at least 200, got 1",
        ),
        ("--lr", "nan", "--lr must be finite and > 0, got NaN"),
        ("--lr", "0", "--lr must be finite and > 0, got 0"),
        ("--layer-decay", "5", "--layer-decay must be in (0, 1]"),
        ("--layer-decay", "nan", "--layer-decay must be in (0, 1]"),
    ] {
        let mut bad = eval_args(data, "/nonexistent-run", out, "probe,finetune");
        match bad.iter().position(|a| *a == flag) {
            Some(at) => bad[at + 1] = value,
            None => bad.extend([flag, value]),
        }
        let err = run_err(&bad);
        assert!(err.contains(says), "{err}");
    }
    // A folder as --out is refused before any work (the result was lost at the end).
    let err = run_err(&eval_args(data, "/nonexistent-run", "/tmp", "probe"));
    assert!(err.contains("--out /tmp is a folder"), "{err}");
    // A batch far past the machine's memory is refused naming the flag (the allocation aborted).
    let mut huge = eval_args(data, run_s, out, "probe");
    let at = huge.iter().position(|a| *a == "--batch-size").unwrap();
    huge[at + 1] = "1000000000";
    let err = run_err(&huge);
    assert!(
        err.contains("the encoder at --batch-size 1000000000 needs about"),
        "{err}"
    );
    args.extend(["--step", "5"]);
    assert!(run_err(&args).contains("no checkpoint at step 5"));
}

/// The result file says what the encoder was pretrained on; an encoder pretrained on every split
/// of the evaluation's dataset is refused unless `--allow-pretraining-overlap` (then warned
/// about); one pretrained on another source is not; pretraining data that no longer opens earns
/// a warning that the check could not be made.
#[test]
fn test_records_seen_in_pretraining_are_refused() {
    let (data, _) = fixture();
    let root = fixture_dir("eval-overlap");
    let out = root.join("out.json");
    let (data_s, out_s) = (data.to_str().unwrap(), out.to_str().unwrap());
    let leaky = short_run(&root.join("all"), Some(data), &["--set", "data.split=all"]);
    let args = |run: &Path| -> Vec<String> {
        let run = run.to_str().unwrap();
        let mut args = eval_args(data_s, run, out_s, "probe");
        let at = args.iter().position(|a| *a == "1,0.25").unwrap();
        args[at] = "1";
        args.iter().map(|s| s.to_string()).collect()
    };
    fn refs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    let err = run_err(&refs(&args(&leaky)));
    assert!(
        err.contains("validation and test records of")
            && err.contains(&format!("this dataset ({data_s}), split all"))
            && err.contains(&format!(
                "`ecgfm data inspect {data_s} --record-ids val,test > held-out.txt`"
            ))
            && err.contains("--allow-pretraining-overlap"),
        "{err}"
    );
    let mut allowed = args(&leaky);
    allowed.push("--allow-pretraining-overlap".into());
    run_ok(&refs(&allowed));
    let report = read_json(&out);
    assert_eq!(report["pretraining"]["split"], "all");
    assert_eq!(report["pretraining"]["data"], data_s);
    assert_eq!(
        report["pretraining"]["sources"],
        serde_json::json!(["synth"])
    );
    let warned = report["warnings"].as_array().unwrap().iter();
    assert_eq!(
        warned
            .filter(|w| w
                .as_str()
                .unwrap()
                .starts_with("--allow-pretraining-overlap: "))
            .count(),
        1,
        "{report}"
    );
    // Pretrained on the generator: nothing to check. (Runs of their own: evaluations add
    // TensorBoard events to the run's `eval/`, which another test reads.)
    run_ok(&refs(&args(&short_run(&root.join("gen"), None, &[]))));
    let report = read_json(&out);
    assert_eq!(report["pretraining"]["data"], "synth");
    assert_eq!(report["pretraining"]["steps"], 8);
    // Another source: no overlap; once its data is gone, the check cannot be made.
    let other = root.join("other");
    let p = other.to_str().unwrap();
    run_ok(&[
        "data",
        "synth",
        "--out",
        p,
        "--records",
        "60",
        "--source-name",
        "other",
    ]);
    let elsewhere = short_run(
        &root.join("other-run"),
        Some(&other),
        &["--set", "data.split=all"],
    );
    run_ok(&refs(&args(&elsewhere)));
    let report = read_json(&out);
    assert_eq!(
        report["pretraining"]["sources"],
        serde_json::json!(["other"])
    );
    let unverified = |report: &serde_json::Value| {
        (report["warnings"].as_array().unwrap().iter())
            .any(|w| w.as_str().unwrap().starts_with("could not verify"))
    };
    assert!(!unverified(&report), "{report}");
    std::fs::remove_dir_all(&other).unwrap();
    run_ok(&refs(&args(&elsewhere)));
    assert!(unverified(&read_json(&out)));
    std::fs::remove_dir_all(root).unwrap();
}

/// One evaluation's intervals resample its test records only: where a result depends on the
/// seed (scratch, and every result against it) the table and the file say so.
#[test]
fn single_seed_intervals_say_they_leave_out_training_noise() {
    let (data, _) = fixture();
    let root = fixture_dir("eval-noise");
    let (out, run) = (root.join("noise.json"), short_run(&root, None, &[]));
    let mut args = eval_args(
        data.to_str().unwrap(),
        run.to_str().unwrap(),
        out.to_str().unwrap(),
        "probe,scratch",
    );
    let at = args.iter().position(|a| *a == "1,0.25").unwrap();
    args[at] = "1";
    let stdout = run_ok(&args);
    let label = "test-set noise only; training seed not resampled";
    let line = stdout
        .lines()
        .find(|l| l.starts_with("probe against scratch with 100% of the labels"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.ends_with(&format!("({label})")), "{line}");
    assert!(stdout.contains("scratch*"), "{stdout}");
    let report = read_json(&out);
    let noise: Vec<&str> = (report["results"].as_array().unwrap().iter())
        .map(|r| r["interval_noise"].as_str().unwrap())
        .collect();
    assert_eq!(noise, ["complete", "test_set_only"]);
    let paired = &report["against_scratch"][0];
    assert_eq!(paired["protocol"], "probe");
    assert_eq!(paired["noise"], "test_set_only");
    assert!(paired["interval"][0].as_f64().unwrap() <= paired["interval"][1].as_f64().unwrap());
}
