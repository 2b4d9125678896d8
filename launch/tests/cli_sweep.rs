//! `ecgfm sweep` end to end through the real binary at toy size (2 sizes x 1 seed x 6 steps on
//! synthetic data): the report and its charts, the synthetic-label probe in sweep.jsonl,
//! the result files published beside the report (its intervals reproduced from them alone),
//! resuming (finished runs skipped, an interrupted run resumed to the same bits), `--only`, the SLURM
//! array's single grid point, runs on two data-parallel ranks, and (with `../shared/data`) a
//! sweep that ingests CinC 2017 and PTB-XL records and trains on their merge.

mod common;

use common::{path_str, run_err, run_err_in, run_ok as ecgfm, run_ok_in, temp_dir, ECGFM};
use ecgfm_test_support::coloured_pixels;
use std::path::Path;
use std::process::Command;

/// The arguments of `ecgfm sweep run --preset toy` into `dir` with extra arguments.
fn toy_args<'a>(dir: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "sweep",
        "run",
        "--preset",
        "toy",
        "--threads",
        "2",
        "--out",
        dir.to_str().unwrap(),
    ];
    args.extend(extra);
    args
}

/// `ecgfm sweep run --preset toy` into `dir` with extra arguments; its output.
fn toy(dir: &Path, extra: &[&str]) -> String {
    ecgfm(&toy_args(dir, extra))
}

/// The records of sweep.jsonl, each run as its last line says, in first-seen order.
fn records(dir: &Path) -> Vec<serde_json::Value> {
    let mut out: Vec<serde_json::Value> = Vec::new();
    for line in std::fs::read_to_string(dir.join("sweep.jsonl"))
        .unwrap()
        .lines()
    {
        let rec: serde_json::Value = serde_json::from_str(line).unwrap();
        match out.iter_mut().find(|r| r["run"] == rec["run"]) {
            Some(earlier) => *earlier = rec,
            None => out.push(rec),
        }
    }
    out
}

/// The (protocol, AUROC) results of a record on the synth task.
fn synth_results(rec: &serde_json::Value) -> Vec<(String, f64)> {
    let results = rec["eval"].as_array().unwrap().iter();
    let synth = results.filter(|e| e["task"] == "synth");
    synth
        .map(|e| {
            let auroc = e["macro_auroc"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&auroc), "{e}");
            (e["protocol"].as_str().unwrap().to_string(), auroc)
        })
        .collect()
}

/// Width and height of a PNG, from its IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (word(16), word(20))
}

#[test]
fn toy_sweep_writes_its_report_with_charts_and_probe_results() {
    let dir = temp_dir("toy");
    let said = toy(&dir, &[]);
    assert!(!said.contains(".partial"), "{said}");
    let recs = records(&dir);
    assert_eq!(recs.len(), 2);
    for r in &recs {
        // Each result file sits in the run folder and, for `ecgfm export`, in its `eval/`.
        let run_dir = dir.join(r["run_dir"].as_str().unwrap());
        for folder in [run_dir.clone(), run_dir.join("eval")] {
            let names: Vec<String> = std::fs::read_dir(&folder)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("eval-"))
                .collect();
            assert!(
                names.contains(&"eval-synth-probe.json".to_string()),
                "{names:?}"
            );
            assert!(names.iter().all(|n| n.ends_with(".json")), "{names:?}");
        }
        let val = r["final_val_loss"].as_f64().unwrap();
        assert!(val.is_finite() && val > 0.0, "{r}");
        let probe = r["eval"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["task"] == "synth" && e["protocol"] == "probe")
            .unwrap_or_else(|| panic!("no synth probe result in {r}"));
        let auroc = probe["macro_auroc"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&auroc), "{probe}");
        // Every synthetic sample has its 12 leads: the FLOPs done are the FLOPs planned.
        let (planned, done) = (r["flops"].as_f64().unwrap(), r["flops_done"].as_f64());
        assert!((done.unwrap() - planned).abs() <= 1e-9 * planned, "{r}");
    }
    assert!(recs[0]["n"].as_u64() < recs[1]["n"].as_u64());
    let report = std::fs::read_to_string(dir.join("report/report.md")).unwrap();
    for needle in [
        "## Verdict",
        "d1w32",
        "d2w64",
        "## Fitted laws",
        "synth probe AUROC",
        // The synthetic result files give each unit's patient: patients are drawn.
        "paired 95% interval over the test patients",
    ] {
        assert!(
            report.contains(needle),
            "report.md lacks {needle:?}:\n{report}"
        );
    }
    for chart in [
        "val_loss_vs_n.png",
        "loss_vs_compute.png",
        "auroc_vs_n_synth.png",
        "loss_curves.png",
    ] {
        let path = dir.join("report").join(chart);
        assert_eq!(png_size(&path), (900, 560));
        // Measured 2026-12-05: 2,332 to 5,331 pixels in a series' colour in these charts; one
        // whose series are all empty has at most 250 (the legend's swatches).
        let drawn = coloured_pixels(&path);
        assert!(drawn > 1000, "{chart}: {drawn} coloured pixels");
        assert!(report.contains(chart), "report.md does not show {chart}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// The text of `text` between `start` and the next `end` after it.
fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("no {start:?} in:\n{text}"))
        + start.len();
    let len = text[from..].find(end).unwrap();
    &text[from..from + len]
}

#[test]
fn the_report_keeps_the_result_files_that_reproduce_its_intervals() {
    let dir = temp_dir("results");
    toy(&dir, &["--set", "seeds=[0,1]"]);
    let docs = dir.join("docs");
    let said = ecgfm(&["sweep", "report", path_str(&dir), "--to", path_str(&docs)]);
    assert!(said.contains("4 result files in"), "{said}");
    // Each published file holds what the run folder's does, with paths into the sweep folder
    // relative to it.
    for r in records(&dir) {
        let run = r["run"].as_str().unwrap();
        let file = |root: &Path| {
            let path = root.join("eval-synth-probe.json");
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            serde_json::from_str::<serde_json::Value>(&text).unwrap()
        };
        let mut kept = file(&dir.join(r["run_dir"].as_str().unwrap()));
        let published = file(&docs.join("results").join(run));
        let checkpoint = published["checkpoint"].as_str().unwrap();
        assert!(
            checkpoint.starts_with(&format!("runs/{run}/checkpoints/step_")),
            "{checkpoint}"
        );
        assert_eq!(published["data"], "data/synth-400");
        kept["checkpoint"] = published["checkpoint"].clone();
        kept["data"] = published["data"].clone();
        assert_eq!(published, kept, "{run}");
    }
    let published = std::fs::read_to_string(docs.join("results/sweep.jsonl")).unwrap();
    assert_eq!(published.lines().count(), 4, "{published}");
    let report = std::fs::read_to_string(docs.join("report.md")).unwrap();
    let verdict = between(&report, "Downstream (synth, linear probe)", "\n");
    let over_test_set = between(verdict, "over the test patients ", "]");
    let over_seeds = between(verdict, "over seeds and test patients ", "]");
    // The report's command, run in the report's folder with the run folders gone, prints the
    // verdict's interval over seeds and patients; over the patients alone with `--resample`.
    let command = between(&report, "```sh\n", "```").replace("\\\n", " ");
    let args: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(args[..2], ["ecgfm", "compare"], "{command}");
    assert_eq!(args.iter().filter(|a| **a == "--a").count(), 2, "{command}");
    // A result file that no longer parses is left out of results/ and named; the rest is there.
    let torn = dir.join("runs/synth-d2w64-steps-f1-s1/eval-synth-probe.json");
    std::fs::write(&torn, "{").unwrap();
    let docs_2 = dir.join("docs-2");
    let said = ecgfm(&["sweep", "report", path_str(&dir), "--to", path_str(&docs_2)]);
    assert!(said.contains("3 result files in"), "{said}");
    let named = format!("{} (invalid JSON", torn.display());
    assert!(
        said.contains("warning: 1 result file(s)") && said.contains(&named),
        "{said}"
    );
    let report_2 = std::fs::read_to_string(docs_2.join("report.md")).unwrap();
    assert!(report_2.contains(&named), "{report_2}");
    std::fs::remove_dir_all(dir.join("runs")).unwrap();
    let compare = |extra: &[&str]| run_ok_in(&docs, &[&args[1..], extra].concat());
    let printed = compare(&[]);
    assert!(
        printed.contains(&format!("{over_seeds}]")),
        "{over_seeds} in\n{printed}"
    );
    let printed = compare(&["--resample", "records"]);
    assert!(
        printed.contains(&format!("{over_test_set}]")),
        "{over_test_set} in\n{printed}"
    );
    // A copy of results/ alone makes the report again, with the same verdict.
    let published = dir.join("published");
    copy_folder(&docs.join("results"), &published);
    let again = dir.join("again");
    let said = ecgfm(&[
        "sweep",
        "report",
        path_str(&published),
        "--to",
        path_str(&again),
    ]);
    assert!(said.contains("4 result files in"), "{said}");
    let verdict = |report: &str| between(report, "## Verdict", "## Runs").to_string();
    let remade = std::fs::read_to_string(again.join("report.md")).unwrap();
    assert_eq!(verdict(&remade), verdict(&report));
    // Without the run folders' metrics.jsonl there are no curves: no empty chart, a note.
    assert!(!again.join("loss_curves.png").exists());
    assert!(!again.join("loss_vs_compute.png").exists());
    assert!(
        remade.contains("Loss curves and loss vs compute are not drawn"),
        "{remade}"
    );
    // One run re-evaluated on other test records: not compared, and warned about.
    let file = published.join("synth-d2w64-steps-f1-s1/eval-synth-probe.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    for result in json["results"].as_array_mut().unwrap() {
        for record in result["test_units"]["records"].as_array_mut().unwrap() {
            *record = (record.as_u64().unwrap() + 1000).into();
        }
    }
    std::fs::write(&file, json.to_string()).unwrap();
    let said = ecgfm(&[
        "sweep",
        "report",
        path_str(&published),
        "--to",
        path_str(&again),
    ]);
    assert!(
        said.contains("warning: synth (probe): the runs were scored on 2 different test sets"),
        "{said}"
    );
    let remade = std::fs::read_to_string(again.join("report.md")).unwrap();
    let verdict = verdict(&remade);
    assert!(
        verdict.contains("scored on different test sets: not comparable"),
        "{verdict}"
    );
    assert!(!remade.contains("```sh\necgfm compare"), "{remade}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Copies every file under `from` to the same place under `to`.
fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_folder(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

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
fn extend_adds_runs_to_a_finished_sweep_and_refuses_changes_to_its_runs() {
    let no_eval = ["--set", "eval=[]"];
    let dir = temp_dir("extend");
    toy(&dir, &no_eval);
    let before = records(&dir);
    assert_eq!(before.len(), 2);
    let first_file = std::fs::read_to_string(dir.join("sweep.toml")).unwrap();
    // Whatever would train a run otherwise, or drop one, or evaluate differently is refused,
    // naming it, and leaves the folder as it was.
    let refused = |extra: &[&str]| run_err(&toy_args(&dir, &[&["--extend"], extra].concat()));
    let err = refused(&["--set", "eval=[]", "--set", "lr.base=2e-3"]);
    assert!(
        err.contains("would train its run synth-d1w32-steps-f1-s0 otherwise"),
        "{err}"
    );
    assert!(err.contains("optim.lr = 0.002 -> 0.004"), "{err}");
    let err = refused(&["--set", "eval=[]", "--set", "sizes.family.depths=[2, 3]"]);
    assert!(
        err.contains("does not plan its run synth-d1w32-steps-f1-s0"),
        "{err}"
    );
    let err = refused(&["--set", "eval=[]", "--set", "seeds=[1, 0]"]);
    assert!(err.contains("first seed"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("sweep.toml")).unwrap(),
        first_file
    );

    // A second seed and a third size: the two finished runs stay, four new ones train.
    let said = toy(
        &dir,
        &[
            "--extend",
            "--set",
            "eval=[]",
            "--set",
            "seeds=[0, 1]",
            "--set",
            "sizes.family.depths=[1, 2, 3]",
        ],
    );
    assert!(said.contains("its 2 runs kept, 4 added"), "{said}");
    assert_eq!(said.matches("already done").count(), 2, "{said}");
    let after = records(&dir);
    assert_eq!(after.len(), 6);
    assert_eq!(after[..2], before[..]);
    assert_eq!(
        std::fs::read_to_string(dir.join("sweep.1.toml")).unwrap(),
        first_file
    );
    let report = std::fs::read_to_string(dir.join("report/report.md")).unwrap();
    assert!(
        report.contains("from 6 finished runs (3 sizes, 2 seeds)"),
        "{report}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn extend_evaluates_finished_runs_on_added_evaluations_without_training_them() {
    let dir = temp_dir("extend-eval");
    toy(&dir, &["--set", "eval=[]"]);
    let metrics = |run: &str| std::fs::read(dir.join("runs").join(run).join("metrics.jsonl"));
    let trained = metrics("synth-d1w32-steps-f1-s0").unwrap();
    // The preset's synth probe added: both runs are evaluated, neither trains again.
    let said = toy(&dir, &["--extend"]);
    assert!(said.contains("its 2 runs kept, 0 added"), "{said}");
    assert_eq!(
        said.matches("already trained; evaluating it on synth probe\n")
            .count(),
        2,
        "{said}"
    );
    assert_eq!(metrics("synth-d1w32-steps-f1-s0").unwrap(), trained);
    let probed = records(&dir);
    assert_eq!(probed.len(), 2);
    for r in &probed {
        let results = synth_results(r);
        assert_eq!(results.len(), 1, "{r}");
        assert_eq!(results[0].0, "probe");
    }
    let report = std::fs::read_to_string(dir.join("report/report.md")).unwrap();
    assert!(report.contains("synth probe AUROC"), "{report}");

    // Then the from-scratch baseline: only it runs; the probe results stay as they were.
    let with_scratch = "eval=[{task=\"synth\", data=\"synth\", synth_records=400, scratch=true}]";
    let said = toy(&dir, &["--extend", "--set", with_scratch]);
    assert_eq!(
        said.matches("already trained; evaluating it on synth scratch\n")
            .count(),
        2,
        "{said}"
    );
    for (before, after) in probed.iter().zip(records(&dir)) {
        let (was, now) = (synth_results(before), synth_results(&after));
        assert_eq!(now.len(), 2, "{after}");
        assert_eq!(now[0], was[0]);
        assert_eq!(now[1].0, "scratch");
    }
    let said = toy(&dir, &["--set", with_scratch]);
    assert_eq!(said.matches("already done").count(), 2, "{said}");

    // An evaluation dropped or run otherwise is refused, naming it, and the folder stays.
    let file = std::fs::read_to_string(dir.join("sweep.toml")).unwrap();
    let refused = |eval: &str| run_err(&toy_args(&dir, &["--extend", "--set", eval]));
    let err = refused("eval=[]");
    assert!(err.contains("drops the [[eval]] task synth"), "{err}");
    let err = refused("eval=[{task=\"synth\", data=\"synth\", synth_records=300, scratch=true}]");
    assert!(
        err.contains("changes the synth_records of the [[eval]] task synth"),
        "{err}"
    );
    let err = refused("eval=[{task=\"synth\", data=\"synth\", synth_records=400}]");
    assert!(err.contains("drops the from-scratch baseline"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("sweep.toml")).unwrap(),
        file
    );
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
    // Without --keep-going the first failure stops the sweep.
    let err = run_err(&toy_args(&dir, &["--set", &eval]));
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
    ecgfm(&[
        "data",
        "synth",
        "--out",
        labelled.to_str().unwrap(),
        "--records",
        "400",
    ]);
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

/// The FAILED file of `run` in the sweep folder `dir`.
fn failed_file_in(dir: &Path, run: &str) -> std::path::PathBuf {
    dir.join("runs").join(run).join("FAILED")
}

#[test]
fn slurm_writes_an_array_script_whose_tasks_run_one_grid_point() {
    let dir = temp_dir("slurm array"); // a space: the script quotes the folder
    let out = toy(&dir, &["--set", "eval=[]", "--slurm"]);
    assert!(out.contains("sbatch"), "{out}");
    let script = std::fs::read_to_string(dir.join("sweep.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --array=0-1"), "{script}");
    assert!(script.contains("sweep run-one --out"), "{script}");
    assert!(
        !dir.join("sweep.jsonl").exists(),
        "--slurm must not run anything"
    );
    assert!(script.contains("#SBATCH --output=\""), "{script}");
    // A requeued (preempted) task appends to its log instead of truncating the attempt before.
    assert!(script.contains("#SBATCH --open-mode=append\n"), "{script}");
    // Array task 1 runs the second grid point only.
    let task = std::process::Command::new("bash")
        .arg(dir.join("sweep.sbatch"))
        .env("SLURM_ARRAY_TASK_ID", "1")
        .output()
        .unwrap();
    assert!(
        task.status.success(),
        "{}",
        String::from_utf8_lossy(&task.stderr)
    );
    let task_1 = [
        "sweep",
        "run-one",
        "--out",
        dir.to_str().unwrap(),
        "--index",
        "1",
    ];
    let recs = records(&dir);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["run"], "synth-d2w64-steps-f1-s0");
    ecgfm(&["sweep", "report", dir.to_str().unwrap()]);
    let report = std::fs::read_to_string(dir.join("report/report.md")).unwrap();
    assert!(report.contains("Only one size finished"), "{report}");
    // Elsewhere, spelt as `sweep run` spells it.
    let docs = dir.join("docs");
    ecgfm(&[
        "sweep",
        "report",
        dir.to_str().unwrap(),
        "--report-to",
        docs.to_str().unwrap(),
    ]);
    let elsewhere = std::fs::read_to_string(docs.join("report.md")).unwrap();
    assert!(elsewhere.contains("Only one size finished"), "{elsewhere}");
    // Extended with the preset's probe, the finished task evaluates its run when it runs again.
    toy(&dir, &["--extend", "--slurm"]);
    let said = ecgfm(&["sweep", "status", dir.to_str().unwrap()]);
    assert!(
        said.contains("2 runs: 1 evals added, 1 not started"),
        "{said}"
    );
    let said = ecgfm(&task_1);
    assert!(
        said.contains("already trained; evaluating it on synth probe"),
        "{said}"
    );
    let recs = records(&dir);
    assert_eq!(recs.len(), 1);
    assert_eq!(synth_results(&recs[0]).len(), 1, "{}", recs[0]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn runs_train_on_several_ranks_through_ecgfm_launch() {
    let dir = temp_dir("ranks");
    let out = toy(&dir, &["--set", "eval=[]", "--set", "ranks=2"]);
    assert!(out.contains("2 ranks x 4"), "{out}");
    let recs = records(&dir);
    assert_eq!(recs.len(), 2);
    for r in &recs {
        // The global batch is 2 ranks x 4: D and C count both ranks.
        assert_eq!(r["batch"], 8, "{r}");
        assert_eq!(r["samples"], 48, "{r}");
        assert!(r["final_val_loss"].as_f64().unwrap() > 0.0, "{r}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_sweep_ingests_and_merges_real_recordings_and_trains_on_the_merge() {
    let (Some(cinc), Some(ptbxl)) = (
        ecgfm_test_support::shared_data("cinc2017"),
        ecgfm_test_support::shared_data("ptbxl-500"),
    ) else {
        return;
    };
    let dir = temp_dir("merge");
    let file = dir.join("sweep.toml");
    let text = format!(
        r#"name = "merged"
datasets = ["@both"]
seeds = [0]
[sizes]
presets = ["nano"]
[lr]
rule = "constant"
base = 1e-3
[budget]
kind = "equal-steps"
steps = 3
[base]
train = {{ batch_size = 4, val_batches = 1, val_every = 3 }}
data = {{ repeat = {{ ptbxl = 3 }} }}
[ingest.cinc]
source = "{}"
format = "cinc2017"
args = ["--limit", "8"]
[ingest.ptbxl]
source = "{}"
format = "ptbxl"
args = ["--limit", "8"]
[merge.both]
datasets = ["@cinc", "@ptbxl"]
"#,
        cinc.display(),
        ptbxl.display()
    );
    std::fs::write(&file, text).unwrap();
    let out = dir.join("out");
    let said = ecgfm(&[
        "sweep",
        "run",
        file.to_str().unwrap(),
        "--threads",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(said.contains("merging @cinc, @ptbxl into"), "{said}");
    let inspect = ecgfm(&["data", "inspect", out.join("data/both").to_str().unwrap()]);
    assert!(inspect.contains("cinc2017 8 records seen"), "{inspect}");
    assert!(inspect.contains("ptbxl    8 records seen"), "{inspect}");
    let recs = records(&out);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["dataset"], "both", "{}", recs[0]);
    assert!(recs[0]["final_val_loss"].as_f64().unwrap().is_finite());
    // The run read PTB-XL's windows three times per epoch, and says so.
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("data/both/manifest.json")).unwrap(),
    )
    .unwrap();
    let train = |source: usize| -> u64 {
        let by_leads = &manifest["sources"][source]["leads_present"]["train"];
        by_leads
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum()
    };
    let (cinc_rows, ptbxl_rows) = (train(0), train(1));
    let shares = format!("cinc2017 {cinc_rows} x1, ptbxl {ptbxl_rows} x3)");
    assert!(said.contains(&shares), "{shares} not in:\n{said}");
    // Each source's validation loss was measured beside the whole set's.
    let run = out.join(recs[0]["run_dir"].as_str().unwrap());
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(metrics.lines().last().unwrap()).unwrap();
    let by_source = last["val_loss_by_source"].as_object().unwrap();
    assert_eq!(by_source.keys().collect::<Vec<_>>(), ["cinc2017", "ptbxl"]);
    assert!(by_source.values().all(|v| v.as_f64().unwrap().is_finite()));
    let report = std::fs::read_to_string(out.join("report/report.md")).unwrap();
    assert!(
        report.contains("Pretraining data: ptbxl read 3 times per epoch (`data.repeat`)."),
        "{report}"
    );
    // The runs table gives the final validation loss of each source.
    let row = report
        .lines()
        .find(|l| l.starts_with("| both-nano"))
        .unwrap();
    let cinc = by_source["cinc2017"].as_f64().unwrap();
    assert!(
        report.contains("| val loss by source |")
            && row.contains(&format!("cinc2017 {cinc:.4}, ptbxl ")),
        "{report}"
    );
    // `ecgfm plan` counts the same epoch: its mean leads per window move toward 12.
    let leads = |extra: &[&str]| -> f64 {
        let data = out.join("data/both");
        let args = [
            &["plan", "--model", "nano", "--data", data.to_str().unwrap()],
            extra,
        ]
        .concat();
        let text = ecgfm(&args);
        let line = text
            .lines()
            .find(|l| l.contains("leads on average"))
            .unwrap()
            .to_string();
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words.iter().position(|&w| w == "leads").unwrap();
        words[at - 1].parse().unwrap()
    };
    let mean = |times: f64| {
        let (cinc, ptbxl) = (cinc_rows as f64, times * ptbxl_rows as f64);
        (cinc + 12.0 * ptbxl) / (cinc + ptbxl)
    };
    assert!(
        (leads(&[]) - mean(1.0)).abs() < 0.051,
        "{} vs {}",
        leads(&[]),
        mean(1.0)
    );
    for weight in [3.0, 0.5] {
        let weighted = leads(&["--repeat", &format!("ptbxl={weight}")]);
        assert!(
            (weighted - mean(weight)).abs() < 0.051,
            "{weighted} vs {}",
            mean(weight)
        );
    }
    let data = out.join("data/both");
    let err = run_err(&[
        "plan",
        "--data",
        data.to_str().unwrap(),
        "--repeat",
        "foo=4",
    ]);
    assert!(
        err.contains("name source \"foo\"") && err.contains("its sources: cinc2017, ptbxl"),
        "{err}"
    );
    for bad in ["ptbxl=-1", "ptbxl=x", "ptbxl"] {
        let err = run_err(&["plan", "--data", "d", "--repeat", bad]);
        assert!(
            err.contains("SOURCE=W") || err.contains("weight from 0"),
            "{err}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// The demo preset on a machine without `../shared/data`: refused before the sweep folder is
/// claimed, naming the `--set` that points it at PTB-XL; an ingest that fails prints the
/// child's error once.
#[test]
fn a_sweep_without_its_ingest_source_names_the_set_that_gives_it() {
    let dir = temp_dir("no-source");
    let err = run_err_in(&dir, &["sweep", "run", "--preset", "demo", "--out", "sw"]);
    assert!(
        err.contains("[ingest.ptbxl]: source folder ../shared/data/ptbxl-500 not found")
            && err.contains(
                "give the folder holding the ptbxl records with --set ingest.ptbxl.source=DIR"
            ),
        "{err}"
    );
    assert!(!dir.join("sw/sweep.toml").exists());
    // A source that is there but not PTB-XL: the child's error, once.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let set = format!("ingest.ptbxl.source={}", empty.display());
    let err = run_err_in(
        &dir,
        &[
            "sweep", "run", "--preset", "demo", "--out", "sw", "--set", &set,
        ],
    );
    assert_eq!(err.matches("holds no WFDB record").count(), 1, "{err}");
    assert!(
        err.contains("(its error is printed above)")
            && err.contains("--set ingest.ptbxl.source=DIR or ingest.ptbxl.format=FORMAT"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A dry run of a sweep whose dataset is not ingested yet marks its iso-FLOPs steps provisional.
#[test]
fn a_dry_run_before_ingest_marks_its_steps_provisional() {
    let dir = temp_dir("dry-provisional");
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/sweeps/cinc/sweep.toml");
    let out = dir.join("sw");
    let plan = ecgfm(&[
        "sweep",
        "run",
        path_str(&file),
        "--dry-run",
        "--out",
        path_str(&out),
    ]);
    let rows: Vec<&str> = plan.lines().filter(|l| l.starts_with("cinc-")).collect();
    assert!(!rows.is_empty(), "{plan}");
    for row in rows {
        let steps = row.split_whitespace().nth(2).unwrap();
        assert!(steps.ends_with('*'), "{plan}");
    }
    assert!(
        plan.contains("* provisional: planned with 12-lead samples until the dataset is ingested"),
        "{plan}"
    );
    // The synthetic data's lead mix is known: nothing provisional.
    let toy = ecgfm(&toy_args(&out, &["--dry-run"]));
    assert!(!toy.contains("provisional"), "{toy}");
    std::fs::remove_dir_all(dir).unwrap();
}
