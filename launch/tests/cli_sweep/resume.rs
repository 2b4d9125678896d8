//! Sweeps run again: finished runs skipped and an interrupted one resumed to the same bits, `--only`
//! runs and the rest later, runs failed under `--keep-going` retried, damaged data stopping a
//! sweep despite it, a run whose configuration was refused, and arguments for `ecgfm eval` or
//! `ecgfm data ingest` refused before anything runs.

use super::common::{
    ecgfm_env, flip_middle_byte, run_err, run_ok as ecgfm, run_refused, temp_dir, ECGFM,
};
use super::{records, synth_results, toy, toy_args};
use std::path::Path;
use std::process::Command;

#[test]
fn a_sweep_resumes_finished_and_interrupted_runs() {
    let no_eval = ["--set", "eval=[]"];
    let whole = temp_dir("whole");
    toy(&whole, &no_eval);
    // Run again: both runs are already done and nothing is retrained.
    let again = toy(&whole, &no_eval);
    assert_eq!(again.matches("already done").count(), 2, "{again}");
    assert_eq!(records(&whole).len(), 2);

    // Interrupt the first run after 3 of its 6 steps (as a killed sweep leaves it) and train the
    // second whole but leave it unrecorded (as a sweep killed while evaluating it does), then
    // run the sweep: it resumes the first from its checkpoint, records the second without
    // training it again, and ends with the same bits.
    let split = temp_dir("split");
    std::fs::copy(whole.join("sweep.toml"), split.join("sweep.toml")).unwrap();
    for (run, stop) in [
        ("synth-d1w32-steps-f1-s0", "3"),
        ("synth-d2w64-steps-f1-s0", "6"),
    ] {
        let config = whole.join("runs").join(run).join("pretrain.toml");
        let run_dir = split.join("runs").join(run);
        std::fs::create_dir_all(&run_dir).unwrap();
        let (config, run_dir) = (config.to_str().unwrap(), run_dir.to_str().unwrap());
        ecgfm(&[
            "pretrain",
            "--config",
            config,
            "--out",
            run_dir,
            "--stop-after",
            stop,
        ]);
    }
    let status = |dir: &Path| ecgfm(&["sweep", "status", dir.to_str().unwrap()]);
    let said = status(&split);
    let row = |run: &str| {
        said.lines()
            .find(|l| l.starts_with(run))
            .unwrap()
            .to_string()
    };
    assert!(row("synth-d1w32").contains(" training "), "{said}");
    assert!(row("synth-d1w32").contains(" 3/6 "), "{said}");
    assert!(row("synth-d2w64").contains(" trained "), "{said}");
    assert!(row("synth-d2w64").contains(" 6/6 "), "{said}");
    assert!(said.contains("2 runs: 1 trained, 1 training"), "{said}");
    // Half of d1w32's 2.2e9 FLOPs and all of d2w64's 3.5e9.
    assert!(
        said.contains("trained 4.569e9 of 5.670e9 FLOPs (81%)"),
        "{said}"
    );
    // Recording the trained run first: the report names the other and how far it got.
    toy(&split, &[&no_eval[..], &["--only", "d2w64"]].concat());
    let report = std::fs::read_to_string(split.join("report/report.md")).unwrap();
    let unfinished = "Planned but not finished, so not in this report: 1 of 2 runs: \
                      synth-d1w32-steps-f1-s0 (training, step 3 of 6)";
    assert!(report.contains(unfinished), "{report}");
    // The folder moved (another disk): the sweep goes on there, resuming the interrupted run.
    let moved = temp_dir("split-moved");
    std::fs::remove_dir(&moved).unwrap();
    std::fs::rename(&split, &moved).unwrap();
    let split = moved;
    let said = toy(&split, &no_eval);
    assert!(said.contains("already done"), "{said}");
    let resumed = format!("resuming from {}", split.display());
    assert!(said.contains(&resumed), "{said}");
    assert!(status(&split).contains("2 runs: 2 done"));
    let by_run = |dir: &Path| {
        let mut records = records(dir);
        records.sort_by_key(|r| r["run"].to_string());
        records
    };
    let (a, b) = (by_run(&whole), by_run(&split));
    assert_eq!(a.len(), 2);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x["run"], y["run"]);
        assert_eq!(x["final_val_loss"], y["final_val_loss"], "{}", x["run"]);
        assert_eq!(x["final_train_loss"], y["final_train_loss"], "{}", x["run"]);
    }
    // A folder holds one sweep: another sweep file is refused.
    let output = Command::new(ECGFM)
        .args(["sweep", "run", "--preset", "toy", "--set", "seeds=[5]"])
        .args(["--out", whole.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("holds another sweep"), "{err}");
    assert!(err.contains("--extend"), "{err}");
    for dir in [whole, split] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn only_runs_the_chosen_runs_and_a_later_sweep_the_rest() {
    let no_eval = ["--set", "eval=[]"];
    let dir = temp_dir("only");
    let err = run_err(&toy_args(
        &dir,
        &[&no_eval[..], &["--only", "d9,s7"]].concat(),
    ));
    assert!(
        err.contains("--only d9,s7: no run's name has any of these as a whole"),
        "{err}"
    );
    // Whole parts of the name: seed 1, not seed 10; a size with its budget.
    let planned = |only: &str| {
        let args = [
            &["--set", "seeds=[1,10]", "--dry-run", "--only"][..],
            &[only],
        ]
        .concat();
        toy(&dir, &args)
    };
    let said = planned("s1");
    assert!(
        said.contains(
            "not in --only s1, so not run now: synth-d1w32-steps-f1-s10, synth-d2w64-steps-f1-s10"
        ),
        "{said}"
    );
    let said = planned("d2w64-steps");
    assert!(
        said.contains("not run now: synth-d1w32-steps-f1-s1, synth-d1w32-steps-f1-s10\n"),
        "{said}"
    );
    let err = run_err(&toy_args(&dir, &["--dry-run", "--only", "d2w6"]));
    assert!(err.contains("no run's name has any"), "{err}");
    assert!(err.contains("synth-d1w32-steps-f1-s0"), "{err}");

    let said = toy(&dir, &[&no_eval[..], &["--only", "d2w64"]].concat());
    assert!(
        said.contains("not in --only d2w64): synth-d1w32-steps-f1-s0"),
        "{said}"
    );
    let names: Vec<_> = records(&dir).iter().map(|r| r["run"].clone()).collect();
    assert_eq!(names, ["synth-d2w64-steps-f1-s0"]);
    let report = || std::fs::read_to_string(dir.join("report/report.md")).unwrap();
    let unfinished = "Planned but not finished, so not in this report: 1 of 2 runs: \
                      synth-d1w32-steps-f1-s0 (not started)";
    assert!(report().contains(unfinished), "{}", report());
    assert!(!dir.join("runs/synth-d1w32-steps-f1-s0").exists());

    let said = toy(&dir, &no_eval);
    assert_eq!(said.matches("already done").count(), 1, "{said}");
    assert_eq!(records(&dir).len(), 2);
    assert!(
        !report().contains("Planned but not finished"),
        "{}",
        report()
    );
    // Both finished: none is left for later, though one is outside --only.
    let said = toy(&dir, &[&no_eval[..], &["--only", "d2w64"]].concat());
    assert!(!said.contains("left for a later"), "{said}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn keep_going_passes_failed_runs_which_a_later_sweep_retries() {
    // Every run's evaluation reads a labelled dataset that is not there yet.
    let dir = temp_dir("keep-going");
    let labelled = dir.join("labelled");
    let eval = format!("eval=[{{task=\"synth\", data=\"{}\"}}]", labelled.display());
    let status = || ecgfm(&["sweep", "status", dir.to_str().unwrap()]);
    let failed_file = |run: &str| failed_file_in(&dir, run);
    let (small, large) = ("synth-d1w32-steps-f1-s0", "synth-d2w64-steps-f1-s0");
    // Without --keep-going the first failure stops the sweep, as the warning printed before the
    // first run trained said it would.
    let out = ecgfm_env(&toy_args(&dir, &["--set", &eval]), &[]);
    let (said, err) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success());
    let warned = said
        .find(&format!(
            "warning: [[eval]] task synth: the dataset {} cannot be read now",
            labelled.display()
        ))
        .expect(&said);
    assert!(warned < said.find("[1/2]").unwrap(), "{said}");
    assert!(
        err.contains(&format!("evaluating {small} on synth")),
        "{err}"
    );
    assert!(status().contains("2 runs: 1 failed, 1 not started"));
    let kept = std::fs::read_to_string(failed_file(small)).unwrap();
    assert!(kept.contains("ecgfm eval --run"), "{kept}");
    // With the child's own reason.
    assert!(
        kept.contains("failed: it exited with status 1: opening the dataset"),
        "{kept}"
    );
    let trained = std::fs::read(dir.join("runs").join(small).join("metrics.jsonl")).unwrap();
    // With it, the second run trains too, and the sweep ends naming both.
    let err = run_err(&toy_args(&dir, &["--set", &eval, "--keep-going"]));
    assert!(err.contains("(going on: --keep-going)"), "{err}");
    assert!(
        err.contains(&format!("2 of 2 runs failed: {small}, {large}")),
        "{err}"
    );
    let said = status();
    assert!(said.contains("2 runs: 2 failed"), "{said}");
    assert!(
        said.contains(&format!("{large} failed: evaluating {large} on synth")),
        "{said}"
    );
    // Once the data is there, running the sweep again evaluates both without training them.
    synth_labelled(&labelled);
    toy(&dir, &["--set", &eval]);
    assert!(status().contains("2 runs: 2 done"));
    assert!(!failed_file(small).exists() && !failed_file(large).exists());
    let recs = records(&dir);
    assert!(recs.iter().all(|r| synth_results(r).len() == 1), "{recs:?}");
    let now = std::fs::read(dir.join("runs").join(small).join("metrics.jsonl")).unwrap();
    assert_eq!(now, trained, "the failed run trained again");
    std::fs::remove_dir_all(dir).unwrap();

    // A sweep file naming a URL with a secret in it (a query string) is refused before anything
    // runs, since the folder keeps the file; the error shows the URL without the secret.
    let dir = temp_dir("keep-going-secret");
    let eval = "eval=[{task=\"synth\", data=\"file:///nowhere/labelled?sig=SECRET123\"}]";
    let err = run_err(&toy_args(&dir, &["--set", eval]));
    assert!(err.contains("labelled?***"), "{err}");
    assert!(err.contains("through the environment"), "{err}");
    assert!(!err.contains("SECRET123"), "{err}");
    assert!(!dir.join("sweep.toml").exists() && !dir.join("runs").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

/// A synthetic labelled dataset of 400 records at `out`, for the runs' evaluation: of a seed
/// (1) no run pretrains with, whose stream's samples they would be.
fn synth_labelled(out: &Path) {
    ecgfm(&[
        "data",
        "synth",
        "--out",
        out.to_str().unwrap(),
        "--records",
        "400",
        "--seed",
        "1",
    ]);
}

/// The FAILED file of `run` in the sweep folder `dir`.
fn failed_file_in(dir: &Path, run: &str) -> std::path::PathBuf {
    dir.join("runs").join(run).join("FAILED")
}

/// A damaged shard of the evaluation data stops the sweep at its first run even with
/// `--keep-going` (every run's evaluation would read the same bytes), with exit status 65 and the
/// way out; the other run is left for the sweep run again after the repair.
#[test]
fn damaged_data_stops_a_sweep_despite_keep_going() {
    let dir = temp_dir("keep-going-damaged");
    let labelled = dir.join("labelled");
    synth_labelled(&labelled);
    flip_middle_byte(&labelled.join("shards/shard-00000.parquet"));
    let eval = format!("eval=[{{task=\"synth\", data=\"{}\"}}]", labelled.display());
    let args = toy_args(&dir, &["--set", &eval, "--keep-going"]);
    let out = ecgfm_env(&args, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{err}");
    assert!(
        err.contains("stopping despite --keep-going: the data is damaged")
            && err.contains("it exited with status 65")
            && !err.contains("(going on: --keep-going)"),
        "{err}"
    );
    let status = ecgfm(&["sweep", "status", dir.to_str().unwrap()]);
    assert!(
        status.contains("2 runs: 1 failed, 1 not started"),
        "{status}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A run whose training is refused for its configuration (its folder holds another run's
/// checkpoints, so the resume differs) stops the sweep with exit status 78, as `pretrain` and
/// `launch` exit, its FAILED file naming the child's status; `--keep-going` goes on past it.
#[test]
fn a_run_refused_for_its_configuration_exits_78() {
    let dir = temp_dir("refused-run");
    let small = "synth-d1w32-steps-f1-s0";
    let run_dir = dir.join("runs").join(small);
    // The default nano model, not the sweep's d1w32, trained into the run's folder.
    let other = [
        "pretrain",
        "--out",
        run_dir.to_str().unwrap(),
        "--threads",
        "2",
    ];
    ecgfm(
        &[
            &other[..],
            &["--set", "train.steps=2", "--set", "train.batch_size=4"],
        ]
        .concat(),
    );
    run_refused(&toy_args(&dir, &["--set", "eval=[]"]));
    let kept = std::fs::read_to_string(failed_file_in(&dir, small)).unwrap();
    assert!(kept.contains("it exited with status 78"), "{kept}");
    // Under --keep-going the other run trains and the sweep ends as for any failed run.
    let out = ecgfm_env(&toy_args(&dir, &["--set", "eval=[]", "--keep-going"]), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("1 of 2 runs failed: {small}")),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// An evaluation dataset without a label of its task is refused (exit 78) before any run trains:
/// every evaluation would fail after its run's training.
#[test]
fn an_eval_dataset_without_the_task_s_labels_is_refused_before_training() {
    let dir = temp_dir("eval-labels");
    let eval = "eval=[{task=\"cinc2017\", data=\"synth\"}]";
    let err = run_refused(&toy_args(&dir, &["--set", eval]));
    assert!(
        err.contains("[[eval]] task cinc2017 (every run's evaluation would fail once it trained): the dataset")
            && err.contains("holds no `cinc2017:` label (its label vocabularies: synth)"),
        "{err}"
    );
    let started = std::fs::read_dir(dir.join("runs")).map_or(0, |runs| runs.count());
    assert_eq!(started, 0, "a run started");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Arguments a sweep file passes to `ecgfm eval` or `ecgfm data ingest` that the command would
/// not take, or evaluation settings it would refuse, are refused (exit 78) before the sweep
/// writes or trains anything, not after its first run trained.
#[test]
fn child_arguments_are_checked_before_anything_runs() {
    let temp = temp_dir("child-args");
    let dir = temp.join("sweep");
    let refused = |set: &str, expected: &str| {
        let err = run_refused(&toy_args(&dir, &["--set", set]));
        assert!(err.contains(expected), "{set}: {err}");
        assert!(!dir.exists(), "{set}: the sweep wrote its folder");
    };
    let eval = |args: &str| format!("eval=[{{task=\"synth\", data=\"synth\", {args}}}]");
    refused(
        &eval("args=[\"--set\", \"epochs=2\"]"),
        "[[eval]] task synth args = [\"--set\", \"epochs=2\"]: not an `ecgfm eval` command line \
         the sweep can run: unexpected argument '--set'",
    );
    // A flag the sweep passes itself, also one the command would take twice.
    for own in ["--seed", "--fractions"] {
        refused(
            &eval(&format!("args=[\"{own}\", \"0.5\"]")),
            &format!("the sweep gives `ecgfm eval` {own} itself"),
        );
    }
    // Settings, for every protocol the task runs: fine-tuning needs an epoch, probing does not.
    refused(
        &eval("args=[\"--lr\", \"0\"]"),
        "--lr must be finite and > 0, got 0",
    );
    refused(
        &eval("protocols=[\"probe\", \"finetune\"], args=[\"--epochs\", \"0\"]"),
        "--epochs must be at least 1",
    );
    ecgfm(&toy_args(
        &dir,
        &["--set", &eval("args=[\"--epochs\", \"0\"]"), "--dry-run"],
    ));
    refused(
        "ingest.a={source=\"/nowhere\", format=\"ptbxl\", args=[\"--rate-hz\", \"250\"]}",
        "[ingest.a] args = [\"--rate-hz\", \"250\"]: not an `ecgfm data ingest` command line",
    );
    std::fs::remove_dir_all(temp).unwrap();
}
