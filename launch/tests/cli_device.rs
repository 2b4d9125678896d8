//! `--device` through the real binary: without a usable GPU `--device cuda` fails within seconds
//! naming what is missing (pretrain, bench step, eval and embed), `auto` runs on the CPU after
//! one log line, a bad device name is a clear error, and a resumed run may change its device.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const ECGFM: &str = env!("CARGO_BIN_EXE_ecgfm");

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ecgfm-device-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn ecgfm(args: &[&str]) -> Output {
    Command::new(ECGFM).args(args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A quick nano run (short input) on `device`.
fn pretrain(out: &Path, device: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "pretrain",
        "--steps",
        "4",
        "--batch-size",
        "4",
        "--threads",
        "2",
        "--checkpoint-every",
        "2",
        "--set",
        "model.samples=750",
        "--set",
        "train.log_every=1",
        "--device",
        device,
        "--out",
    ];
    args.push(out.to_str().unwrap());
    args.extend_from_slice(extra);
    ecgfm(&args)
}

/// True (after a message) when a GPU is usable here: the no-GPU behaviour cannot be checked.
fn gpu_present() -> bool {
    let usable = ecgfm_kernels::CudaBackend::new(0).is_ok();
    if usable {
        eprintln!("skipping: a GPU is usable here, so --device cuda does not fail");
    }
    usable
}

#[test]
fn cuda_without_a_gpu_fails_within_seconds_naming_what_is_missing() {
    if gpu_present() {
        return;
    }
    let out = temp_dir("cuda");
    let start = Instant::now();
    let result = pretrain(&out, "cuda", &[]);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    assert!(
        !result.status.success(),
        "--device cuda succeeded without a GPU"
    );
    let err = stderr(&result);
    assert!(err.contains("--device cuda: CUDA is not usable"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        !out.join("config.toml").exists(),
        "a failed start left a run behind"
    );

    let bench = ecgfm(&["bench", "step", "--device", "cuda", "--no-torch"]);
    assert!(!bench.status.success());
    assert!(
        stderr(&bench).contains("CUDA is not usable"),
        "{}",
        stderr(&bench)
    );

    // Evaluation and embedding open the device before they read anything.
    let (run, data) = (out.join("run"), out.join("data"));
    let (run, data) = (run.to_str().unwrap(), data.to_str().unwrap());
    let json = out.join("eval.json");
    let parquet = out.join("embed.parquet");
    for args in [
        vec!["eval", "--labels", "synth", "--out", json.to_str().unwrap()],
        vec!["embed", "--out", parquet.to_str().unwrap()],
    ] {
        let start = Instant::now();
        let mut args = args;
        args.extend(["--run", run, "--data", data, "--device", "cuda"]);
        let result = ecgfm(&args);
        assert!(start.elapsed() < Duration::from_secs(10), "{args:?}");
        assert!(!result.status.success(), "{args:?} succeeded without a GPU");
        let err = stderr(&result);
        assert!(err.contains("--device cuda: CUDA is not usable"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn auto_falls_back_to_the_cpu_with_one_log_line() {
    if gpu_present() {
        return;
    }
    let out = temp_dir("auto");
    let result = pretrain(&out, "auto", &[]);
    assert!(result.status.success(), "{}", stderr(&result));
    let err = stderr(&result);
    let notes = err
        .lines()
        .filter(|l| l.contains("--device auto: running on the CPU"))
        .count();
    assert_eq!(notes, 1, "{err}");
    assert!(String::from_utf8_lossy(&result.stdout).contains("device: cpu"));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_bad_device_name_is_a_clear_error() {
    let result = pretrain(&temp_dir("bad"), "gpu", &[]);
    assert!(!result.status.success());
    assert!(
        stderr(&result).contains("train.device must be cpu, cuda, cuda:N or auto"),
        "{}",
        stderr(&result)
    );
}

#[test]
fn a_resumed_run_may_change_its_device() {
    let (whole, moved) = (temp_dir("whole"), temp_dir("moved"));
    assert!(pretrain(&whole, "cpu", &[]).status.success());
    assert!(pretrain(&moved, "cpu", &["--stop-after", "2"])
        .status
        .success());
    // `auto` is the CPU here, the GPU where one is usable: either way the resume is accepted.
    let resumed = pretrain(&moved, "auto", &["--resume"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let losses = |run: &Path| -> Vec<f64> {
        std::fs::read_to_string(run.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"]
                    .as_f64()
                    .unwrap()
            })
            .collect()
    };
    let (a, b) = (losses(&whole), losses(&moved));
    assert_eq!(a.len(), 4);
    assert_eq!(b.len(), 4);
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() <= 1e-4 * x.abs().max(1.0), "{a:?} vs {b:?}");
    }
    let _ = std::fs::remove_dir_all(&whole);
    let _ = std::fs::remove_dir_all(&moved);
}
