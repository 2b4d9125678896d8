//! The lease on an in-memory store, with short timings: refusals, renewals, takeovers, a lost
//! lease, and (through `Unreliable`, a store that applies a write but loses or delays its
//! answer) the answers a real network can lose.

use super::holder::{host_name, pid_exists, start_ticks};
use super::*;
use object_store::memory::InMemory;

use std::sync::atomic::{AtomicU8, Ordering};

use ecgfm_test_support::store::{Hooks, Intercepted};
use object_store::PutPayload;

const URL: &str = "memory://lease/ds";

fn memory() -> (Arc<dyn ObjectStore>, Path) {
    (Arc::new(InMemory::new()), Path::from("lease/ds"))
}

fn timing(renew_ms: u64, stale_ms: u64) -> LeaseTiming {
    LeaseTiming {
        renew: Duration::from_millis(renew_ms),
        stale: Duration::from_millis(stale_ms),
    }
}

fn take(
    object_store: &Arc<dyn ObjectStore>,
    root: &Path,
    writer: Writer,
    timing: LeaseTiming,
) -> Result<StoreLease, DataError> {
    match StoreLease::take(object_store, root, URL, writer, timing)? {
        LeaseOutcome::Held(lease) => Ok(lease),
        LeaseOutcome::Unsupported => panic!("memory stores create conditionally"),
    }
}

fn lock_at(object_store: &Arc<dyn ObjectStore>, root: &Path) -> Option<LockObject> {
    let path = store::join(root, LOCK_FILE);
    store::block_on(read_lock(object_store.as_ref(), &path)).unwrap()
}

fn put_lock(object_store: &Arc<dyn ObjectStore>, root: &Path, holder: &Holder) {
    let path = store::join(root, LOCK_FILE);
    store::block_on(object_store.put(&path, holder.bytes())).unwrap();
}

/// A holder of another lease: `writer` as pid `pid` on `host`, of no known machine.
fn other(writer: &str, pid: u32, host: &str) -> Holder {
    Holder {
        writer: writer.into(),
        pid,
        host: host.into(),
        lease: "another lease".into(),
        boot: None,
        pid_ns: None,
        start: None,
        renewals: 0,
    }
}

#[test]
fn a_renewed_lease_keeps_others_out_and_is_removed_when_dropped() {
    let (object_store, root) = memory();
    let fast = timing(30, 300);
    let first = take(&object_store, &root, Writer::Ingest, fast).unwrap();
    assert_eq!(first.took_over, None);
    std::thread::sleep(Duration::from_millis(600));
    first.check().unwrap();
    let err = take(&object_store, &root, Writer::Merge, fast)
        .unwrap_err()
        .to_string();
    let me = format!("pid {} on {}", std::process::id(), host_name());
    let whose = format!("whose lock {URL}/{LOCK_FILE} was renewed 0 s ago");
    assert!(
        err.starts_with(&format!(
            "{URL} is being written by another ingest ({me}), {whose}"
        )),
        "{err}"
    );
    let renewals = lock_at(&object_store, &root)
        .unwrap()
        .holder
        .unwrap()
        .renewals;
    assert!(
        renewals >= 5,
        "{renewals} renewals in 600 ms at one per 30 ms"
    );
    check_free(object_store.as_ref(), &root, URL, fast).unwrap_err();
    drop(first);
    check_free(object_store.as_ref(), &root, URL, fast).unwrap();
    take(&object_store, &root, Writer::Merge, fast).unwrap();
}

#[test]
fn a_lease_left_unrenewed_is_taken_over_and_its_holder_stops() {
    let (object_store, root) = memory();
    let never_renewed = timing(3_600_000, 200);
    let first = take(&object_store, &root, Writer::Synth, never_renewed).unwrap();
    first.check().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let err = first.check().unwrap_err().to_string();
    let lost = format!("this writer lost its lock {URL}/{LOCK_FILE}: it could not be renewed");
    assert!(err.starts_with(&lost), "{err}");
    check_free(object_store.as_ref(), &root, URL, never_renewed).unwrap();
    let second = take(&object_store, &root, Writer::Ingest, never_renewed).unwrap();
    let note = second.took_over.clone().unwrap();
    let pid = std::process::id();
    assert!(
        note.starts_with(&format!(
            "took over the lock {URL}/{LOCK_FILE} left by another synth (pid {pid}"
        )),
        "{note}"
    );
    assert!(
        note.contains("last renewed 0 s ago, more than 0 s"),
        "{note}"
    );
    // The first writer's drop leaves the second's lock in place.
    drop(first);
    let err = take(&object_store, &root, Writer::Merge, timing(1000, 10_000))
        .unwrap_err()
        .to_string();
    assert!(err.contains("by another ingest (pid"), "{err}");
}

/// A machine suspended while it writes: its monotonic clock may leave out the sleep, the wall
/// clock counts it, and the longer span counts, so the writer stops on waking.
#[test]
fn a_holder_counts_the_time_since_its_renewal_by_the_longer_clock() {
    let (object_store, root) = memory();
    let lease = take(
        &object_store,
        &root,
        Writer::Ingest,
        timing(3_600_000, 60_000),
    )
    .unwrap();
    lease.check().unwrap();
    lease.state.lock().unwrap().renewed.1 -= Duration::from_secs(600);
    let err = lease.check().unwrap_err().to_string();
    assert!(err.contains("it could not be renewed for 10 min"), "{err}");
}

/// A writer whose lease went unrenewed for half the stale age stops, before the lock could
/// count as stale and be taken over by the next writer: never two writers at once.
#[test]
fn a_holder_stops_at_half_the_stale_age_before_its_lock_is_stale() {
    let (object_store, root) = memory();
    let never_renewed = timing(3_600_000, 4_000);
    let first = take(&object_store, &root, Writer::Synth, never_renewed).unwrap();
    std::thread::sleep(Duration::from_millis(2_100));
    let err = first.check().unwrap_err().to_string();
    assert!(err.contains("it could not be renewed for"), "{err}");
    // The lock is not stale yet: a second writer is still refused.
    check_free(object_store.as_ref(), &root, URL, never_renewed).unwrap_err();
}

#[test]
fn a_replaced_or_removed_lock_stops_its_holder_at_the_next_renewal() {
    let (object_store, root) = memory();
    let first = take(&object_store, &root, Writer::Ingest, timing(20, 10_000)).unwrap();
    put_lock(&object_store, &root, &other("merge", 7, "elsewhere"));
    std::thread::sleep(Duration::from_millis(200));
    let err = first.check().unwrap_err().to_string();
    let replaced = "it was replaced by another merge (pid 7 on elsewhere); it stopped";
    assert!(err.contains(replaced), "{err}");
    drop(first);
    let left = lock_at(&object_store, &root).unwrap();
    assert_eq!(left.describe_holder(), "merge (pid 7 on elsewhere)");

    let (object_store, root) = memory();
    let first = take(&object_store, &root, Writer::Ingest, timing(20, 10_000)).unwrap();
    store::block_on(object_store.delete(&store::join(&root, LOCK_FILE))).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let err = first.check().unwrap_err().to_string();
    assert!(err.contains(": it was removed;"), "{err}");
}

#[test]
fn an_ended_process_of_this_machine_is_told_from_a_live_or_a_foreign_one() {
    let slow = LeaseTiming::default();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let ended = child.id();
    child.wait().unwrap();
    let here = Holder::this_process(Writer::Ingest);
    assert!(here.start.is_some() && here.boot.is_some() && here.pid_ns.is_some());
    assert!(!here.ended_here(), "this process is alive");
    // A pid that is gone, or that names a process started at another time (a reused pid).
    for (pid, start) in [(ended, Some(1)), (here.pid, here.start.map(|s| s + 1))] {
        let (object_store, root) = memory();
        let gone = Holder {
            pid,
            start,
            lease: "an ended lease".into(),
            ..here.clone()
        };
        assert!(gone.ended_here());
        put_lock(&object_store, &root, &gone);
        check_free(object_store.as_ref(), &root, URL, slow).unwrap();
        let lease = take(&object_store, &root, Writer::Ingest, slow).unwrap();
        let note = lease.took_over.clone().unwrap();
        assert!(note.ends_with("): its process has ended"), "{note}");
    }
    // The same pid in another pid namespace or boot, on another host, or a lock that does not
    // parse, counts as at work.
    let foreign = [
        Holder {
            pid: ended,
            pid_ns: Some("pid:[1]".into()),
            ..here.clone()
        },
        Holder {
            pid: ended,
            boot: Some("another boot".into()),
            ..here.clone()
        },
        Holder {
            pid: ended,
            host: "elsewhere".into(),
            ..here.clone()
        },
    ];
    for holder in &foreign {
        assert!(!holder.ended_here(), "{holder:?}");
    }
    let (object_store, root) = memory();
    let path = store::join(&root, LOCK_FILE);
    store::block_on(object_store.put(&path, PutPayload::from_static(b"not json"))).unwrap();
    let err = take(&object_store, &root, Writer::Ingest, slow)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("being written by another ecgfm command, whose lock"),
        "{err}"
    );
    assert!(err.contains("taken over once it is 10 min old"), "{err}");
}

#[test]
fn a_lock_without_a_time_is_never_stale() {
    let lock = LockObject {
        holder: Some(other("ingest", 1, "elsewhere")),
        version: UpdateVersion {
            e_tag: None,
            version: None,
        },
        age: None,
    };
    assert_eq!(lock.stale_because(timing(1, 1)), None);
    let err = busy(URL, "memory://lease/ds/_ingest.lock", &lock, timing(1, 1)).to_string();
    let which = "another ingest (pid 1 on elsewhere), which holds the lock memory://lease/ds/";
    assert!(err.contains(which), "{err}");
    assert_eq!(start_ticks(u32::MAX), None);
    // What is asked of the kernel where /proc hides a process (`hidepid`).
    assert!(pid_exists(std::process::id()) && pid_exists(1));
    assert!(!pid_exists(0) && !pid_exists(u32::MAX) && !pid_exists(i32::MAX as u32));
}

#[test]
fn an_ended_process_not_yet_reaped_counts_as_ended() {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    // Not waited for: once it exits it stays a zombie until `wait`.
    let started = std::time::Instant::now();
    while std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z")) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "true did not end"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "a zombie keeps its /proc entry"
    );
    assert_eq!(start_ticks(pid), None);
    let zombie = Holder {
        pid,
        ..Holder::this_process(Writer::Ingest)
    };
    assert!(zombie.ended_here());
    child.wait().unwrap();
    assert!(start_ticks(std::process::id()).is_some());
}

/// What `Unreliable` does to the next write of a kind.
const APPLY_AND_FAIL: u8 = 1;
const APPLY_AND_DELAY: u8 = 2;
const APPLY_THEN_ALREADY_EXISTS: u8 = 3;
const RIVAL_FIRST: u8 = 4;

/// Store hooks by which the next conditional update (or create) is applied and then answered
/// with an error (a timeout after the store wrote it), late, or as a retry would be answered;
/// or comes after a rival writer's (`rival`), which then fails its condition.
#[derive(Debug, Default)]
struct Unreliable {
    next_update: AtomicU8,
    next_create: AtomicU8,
    delayed: AtomicU8,
}

#[async_trait::async_trait]
impl Hooks for Unreliable {
    async fn put_opts(
        &self,
        inner: &dyn ObjectStore,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let what = match opts.mode {
            PutMode::Update(_) => self.next_update.swap(0, Ordering::SeqCst),
            PutMode::Create => self.next_create.swap(0, Ordering::SeqCst),
            PutMode::Overwrite => 0,
        };
        if what == RIVAL_FIRST {
            inner.put(location, rival().bytes()).await?;
        }
        let written = inner.put_opts(location, payload, opts).await?;
        match what {
            APPLY_AND_FAIL => Err(object_store::Error::Generic {
                store: "Unreliable",
                source: "operation timed out".into(),
            }),
            APPLY_AND_DELAY => {
                self.delayed.store(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok(written)
            }
            APPLY_THEN_ALREADY_EXISTS => Err(object_store::Error::AlreadyExists {
                path: location.to_string(),
                source: "the retry of an applied create".into(),
            }),
            _ => Ok(written),
        }
    }
}

/// The writer whose write lands just before the next one `Unreliable` is told of (`RIVAL_FIRST`).
fn rival() -> Holder {
    other("synth", 9, "elsewhere")
}

fn unreliable_store() -> (Arc<Intercepted<Unreliable>>, Arc<dyn ObjectStore>, Path) {
    let store = Arc::new(Intercepted::in_memory(Unreliable::default()));
    (store.clone(), store, Path::from("lease/ds"))
}

#[test]
fn a_write_applied_but_answered_with_an_error_is_recognised_as_our_own() {
    // A renewal the store applied, its answer lost: the next renewal is refused, and the lock
    // read back is this lease's.
    let (unreliable, object_store, root) = unreliable_store();
    unreliable
        .hooks
        .next_update
        .store(APPLY_AND_FAIL, Ordering::SeqCst);
    let lease = take(&object_store, &root, Writer::Ingest, timing(40, 100_000)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    lease.check().unwrap();
    let renewals = lock_at(&object_store, &root)
        .unwrap()
        .holder
        .unwrap()
        .renewals;
    assert!(renewals >= 3, "renewals went on: {renewals}");
    drop(lease);
    assert!(lock_at(&object_store, &root).is_none(), "the lock was left");

    // A create the store applied whose retry met the object it made.
    let (unreliable, object_store, root) = unreliable_store();
    unreliable
        .hooks
        .next_create
        .store(APPLY_THEN_ALREADY_EXISTS, Ordering::SeqCst);
    let lease = take(&object_store, &root, Writer::Merge, timing(40, 100_000)).unwrap();
    assert_eq!(lease.took_over, None);
    drop(lease);
    assert!(lock_at(&object_store, &root).is_none(), "the lock was left");
}

#[test]
fn a_lease_dropped_during_a_renewal_is_removed() {
    let (unreliable, object_store, root) = unreliable_store();
    unreliable
        .hooks
        .next_update
        .store(APPLY_AND_DELAY, Ordering::SeqCst);
    let lease = take(&object_store, &root, Writer::Ingest, timing(30, 100_000)).unwrap();
    while unreliable.hooks.delayed.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    lease.check().unwrap();
    drop(lease);
    assert!(lock_at(&object_store, &root).is_none(), "the lock was left");
}

/// Of two writers taking over one stale lock, one wins: a takeover is conditional on the version
/// read, so one that comes after another writer's is refused, naming that writer.
#[test]
fn a_takeover_that_comes_after_another_is_refused() {
    let (unreliable, object_store, root) = unreliable_store();
    let stale_soon = timing(3_600_000, 500);
    put_lock(&object_store, &root, &other("ingest", 5, "gone"));
    std::thread::sleep(Duration::from_millis(700));
    unreliable
        .hooks
        .next_update
        .store(RIVAL_FIRST, Ordering::SeqCst);
    let err = take(&object_store, &root, Writer::Merge, stale_soon)
        .unwrap_err()
        .to_string();
    let rival = format!(
        "being written by another {}, whose lock",
        rival().describe()
    );
    assert!(err.contains(&rival), "{err}");
}

/// A create the store applied but answered with an error (retries inside the store client spent):
/// the writer fails, and removes the lock naming it rather than keep other machines' writers out
/// for the stale age.
#[test]
fn a_take_that_fails_after_its_write_was_applied_leaves_no_lock() {
    let (unreliable, object_store, root) = unreliable_store();
    unreliable
        .hooks
        .next_create
        .store(APPLY_AND_FAIL, Ordering::SeqCst);
    let err = take(&object_store, &root, Writer::Ingest, timing(40, 100_000))
        .unwrap_err()
        .to_string();
    assert!(err.contains("operation timed out"), "{err}");
    assert!(lock_at(&object_store, &root).is_none(), "the lock was left");
    take(&object_store, &root, Writer::Merge, timing(40, 100_000)).unwrap();
}
