//! A default-style run and its directory, seeds, recomputation, bf16, configuration errors and
//! an address-space limit.

use crate::common::{
    checkpoint_tensor_bytes, ecgfm_limited, path_str, pretrain_args, run_err, run_ok, run_refused,
    temp_dir, ECGFM,
};
use crate::{assert_same_run_and_remove, losses};
use std::process::Command;

#[test]
fn default_style_run_trains_and_writes_the_run_directory() {
    let out = temp_dir("basic");
    let stdout = run_ok(&pretrain_args(&out, 40));
    assert!(stdout.contains("encoder"), "model table missing:\n{stdout}");
    assert!(
        stdout.contains("model preset: nano, with samples set over it"),
        "{stdout}"
    );
    assert!(out.join("config.toml").is_file());
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(config.contains("samples = 750"));
    let records: Vec<serde_json::Value> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 40);
    for key in [
        "step",
        "loss",
        "lr",
        "grad_norm",
        "samples_per_s",
        "elapsed_s",
    ] {
        assert!(records[0].get(key).is_some(), "metrics lack {key}");
    }
    let mean = |r: &[serde_json::Value]| {
        r.iter().map(|v| v["loss"].as_f64().unwrap()).sum::<f64>() / r.len() as f64
    };
    let (first, last) = (mean(&records[..5]), mean(&records[35..]));
    assert!(last < 0.9 * first, "loss did not fall: {first} -> {last}");
    for step in [4, 8, 40] {
        assert!(out
            .join(format!("checkpoints/step_{step:08}/COMPLETE"))
            .is_file());
    }
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn same_seed_gives_identical_runs() {
    let (a, b) = (temp_dir("seed-a"), temp_dir("seed-b"));
    run_ok(&pretrain_args(&a, 6));
    run_ok(&pretrain_args(&b, 6));
    assert_same_run_and_remove(a, b, 6);
}

#[test]
fn recomputed_activations_give_the_same_run_and_may_change_on_resume() {
    let (full, split) = (temp_dir("recompute-full"), temp_dir("recompute-split"));
    let stdout = run_ok(&pretrain_args(&full, 8));
    assert!(stdout.contains("activations: "), "{stdout}");
    let mut first = pretrain_args(&split, 8);
    first.extend(["--stop-after", "4", "--set", "train.recompute=true"].map(String::from));
    let stdout = run_ok(&first);
    assert!(stdout.contains("blocks recomputed"), "{stdout}");
    let mut resume = pretrain_args(&split, 8);
    resume.extend(["--resume", "--set", "train.recompute=pointwise"].map(String::from));
    let stdout = run_ok(&resume);
    assert!(
        stdout.contains("LayerNorms and GELU recomputed"),
        "{stdout}"
    );
    assert_eq!(losses(&full), losses(&split));
    let bad_dir = temp_dir("recompute-bad");
    let mut bad = pretrain_args(&bad_dir, 8);
    bad.extend(["--set", "train.recompute=all"].map(String::from));
    let stderr = run_err(&bad);
    assert!(stderr.contains("none, pointwise or blocks"), "{stderr}");
    let _ = std::fs::remove_dir_all(bad_dir);
    // The header's metadata records each run's configuration; the tensors must agree bitwise.
    assert!(
        checkpoint_tensor_bytes(&full, 8) == checkpoint_tensor_bytes(&split, 8),
        "weights differ"
    );
    for dir in [full, split] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn precision_bf16_changes_the_rounding_not_the_run_and_bad_values_are_refused() {
    let (fp32, bf16) = (temp_dir("precision-fp32"), temp_dir("precision-bf16"));
    let stdout = run_ok(&pretrain_args(&fp32, 8));
    assert!(stdout.contains("fp32 matrix products"), "{stdout}");
    let mut args = pretrain_args(&bf16, 8);
    args.extend(["--precision", "bf16"].map(String::from));
    let stdout = run_ok(&args);
    assert!(
        stdout.contains("bf16 matrix products, emulated"),
        "{stdout}"
    );
    let config = std::fs::read_to_string(bf16.join("config.toml")).unwrap();
    assert!(config.contains("precision = \"bf16\""), "{config}");
    let (a, b) = (losses(&fp32), losses(&bf16));
    assert_eq!(a.len(), b.len());
    assert_ne!(a, b, "bf16 gave the fp32 losses bit for bit");
    for ((_, x), (_, y)) in a.iter().zip(&b) {
        let (x, y) = (f32::from_bits(*x), f32::from_bits(*y));
        assert!(((x - y) / x).abs() < 0.02, "fp32 {x}, bf16 {y}");
    }
    let mut args = pretrain_args(&bf16, 8);
    args.extend(["--precision", "fp16"].map(String::from));
    let stderr = run_err(&args);
    assert!(
        stderr.contains("train.precision must be fp32, bf16 or auto"),
        "{stderr}"
    );
    for dir in [fp32, bf16] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// More threads than 4 per core are refused however they are set, before anything starts (a
/// `--set train.threads=100000` went around the flag's limit and spawned threads for 11 minutes
/// until 2026-12-06); a run saved with more threads than this machine serves resumes here with
/// `--threads`.
#[test]
fn thread_counts_this_machine_cannot_serve_are_refused() {
    let out = temp_dir("threads");
    let run = out.join("run");
    for set in ["train.threads=100000", "data.decode_threads=100000"] {
        let mut args = pretrain_args(&run, 2);
        args.extend(["--set".into(), set.into()]);
        let err = run_refused(&args);
        assert!(err.contains("100000 threads on"), "{err}");
        assert!(!run.exists(), "{set}: a refused run left {}", run.display());
    }
    run_ok(&pretrain_args(&run, 2));
    // As another machine with 25,000 cores could have saved it.
    let config = run.join("config.toml");
    let saved = std::fs::read_to_string(&config).unwrap();
    let lines: Vec<&str> = (saved.lines())
        .map(|l| {
            if l == "threads = 2" {
                "threads = 100000"
            } else {
                l
            }
        })
        .collect();
    std::fs::write(&config, lines.join("\n")).unwrap();
    let mut resume = pretrain_args(&run, 4);
    resume.push("--resume".into());
    let threads = resume.iter().position(|a| a == "--threads").unwrap();
    resume.drain(threads..threads + 2);
    let err = run_refused(&resume);
    assert!(
        err.contains("train.threads = 100000 (--threads sets it)"),
        "{err}"
    );
    resume.extend(["--threads".into(), "0".into()]);
    run_ok(&resume);
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let out = temp_dir("bad");
    let mut args = pretrain_args(&out, 4);
    args.extend(["--set".into(), "optim.learning_rate=1".into()]);
    let output = Command::new(ECGFM).args(&args).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("in --set optim.learning_rate=1: unknown key `learning_rate` in [optim]"),
        "{stderr}"
    );
    // Refused for its configuration: exit status 78 (EX_CONFIG), which `launch` does not restart.
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    // A flag's bad value names the flag and its values (it named neither until 2026-12-06).
    let mut args = pretrain_args(&out, 4);
    args.extend(["--on-nonfinite".into(), "foo".into()]);
    let err = run_err(&args);
    assert!(
        err.contains("invalid value 'foo' for '--on-nonfinite <skip|stop>'")
            && err.contains("[possible values: skip, stop]"),
        "{err}"
    );
    // A file's typo names the file and the nearest key.
    let file = out.join("bad.toml");
    std::fs::write(&file, "[train]\nstep = 5\n").unwrap();
    let err = run_err(&[
        "pretrain",
        "--config",
        path_str(&file),
        "--out",
        path_str(&out.join("r")),
    ]);
    let said = format!(
        "in the config file {}: unknown key `step` in [train] (did you mean `steps`?)",
        file.display()
    );
    assert!(err.contains(&said), "{err}");
    // Without --out, a refused run leaves no empty timestamped folder under runs/ (each did until
    // 2026-12-06); a run that trains keeps its own.
    let in_out = |args: &[&str]| Command::new(ECGFM).args(args).current_dir(&out).output();
    for refused in [
        &["pretrain", "--model", "medium"][..],
        &["pretrain", "--set", "optim.lr=-1"],
        &["pretrain", "--batch-size", "1000000000"],
        &["pretrain", "--device", "cuda:99"],
    ] {
        let output = in_out(refused).unwrap();
        assert!(!output.status.success(), "{refused:?}");
        let left: Vec<_> = std::fs::read_dir(out.join("runs")).unwrap().collect();
        assert!(left.is_empty(), "{refused:?} left {left:?}");
    }
    let trained = in_out(&[
        "pretrain",
        "--steps",
        "1",
        "--batch-size",
        "2",
        "--threads",
        "1",
    ]);
    assert!(trained.unwrap().status.success());
    assert_eq!(std::fs::read_dir(out.join("runs")).unwrap().count(), 1);
    std::fs::remove_dir_all(out).unwrap();
}

/// Under an address-space limit (`ulimit -v`, set per job on some clusters) too small for the
/// step, the run is refused before it builds the model, naming the flag: the allocation past
/// the limit aborted the process (exit 134) with one line and a backtrace.
#[test]
fn an_address_space_limit_too_small_for_the_step_is_refused_naming_the_flag() {
    let out = temp_dir("address-space");
    let args = [
        "pretrain",
        "--model",
        "tiny",
        "--batch-size",
        "32",
        "--steps",
        "2",
        "--device",
        "cpu",
        "--out",
        path_str(&out),
    ];
    let output = ecgfm_limited(&args, libc::RLIMIT_AS, 1 << 30)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the training step at --batch-size 32 needs about 1.4 GiB")
            && stderr.contains("lower --batch-size"),
        "{stderr}"
    );
    std::fs::remove_dir_all(out).unwrap();
}
