//! A sweep's data: ingesting and merging real recordings (with `../shared/data`) and training on
//! the merge, a missing ingest source named with the `--set` that gives it, and a dry run before
//! ingest marking its steps provisional.

use super::common::{path_str, run_err, run_err_in, run_ok as ecgfm, temp_dir};
use super::{records, toy_args};
use std::path::Path;

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
warmup_fraction = 0.2
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
    // Run one folder down, so that the preset's `../shared/data` is inside the test's folder
    // (from the temporary folder itself it would be `/tmp/shared/data`, which may exist).
    let dir = temp_dir("no-source").join("cwd");
    std::fs::create_dir_all(&dir).unwrap();
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
    std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
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
