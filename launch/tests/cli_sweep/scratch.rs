//! The from-scratch baseline is trained once per architecture and seed: the sweep's other runs of
//! that `[model]` and seed (here, another data fraction) take a copy of its result file, which
//! equals what evaluating them from scratch gives, and keep it where `ecgfm export` finds it.

use super::common::{run_ok, temp_dir};
use super::{records, synth_results, toy};
use std::path::Path;

#[test]
fn a_from_scratch_baseline_is_trained_once_per_architecture_and_seed() {
    let dir = temp_dir("sweep-scratch-once");
    let eval = "eval=[{task=\"synth\", data=\"synth\", synth_records=400, scratch=true, \
                args=[\"--epochs\", \"1\"]}]";
    let said = toy(&dir, &["--set", "data_fractions=[0.5, 1.0]", "--set", eval]);
    let copied = |size: &str| {
        format!(
            "synth-{size}-steps-f1-s0: synth from scratch copied from synth-{size}-steps-f0p5-s0 \
             (the same architecture and seed train the same baseline)"
        )
    };
    assert_eq!(
        said.matches("from scratch copied from").count(),
        2,
        "{said}"
    );
    assert!(said.contains(&copied("d1w32")), "{said}");
    assert!(said.contains(&copied("d2w64")), "{said}");
    let runs = dir.join("runs");
    let scratch_file = |run: &str| runs.join(run).join("eval-synth-scratch.json");
    for size in ["d1w32", "d2w64"] {
        let [half, whole] = ["f0p5", "f1"].map(|f| format!("synth-{size}-steps-{f}-s0"));
        let copied = read_json(&scratch_file(&whole));
        let checkpoint = |run: &str| {
            let step = read_json(&scratch_file(run))["step"].as_u64().unwrap();
            format!("{}/checkpoints/step_{step:08}", runs.join(run).display())
        };
        assert_eq!(copied["scratch_copied_from"], checkpoint(&half).as_str());
        assert_eq!(copied["checkpoint"], checkpoint(&whole).as_str());
        // The run keeps it in its `eval/` folder as `ecgfm eval` would, so `export` reports it.
        let kept = runs.join(&whole).join("eval/eval-synth-scratch.json");
        assert_eq!(read_json(&kept), copied, "{size}");
        // The copy is what evaluating the run from scratch itself gives (bar the time taken).
        let direct = dir.join(format!("direct-{size}.json"));
        run_ok(&[
            "eval",
            "--run",
            runs.join(&whole).to_str().unwrap(),
            "--data",
            dir.join("data/synth-400").to_str().unwrap(),
            "--labels",
            "synth",
            "--protocol",
            "scratch",
            "--fractions",
            "1",
            "--seed",
            "0",
            "--epochs",
            "1",
            "--threads",
            "2",
            "--out",
            direct.to_str().unwrap(),
        ]);
        let timeless = |mut json: serde_json::Value| {
            json.as_object_mut().unwrap().remove("scratch_copied_from");
            for r in json["results"].as_array_mut().unwrap() {
                r.as_object_mut().unwrap().remove("seconds");
            }
            json
        };
        assert_eq!(timeless(read_json(&direct)), timeless(copied), "{size}");
    }
    let recorded = records(&dir);
    assert_eq!(recorded.len(), 4);
    for r in &recorded {
        assert_eq!(synth_results(r)[1].0, "scratch", "{r}");
    }
    // The two sizes' baselines are their own: different architectures train different ones.
    let scratch_auroc = |i: usize| synth_results(&recorded[i])[1].1;
    let by_size: Vec<f64> = (0..4).map(scratch_auroc).collect();
    assert_eq!(by_size.iter().filter(|&&a| a == by_size[0]).count(), 2);
    let again = toy(&dir, &["--set", "data_fractions=[0.5, 1.0]", "--set", eval]);
    assert_eq!(again.matches("already done").count(), 4, "{again}");
    let card = export_card(&runs.join("synth-d1w32-steps-f1-s0"), &dir.join("package"));
    assert!(card.contains(" | scratch | "), "{card}");
    std::fs::remove_dir_all(dir).unwrap();
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The model card `ecgfm export` writes for `run`'s last checkpoint.
fn export_card(run: &Path, out: &Path) -> String {
    run_ok(&[
        "export",
        "--run",
        run.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    std::fs::read_to_string(out.join("README.md")).unwrap()
}
