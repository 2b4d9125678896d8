//! ecgfm-test-support: helpers every crate's tests share, so they locate the real ECG data and
//! run the Python oracles the same way.
//!
//! - [`shared_data`]: the PhysioNet recordings in `../shared/data` (or `$ECGFM_SHARED_DATA`),
//!   read in place; `None`, after a skip message, where the folder is absent. Where the data
//!   must be present (`ECGFM_REQUIRE_SHARED_DATA` set, as `scripts/test.sh` does when
//!   `../shared/data` exists) a missing folder fails the test instead.
//! - [`python_stdout`]: runs `python3` (an oracle: wfdb, scipy, pyarrow, tensorboard, ...) and
//!   returns its standard output, failing the test with the oracle's stderr when it fails. When
//!   python3 or one of the oracle's packages is missing it skips (`None`) as below.
//!   `scripts/test.sh` installs the packages (scripts/test-requirements.txt).
//! - [`python_has`]: whether python3 imports a list of modules.
//! - [`skip_without_oracle`]: for tests that skip when an optional oracle is missing on a
//!   developer's machine; under `scripts/test.sh` (which sets `ECGFM_REQUIRE_ORACLES`) or on
//!   CI a missing oracle fails the test instead, so nothing is skipped silently there.
//! - [`skip_without_gpu`]: the same for the GPU tests (a failure where `ECGFM_REQUIRE_GPU` is
//!   set, as scripts/gpu-check.sh does).
//! - [`torch_python`]: an interpreter that imports torch (the PyTorch oracles), wherever
//!   scripts/test.sh put it; [`python_running`]: the first of those interpreters that runs a
//!   line of code.
//! - [`free_port`]: a TCP port for a test's server (a rendezvous, an S3 stand-in) to bind;
//!   [`wait_until_listening`]: until the server accepts connections there.
//! - [`Draws`]: a seeded stream of random numbers (splitmix64) for tests that damage input at
//!   random, the same damage on every run.
//! - [`coloured_pixels`]: how much of a chart is drawn in a series' colour, so a test can tell a
//!   chart with its data from an empty one.
//! - [`files_below`]: every file of a folder tree; [`sorted_names`]: a folder's entries.
//! - [`write_executable`], [`copy_executable`]: a script or binary the test runs next, written by
//!   a child process so that no other test's fork can hold it open ("Text file busy").
//! - [`markdown`]: the documentation's tables, code blocks and sentences, for the tests that
//!   hold the docs to the code.
//! - [`stand_in`]: shared libraries compiled from a few lines of C that play the NVIDIA driver or
//!   NCCL, for the GPU code's error paths on machines without either.
//! - [`store`]: an object store that passes every call to another but the puts and gets a test
//!   intercepts (a write applied but answered with an error, damaged bytes, a slow read).
//!
//! A dev-dependency only; it depends on `image` (PNG decoding), which the charts' plotters
//! already builds, and on `object_store`, which the data pipeline already builds.

pub mod markdown;
pub mod stand_in;
pub mod store;

use std::path::{Path, PathBuf};
use std::process::Command;

/// `$ECGFM_SHARED_DATA/<folder>` or `<workspace>/../shared/data/<folder>` (`""` for the folder
/// itself), or `None` after printing a skip message when it is absent; panics instead where the
/// data must be present (`ECGFM_REQUIRE_SHARED_DATA` set), so no real-data test passes unrun.
pub fn shared_data(folder: &str) -> Option<PathBuf> {
    let root = std::env::var_os("ECGFM_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    let required = std::env::var_os("ECGFM_REQUIRE_SHARED_DATA").is_some();
    found_or_skip(root.join(folder), required)
}

/// `dir` when it is a folder; else a skip message and `None`, or a panic where `required`.
fn found_or_skip(dir: PathBuf, required: bool) -> Option<PathBuf> {
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        !required,
        "shared data folder {} not found, but ECGFM_REQUIRE_SHARED_DATA is set (scripts/test.sh \
         sets it where ../shared/data exists; ECGFM_SHARED_DATA names another folder)",
        dir.display()
    );
    eprintln!("skipping: shared data folder {} not found", dir.display());
    None
}

/// Whether `python3` starts and imports every module of `modules`.
pub fn python_has(modules: &[&str]) -> bool {
    let imports: Vec<String> = modules.iter().map(|m| format!("import {m}")).collect();
    Command::new("python3")
        .args(["-c", &imports.join("; ")])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// Runs `python` (a `python3` command with its arguments set) and returns its standard output.
/// When python3 cannot import `modules`, reports the missing oracle `what` (a skip message, or a
/// failure where oracles are required) and returns `None`; panics naming `what` with the
/// command's stderr when it fails.
pub fn python_stdout(python: &mut Command, modules: &[&str], what: &str) -> Option<Vec<u8>> {
    if !python_has(modules) {
        skip_without_oracle(&format!("{what} (python3 with {})", modules.join(", ")));
        return None;
    }
    let output = python
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run python3: {e}"));
    assert!(
        output.status.success(),
        "{what} failed (scripts/test.sh installs the Python oracles): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(output.stdout)
}

/// Reports that a Python oracle (`what`) is missing: prints a skip message, or panics where
/// the oracles must be present (`ECGFM_REQUIRE_ORACLES` or `CI` set).
pub fn skip_without_oracle(what: &str) {
    let required = ["ECGFM_REQUIRE_ORACLES", "CI"]
        .iter()
        .any(|var| std::env::var_os(var).is_some());
    assert!(
        !required,
        "{what} is missing but required here (scripts/test-requirements.txt)"
    );
    eprintln!("skipping: {what} not found");
}

/// Reports that no GPU is usable (`why`: the CUDA backend's error): prints a skip message, or
/// panics where a GPU must be present (`ECGFM_REQUIRE_GPU` set, as scripts/gpu-check.sh does).
pub fn skip_without_gpu(why: &str) {
    assert!(
        std::env::var_os("ECGFM_REQUIRE_GPU").is_none(),
        "ECGFM_REQUIRE_GPU is set but CUDA is not usable: {why}"
    );
    eprintln!("skipping the CUDA backend: {why}");
}

/// A TCP port free on every interface for a test's server to bind. Chosen below Linux's ephemeral
/// range (32768-60999), where the kernel never gives a client connection its port: a port taken
/// from `bind(0)` and released can be handed to another test's outgoing connection before the
/// server binds it, and the server then fails (seen once in CI as a rendezvous that never
/// started). Each call of one process tries the next port of a sequence that starts where the
/// process id says, so tests running side by side do not pick the same one.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7919);
    for _ in 0..SPAN {
        let call = CALLS.fetch_add(1, Ordering::Relaxed);
        let port = (FIRST + start.wrapping_add(call) % SPAN) as u16;
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
    panic!("no free TCP port in {FIRST}..{}", FIRST + SPAN);
}

/// Waits until a server started by a test (`what`) accepts connections on localhost `port`;
/// fails the test after 60 s.
pub fn wait_until_listening(port: u16, what: &str) {
    let listening = || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
    wait_until(&format!("{what} listening on port {port}"), 60, listening);
}

/// Polls `done` every 20 ms until it holds; fails the test, naming `what` it waited for, after
/// `limit_s` seconds (a guard against a hang, not a time the code must meet).
pub fn wait_until(what: &str, limit_s: u64, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(
            started.elapsed().as_secs() < limit_s,
            "waited {limit_s} s for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A deterministic stream of draws from a seed (splitmix64): the same numbers on every run and
/// machine, no dependency.
pub struct Draws(u64);

impl Draws {
    pub fn new(seed: u64) -> Self {
        Draws(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A draw in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// A Python interpreter that imports torch: `$ECGFM_TORCH_PYTHON`, else `python3`, else the
/// system's `/usr/bin/python3` (where scripts/test.sh installs Debian's CPU-only PyTorch).
/// `None` after a skip message (a failure under scripts/test.sh or CI) when there is none.
pub fn torch_python() -> Option<String> {
    let found = python_running("import torch");
    if found.is_none() {
        skip_without_oracle("PyTorch (python3 with torch; scripts/test.sh installs it)");
    }
    found
}

/// The first of `torch_python`'s interpreters (`$ECGFM_TORCH_PYTHON`, else `python3`, else
/// `/usr/bin/python3`) that runs `code` without an error; `None` when none does.
pub fn python_running(code: &str) -> Option<String> {
    let candidates: Vec<String> = match std::env::var("ECGFM_TORCH_PYTHON") {
        Ok(python) => vec![python],
        Err(_) => vec!["python3".into(), "/usr/bin/python3".into()],
    };
    candidates.into_iter().find(|python| {
        Command::new(python)
            .args(["-c", code])
            .output()
            .is_ok_and(|out| out.status.success())
    })
}

/// Pixels of a PNG chart in a series' colour (saturated: ecgfm's charts draw axes, grid and text
/// in grey or black on white), so an empty chart, or one whose points all fell off its axes,
/// has few.
pub fn coloured_pixels(chart: &Path) -> usize {
    let image = image::open(chart)
        .unwrap_or_else(|e| panic!("{}: {e}", chart.display()))
        .to_rgb8();
    image
        .pixels()
        .filter(|p| {
            let (max, min) = (p.0.iter().max().unwrap(), p.0.iter().min().unwrap());
            max - min > 60
        })
        .count()
}

/// Every file below `dir`, in its sub-folders too.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_below(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Writes `contents` to `path` as an executable (mode 755) through a child process (`sh`). A file
/// the test process writes itself cannot be run safely at once: a child that another test thread
/// forks while the file is open for writing inherits that descriptor, and until the child execs,
/// running the file fails with "Text file busy" (ETXTBSY). The child's descriptor never enters
/// this process, and it has exited before this returns.
pub fn write_executable(path: &Path, contents: &[u8]) {
    use std::io::Write;
    let mut sh = Command::new("sh")
        .args(["-c", "cat > \"$0\" && chmod 755 \"$0\""])
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("sh runs");
    sh.stdin.take().unwrap().write_all(contents).unwrap();
    let status = sh.wait().unwrap();
    assert!(status.success(), "writing {}: {status}", path.display());
}

/// Copies the executable `from` to `to` (mode 755) through a child process, as
/// [`write_executable`] writes one.
pub fn copy_executable(from: &Path, to: &Path) {
    let status = Command::new("sh")
        .args(["-c", "cp \"$0\" \"$1\" && chmod 755 \"$1\""])
        .args([from, to])
        .status()
        .expect("sh runs");
    assert!(
        status.success(),
        "copying {} to {}: {status}",
        from.display(),
        to.display()
    );
}

/// The names of the entries of `dir`, sorted (none where it does not exist).
pub fn sorted_names(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let name = |e: std::fs::DirEntry| e.file_name().to_string_lossy().into_owned();
    let mut names: Vec<String> = entries.map(|e| name(e.unwrap())).collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_shared_data_folder_skips_unless_required() {
        let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let missing = here.join("no-such-shared-data-folder");
        assert_eq!(found_or_skip(missing.clone(), false), None);
        let panic = std::panic::catch_unwind(|| found_or_skip(missing, true)).unwrap_err();
        let message = panic.downcast_ref::<String>().unwrap();
        assert!(message.contains("no-such-shared-data-folder"), "{message}");
        assert!(
            message.contains("ECGFM_REQUIRE_SHARED_DATA is set"),
            "{message}"
        );
        // A folder that is there is returned whether or not it is required.
        assert_eq!(found_or_skip(here.clone(), false), Some(here.clone()));
        assert_eq!(found_or_skip(here.clone(), true), Some(here));
    }
}
