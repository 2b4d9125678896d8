//! The sweep's report: its charts and the synthetic-label probe in sweep.jsonl, and the result
//! files published beside it, from which `ecgfm compare` reproduces its intervals and a copy of
//! `results/` alone makes the report again.

use super::common::{path_str, run_ok as ecgfm, run_ok_in, temp_dir};
use super::{records, toy};
use ecgfm_test_support::coloured_pixels;
use std::path::Path;

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
    // The sizes its budgets left out, for the report: none in an equal-steps sweep.
    let left_out = std::fs::read_to_string(dir.join("left-out.json")).unwrap();
    assert_eq!(left_out.trim(), "[]");
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
        let version = ecgfm_trainer::validation::VALIDATION_VERSION;
        assert_eq!(r["validation_version"], version, "{r}");
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
    let (from, to) = (path_str(&published), path_str(&again));
    let report_again = || ecgfm(&["sweep", "report", from, "--to", to]);
    let said = report_again();
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
    // `sweep status` on the copy shows its runs done, as their records say (no logs there).
    let status = ecgfm(&["sweep", "status", from]);
    assert!(status.contains("4 runs: 4 done"), "{status}");
    let line = status
        .lines()
        .find(|l| l.starts_with("synth-d2w64-steps-f1-s1"));
    let fields: Vec<&str> = line.unwrap().split_whitespace().collect();
    let rec = records(&dir)
        .into_iter()
        .find(|r| r["run"] == "synth-d2w64-steps-f1-s1");
    let rec = rec.unwrap();
    let steps = rec["steps"].as_u64().unwrap();
    assert_eq!(
        fields[1..4],
        [
            "done",
            &format!("{steps}/{steps}"),
            &format!("{:.4}", rec["final_train_loss"].as_f64().unwrap())
        ]
    );
    assert_eq!(fields[5], "1/1", "{status}");
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
    let said = report_again();
    assert!(
        said.contains("warning: synth (probe): the runs were scored on 2 different test sets"),
        "{said}"
    );
    let remade = std::fs::read_to_string(again.join("report.md")).unwrap();
    assert!(
        remade.contains("Warning: synth (probe): the runs were scored on 2 different test sets"),
        "{remade}"
    );
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

/// `sweep status` names the sizes a budget leaves out (too few steps), from the sweep file alone:
/// before any run starts, as the report does after.
#[test]
fn sweep_status_names_the_sizes_a_budget_left_out() {
    let dir = temp_dir("status-left-out");
    let spec = include_str!("../../sweep/presets/toy.toml")
        .replace(
            "kind = \"equal-steps\"\nsteps = 6",
            "kind = \"iso-flops\"\nflops = [6e9, 3e12]\nmin_steps = 20",
        )
        .replace(
            "[[eval]]\ntask = \"synth\"\ndata = \"synth\"\nsynth_records = 400",
            "",
        );
    assert!(spec.contains("iso-flops") && !spec.contains("[[eval]]"));
    std::fs::write(dir.join("sweep.toml"), spec).unwrap();
    let status = ecgfm(&["sweep", "status", path_str(&dir)]);
    assert!(status.contains("2 runs: 2 not started"), "{status}");
    assert!(
        status.contains(
            "left out at C = 6.000e9 on synth: d1w32 (16 steps, fewer than min_steps 20), \
             d2w64 (10 steps, fewer than min_steps 20)"
        ),
        "{status}"
    );
}
