//! Bad input, a run folder in the way or read-only, test records seen in pretraining, and
//! single-seed intervals.

use std::path::Path;

use crate::common::{
    ecgfm_unprivileged, fixture_dir, run_err, run_ok, run_refused, set_mode, short_run,
};
use crate::{eval_args, fixture, read_json};

#[test]
fn bad_input_is_a_clear_error() {
    let (data, run) = fixture();
    let (data, run_s) = (data.to_str().unwrap(), run.to_str().unwrap());
    let out = std::env::temp_dir().join(format!("ecgfm-eval-bad-{}.json", std::process::id()));
    let out = out.to_str().unwrap();
    let mut args = eval_args(data, run_s, out, "probe");
    let labels = args.iter().position(|a| *a == "synth").unwrap();
    args[labels] = "cinc2017";
    // Told from the manifest before any window is read, and a refused setting (exit 78).
    let err = run_refused(&args);
    assert!(
        err.contains("holds no `cinc2017:` label (its label vocabularies: synth)"),
        "{err}"
    );
    // A vocabulary of the dataset's own is named as such; a name no label can have is refused.
    // A setting refused exits 78 (EX_CONFIG), as pretrain's do.
    args[labels] = "icd10";
    let err = run_refused(&args);
    assert!(err.contains("holds no `icd10:` label"), "{err}");
    args[labels] = "icd 10";
    let err = run_refused(&args);
    assert!(err.contains("`icd 10` is not a label vocabulary"), "{err}");
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
        let err = run_refused(&bad);
        assert!(err.contains(says), "{err}");
    }
    // The folders made for --out go again when the evaluation fails (an empty one was left).
    let fresh = std::env::temp_dir().join(format!("ecgfm-eval-made-{}", std::process::id()));
    let deep = fresh.join("a/b/e.json");
    let err = run_err(&eval_args(
        "/nowhere",
        run_s,
        deep.to_str().unwrap(),
        "probe",
    ));
    assert!(err.contains("/nowhere/manifest.json not found"), "{err}");
    assert!(!fresh.exists());
    // A folder as --out is refused before any work (the result was lost at the end).
    let err = run_err(&eval_args(data, "/nonexistent-run", "/tmp", "probe"));
    assert!(err.contains("--out /tmp is a folder"), "{err}");
    // So is an --out whose folder is a file (it failed after the whole evaluation, with neither
    // --out nor the run's copy written): before the run is even read.
    let file = std::env::temp_dir().join(format!("ecgfm-eval-file-{}", std::process::id()));
    std::fs::write(&file, "x").unwrap();
    let in_file = file.join("sub/e.json");
    let said = format!(
        "--out {} cannot be written: {} is a file, not a folder",
        in_file.display(),
        file.display()
    );
    let in_file = in_file.to_str().unwrap();
    let err = run_err(&eval_args(data, "/nonexistent-run", in_file, "probe"));
    assert!(err.contains(&said), "{err}");
    // With the run too: nothing evaluated, nothing written in the run's eval folder.
    let err = run_err(&eval_args(data, run_s, in_file, "probe"));
    assert!(err.contains(&said) && !err.contains("probe at"), "{err}");
    std::fs::remove_file(&file).unwrap();
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

/// Copies the folder `from` to `to`, recursively.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        match entry.file_type().unwrap().is_dir() {
            true => copy_dir(&entry.path(), &target),
            false => drop(std::fs::copy(entry.path(), target).unwrap()),
        }
    }
}

/// A run whose `eval` (where the results' copy goes) is a file is refused before any work, and
/// --out is not written.
#[test]
fn a_run_whose_eval_folder_is_a_file_is_refused_first() {
    let (data, run) = fixture();
    let dir = fixture_dir("eval-folder-file");
    let copy = dir.join("run");
    copy_dir(run, &copy);
    let _ = std::fs::remove_dir_all(copy.join("eval"));
    std::fs::write(copy.join("eval"), "x").unwrap();
    let out = dir.join("out/e.json");
    let args = eval_args(
        data.to_str().unwrap(),
        copy.to_str().unwrap(),
        out.to_str().unwrap(),
        "probe",
    );
    let err = run_err(&args);
    let eval = copy.join("eval");
    assert!(
        err.contains(&format!(
            "the run's copy of the results cannot be written: {} is a file, not a folder",
            eval.display()
        )) && !err.contains("probe at"),
        "{err}"
    );
    assert!(!out.exists());
}

/// A run folder this user may not write (a colleague's) keeps no copy of the results: the
/// evaluation goes on, says so, and writes --out (it was refused: "the run's copy of the results
/// cannot be written"); the copy's name is kept free for the owner's own evaluations.
#[test]
fn a_run_folder_that_cannot_be_written_keeps_no_copy_and_the_evaluation_goes_on() {
    let (data, run) = fixture();
    let dir = fixture_dir("eval-read-only-run");
    let copy = dir.join("run");
    copy_dir(run, &copy);
    let _ = std::fs::remove_dir_all(copy.join("eval"));
    set_mode(&copy, 0o555);
    let out_dir = dir.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    set_mode(&out_dir, 0o777);
    let out = out_dir.join("e.json");
    let args = eval_args(
        data.to_str().unwrap(),
        copy.to_str().unwrap(),
        out.to_str().unwrap(),
        "probe",
    );
    let output = ecgfm_unprivileged(&dir).args(&args).output().unwrap();
    set_mode(&copy, 0o755);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("the run keeps no copy of these results")
            && stdout.contains("(the run folder cannot be written: no copy kept there)"),
        "{stdout}\n{stderr}"
    );
    assert_eq!(read_json(&out)["results"].as_array().unwrap().len(), 2);
    assert!(!copy.join("eval").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

/// The result file says what the encoder was pretrained on; an encoder pretrained on every split
/// of the evaluation's dataset is refused unless `--allow-pretraining-overlap` (then warned
/// about), so is one pretrained on the same recordings under another source name, or on the
/// generator's stream that wrote the evaluation's synthetic records; one pretrained on another
/// source is not; pretraining data that no longer opens earns a warning that the check could not
/// be made.
#[test]
fn test_records_seen_in_pretraining_are_refused() {
    let (data, _) = fixture();
    let root = fixture_dir("eval-overlap");
    let out = root.join("out.json");
    let (data_s, out_s) = (data.to_str().unwrap(), out.to_str().unwrap());
    // A run pretrained on every split of `data`.
    let on_all = |name: &str, data: &Path| {
        short_run(&root.join(name), Some(data), &["--set", "data.split=all"])
    };
    let leaky = on_all("all", data);
    // The evaluation of `run` on `data_s`, or `on` another dataset.
    let args_on = |run: &Path, on: &str| -> Vec<String> {
        let run = run.to_str().unwrap();
        let mut args = eval_args(on, run, out_s, "probe");
        let at = args.iter().position(|a| *a == "1,0.25").unwrap();
        args[at] = "1";
        args.iter().map(|s| s.to_string()).collect()
    };
    let args = |run: &Path| args_on(run, data_s);
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
    // Pretrained on the generator's stream of seed 0, evaluated on records of seed 1: none
    // seen. (Runs of their own: evaluations add TensorBoard events to the run's `eval/`, which
    // another test reads.)
    let generator = short_run(&root.join("gen"), None, &[]);
    run_ok(&refs(&args(&generator)));
    let report = read_json(&out);
    assert_eq!(report["pretraining"]["data"], "synth");
    assert_eq!(report["pretraining"]["steps"], 8);
    // Records `data synth` wrote with the run's own seed are samples of its stream: those it
    // pretrained on are refused, whatever the source is called.
    let seed_0 = root.join("seed-0");
    let synth = |out: &Path, seed: &str, name: &str| {
        let out = out.to_str().unwrap();
        let records = ["--records", "60", "--seed", seed, "--source-name", name];
        let mut synth_args = vec!["data", "synth", "--out", out];
        synth_args.extend(records);
        run_ok(&synth_args);
    };
    synth(&seed_0, "0", "mine");
    let err = run_err(&refs(&args_on(&generator, seed_0.to_str().unwrap())));
    assert!(
        err.contains("were in the pretraining data, the synthetic generator's stream of seed 0")
            && err.contains("`ecgfm data synth --seed N`, N other than 0"),
        "{err}"
    );
    // The evaluation's own recordings (the generator's of seed 1) under another name.
    let renamed = root.join("renamed");
    synth(&renamed, "1", "renamed");
    let err = run_err(&refs(&args(&on_all("twin", &renamed))));
    assert!(
        err.contains("validation and test records of")
            && err.contains("were in the pretraining data"),
        "{err}"
    );
    // Another source: no overlap; once its data is gone, the check cannot be made.
    let other = root.join("other");
    synth(&other, "0", "other");
    let elsewhere = on_all("other-run", &other);
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
