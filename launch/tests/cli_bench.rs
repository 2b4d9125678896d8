//! `ecgfm bench`'s comparisons with the tools a user would otherwise pick: `bench step` and
//! `bench attention` against the real PyTorch scripts of bench/ (where a python3 with torch 2.0
//! or newer is here: the scripts' own check of their dense model against the reference runs,
//! and the result reaches the ratio and the JSON line), and against stand-in scripts that
//! record the flags they got (precisions compared, different work named beside the ratio);
//! `bench loader` giving pyarrow as many decoding processes as ecgfm has threads.

use std::path::Path;

mod common;
use common::{ecgfm_env, run_err, run_ok, run_refused, synth_dataset, temp_dir};

/// A python3 that imports numpy and torch 2.0 or newer (the bench scripts use its fused
/// attention; see `ecgfm_test_support::python_running` for where it looks). `None` after a skip
/// message when there is none: not a required oracle, as scripts/test.sh installs Debian's torch
/// 1.13 where it can (a 150 MB download against PyPI's 3 GB), which the scripts cannot use.
fn torch_2_python() -> Option<String> {
    let found = ecgfm_test_support::python_running(
        "import numpy, torch, torch.nn.functional as F; \
         assert hasattr(F, 'scaled_dot_product_attention')",
    );
    if found.is_none() {
        eprintln!("skipping: no python3 with numpy and torch 2.0 or newer for bench/'s scripts");
    }
    found
}

/// The arguments of `ecgfm bench SUB...` for nano, one step at one thread with no warm-up, with
/// PyTorch's side run by `python`.
fn nano_one_step<'a>(sub: &[&'a str], python: &'a str) -> Vec<&'a str> {
    let mut args = vec!["bench"];
    args.extend(sub);
    args.extend([
        "--model",
        "nano",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--threads",
        "1",
    ]);
    args.extend(["--python", python]);
    args
}

/// `ecgfm bench SUBCOMMAND` of nano against the real PyTorch script of bench/, batch 2, one
/// step at one thread with no warm-up: its standard output and the JSON object it prints last.
/// `None` (after a skip message) where no python3 has torch 2.0 or newer.
fn bench_against_pytorch(sub: &str) -> Option<(String, serde_json::Value)> {
    let python = torch_2_python()?;
    let out = run_ok(&nano_one_step(&[sub, "--batch-size", "2"], &python));
    assert!(!out.contains("comparison skipped"), "{out}");
    let last = serde_json::from_str(out.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("no JSON last line ({e}):\n{out}"));
    Some((out, last))
}

/// `bench step` of nano runs bench/torch_step.py itself: the script checks its batch-dense
/// model against the per-sample reference (loss and every gradient) before timing, so a script
/// that drifted from the model fails here; both step times, and the ratio between them, come out.
#[test]
fn bench_step_runs_the_real_pytorch_step() {
    let Some((out, last)) = bench_against_pytorch("step") else {
        return;
    };
    assert!(out.contains("ratio (fp32 vs fp32): ecgfm is"), "{out}");
    let torch_ms = last["torch_step_ms_median"].as_f64().unwrap();
    assert!(torch_ms > 0.0, "{last}");
    let torch = &last["torch"];
    assert!(
        torch["torch_version"].as_str().unwrap().starts_with('2'),
        "{last}"
    );
    assert_eq!(torch["model"], "nano", "{last}");
    assert_eq!(torch["batch_size"], 2, "{last}");
}

/// `bench attention` of nano runs bench/torch_attention.py (PyTorch's fused attention) on the
/// encoder's and the decoder's shapes, and prints a ratio for each.
#[test]
fn bench_attention_runs_the_real_pytorch_attention() {
    let Some((out, last)) = bench_against_pytorch("attention") else {
        return;
    };
    assert_eq!(
        out.matches("ratio (fp32 vs fp32): ecgfm is").count(),
        2,
        "{out}"
    );
    let shapes = last["shapes"].as_array().unwrap();
    assert_eq!(shapes.len(), 2, "{last}");
    for shape in shapes {
        assert!(shape["torch_ms_median"].as_f64().unwrap() > 0.0, "{last}");
    }
}

/// A temporary folder holding a stand-in `torch` package that passes the comparison's torch 2.0
/// check (put it on PYTHONPATH; the benchmark's `--torch-script` is then a stand-in too).
fn stand_in_torch(name: &str) -> std::path::PathBuf {
    let dir = temp_dir(name);
    let nn = dir.join("torch").join("nn");
    std::fs::create_dir_all(&nn).unwrap();
    std::fs::write(
        dir.join("torch/__init__.py"),
        "__version__ = '2.0-stand-in'\n",
    )
    .unwrap();
    std::fs::write(nn.join("__init__.py"), "").unwrap();
    std::fs::write(
        nn.join("functional.py"),
        "def scaled_dot_product_attention(): pass\n",
    )
    .unwrap();
    dir
}

/// `ecgfm bench SUBCOMMAND ...` (`sub`) of nano, one step at one thread with no warm-up,
/// against the stand-in `script` with the stand-in torch of `dir` on PYTHONPATH; asserts it
/// succeeds. Its standard output and error.
fn bench_against_stand_in(dir: &Path, script: &Path, sub: &[&str]) -> (String, String) {
    let mut args = nano_one_step(sub, "python3");
    args.extend(["--torch-script", script.to_str().unwrap()]);
    let out = ecgfm_env(&args, &[("PYTHONPATH", dir.to_str().unwrap())]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    (stdout, stderr)
}

/// `bench step` prints both precisions beside the ratio and what our step does beyond
/// PyTorch's (gradient clipping); with `--recompute pointwise`, which PyTorch has no counterpart
/// for, the ratio says it compares different work and a warning goes to stderr. `--ranks 2`
/// prints no share of an overlap for waits at the noise level, nor a negative one.
#[test]
fn bench_step_names_different_work_beside_the_ratio() {
    let dir = stand_in_torch("bench-step-work");
    let script = dir.join("step.py");
    std::fs::write(
        &script,
        "import json\nprint(json.dumps({'step_ms_median': 1.0, 'torch_version': 'stand-in'}))\n",
    )
    .unwrap();
    let run = |recompute: &str| {
        bench_against_stand_in(
            &dir,
            &script,
            &["step", "--batch-size", "2", "--recompute", recompute],
        )
    };
    let (stdout, stderr) = run("none");
    assert!(
        stdout.contains("ratio (fp32 vs fp32): ecgfm is"),
        "{stdout}"
    );
    assert!(
        stdout.contains("also clips the gradient norm at 1.0"),
        "{stdout}"
    );
    assert!(!stderr.contains("WARNING"), "{stderr}");
    let (stdout, stderr) = run("pointwise");
    assert!(
        stdout.contains("ratio (fp32 vs fp32, DIFFERENT WORK: ecgfm recomputes LayerNorms"),
        "{stdout}"
    );
    assert!(
        stderr.contains("WARNING: the ratio compares different work"),
        "{stderr}"
    );
    let ranks = run_ok(&[
        "bench",
        "step",
        "--ranks",
        "2",
        "--threads",
        "2",
        "--model",
        "nano",
        "--batch-size",
        "2",
        "--steps",
        "2",
        "--warmup",
        "0",
    ]);
    let line = ranks
        .lines()
        .find(|l| l.starts_with("gradient reduction"))
        .unwrap();
    assert!(
        line.contains("overlap share n/a (exposed wait below 1 ms")
            || line.contains("hides none")
            || (line.contains("the overlap hides ") && !line.contains("hides -")),
        "{line}"
    );
}

/// `bench attention` passes PyTorch the precision ours runs in (fp32 on the CPU) and prints both
/// beside the ratio; `--precision bf16` reaches our backend, and the ratio across bf16 and fp32
/// is printed with a warning. A stand-in `torch` (2.0's attention present) and script record the
/// flags the comparison got (PyTorch on the CPU always fp32).
#[test]
fn bench_attention_compares_one_precision_and_warns_across_two() {
    let dir = stand_in_torch("bench-attention-precision");
    let script = dir.join("sdpa.py");
    std::fs::write(
        &script,
        "import json, sys\nargs = dict(zip(sys.argv[1::2], sys.argv[2::2]))\n\
         assert args['--precision'] == 'fp32', args\n\
         print(json.dumps({'ms_median': {'encoder': 1.0, 'decoder': 1.0}, \
         'torch_version': 'stand-in'}))\n",
    )
    .unwrap();
    let run = |precision: &str| {
        let attention = ["attention", "--batch-size", "1", "--precision", precision];
        let (stdout, stderr) = bench_against_stand_in(&dir, &script, &attention);
        let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        (stdout, stderr, last)
    };
    let (stdout, stderr, last) = run("auto");
    assert!(stdout.contains("| fp32 fwd+bwd"), "{stdout}");
    assert!(
        stdout.contains("ratio (fp32 vs fp32): ecgfm is"),
        "{stdout}"
    );
    assert!(!stderr.contains("WARNING"), "{stderr}");
    assert_eq!(last["precision"], "fp32");
    assert_eq!(last["torch_precision"], "fp32");
    assert_eq!(last["shapes"][0]["same_precision"], true);
    let (stdout, stderr, last) = run("bf16");
    assert!(stdout.contains("| bf16 fwd+bwd"), "{stdout}");
    assert!(
        stdout.contains("ratio (bf16 vs fp32, DIFFERENT PRECISIONS)"),
        "{stdout}"
    );
    assert!(
        stderr.contains("WARNING: nano encoder: ecgfm runs bf16 and PyTorch fp32"),
        "{stderr}"
    );
    assert_eq!(last["precision"], "bf16");
    assert_eq!(last["shapes"][0]["same_precision"], false);
    let err = run_err(&["bench", "attention", "--precision", "fp16"]);
    assert!(err.contains("'--precision <PRECISION>'"), "{err}");
}

/// `bench loader --threads N` runs the pyarrow side in N decoding processes and prints both
/// counts beside the ratio (where python3 has pyarrow and numpy; skipped, saying so, otherwise,
/// and failing where the oracles are required). Where python3 has them, a skipped comparison
/// fails.
#[test]
fn bench_loader_gives_pyarrow_as_many_processes_as_ecgfm_threads() {
    let dir = temp_dir("bench-loader-threads");
    let ds = synth_dataset(&dir);
    for threads in ["1", "2"] {
        let out = run_ok(&[
            "bench",
            "loader",
            "--data",
            ds.to_str().unwrap(),
            "--batch-size",
            "8",
            "--batches",
            "3",
            "--crop-samples",
            "500",
            "--threads",
            threads,
        ]);
        if out.contains("comparison skipped") {
            assert!(
                !ecgfm_test_support::python_has(&["pyarrow", "numpy"]),
                "python3 has pyarrow and numpy, but bench loader skipped the comparison:\n{out}"
            );
            ecgfm_test_support::skip_without_oracle("pyarrow and numpy for bench loader");
            return;
        }
        let said = format!("ratio (ecgfm {threads} threads vs pyarrow {threads} processes): ");
        assert!(out.contains(&said), "{out}");
        let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        assert_eq!(last["pyarrow_processes"].to_string(), threads);
    }
}

/// A crop longer than the dataset's windows is timed, and said to be padded.
#[test]
fn bench_loader_warns_of_a_crop_longer_than_the_windows() {
    let dir = temp_dir("bench-loader-long-crop");
    let ds = synth_dataset(&dir);
    let args = |crop: &str| {
        let data = ds.to_str().unwrap().to_string();
        [
            "bench",
            "loader",
            "--data",
            &data,
            "--batch-size",
            "4",
            "--batches",
            "2",
            "--crop-samples",
            crop,
            "--no-pyarrow",
        ]
        .map(String::from)
    };
    let padded = ecgfm_env(&args("1000"), &[]);
    let stderr = String::from_utf8_lossy(&padded.stderr);
    assert!(padded.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "--crop-samples 1000 is longer than the dataset's windows (750 samples): each crop \
             is padded with 250 zero samples per lead"
        ),
        "{stderr}"
    );
    let fits = ecgfm_env(&args("750"), &[]);
    let stderr = String::from_utf8_lossy(&fits.stderr);
    assert!(fits.status.success(), "{stderr}");
    assert!(!stderr.contains("WARNING"), "{stderr}");
    // Ranks that would fetch the same row groups are warned of.
    let mut ranks = args("750").to_vec();
    ranks.extend(["--world-size", "8", "--mix-row-groups", "4"].map(String::from));
    let shared = ecgfm_env(&ranks, &[]);
    let stderr = String::from_utf8_lossy(&shared.stderr);
    assert!(shared.status.success(), "{stderr}");
    assert!(
        stderr.contains("WARNING: --mix-row-groups = 4 is below the step's 8 micro-batches"),
        "{stderr}"
    );
    // A split misspelt is refused as a setting, as `embed` refuses it (it was read as a split
    // without rows, exit 1, until 2026-12-06).
    let mut typo = args("750").to_vec();
    typo.extend(["--split".to_string(), "tset".to_string()]);
    let err = run_refused(&typo);
    assert!(
        err.contains("unknown split tset (train, val, test or all)"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
