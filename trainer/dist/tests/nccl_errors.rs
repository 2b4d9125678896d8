//! NCCL's errors in words, through cudarc's loader and a stand-in `libnccl.so` (a few lines of
//! C, first on `LD_LIBRARY_PATH`): the error's name, NCCL's meaning of it and NCCL's account of
//! its last failure, where cudarc alone says `NcclError`. The test runs itself again as a child
//! process, because the loader reads `LD_LIBRARY_PATH` only when a process starts.

use cudarc::nccl::result::NcclError;
use cudarc::nccl::sys::ncclResult_t;
use ecgfm_dist::nccl::describe_nccl;
use ecgfm_test_support::stand_in;

/// Set in the child: describe the errors instead of starting a child.
const CHILD: &str = "ECGFM_NCCL_ERRORS_CHILD";

/// NCCL 2.27's words for two errors, and a last error as NCCL words a refused connection.
const FAKE_NCCL: &str = r#"
const char *ncclGetErrorString(int result) {
    switch (result) {
    case 2: return "unhandled system error (run with NCCL_DEBUG=INFO for details)";
    case 6: return "remote process exited or there was a network error";
    default: return "unknown result code";
    }
}
const char *ncclGetLastError(void *comm) {
    (void)comm;
    return "socket.cc:484 NCCL WARN socketStartConnect: Connect to 10.0.0.2<43515> failed";
}
"#;

#[test]
fn an_nccl_error_is_named_with_its_meaning_and_nccls_last_error() {
    if std::env::var_os(CHILD).is_some() {
        for code in [ncclResult_t::ncclSystemError, ncclResult_t::ncclRemoteError] {
            println!("{}", describe_nccl(&NcclError(code)));
        }
        return;
    }
    let dir = std::env::temp_dir().join(format!("ecgfm-fake-nccl-{}", std::process::id()));
    stand_in::build(&dir, FAKE_NCCL, &["libnccl.so"]);
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "an_nccl_error_is_named_with_its_meaning_and_nccls_last_error",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("LD_LIBRARY_PATH", stand_in::library_path_first(&dir))
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let out = String::from_utf8_lossy(&child.stdout);
    assert!(
        child.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&child.stderr)
    );
    let last = "NCCL says: socket.cc:484 NCCL WARN socketStartConnect: Connect to \
                10.0.0.2<43515> failed";
    for said in [
        format!("ncclSystemError (unhandled system error (run with NCCL_DEBUG=INFO for details)); {last}"),
        format!("ncclRemoteError (remote process exited or there was a network error); {last}"),
    ] {
        assert!(out.contains(&said), "{said}\nnot in\n{out}");
    }
}
