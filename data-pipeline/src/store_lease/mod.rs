//! A writer's lease on an object-store output (`s3://`, `gs://`, `az://`, `memory://`): the
//! object-store counterpart of a local folder's `flock` (`out_lock`). Object stores have no
//! locks, but they can create an object only where none exists (S3 `If-None-Match: *`, GCS
//! `x-goog-if-generation-match: 0`, Azure `If-None-Match: *`) and replace one only while it is
//! the version read (`If-Match`). So a writer creates `_ingest.lock` under the output, naming
//! itself (`holder.rs`), and a second writer's create fails: it is refused, naming the first.
//!
//! A killed writer cannot remove its object, so the lease is renewed: a task on the store
//! runtime rewrites the object every `LeaseTiming::renew` (60 s), conditional on the version it
//! last wrote, and a lock the store says was last written more than `LeaseTiming::stale` ago
//! (10 minutes, by the reader's clock: machines' clocks must agree to within minutes) is taken
//! over by the next writer, conditionally too (of two writers taking over one stale lock, one
//! wins). A lock naming a process of this machine that has ended is taken over at once, so an
//! interrupted ingest resumes straight away where it ran.
//!
//! The holder checks its lease before each write (`StoreLease::check`): a renewal refused
//! because the object now names another lease means another writer took it over; renewals
//! failing for `stale / 2` (by the monotonic and the wall clock, so a suspended machine counts
//! its sleep) mean one might have. Either stops the writer before it writes more. Dropping the
//! lease stops the renewals and removes the object if it still names this lease (read back
//! just before: object stores have no conditional delete).
//!
//! A process stopped by a signal runs no destructor, so the leases it holds are also listed in
//! a process-wide registry, and `release_held` (which the `ecgfm` command's stop-signal watcher
//! calls through `out_lock::release_held` before it exits) removes them: a writer preempted on
//! one machine and restarted on another finds its output free at once.

mod holder;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutResult, UpdateVersion};

use crate::error::DataError;
use crate::out_lock::{Writer, LOCK_FILE, TWO_WRITERS};
use crate::store;

use holder::Holder;

/// How long dropping a lease may take to remove its object before leaving it (a store that
/// cannot be reached would otherwise hold the writer's exit for minutes of retries).
const RELEASE_WITHIN: Duration = Duration::from_secs(15);

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

/// Where a lock object lies: its store and path.
type LockPlace = (Arc<dyn ObjectStore>, Path);

/// The leases this process holds (by lease id), for `release_held`.
static HELD: Mutex<BTreeMap<String, LockPlace>> = Mutex::new(BTreeMap::new());

/// Removes every lock object this process's leases hold (each only where it still names its lease
/// when read back), for a process about to exit without running destructors (on a stop signal).
/// Their renewals then fail (the object is gone) and the writers stop. Called from synchronous
/// code, not inside a tokio runtime; gives up after `RELEASE_WITHIN`.
pub fn release_held() {
    let held: Vec<_> = HELD
        .lock()
        .expect("the lease registry is never poisoned")
        .iter()
        .map(|(lease, (store, path))| (lease.clone(), store.clone(), path.clone()))
        .collect();
    let release = futures::future::join_all(
        held.iter()
            .map(|(lease, store, path)| remove_if_held(store.as_ref(), path, lease)),
    );
    let _ = store::block_on(async { tokio::time::timeout(RELEASE_WITHIN, release).await });
}

/// Removes the lock object at `path` if it names `lease`.
async fn remove_if_held(object_store: &dyn ObjectStore, path: &Path, lease: &str) {
    if let Ok(Some(lock)) = read_lock(object_store, path).await {
        if lock.holds(lease) {
            let _ = object_store.delete(path).await;
        }
    }
}

/// What the renewal task and the writer share.
#[derive(Debug)]
struct State {
    holder: Holder,
    version: UpdateVersion,
    /// The last renewal, by the monotonic clock and by the wall clock.
    renewed: (Instant, SystemTime),
    /// Why the lease is lost, once it is.
    lost: Option<String>,
}

impl State {
    fn renewed(&mut self, version: UpdateVersion) {
        self.version = version;
        self.renewed = (Instant::now(), SystemTime::now());
    }

    /// Since the last renewal: the longer of the two clocks' spans.
    fn since_renewed(&self) -> Duration {
        let wall = SystemTime::now()
            .duration_since(self.renewed.1)
            .unwrap_or_default();
        self.renewed.0.elapsed().max(wall)
    }
}

/// A held lease, renewed until dropped; dropping it removes the lock object (when it still names
/// this lease).
#[derive(Debug)]
pub struct StoreLease {
    store: Arc<dyn ObjectStore>,
    path: Path,
    /// The lock's URL, credentials removed, for messages.
    shown: String,
    timing: LeaseTiming,
    state: Arc<Mutex<State>>,
    renewal: Option<tokio::task::JoinHandle<()>>,
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
    /// refuses (`DataError::Busy`) when another writer holds it. Writes only the lock object.
    /// Called from synchronous code, not inside a tokio runtime (it blocks on the store's).
    pub fn take(
        object_store: &Arc<dyn ObjectStore>,
        root: &Path,
        url: &str,
        writer: Writer,
        timing: LeaseTiming,
    ) -> Result<LeaseOutcome, DataError> {
        let path = store::join(root, LOCK_FILE);
        let holder = Holder::this_process(writer);
        // Registered before the first write, so that a stop signal that comes between the
        // write and the lease's start still finds its object (`release_held`).
        let registry = || HELD.lock().expect("the lease registry is never poisoned");
        let place = (object_store.clone(), path.clone());
        registry().insert(holder.lease.clone(), place);
        let taken = Self::take_as(object_store, &path, url, &holder, timing);
        if taken.is_err() {
            // The store may have applied a write whose every answer was an error: a lock naming
            // this lease would keep other machines' writers out for the stale age.
            let release = remove_if_held(object_store.as_ref(), &path, &holder.lease);
            let _ = store::block_on(async { tokio::time::timeout(RELEASE_WITHIN, release).await });
        }
        if !matches!(taken, Ok(LeaseOutcome::Held(_))) {
            registry().remove(&holder.lease);
        }
        taken
    }

    /// `take` for `holder`, registered.
    fn take_as(
        object_store: &Arc<dyn ObjectStore>,
        path: &Path,
        url: &str,
        holder: &Holder,
        timing: LeaseTiming,
    ) -> Result<LeaseOutcome, DataError> {
        let shown = lock_url(url);
        let put = |mode: PutMode| {
            let put = object_store.put_opts(path, holder.bytes(), PutOptions::from(mode));
            store::block_on(put)
        };
        let held = |version, took_over| {
            let mut lease = Self::start(object_store, path, &shown, timing, holder, version);
            lease.took_over = took_over;
            LeaseOutcome::Held(lease)
        };
        // A lock released, replaced or taken between our write and our read is looked at
        // again, a bounded number of times.
        for _ in 0..8 {
            let lock = match put(PutMode::Create) {
                Ok(written) => return Ok(held(version_of(written), None)),
                Err(object_store::Error::NotImplemented { .. }) => {
                    return Ok(LeaseOutcome::Unsupported)
                }
                Err(object_store::Error::AlreadyExists { .. }) => {
                    match store::block_on(read_lock(object_store.as_ref(), path))? {
                        Some(lock) => lock,
                        None => continue,
                    }
                }
                Err(source) => return Err(store::store_error(object_store.as_ref(), path)(source)),
            };
            // Our own write, applied by the store though its answer was lost (then retried).
            if lock.holds(&holder.lease) {
                return Ok(held(lock.version, None));
            }
            let Some(why) = lock.stale_because(timing) else {
                return Err(busy(url, &shown, &lock, timing));
            };
            match put(PutMode::Update(lock.version.clone())) {
                Ok(written) => {
                    let note = format!(
                        "took over the lock {shown} left by another {}: {why}",
                        lock.describe_holder()
                    );
                    return Ok(held(version_of(written), Some(note)));
                }
                Err(
                    object_store::Error::Precondition { .. }
                    | object_store::Error::AlreadyExists { .. }
                    | object_store::Error::NotFound { .. },
                ) => continue,
                Err(source) => return Err(store::store_error(object_store.as_ref(), path)(source)),
            }
        }
        Err(DataError::Busy(format!(
            "{}: other writers keep taking and releasing its lock {shown}: choose another --out \
             or run again later",
            store::redact_url(url)
        )))
    }

    fn start(
        object_store: &Arc<dyn ObjectStore>,
        path: &Path,
        shown: &str,
        timing: LeaseTiming,
        holder: &Holder,
        version: UpdateVersion,
    ) -> Self {
        let state = Arc::new(Mutex::new(State {
            holder: holder.clone(),
            version,
            renewed: (Instant::now(), SystemTime::now()),
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
            path: path.clone(),
            shown: shown.to_string(),
            timing,
            state,
            renewal: Some(renewal),
            took_over: None,
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
            None if state.since_renewed() > self.timing.stale / 2 => format!(
                "it could not be renewed for {}, so another writer may have taken it over",
                span(state.since_renewed())
            ),
            None => return Ok(()),
        };
        Err(DataError::Busy(format!(
            "this writer lost its lock {}: {why}; it stopped before writing more (run it again \
             once no other writer is at work there)",
            self.shown
        )))
    }
}

impl Drop for StoreLease {
    /// Stops the renewals (aborting one in flight and waiting until it has stopped), then
    /// removes the lock object if it still names this lease (read back first: object stores
    /// have no conditional delete), giving up after `RELEASE_WITHIN`; unregisters the lease last,
    /// so a stop signal meanwhile still removes it.
    fn drop(&mut self) {
        let Some(renewal) = self.renewal.take() else {
            return;
        };
        renewal.abort();
        let lease = (self.state.lock())
            .expect("the lease state is never poisoned")
            .holder
            .lease
            .clone();
        let (object_store, path) = (self.store.as_ref(), &self.path);
        let release = async {
            let _ = renewal.await;
            remove_if_held(object_store, path, &lease).await;
        };
        let _ = store::block_on(async { tokio::time::timeout(RELEASE_WITHIN, release).await });
        HELD.lock()
            .expect("the lease registry is never poisoned")
            .remove(&lease);
    }
}

/// The renewal task: rewrites the lock every `every`, conditional on the version last written,
/// until a renewal finds the lock taken by another lease or removed (the lease is lost then).
async fn renew(
    object_store: Arc<dyn ObjectStore>,
    path: Path,
    every: Duration,
    state: Arc<Mutex<State>>,
) {
    loop {
        tokio::time::sleep(every).await;
        let (holder, version) = {
            let mut state = state.lock().expect("the lease state is never poisoned");
            state.holder.renewals += 1;
            (state.holder.clone(), state.version.clone())
        };
        let put = PutOptions::from(PutMode::Update(version));
        let refused = match object_store.put_opts(&path, holder.bytes(), put).await {
            Ok(written) => {
                let mut state = state.lock().expect("the lease state is never poisoned");
                state.renewed(version_of(written));
                continue;
            }
            // Some stores answer an update of a removed object as a failed precondition.
            Err(
                object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. },
            ) => read_lock(object_store.as_ref(), &path).await,
            // A failed request (the network, the store) is tried again at the next renewal;
            // `check` stops the writer once renewals have failed for long.
            Err(_) => continue,
        };
        let lost = match refused {
            // Our own renewal, applied by the store though its answer was lost.
            Ok(Some(lock)) if lock.holds(&holder.lease) => {
                let mut state = state.lock().expect("the lease state is never poisoned");
                state.renewed(lock.version);
                continue;
            }
            Ok(Some(lock)) => format!("it was replaced by another {}", lock.describe_holder()),
            Ok(None) => "it was removed".to_string(),
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
struct LockObject {
    holder: Option<Holder>,
    version: UpdateVersion,
    /// Since the store last wrote it, by this machine's clock; `None` where the store gives no
    /// time.
    age: Option<Duration>,
}

impl LockObject {
    fn holds(&self, lease: &str) -> bool {
        self.holder.as_ref().is_some_and(|h| h.lease == lease)
    }

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
        let age = self.age.filter(|age| *age > timing.stale)?;
        Some(format!(
            "last renewed {} ago, more than {}",
            span(age),
            span(timing.stale)
        ))
    }
}

/// Reads the lock object at `path`, or `None` when there is none.
async fn read_lock(
    object_store: &dyn ObjectStore,
    path: &Path,
) -> Result<Option<LockObject>, DataError> {
    let read = async {
        let got = object_store.get(path).await?;
        let meta = got.meta.clone();
        let bytes: bytes::Bytes = got.bytes().await?;
        Ok::<_, object_store::Error>((meta, bytes))
    };
    let (meta, bytes) = match read.await {
        Ok(read) => read,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(source) => return Err(store::store_error(object_store, path)(source)),
    };
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    // A store that sends no modification time reads as the epoch: no age then.
    let written_ms = meta.last_modified.timestamp_millis();
    let age = (written_ms > 0).then(|| Duration::from_millis((now_ms - written_ms).max(0) as u64));
    Ok(Some(LockObject {
        holder: serde_json::from_slice(&bytes).ok(),
        version: UpdateVersion {
            e_tag: meta.e_tag,
            version: meta.version,
        },
        age,
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
    match store::block_on(read_lock(object_store, &path))? {
        Some(lock) if lock.stale_because(timing).is_none() => {
            Err(busy(url, &lock_url(url), &lock, timing))
        }
        _ => Ok(()),
    }
}

/// The lock's URL, credentials removed.
fn lock_url(url: &str) -> String {
    format!(
        "{}/{LOCK_FILE}",
        store::redact_url(url).trim_end_matches('/')
    )
}

/// The refusal of an output whose lock another writer holds.
fn busy(url: &str, shown: &str, lock: &LockObject, timing: LeaseTiming) -> DataError {
    let lock_held = match lock.age {
        Some(age) => format!("whose lock {shown} was renewed {} ago", span(age)),
        None => format!("which holds the lock {shown}"),
    };
    DataError::Busy(format!(
        "{} is being written by another {}, {lock_held}; {TWO_WRITERS}. A writer killed on \
         another machine leaves its lock, taken over once it is {} old; remove it sooner only \
         when that writer is surely gone",
        store::redact_url(url),
        lock.describe_holder(),
        span(timing.stale)
    ))
}

/// "40 s", "12 min"
fn span(duration: Duration) -> String {
    match duration.as_secs() {
        s if s < 120 => format!("{s} s"),
        s => format!("{} min", s / 60),
    }
}

#[cfg(test)]
mod tests;
