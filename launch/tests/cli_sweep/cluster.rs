//! Sweeps on a cluster: the SLURM array script whose tasks each run one grid point, and runs on two
//! data-parallel ranks through `ecgfm launch`.

use super::common::{run_ok as ecgfm, temp_dir};
use super::{records, synth_results, toy};

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
    // The launcher's default port taken (another job on the node): the sweep's ranks meet on a
    // free one (until 2026-12-06 every sweep met on 29500 and failed here).
    let _busy = std::net::TcpListener::bind(("0.0.0.0", 29500));
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
