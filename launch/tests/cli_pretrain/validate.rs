//! `ecgfm validate`: a checkpoint's validation loss measured again is the one its run logged, bit
//! for bit; on a larger set it is the one a run measuring that set logged (the set does not touch
//! training); another dataset, other steps, and what it refuses.

use std::path::{Path, PathBuf};

use crate::common::{
    path_str, pretrain_args, run_err, run_ok, run_ok_logs, run_refused, synth_dataset_with,
    synth_dataset_with_seed, temp_dir,
};

/// Every metrics record of `run`.
fn records(run: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The bits of the f32 validation loss logged after `step` steps.
fn logged_val_loss(run: &Path, step: u64) -> u32 {
    let record = records(run)
        .into_iter()
        .find(|r| r["step"].as_u64() == Some(step - 1) && r.get("val_loss").is_some())
        .unwrap_or_else(|| panic!("no val loss after step {step}"));
    (record["val_loss"].as_f64().unwrap() as f32).to_bits()
}

/// `ecgfm validate --json` on `run` with `extra` flags.
fn validate(run: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "validate",
        "--run",
        path_str(run),
        "--threads",
        "2",
        "--json",
    ];
    args.extend(extra);
    serde_json::from_str(run_ok(&args).trim()).unwrap()
}

fn loss_bits(v: &serde_json::Value) -> u32 {
    (v["val_loss"].as_f64().unwrap() as f32).to_bits()
}

/// An 8-step run on `data` measuring `windows` validation windows every 4 steps.
fn run_measuring(dir: &Path, name: &str, data: &Path, windows: &str) -> PathBuf {
    let out = dir.join(name);
    let mut args = pretrain_args(&out, 8);
    let windows = format!("train.val_windows={windows}");
    args.extend(
        [
            "--data",
            path_str(data),
            "--set",
            &windows,
            "--set",
            "train.val_every=4",
        ]
        .map(String::from),
    );
    run_ok(&args);
    out
}

#[test]
fn validate_gives_the_logged_loss_and_what_a_larger_set_would_have_logged() {
    let dir = temp_dir("validate");
    let data = synth_dataset_with(&dir, "ds", &["--row-group-rows", "8"]);
    let few = run_measuring(&dir, "few", &data, "2");
    let whole = run_measuring(&dir, "whole", &data, "1000000");
    // The validation set does not touch training: the two runs train alike.
    let train_losses = |run: &Path| -> Vec<String> {
        records(run).iter().map(|r| r["loss"].to_string()).collect()
    };
    assert_eq!(train_losses(&few), train_losses(&whole));

    let again = validate(&few, &[]);
    assert_eq!(loss_bits(&again), logged_val_loss(&few, 8));
    assert_eq!(again["step"], 8);
    assert_eq!(again["windows"], 2);
    assert_eq!(again["validation_version"], 2);
    assert_eq!(again["data"], path_str(&data));
    let set = again["set"].as_str().unwrap();
    assert!(set.starts_with("the first 2 of "), "{set}");
    let earlier = validate(&few, &["--step", "4"]);
    assert_eq!(loss_bits(&earlier), logged_val_loss(&few, 4));
    assert_ne!(loss_bits(&earlier), loss_bits(&again));

    // The whole split, measured afterwards, is what the run that measured it logged.
    let all = validate(&few, &["--windows", "all"]);
    assert_eq!(loss_bits(&all), logged_val_loss(&whole, 8));
    assert_ne!(loss_bits(&all), loss_bits(&again));
    let set = all["set"].as_str().unwrap();
    let split = all["windows"].as_u64().unwrap();
    assert!(split > 2, "{all}");
    assert!(
        set.starts_with(&format!("all {split} windows of ")),
        "{set}"
    );
    assert_eq!(
        loss_bits(&validate(&few, &["--windows", "1000000"])),
        loss_bits(&all)
    );

    // Another dataset's split: named, and another loss.
    let other = synth_dataset_with_seed(&dir, "other", 7);
    let elsewhere = validate(&few, &["--windows", "all", "--data", path_str(&other)]);
    assert_eq!(elsewhere["data"], path_str(&other));
    assert_ne!(loss_bits(&elsewhere), loss_bits(&all));

    // A dataset sampled at another rate than the run pretrained at is measured, with a warning.
    let faster = synth_dataset_with(&dir, "faster", &["--rate", "500"]);
    let args = [
        "validate",
        "--run",
        path_str(&few),
        "--data",
        path_str(&faster),
    ];
    let warned = run_ok_logs(&args);
    assert!(
        warned.contains("sampled at 500 Hz; the encoder was pretrained at 250 Hz"),
        "{warned}"
    );

    // Without --json: one sentence.
    let said = run_ok(&["validate", "--run", path_str(&few), "--threads", "2"]);
    let loss = f32::from_bits(logged_val_loss(&few, 8));
    assert!(
        said.starts_with(&format!("validation loss {loss:.4} at step 8 of ")),
        "{said}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn validate_refuses_what_it_cannot_measure() {
    let dir = temp_dir("validate-refused");
    let run = dir.join("run");
    let mut args = pretrain_args(&run, 4);
    args.extend(["--set", "train.val_windows=0"].map(String::from));
    run_ok(&args);
    let validate = |extra: &[&str]| {
        let mut args = vec!["validate", "--run", path_str(&run)];
        args.extend(extra);
        args.iter().map(|a| a.to_string()).collect::<Vec<_>>()
    };
    let none = run_refused(&validate(&[]));
    assert!(
        none.contains("measured no validation loss (train.val_windows = 0)"),
        "{none}"
    );
    let zero = run_refused(&validate(&["--windows", "0"]));
    assert!(
        zero.contains("--windows 0: give a positive number"),
        "{zero}"
    );
    let endless = run_refused(&validate(&["--windows", "all"]));
    assert!(endless.contains("held-out stream has no end"), "{endless}");
    // On a count the generator's held-out stream is measured.
    let measured = run_ok(&validate(&["--windows", "16", "--json"]));
    assert!(measured.contains("\"windows\":16"), "{measured}");
    let not_a_run = run_err(&["validate", "--run", path_str(&dir)]);
    assert!(
        not_a_run.contains("is not an ecgfm run directory"),
        "{not_a_run}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn validate_measures_each_source_of_a_merged_dataset_as_the_run_did() {
    let dir = temp_dir("validate-sources");
    let alpha = synth_dataset_with(&dir, "alpha", &["--source-name", "alpha", "--seed", "1"]);
    let beta = synth_dataset_with(&dir, "beta", &["--source-name", "beta", "--seed", "2"]);
    let merged = dir.join("merged");
    run_ok(&[
        "data",
        "merge",
        "--out",
        path_str(&merged),
        path_str(&alpha),
        path_str(&beta),
    ]);
    let run = run_measuring(&dir, "run", &merged, "3");
    let logged = records(&run).pop().unwrap();
    let again = validate(&run, &[]);
    assert_eq!(loss_bits(&again), logged_val_loss(&run, 8));
    let by_source = again["val_loss_by_source"].as_object().unwrap();
    assert_eq!(by_source.len(), 2, "{again}");
    for (source, loss) in by_source {
        let want = logged["val_loss_by_source"][source].as_f64().unwrap() as f32;
        assert_eq!(
            (loss.as_f64().unwrap() as f32).to_bits(),
            want.to_bits(),
            "{source}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}
