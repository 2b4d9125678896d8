//! The from-scratch baseline is trained once per architecture and seed: the sweep's other runs of
//! that `[model]` and seed (here, another data fraction) take a copy of its result file, which
//! equals what evaluating them from scratch gives.

use super::common::{run_ok, temp_dir};
use super::{records, synth_results, toy};

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
        assert!(
            std::fs::read(scratch_file(&half)).unwrap()
                == std::fs::read(scratch_file(&whole)).unwrap(),
            "{size}: the copy differs from its source"
        );
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
        let results = |path: &std::path::Path| {
            let json: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            let mut results = json["results"].clone();
            results.as_array_mut().unwrap().iter_mut().for_each(|r| {
                r.as_object_mut().unwrap().remove("seconds");
            });
            results
        };
        assert_eq!(results(&direct), results(&scratch_file(&whole)), "{size}");
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
    std::fs::remove_dir_all(dir).unwrap();
}
