//! A writer's lease on an object-store output (`s3://`, `gs://`, `az://`, `memory://`): the
//! object-store counterpart of a local folder's `flock` (`out_lock`). Object stores have no
//! locks, but they can create an object only where none exists (S3 `If-None-Match: *`, GCS
//! `x-goog-if-generation-match: 0`, Azure `If-None-Match: *`) and replace one only while it is
//! the version read (`If-Match`). So a writer creates `_ingest.lock` under the output, naming
//! itself (command, pid, host), and a second writer's create fails: it is refused, naming the
//! first.
//!
//! A killed writer cannot remove its object, so the lease is renewed: a task on the store
//! runtime rewrites the object every `LeaseTiming::renew` (60 s), conditional on the version it
//! last wrote, and a lock the store says was last written more than `LeaseTiming::stale` ago
//! (10 minutes) is taken over by the next writer (conditionally too: of two writers taking over
//! one stale lock, one wins). A lock naming this host and a process that has ended is taken over
//! at once, so an interrupted ingest resumes straight away on the machine that ran it.
//!
//! The holder checks its lease before each write (`StoreLease::check`): a renewal refused
//! because the object changed means another writer took it over; renewals failing for
//! `stale / 2` mean one might have. Either stops the writer before it writes more.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use object_store::path::Path;
use object_store::{
    ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, PutResult, UpdateVersion,
};
use serde::{Deserialize, Serialize};

use crate::error::DataError;
use crate::out_lock::{Writer, LOCK_FILE};
use crate::store;

/// How often a lease is renewed, and how long after its last renewal another writer takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    pub renew: Duration,
    pub stale: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        LeaseTiming {
            renew: Duration::from_secs(60),
            stale: Duration::from_secs(600),
        }
    }
}

/// What the lock object holds: who writes the output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Holder {
    writer: String,
    pid: u32,
    host: String,
    /// Renewals so far: every renewal writes other bytes, hence a new version on every store.
    renewals: u64,
}

impl Holder {
    fn this_process(writer: Writer) -> Self {
        Holder {
            writer: writer.name().to_string(),
            pid: std::process::id(),
            host: host_name(),
            renewals: 0,
        }
    }

    fn bytes(&self) -> PutPayload {
        PutPayload::from(serde_json::to_vec(self).expect("a lock holder serialises"))
    }

    /// "ingest (pid 4242 on node17)"
    fn describe(&self) -> String {
        format!("{} (pid {} on {})", self.writer, self.pid, self.host)
    }

    /// Whether the holder is a process of this host that has ended.
    fn ended_here(&self) -> bool {
        self.host == host_name() && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

/// This machine's name (as `hostname` prints it).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "an unnamed host".to_string())
}

/// What the renewal task and the writer share.
#[derive(Debug)]
struct State {
    holder: Holder,
    version: UpdateVersion,
    last_renewed: Instant,
    /// Why the lease is lost, once it is.
    lost: Option<String>,
}

/// A held lease, renewed until dropped; dropping it removes the lock object (when it is still
/// this writer's).
#[derive(Debug)]
pub struct StoreLease {
    store: Arc<dyn ObjectStore>,
    path: Path,
    /// The lock's URL, credentials removed, for messages.
    shown: String,
    timing: LeaseTiming,
    state: Arc<Mutex<State>>,
    renewal: tokio::task::JoinHandle<()>,
    /// Whose stale lock this writer took over, and why it was stale.
    pub took_over: Option<String>,
}

/// The outcome of trying for a lease on a store.
#[derive(Debug)]
pub enum LeaseOutcome {
    Held(StoreLease),
    /// The store cannot create an object only where none exists (S3 with conditional puts
    /// disabled): writers there cannot be kept apart.
    Unsupported,
}

impl StoreLease {
    /// Takes the lease of the output at `root` (`url` names it in messages) for `writer`, or
    /// refuses (`DataError::Refused`) when another writer holds it. Writes only the lock object.
    pub fn take(
        object_store: &Arc<dyn ObjectStore>,
        root: &Path,
        url: &str,
        writer: Writer,
        timing: LeaseTiming,
    ) -> Result<LeaseOutcome, DataError> {
        let path = store::join(root, LOCK_FILE);
        let shown = format!(
            "{}/{LOCK_FILE}",
            store::redact_url(url).trim_end_matches('/')
        );
        let holder = Holder::this_process(writer);
        let create = PutOptions::from(PutMode::Create);
        // A lock released or replaced between our create and our read is looked at again, a
        // bounded number of times.
        for _ in 0..8 {
            let put = object_store.put_opts(&path, holder.bytes(), create.clone());
            let held = match store::block_on(put) {
                Ok(written) => {
                    return Ok(LeaseOutcome::Held(Self::start(
                        object_store,
                        path,
                        shown,
                        timing,
                        holder,
                        written,
                        None,
                    )))
                }
                Err(object_store::Error::NotImplemented { .. }) => {
                    return Ok(LeaseOutcome::Unsupported)
                }
                Err(object_store::Error::AlreadyExists { .. }) => {
                    match store::block_on(read_lock(object_store.as_ref(), &path))? {
                        Some(held) => held,
                        None => continue,
                    }
                }
                Err(source) => return Err(store::store_error(&path)(source)),
            };
            let Some(why) = held.stale_because(timing) else {
                return Err(busy(url, &shown, &held, timing));
            };
            let replace = PutOptions::from(PutMode::Update(held.version.clone()));
            let put = object_store.put_opts(&path, holder.bytes(), replace);
            match store::block_on(put) {
                Ok(written) => {
                    let note = format!(
                        "took over the lock {shown} left by another {} ({why})",
                        held.describe_holder()
                    );
                    return Ok(LeaseOutcome::Held(Self::start(
                        object_store,
                        path,
                        shown,
                        timing,
                        holder,
                        written,
                        Some(note),
                    )));
                }
                Err(
                    object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. },
                ) => continue,
                Err(source) => return Err(store::store_error(&path)(source)),
            }
        }
        Err(DataError::Refused(format!(
            "{}: other writers keep taking and releasing its lock {shown}; two writers into one \
             dataset would leave it broken: choose another --out or run again later",
            store::redact_url(url)
        )))
    }

    fn start(
        object_store: &Arc<dyn ObjectStore>,
        path: Path,
        shown: String,
        timing: LeaseTiming,
        holder: Holder,
        written: PutResult,
        took_over: Option<String>,
    ) -> Self {
        let state = Arc::new(Mutex::new(State {
            holder,
            version: version_of(written),
            last_renewed: Instant::now(),
            lost: None,
        }));
        let renewal = store::runtime().spawn(renew(
            object_store.clone(),
            path.clone(),
            timing.renew,
            state.clone(),
        ));
        StoreLease {
            store: object_store.clone(),
            path,
            shown,
            timing,
            state,
            renewal,
            took_over,
        }
    }

    /// `Ok` while this writer may go on writing: its lease was renewed within `stale / 2` and
    /// no other writer has replaced it; else the refusal that stops it.
    pub fn check(&self) -> Result<(), DataError> {
        let state = self
            .state
            .lock()
            .expect("the lease state is never poisoned");
        let why = match &state.lost {
            Some(why) => why.clone(),
            None if state.last_renewed.elapsed() > self.timing.stale / 2 => format!(
                "it could not be renewed for {} s, so another writer may have taken it over",
                state.last_renewed.elapsed().as_secs()
            ),
            None => return Ok(()),
        };
        Err(DataError::Refused(format!(
            "this writer lost its lock {}: {why}; it stopped before writing more (run it again \
             once no other writer is at work there)",
            self.shown
        )))
    }
}

impl Drop for StoreLease {
    /// Stops the renewals, then removes the lock object if it is still the version this writer
    /// wrote last.
    fn drop(&mut self) {
        self.renewal.abort();
        let ours = {
            let state = self
                .state
                .lock()
                .expect("the lease state is never poisoned");
            if state.lost.is_some() {
                return;
            }
            state.version.e_tag.clone()
        };
        let (object_store, path) = (self.store.clone(), self.path.clone());
        let _ = store::block_on(async move {
            let now = object_store.head(&path).await?;
            if now.e_tag.is_some() && now.e_tag == ours {
                object_store.delete(&path).await?;
            }
            Ok::<(), object_store::Error>(())
        });
    }
}

/// The renewal task: rewrites the lock every `every`, conditional on the version last written,
/// until a renewal finds the lock replaced or removed (the lease is lost then).
async fn renew(
    object_store: Arc<dyn ObjectStore>,
    path: Path,
    every: Duration,
    state: Arc<Mutex<State>>,
) {
    loop {
        tokio::time::sleep(every).await;
        let (bytes, version) = {
            let mut state = state.lock().expect("the lease state is never poisoned");
            state.holder.renewals += 1;
            (state.holder.bytes(), state.version.clone())
        };
        let put = PutOptions::from(PutMode::Update(version));
        let lost = match object_store.put_opts(&path, bytes, put).await {
            Ok(written) => {
                let mut state = state.lock().expect("the lease state is never poisoned");
                state.version = version_of(written);
                state.last_renewed = Instant::now();
                continue;
            }
            // Some stores answer an update of a removed object as a failed precondition.
            Err(object_store::Error::Precondition { .. }) => {
                match read_lock(object_store.as_ref(), &path).await {
                    Ok(Some(held)) => {
                        format!("it was replaced by another {}", held.describe_holder())
                    }
                    Ok(None) => "it was removed".to_string(),
                    Err(_) => "it was replaced".to_string(),
                }
            }
            Err(object_store::Error::NotFound { .. }) => "it was removed".to_string(),
            // A failed request (the network, the store) is tried again at the next renewal;
            // `check` stops the writer once renewals have failed for long.
            Err(_) => continue,
        };
        state
            .lock()
            .expect("the lease state is never poisoned")
            .lost = Some(lost);
        return;
    }
}

/// The version a put wrote, to make the next write conditional on.
fn version_of(written: PutResult) -> UpdateVersion {
    UpdateVersion {
        e_tag: written.e_tag,
        version: written.version,
    }
}

/// A lock object as read: its holder (when its bytes parse), version and age.
struct HeldLock {
    holder: Option<Holder>,
    version: UpdateVersion,
    /// Since the store last wrote it, by this machine's clock.
    age: Duration,
}

impl HeldLock {
    fn describe_holder(&self) -> String {
        match &self.holder {
            Some(holder) => holder.describe(),
            None => "ecgfm command".to_string(),
        }
    }

    /// Why the lock may be taken over, or `None` while its holder counts as at work.
    fn stale_because(&self, timing: LeaseTiming) -> Option<String> {
        if self.holder.as_ref().is_some_and(Holder::ended_here) {
            return Some("its process has ended".to_string());
        }
        (self.age > timing.stale).then(|| {
            format!(
                "last renewed {} ago, more than {}",
                minutes(self.age),
                minutes(timing.stale)
            )
        })
    }
}

/// Reads the lock object at `path`, or `None` when there is none.
async fn read_lock(
    object_store: &dyn ObjectStore,
    path: &Path,
) -> Result<Option<HeldLock>, DataError> {
    let read = async {
        let got = object_store.get(path).await?;
        let meta = got.meta.clone();
        let bytes: bytes::Bytes = got.bytes().await?;
        Ok::<_, object_store::Error>((meta, bytes))
    };
    let (meta, bytes) = match read.await {
        Ok(read) => read,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(source) => return Err(store::store_error(path)(source)),
    };
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let age_ms = (now_ms - meta.last_modified.timestamp_millis()).max(0) as u64;
    Ok(Some(HeldLock {
        holder: serde_json::from_slice(&bytes).ok(),
        version: UpdateVersion {
            e_tag: meta.e_tag,
            version: meta.version,
        },
        age: Duration::from_millis(age_ms),
    }))
}

/// Whether another writer holds the output at `root` now (`ingest --dry-run`): the refusal a
/// writer would meet, else `Ok`. Reads only.
pub fn check_free(
    object_store: &dyn ObjectStore,
    root: &Path,
    url: &str,
    timing: LeaseTiming,
) -> Result<(), DataError> {
    let path = store::join(root, LOCK_FILE);
    let shown = format!(
        "{}/{LOCK_FILE}",
        store::redact_url(url).trim_end_matches('/')
    );
    match store::block_on(read_lock(object_store, &path))? {
        Some(held) if held.stale_because(timing).is_none() => Err(busy(url, &shown, &held, timing)),
        _ => Ok(()),
    }
}

/// The refusal of an output whose lock another writer holds.
fn busy(url: &str, shown: &str, held: &HeldLock, timing: LeaseTiming) -> DataError {
    DataError::Refused(format!(
        "{} is being written by another {}, whose lock {shown} was renewed {} ago; two writers \
         into one dataset would leave it broken: wait until it ends (an interrupted ingest or \
         merge is resumed by running it again; a writer that was killed elsewhere leaves its \
         lock, taken over once it is {} old) or choose another --out",
        store::redact_url(url),
        held.describe_holder(),
        minutes(held.age),
        minutes(timing.stale)
    ))
}

/// "40 s", "12 min"
fn minutes(duration: Duration) -> String {
    match duration.as_secs() {
        s if s < 120 => format!("{s} s"),
        s => format!("{} min", s / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

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

    fn put_lock(object_store: &Arc<dyn ObjectStore>, root: &Path, bytes: &[u8]) {
        let path = store::join(root, LOCK_FILE);
        store::block_on(object_store.put(&path, bytes.to_vec().into())).unwrap();
    }

    fn holder_json(writer: &str, pid: u32, host: &str) -> Vec<u8> {
        format!(r#"{{"writer":"{writer}","pid":{pid},"host":"{host}","renewals":0}}"#).into_bytes()
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
        assert!(
            err.starts_with(&format!("{URL} is being written by another ingest ({me}), whose lock {URL}/{LOCK_FILE} was renewed 0 s ago")),
            "{err}"
        );
        let held = store::block_on(read_lock(
            object_store.as_ref(),
            &store::join(&root, LOCK_FILE),
        ))
        .unwrap()
        .unwrap();
        let renewals = held.holder.unwrap().renewals;
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
        assert!(
            err.starts_with(&format!("this writer lost its lock {URL}/{LOCK_FILE}: it could not be renewed for 0 s, so another writer may have taken it over")),
            "{err}"
        );
        check_free(object_store.as_ref(), &root, URL, never_renewed).unwrap();
        let second = take(&object_store, &root, Writer::Ingest, never_renewed).unwrap();
        let note = second.took_over.clone().unwrap();
        assert!(
            note.starts_with(&format!(
                "took over the lock {URL}/{LOCK_FILE} left by another synth (pid {}",
                std::process::id()
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

    #[test]
    fn a_replaced_lock_stops_its_holder_at_the_next_renewal() {
        let (object_store, root) = memory();
        let first = take(&object_store, &root, Writer::Ingest, timing(20, 10_000)).unwrap();
        put_lock(&object_store, &root, &holder_json("merge", 7, "elsewhere"));
        std::thread::sleep(Duration::from_millis(200));
        let err = first.check().unwrap_err().to_string();
        assert!(
            err.contains("it was replaced by another merge (pid 7 on elsewhere); it stopped before writing more"),
            "{err}"
        );
        drop(first);
        let left = store::block_on(read_lock(
            object_store.as_ref(),
            &store::join(&root, LOCK_FILE),
        ));
        assert_eq!(
            left.unwrap().unwrap().describe_holder(),
            "merge (pid 7 on elsewhere)"
        );

        let (object_store, root) = memory();
        let first = take(&object_store, &root, Writer::Ingest, timing(20, 10_000)).unwrap();
        store::block_on(object_store.delete(&store::join(&root, LOCK_FILE))).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let err = first.check().unwrap_err().to_string();
        assert!(err.contains(": it was removed;"), "{err}");
    }

    #[test]
    fn a_lock_of_an_ended_process_on_this_host_is_taken_at_once() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let ended = child.id();
        child.wait().unwrap();
        let slow = LeaseTiming::default();
        let (object_store, root) = memory();
        put_lock(
            &object_store,
            &root,
            &holder_json("ingest", ended, &host_name()),
        );
        check_free(object_store.as_ref(), &root, URL, slow).unwrap();
        let lease = take(&object_store, &root, Writer::Ingest, slow).unwrap();
        let note = lease.took_over.clone().unwrap();
        assert!(
            note.ends_with(&format!(
                "left by another ingest (pid {ended} on {}) (its process has ended)",
                host_name()
            )),
            "{note}"
        );

        // The same pid on another machine, or a lock that does not parse, counts as at work.
        for (bytes, who) in [
            (
                holder_json("merge", ended, "elsewhere"),
                format!("another merge (pid {ended} on elsewhere)"),
            ),
            (b"not json".to_vec(), "another ecgfm command".to_string()),
        ] {
            let (object_store, root) = memory();
            put_lock(&object_store, &root, &bytes);
            let err = take(&object_store, &root, Writer::Ingest, slow)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("is being written by {who}, whose lock")),
                "{err}"
            );
            assert!(err.contains("taken over once it is 10 min old"), "{err}");
        }
    }
}
