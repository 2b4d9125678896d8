//! Resuming a run whose dataset moved: on the same data at a new address the run resumes to the
//! bits of one that never moved; on other data (at a new address, or written over the old one)
//! it stops and names both addresses.

mod common;

use common::{checkpoint_tensor_bytes, ecgfm_env, path_str, pretrain_args, run_ok, temp_dir};
use std::path::Path;

/// `pretrain_args` for 8 steps on the dataset at `data`, stopped after `stop` steps if given,
/// resumed with `--resume`.
fn run_args(run: &Path, data: &Path, stop: Option<u64>, resume: bool) -> Vec<String> {
    let mut args = pretrain_args(run, 8);
    args.extend(["--data".to_string(), path_str(data).to_string()]);
    if let Some(stop) = stop {
        args.extend(["--stop-after".to_string(), stop.to_string()]);
    }
    if resume {
        args.push("--resume".to_string());
    }
    args
}

/// The data digest `ecgfm data inspect` prints for the dataset at `data`.
fn digest(data: &Path) -> String {
    let summary = run_ok(&["data", "inspect", path_str(data)]);
    let line = summary.lines().find(|l| l.contains("data digest")).unwrap();
    line.split_whitespace().nth(2).unwrap().to_string()
}

#[test]
fn a_run_resumes_on_its_dataset_moved_elsewhere_to_the_same_bits() {
    let dir = temp_dir("moved-data");
    let data = common::synth_dataset(&dir);
    let (full, moved) = (dir.join("full"), dir.join("moved"));
    run_ok(&run_args(&full, &data, None, false));
    run_ok(&run_args(&moved, &data, Some(4), false));

    let before = digest(&data);
    let new_home = dir.join("elsewhere");
    std::fs::create_dir_all(&new_home).unwrap();
    let new_data = new_home.join("ds");
    std::fs::rename(&data, &new_data).unwrap();
    assert_eq!(digest(&new_data), before);
    assert_eq!(before.len(), 64, "{before}");
    let output = ecgfm_env(&run_args(&moved, &new_data, None, true), &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("the dataset moved from") && stderr.contains("same data"),
        "{stderr}"
    );

    let metrics = |run: &Path| std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let losses = |run: &Path| -> Vec<(u64, u64)> {
        let lines = metrics(run);
        let records = lines.lines().map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["step"].as_u64().unwrap(),
                v["loss"].as_f64().unwrap().to_bits(),
            )
        });
        records.collect()
    };
    assert_eq!(losses(&full).len(), 8);
    assert_eq!(losses(&full), losses(&moved));
    assert!(checkpoint_tensor_bytes(&full, 8) == checkpoint_tensor_bytes(&moved, 8));
    let config = std::fs::read_to_string(moved.join("config.toml")).unwrap();
    assert!(config.contains(path_str(&new_data)), "{config}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn resume_refuses_other_data_at_a_new_address_or_written_over_the_old() {
    let dir = temp_dir("other-data");
    let data = common::synth_dataset(&dir);
    let other = common::synth_dataset_with_seed(&dir, "other", 7);
    let run = dir.join("run");
    run_ok(&run_args(&run, &data, Some(4), false));

    let refused = |data: &Path| {
        let output = ecgfm_env(&run_args(&run, data, None, true), &[]);
        let err = String::from_utf8_lossy(&output.stderr).into_owned();
        // Refused for its configuration, as a resume changing another setting is.
        assert_eq!(output.status.code(), Some(78), "{err}");
        err
    };
    assert_ne!(digest(&data), digest(&other));
    let err = refused(&other);
    assert!(err.contains("holds other data"), "{err}");
    assert!(
        err.contains(path_str(&other)) && err.contains(path_str(&data)),
        "{err}"
    );

    std::fs::remove_dir_all(&data).unwrap();
    std::fs::rename(&other, &data).unwrap();
    let err = refused(&data);
    assert!(err.contains("holds other data"), "{err}");
    let at_step = |step: u64| run.join(format!("checkpoints/step_{step:08}"));
    assert!(at_step(4).is_dir() && !at_step(8).exists());
    std::fs::remove_dir_all(dir).unwrap();
}
