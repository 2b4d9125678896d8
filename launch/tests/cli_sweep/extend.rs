//! `sweep run --extend`: runs and evaluations added to a finished sweep without training its runs
//! again, and changes to its runs or evaluations refused.

use super::common::{run_err, run_ok, temp_dir};
use super::{records, synth_results, toy, toy_args};

#[test]
fn extend_adds_runs_to_a_finished_sweep_and_refuses_changes_to_its_runs() {
    let no_eval = ["--set", "eval=[]"];
    let dir = temp_dir("extend");
    toy(&dir, &no_eval);
    let before = records(&dir);
    assert_eq!(before.len(), 2);
    let first_file = std::fs::read_to_string(dir.join("sweep.toml")).unwrap();
    // Whatever would train a run otherwise, or drop one, or evaluate differently is refused,
    // naming it, and leaves the folder as it was; a dry run refuses it the same way.
    let refused = |extra: &[&str]| {
        let err = run_err(&toy_args(&dir, &[&["--extend"], extra].concat()));
        let dry = run_err(&toy_args(
            &dir,
            &[&["--extend", "--dry-run"], extra].concat(),
        ));
        assert_eq!(dry, err);
        err
    };
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

    // Without --extend, another file is refused, also by a dry run.
    let grown = [
        "--set",
        "eval=[]",
        "--set",
        "seeds=[0, 1]",
        "--set",
        "sizes.family.depths=[1, 2, 3]",
    ];
    let err = run_err(&toy_args(&dir, &[&["--dry-run"], &grown[..]].concat()));
    assert!(err.contains("holds another sweep"), "{err}");

    // A second seed and a third size: the two finished runs stay, four new ones train; a dry
    // run says so and changes nothing.
    let said = run_ok(&toy_args(
        &dir,
        &[&["--extend", "--dry-run"], &grown[..]].concat(),
    ));
    assert!(said.contains("would extend the sweep in"), "{said}");
    assert!(said.contains("its 2 runs kept, 4 added"), "{said}");
    assert_eq!(
        std::fs::read_to_string(dir.join("sweep.toml")).unwrap(),
        first_file
    );
    let said = toy(&dir, &[&["--extend"], &grown[..]].concat());
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
