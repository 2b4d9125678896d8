//! `--device` through the real binary: without a usable GPU `--device cuda` fails up front,
//! naming what is missing, before it reads any data or writes anything (pretrain, bench step,
//! eval and embed), `auto` runs on the CPU after one log line, a bad device name is a clear
//! error, and a resumed run may change its device. A stand-in driver library (a few lines of C
//! compiled here, found first on `LD_LIBRARY_PATH`) plays a driver too old for CUDA 13, one that
//! shows no GPU (with and without `CUDA_VISIBLE_DEVICES` set), one whose `cuInit` finds no GPU,
//! one that does not match its kernel module, a GPU another process holds in exclusive mode,
//! and `cuda:N` past the GPUs it shows: each is named with what to do, and `auto` falls back.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ecgfm_test_support::stand_in;

const ECGFM: &str = env!("CARGO_BIN_EXE_ecgfm");

/// A guard against a hang, not a time the commands must meet: a command still running after
/// this long is killed and its test fails. Every command here takes seconds.
const HANG_GUARD: Duration = Duration::from_secs(120);

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ecgfm-device-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs `ecgfm args` to its end (killed, failing the test, after [`HANG_GUARD`]).
fn ecgfm(args: &[&str]) -> Output {
    ecgfm_with(args, &[])
}

/// [`ecgfm`] with extra environment variables (`None`: removed from the environment).
fn ecgfm_with(args: &[&str], env: &[(&str, Option<String>)]) -> Output {
    let mut command = Command::new(ECGFM);
    for (key, value) in env {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    let mut child = command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read on threads of their own, so a full pipe never blocks the child.
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).unwrap();
            bytes
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > HANG_GUARD {
            child.kill().unwrap();
            child.wait().unwrap();
            let stderr = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
            panic!("hang guard: ecgfm {args:?} still ran after {HANG_GUARD:?}, killed:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A quick nano run (short input) on `device`.
fn pretrain(out: &Path, device: &str, extra: &[&str]) -> Output {
    pretrain_with(out, device, extra, &[])
}

/// [`pretrain`] with extra environment variables.
fn pretrain_with(
    out: &Path,
    device: &str,
    extra: &[&str],
    env: &[(&str, Option<String>)],
) -> Output {
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
    ecgfm_with(&args, env)
}

/// True (after a message) when a GPU is usable here: the no-GPU behaviour cannot be checked.
fn gpu_present() -> bool {
    let usable = ecgfm_kernels::CudaBackend::new(0).is_ok();
    if usable {
        eprintln!("skipping: a GPU is usable here, so --device cuda does not fail");
    }
    usable
}

/// Asserts that `result` is the up-front failure of `--device DEVICE` without a usable GPU
/// (`what`): the probe's error, no panic, no kernel compiled and no training step taken.
fn failed_up_front(result: &Output, device: &str, what: &str) {
    assert!(
        !result.status.success(),
        "{what}: --device {device} succeeded without a GPU"
    );
    let err = stderr(result);
    assert!(
        err.contains(&format!("--device {device}: CUDA is not usable"))
            || err.contains(&format!("--device {device}: CUDA device ")),
        "{what}: {err}"
    );
    assert!(!err.contains("panicked"), "{what}: {err}");
    // The probe stops it before NVRTC compiles a kernel.
    assert!(!err.contains("NVRTC could not compile"), "{what}: {err}");
    let out = String::from_utf8_lossy(&result.stdout);
    assert!(!out.contains("step"), "{what}: {out}");
}

#[test]
fn cuda_without_a_gpu_fails_up_front_naming_what_is_missing() {
    if gpu_present() {
        return;
    }
    let out = temp_dir("cuda");
    let result = pretrain(&out, "cuda", &[]);
    failed_up_front(&result, "cuda", "pretrain");
    // Refused for its configuration, which no restart on this machine changes: `ecgfm launch`
    // does not start it again (it started it three times for `--max-restarts 2` until
    // 2026-12-06).
    assert_eq!(result.status.code(), Some(78), "{}", stderr(&result));
    assert!(!out.exists(), "a failed start left a run folder behind");
    let launched = ecgfm(&[
        "launch",
        "--nproc-per-node",
        "2",
        "--master-port",
        "0",
        "--max-restarts",
        "2",
        "--",
        "pretrain",
        "--device",
        "cuda",
        "--steps",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(launched.status.code(), Some(78), "{}", stderr(&launched));
    let starts = stderr(&launched).matches("launch: rank 0 started").count();
    assert_eq!(starts, 1, "{}", stderr(&launched));
    // Before it reads any data: a dataset that is not there is never noticed.
    let missing = out.with_extension("no-dataset");
    let missing = missing.to_str().unwrap();
    let result = pretrain(&out, "cuda", &["--data", missing]);
    failed_up_front(&result, "cuda", "pretrain --data");
    assert!(!stderr(&result).contains(missing), "{}", stderr(&result));
    assert!(!out.exists(), "a failed start left a run folder behind");

    let bench = ecgfm(&["bench", "step", "--device", "cuda", "--no-torch"]);
    assert!(!bench.status.success());
    assert!(
        stderr(&bench).contains("CUDA is not usable"),
        "{}",
        stderr(&bench)
    );

    // Evaluation and embedding open the device before they read anything: the run and the
    // dataset they name are not there, and the error is the device's, not theirs.
    let (run, data) = (out.join("run"), out.join("data"));
    let (run, data) = (run.to_str().unwrap(), data.to_str().unwrap());
    let json = out.join("eval.json");
    let parquet = out.join("embed.parquet");
    for args in [
        vec!["eval", "--labels", "synth", "--out", json.to_str().unwrap()],
        vec!["embed", "--out", parquet.to_str().unwrap()],
    ] {
        let mut args = args;
        args.extend(["--run", run, "--data", data, "--device", "cuda"]);
        let result = ecgfm(&args);
        failed_up_front(&result, "cuda", args[0]);
        let err = stderr(&result);
        assert!(!err.contains(run) && !err.contains(data), "{args:?}: {err}");
        assert!(!out.exists(), "{args:?} wrote into {}", out.display());
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

/// The driver API calls the probe makes before it touches a device and those that open one,
/// answering what the `FAKE_CUDA_*` variables say (`cuInit`'s result, the CUDA version the
/// driver supports, the number of GPUs, the primary context's result), and the two that name
/// an error, with the driver's own words for the errors played here.
const FAKE_DRIVER: &str = r#"
#include <stdlib.h>
static int env_int(const char *name, int otherwise) {
    const char *value = getenv(name);
    return value ? atoi(value) : otherwise;
}
int cuInit(unsigned int flags) { (void)flags; return env_int("FAKE_CUDA_INIT_RESULT", 0); }
int cuDriverGetVersion(int *version) {
    *version = env_int("FAKE_CUDA_DRIVER_VERSION", 13000);
    return 0;
}
int cuDeviceGetCount(int *count) { *count = env_int("FAKE_CUDA_DEVICES", 0); return 0; }
int cuDeviceGet(int *device, int ordinal) { *device = ordinal; return 0; }
int cuDevicePrimaryCtxRetain(void **context, int device) {
    (void)device;
    *context = 0;
    return env_int("FAKE_CUDA_CONTEXT_RESULT", 0);
}
int cuGetErrorName(int error, const char **name) {
    switch (error) {
    case 46: *name = "CUDA_ERROR_DEVICE_UNAVAILABLE"; break;
    case 100: *name = "CUDA_ERROR_NO_DEVICE"; break;
    case 803: *name = "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH"; break;
    default: *name = "CUDA_ERROR_UNKNOWN";
    }
    return 0;
}
int cuGetErrorString(int error, const char **text) {
    switch (error) {
    case 46: *text = "CUDA-capable device(s) is/are busy or unavailable"; break;
    case 100: *text = "no CUDA-capable device is detected"; break;
    case 803: *text = "system has unsupported display driver / cuda driver combination"; break;
    default: *text = "unknown error";
    }
    return 0;
}
"#;

/// Builds the stand-in driver (`libcuda.so`, `libcuda.so.1`) and, beside it, empty libraries
/// under the names of NVRTC, cuBLAS and cuBLASLt, which the probe only loads (a device that
/// opens its context would need real ones); the folder.
fn fake_driver() -> PathBuf {
    let dir = temp_dir("fake-driver");
    stand_in::build(&dir, FAKE_DRIVER, &["libcuda.so", "libcuda.so.1"]);
    let others = ["libnvrtc.so", "libcublas.so", "libcublasLt.so"];
    stand_in::build(&dir, "int ecgfm_stand_in;", &others)
}

/// One way the stand-in driver fails: what it reports, the device asked for, and the error
/// after `--device DEVICE: `. The default is a working CUDA 13 driver showing one GPU.
struct Case {
    driver_version: &'static str,
    gpus: &'static str,
    init: &'static str,
    context: &'static str,
    visible: Option<&'static str>,
    device: &'static str,
    said: &'static str,
}

impl Default for Case {
    fn default() -> Self {
        Case {
            driver_version: "13000",
            gpus: "1",
            init: "0",
            context: "0",
            visible: None,
            device: "cuda",
            said: "",
        }
    }
}

#[test]
fn each_way_the_driver_fails_is_named_with_what_to_do() {
    if gpu_present() {
        return;
    }
    let driver = fake_driver();
    let library_path = stand_in::library_path_first(&driver);
    let cases = [
        Case {
            said: "CUDA is not usable: the NVIDIA driver supports CUDA 12.4, and ecgfm's kernels \
                   (NVRTC 13) and cuBLAS 13 need CUDA 13.0 or newer: update the driver",
            driver_version: "12040",
            ..Case::default()
        },
        Case {
            said: "CUDA is not usable: the driver found no GPU (0 devices)",
            gpus: "0",
            ..Case::default()
        },
        Case {
            said: "CUDA is not usable: the driver found no GPU (0 devices; CUDA_VISIBLE_DEVICES \
                   is \"\", which hides the GPUs it does not list)",
            gpus: "0",
            visible: Some(""),
            ..Case::default()
        },
        Case {
            said: "CUDA is not usable: the driver found no GPU (cuInit: CUDA_ERROR_NO_DEVICE (no \
                   CUDA-capable device is detected))",
            init: "100",
            ..Case::default()
        },
        Case {
            said: "CUDA is not usable: the NVIDIA driver did not start (cuInit: \
                   CUDA_ERROR_SYSTEM_DRIVER_MISMATCH (system has unsupported display driver / \
                   cuda driver combination); the driver library (libcuda.so) and the loaded \
                   kernel module are of different versions, as after a driver upgrade without a \
                   reboot: reboot, or reload the nvidia kernel module)",
            init: "803",
            ..Case::default()
        },
        Case {
            said: "CUDA device 0 is not usable: creating a context: \
                   CUDA_ERROR_DEVICE_UNAVAILABLE (CUDA-capable device(s) is/are busy or \
                   unavailable); another process holds this GPU and its compute mode is \
                   exclusive-process (nvidia-smi shows the processes and the mode): wait for it, \
                   choose another GPU with --device cuda:N, or ask the administrator",
            context: "46",
            ..Case::default()
        },
        Case {
            said: "CUDA device 2 is not usable: the driver shows 2 GPU(s), cuda:0 to cuda:1; \
                   CUDA_VISIBLE_DEVICES is \"3,5\", which hides the GPUs it does not list",
            gpus: "2",
            visible: Some("3,5"),
            device: "cuda:2",
            ..Case::default()
        },
    ];
    for case in cases {
        let env = [
            ("LD_LIBRARY_PATH", Some(library_path.clone())),
            (
                "FAKE_CUDA_DRIVER_VERSION",
                Some(case.driver_version.to_string()),
            ),
            ("FAKE_CUDA_DEVICES", Some(case.gpus.to_string())),
            ("FAKE_CUDA_INIT_RESULT", Some(case.init.to_string())),
            ("FAKE_CUDA_CONTEXT_RESULT", Some(case.context.to_string())),
            ("CUDA_VISIBLE_DEVICES", case.visible.map(str::to_string)),
        ];
        let (said, device) = (case.said, case.device);
        let out = temp_dir("fake-driver-run");
        let result = pretrain_with(&out, device, &[], &env);
        failed_up_front(&result, device, said);
        let err = stderr(&result);
        assert!(err.contains(&format!("--device {device}: {said}")), "{err}");
        assert!(!out.exists(), "a failed start left a run folder behind");

        // `auto` is device 0, so a missing device N is only `cuda:N`'s error.
        if device == "cuda" {
            let result = pretrain_with(&out, "auto", &[], &env);
            assert!(result.status.success(), "{}", stderr(&result));
            let fell_back = format!("--device auto: running on the CPU ({said}");
            let notes = stderr(&result).matches(&fell_back).count();
            assert_eq!(notes, 1, "{}", stderr(&result));
        }
        let _ = std::fs::remove_dir_all(&out);
    }
    let _ = std::fs::remove_dir_all(&driver);
}
