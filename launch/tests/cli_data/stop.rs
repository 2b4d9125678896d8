//! A dataset writer stopped by a signal: it removes its object-store lease before it exits (a
//! writer restarted on another machine finds the output free at once) and says how to go on.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ecgfm_data::store;
use object_store::ObjectStoreExt;

use crate::{s3, ECGFM};

/// Waits until the running `writer` has taken its lock (`locked`); fails if it ends first.
fn wait_for_lock(writer: &mut Child, mut locked: impl FnMut() -> bool) {
    ecgfm_test_support::wait_until("the synth's lock", 120, || {
        let ended = writer.try_wait().unwrap();
        assert!(
            ended.is_none(),
            "the synth ended ({ended:?}) before it took its lock"
        );
        locked()
    });
}

#[test]
fn a_writer_stopped_by_a_signal_removes_its_lease() {
    let Some(moto) = s3::MotoS3::start("stop-bucket") else {
        return;
    };
    let out = moto.url("ds");
    let args = ["data", "synth", "--out", &out, "--records", "500000"];
    let mut writer = Command::new(ECGFM)
        .args(args)
        .args(["--threads", "1"])
        .envs([
            ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ALLOW_HTTP", "true"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (object_store, root) = moto.open("ds");
    let lock = store::join(&root, "_ingest.lock");
    let leased = || store::block_on(object_store.head(&lock)).is_ok();
    wait_for_lock(&mut writer, leased);
    // SAFETY: kill(2) on the pid of a child spawned here and not yet reaped.
    unsafe { libc::kill(writer.id() as libc::pid_t, libc::SIGTERM) };
    let stopped = writer.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    assert_eq!(stopped.status.code(), Some(143), "{stderr}");
    assert!(
        stderr.contains("stopped by signal 15: run it again to write the dataset (it starts over)"),
        "{stderr}"
    );
    assert!(!leased(), "the stopped synth left its lease");
}

/// A writer started ignoring SIGHUP (`nohup`) goes on ignoring it, and still stops on SIGTERM.
#[test]
fn a_writer_started_under_nohup_outlives_a_hangup() {
    use std::os::unix::process::CommandExt;
    let dir = crate::common::temp_dir("stop-nohup");
    let out = dir.join("ds");
    let mut command = Command::new(ECGFM);
    command
        .args(["data", "synth", "--out", out.to_str().unwrap()])
        .args(["--records", "500000", "--threads", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: signal(2) is async-signal-safe; the child ignores SIGHUP as under nohup.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut writer = command.spawn().unwrap();
    wait_for_lock(&mut writer, || out.join("_ingest.lock").exists());
    let pid = writer.id() as libc::pid_t;
    // SAFETY: kill(2) on the pid of a child spawned here and not yet reaped.
    let signal = |sig| unsafe { libc::kill(pid, sig) };
    signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));
    assert!(writer.try_wait().unwrap().is_none(), "a hangup ended it");
    signal(libc::SIGTERM);
    let stopped = writer.wait_with_output().unwrap();
    assert_eq!(stopped.status.code(), Some(143), "{stopped:?}");
    // Its folder's lock file went with it (it stayed until 2026-12-06).
    assert!(!out.join("_ingest.lock").exists());
    std::fs::remove_dir_all(dir).unwrap();
}
