//! Helpers of the `ecgfm` binary's tests: temporary folders, running the binary, short
//! pretraining runs and their exported packages, and the Python that has torch. Each test binary
//! uses a subset, hence `dead_code` is allowed.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const ECGFM: &str = env!("CARGO_BIN_EXE_ecgfm");

/// Flips every bit of the middle byte of `file`, as a shard damaged after it was written; returns
/// the intact bytes.
pub fn flip_middle_byte(file: &Path) -> Vec<u8> {
    let intact = std::fs::read(file).unwrap();
    let mut damaged = intact.clone();
    damaged[intact.len() / 2] ^= 0xFF;
    std::fs::write(file, damaged).unwrap();
    intact
}

/// A fresh, empty folder under the system temporary folder.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ecgfm-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An empty folder for a fixture made once per test binary (a `OnceLock`), which no test can
/// remove after the last use: under cargo's target/tmp with a fixed name, so the next run
/// replaces it instead of leaving one folder per process in the system's temporary folder.
pub fn fixture_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ecgfm-fixture-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Makes the child `cmd` starts take the stop signals' default dispositions, whatever this test
/// runner was started ignoring (SIGHUP under `nohup`; SIGINT in a shell script's background
/// job): `ecgfm` leaves a signal it was started ignoring ignored, and the signal tests send them.
pub fn with_default_stop_signals(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: signal(2) is async-signal-safe; it runs in the child between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGUSR1, libc::SIGHUP] {
                libc::signal(sig, libc::SIG_DFL);
            }
            Ok(())
        })
    }
}

/// Sets the permission bits of `path` to `mode`.
pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A command running `ecgfm` as a user the permission bits hold to: this one, or `nobody` when
/// the tests run as root (whom the bits do not stop), from a copy of the binary in `dir` that
/// nobody may run.
pub fn ecgfm_unprivileged(dir: &Path) -> Command {
    use std::os::unix::process::CommandExt;
    let binary = dir.join("ecgfm");
    ecgfm_test_support::copy_executable(Path::new(ECGFM), &binary);
    let mut command = Command::new(binary);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        command.uid(65534).gid(65534);
    }
    command
}

/// Runs `ecgfm args` with files limited to 64 KiB (`RLIMIT_FSIZE`, as a full disk would stop
/// it), asserts it failed (exit 1) with "File too large", and returns its standard error.
pub fn run_past_file_size_limit<S: AsRef<OsStr>>(args: &[S]) -> String {
    let output = ecgfm_limited(args, libc::RLIMIT_FSIZE, 64 << 10)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("File too large"), "{stderr}");
    stderr
}

/// A command running `ecgfm args` with its `resource` limit (`libc::RLIMIT_*`) set to `bytes`.
pub fn ecgfm_limited<S: AsRef<OsStr>>(
    args: &[S],
    resource: libc::__rlimit_resource_t,
    bytes: u64,
) -> Command {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(ECGFM);
    command.args(args);
    // SAFETY: getrlimit and setrlimit are async-signal-safe, as a pre_exec closure must be.
    unsafe {
        command.pre_exec(move || {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(resource, &mut limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The hard limit stays: a user may lower it but not raise it back.
            limit.rlim_cur = bytes.min(limit.rlim_max);
            match libc::setrlimit(resource, &limit) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
    command
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// Runs `ecgfm args` with extra environment variables.
pub fn ecgfm_env<S: AsRef<OsStr>>(args: &[S], env: &[(&str, &str)]) -> Output {
    Command::new(ECGFM)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// Runs `ecgfm args`, asserts success and returns its standard output.
pub fn run_ok<S: AsRef<OsStr> + Debug>(args: &[S]) -> String {
    succeeded(args, ecgfm_env(args, &[]))
}

/// Runs `ecgfm args`, asserts success and returns its standard error (its logs).
pub fn run_ok_logs<S: AsRef<OsStr> + Debug>(args: &[S]) -> String {
    let output = ecgfm_env(args, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    succeeded(args, output);
    stderr
}

/// Runs `ecgfm args` in the folder `dir`, asserts success and returns its standard output.
pub fn run_ok_in<S: AsRef<OsStr> + Debug>(dir: &Path, args: &[S]) -> String {
    let output = Command::new(ECGFM)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    succeeded(args, output)
}

/// Asserts that `output` of `ecgfm args` is a success; its standard output.
pub fn succeeded<S: Debug>(args: &[S], output: Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "ecgfm {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Runs `ecgfm args`, asserts it was refused for its configuration (exit 78) and returns its
/// standard error.
pub fn run_refused<S: AsRef<OsStr> + Debug>(args: &[S]) -> String {
    let output = ecgfm_env(args, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(78), "ecgfm {args:?}:\n{stderr}");
    stderr
}

/// Runs `ecgfm args`, asserts failure and returns its standard error.
pub fn run_err<S: AsRef<OsStr> + Debug>(args: &[S]) -> String {
    failed(args, ecgfm_env(args, &[]))
}

/// Runs `ecgfm args` in the folder `dir`, asserts failure and returns its standard error.
pub fn run_err_in<S: AsRef<OsStr> + Debug>(dir: &Path, args: &[S]) -> String {
    failed(
        args,
        Command::new(ECGFM)
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap(),
    )
}

/// Asserts that `output` of `ecgfm args` is a failure; its standard error.
pub fn failed<S: Debug>(args: &[S], output: Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(
        !output.status.success(),
        "ecgfm {args:?} should have failed:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    stderr
}

/// A small synthetic dataset (40 records, 3 s windows at 250 Hz) at `dir/ds`.
pub fn synth_dataset(dir: &Path) -> PathBuf {
    synth_dataset_with_seed(dir, "ds", 0)
}

/// `synth_dataset`'s size with the generator's `seed`, at `dir/name`.
pub fn synth_dataset_with_seed(dir: &Path, name: &str, seed: u64) -> PathBuf {
    synth_dataset_with(dir, name, &["--seed", &seed.to_string()])
}

/// `synth_dataset`'s size at `dir/name`, with the `data synth` flags `extra` (not its records,
/// window or threads).
pub fn synth_dataset_with(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let ds = dir.join(name);
    let mut args = vec![
        "data",
        "synth",
        "--out",
        path_str(&ds),
        "--records",
        "40",
        "--window-s",
        "3",
        "--threads",
        "2",
    ];
    args.extend(extra);
    run_ok(&args);
    ds
}

/// A small, quick run: nano with a short input so a step takes milliseconds.
/// Sets the value after `flag` in `args` (the flag must be there).
pub fn set_flag(args: &mut [String], flag: &str, value: &str) {
    let at = args.iter().position(|a| a == flag).unwrap();
    args[at + 1] = value.to_string();
}

pub fn pretrain_args(out: &Path, steps: u64) -> Vec<String> {
    [
        "pretrain",
        "--steps",
        &steps.to_string(),
        "--batch-size",
        "8",
        "--checkpoint-every",
        "4",
        "--threads",
        "2",
        "--set",
        "model.samples=750",
        "--set",
        "train.log_every=1",
        "--set",
        "optim.warmup_steps=3",
        "--out",
        out.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// An 8-step `pretrain_args` run (checkpoints at steps 4 and 8) at `dir/run` on `data` (a
/// dataset folder, or the synthetic generator with some single-lead records), plus `extra`
/// arguments.
pub fn short_run(dir: &Path, data: Option<&Path>, extra: &[&str]) -> PathBuf {
    let run = dir.join("run");
    let mut args = pretrain_args(&run, 8);
    let data_args = match data {
        Some(ds) => ["--data", path_str(ds)],
        None => ["--set", "data.synth_single_lead_fraction=0.5"],
    };
    args.extend(data_args.iter().chain(extra).map(|s| s.to_string()));
    run_ok(&args);
    run
}

/// The files of every exported package, sorted.
pub const PACKAGE_FILES: [&str; 6] = [
    "README.md",
    "SHA256SUMS",
    "config.json",
    "ecgfm_encoder.py",
    "ecgfm_preprocess.py",
    "model.safetensors",
];

/// Asserts that the package folders `a` and `b` hold the same bytes in every file.
pub fn assert_same_files(a: &Path, b: &Path) {
    for name in PACKAGE_FILES {
        assert_eq!(
            std::fs::read(a.join(name)).unwrap(),
            std::fs::read(b.join(name)).unwrap(),
            "{name}"
        );
    }
}

pub fn export_args<'a>(run: &'a Path, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["export", "--run", path_str(run), "--out", path_str(out)];
    args.extend(extra);
    args
}

/// `ecgfm export --run run --out out` plus `extra` arguments; its standard output.
pub fn export(run: &Path, out: &Path, extra: &[&str]) -> String {
    run_ok(&export_args(run, out, extra))
}

/// Like `export`, for an export that must fail; its standard error.
pub fn export_err(run: &Path, out: &Path, extra: &[&str]) -> String {
    run_err(&export_args(run, out, extra))
}

/// The tensor bytes of run `run`'s weights at `step` (the header, which records the run's
/// configuration, left out).
pub fn checkpoint_tensor_bytes(run: &Path, step: u64) -> Vec<u8> {
    let bytes =
        std::fs::read(run.join(format!("checkpoints/step_{step:08}/model.safetensors"))).unwrap();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    bytes[8 + header..].to_vec()
}

/// Every tensor of a safetensors file: name -> (shape, values).
pub fn read_tensors(path: &Path) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<_> = tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            (name, view.shape().to_vec(), values)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// `(step, loss bits)` of every record of a run's metrics.jsonl.
pub fn logged_losses(run: &Path) -> Vec<(u64, u64)> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let record = |line: &str| {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let loss = v["loss"].as_f64().unwrap().to_bits();
        (v["step"].as_u64().unwrap(), loss)
    };
    text.lines().map(record).collect()
}
