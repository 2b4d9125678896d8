//! `_ingest.lock`: one writer at a time into a dataset (a local folder here; an object store's
//! prefix through `store_lease`). Two commands writing one folder at once (two ingests, an ingest
//! and a merge, two `data synth`s) would both report success over a dataset whose manifest lists
//! the other's shards, so each of `data ingest`, `data merge` and `data synth` takes an advisory OS
//! lock (`flock`) on this file in its `--out` before it looks at what the folder holds, and holds
//! it to the end; a second writer there is refused at once, naming the folder and the first one's
//! command and pid (which the file holds), before it writes anything.
//!
//! The kernel releases the lock when its process ends, however it ends, so a writer that was
//! killed leaves no stale lock: the file may stay (readers never look at it: they read
//! `manifest.json` and the shards it names, and the journal by its name), and the next writer
//! takes it over (a resume proceeds as usual). A writer that ends removes the file (and the
//! output folder, where it made the folder and nothing else was written there), as does one
//! stopped by a signal (`release_held`).
//!
//! Object stores (`s3://`, `gs://`, `az://`, `memory://`) have no locks: there the writer holds
//! a lease instead, an `_ingest.lock` object created only where none exists and renewed while it
//! writes (`store_lease`). A store that cannot create objects conditionally keeps no writers
//! apart, and the writer says so (`OutputLock::note`).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use object_store::path::Path;
use object_store::ObjectStore;

use crate::error::DataError;
use crate::store;
use crate::store_lease::{self, LeaseOutcome, LeaseTiming, StoreLease};

/// Name of the lock file in a local output folder, and of the lease object on an object store.
pub const LOCK_FILE: &str = "_ingest.lock";

/// Tries at taking a held lock before refusing (a `--dry-run` asking whether the folder is
/// free holds it for an instant).
const TRIES: usize = 4;
const PAUSE: Duration = Duration::from_millis(50);

/// The command that holds a lock (`ecgfm data ingest`, `merge` or `synth`), named in the file
/// beside its pid and in the refusal a second writer meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    Ingest,
    Merge,
    Synth,
}

impl Writer {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Writer::Ingest => "ingest",
            Writer::Merge => "merge",
            Writer::Synth => "synth",
        }
    }

    fn from_name(name: &str) -> Option<Writer> {
        [Writer::Ingest, Writer::Merge, Writer::Synth]
            .into_iter()
            .find(|w| w.name() == name)
    }
}

/// The lock of one output, held until dropped: a local folder's `flock`, an object store's
/// lease, or none where the store cannot keep writers apart.
#[derive(Debug)]
pub struct OutputLock {
    held: Held,
}

#[derive(Debug)]
enum Held {
    Folder(FolderLock),
    Store(StoreLease),
    /// The store's name: it cannot create an object only where none exists.
    Unsupported(String),
}

/// The `flock` of one local output folder.
#[derive(Debug)]
struct FolderLock {
    file: File,
    path: PathBuf,
    /// The locked file's (device, inode): the lock is this writer's while `path` names it.
    file_id: (u64, u64),
    /// The output folder, where this lock made it (removed again if left empty).
    made_folder: Option<PathBuf>,
}

impl OutputLock {
    /// Takes the lock of the output at `root` of `object_store` (`url` names it in the refusal)
    /// for this process, running `writer`. An output another writer holds is refused
    /// (`DataError::Busy`, naming the output, that writer's command and pid); nothing is
    /// written then. Called from synchronous code, not inside a tokio runtime (an object store's
    /// lease blocks on the store's runtime, here and when dropped).
    pub fn take(
        object_store: &Arc<dyn ObjectStore>,
        root: &Path,
        url: &str,
        writer: Writer,
    ) -> Result<Self, DataError> {
        let held = match store::local_path(object_store.as_ref(), root) {
            Some(folder) => Held::Folder(FolderLock::take(folder, url, writer)?),
            None => {
                let timing = LeaseTiming::default();
                match StoreLease::take(object_store, root, url, writer, timing)? {
                    LeaseOutcome::Held(lease) => Held::Store(lease),
                    LeaseOutcome::Unsupported => Held::Unsupported(object_store.to_string()),
                }
            }
        };
        Ok(OutputLock { held })
    }

    /// The lock file's path, for a local folder.
    pub fn path(&self) -> Option<&std::path::Path> {
        match &self.held {
            Held::Folder(lock) => Some(&lock.path),
            _ => None,
        }
    }

    /// `Ok` while this writer may go on writing; the refusal that stops it once an object
    /// store's lease is lost (`StoreLease::check`), or once a folder's lock file is no longer
    /// the one it locked: the folder was removed (a scratch purge) or replaced while it was
    /// written, and the shards written before are gone with it.
    pub fn check_held(&self) -> Result<(), DataError> {
        match &self.held {
            Held::Store(lease) => lease.check(),
            Held::Folder(lock) => lock.check_in_place(),
            Held::Unsupported(_) => Ok(()),
        }
    }

    /// What the user should know about this lock: a stale lease taken over, or a store that
    /// keeps no writers apart.
    pub fn note(&self) -> Option<String> {
        match &self.held {
            Held::Store(lease) => lease.took_over.clone(),
            Held::Unsupported(name) => Some(format!(
                "{name} cannot create an object only where none exists (conditional puts are \
                 disabled), so another writer into this output would not be refused"
            )),
            Held::Folder(_) => None,
        }
    }
}

/// The lock files this process holds in folders, with the (device, inode) of each, for
/// `release_held`.
static HELD_FOLDERS: Mutex<Vec<(PathBuf, (u64, u64))>> = Mutex::new(Vec::new());

fn held_folders() -> std::sync::MutexGuard<'static, Vec<(PathBuf, (u64, u64))>> {
    HELD_FOLDERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Removes every output lock this process holds, for a writer stopped by a signal, which exits
/// without dropping them: each folder's lock file (still locked, so removed as a drop removes
/// it; a Ctrl-C'd ingest left it until 2026-12-06) and each object store's lease
/// (`store_lease::release_held`).
pub fn release_held() {
    for (path, file_id) in held_folders().iter() {
        if names_file(path, *file_id).unwrap_or(false) {
            let _ = std::fs::remove_file(path);
        }
    }
    store_lease::release_held();
}

/// The (device, inode) of `metadata`'s file.
fn identity(metadata: &std::fs::Metadata) -> (u64, u64) {
    (metadata.dev(), metadata.ino())
}

/// Whether `path` names the file `file_id` identifies: a lock whose folder was replaced while
/// its writer wrote (the lock at the path then the next writer's) is not.
fn names_file(path: &std::path::Path, file_id: (u64, u64)) -> std::io::Result<bool> {
    match std::fs::metadata(path) {
        Ok(now) => Ok(identity(&now) == file_id),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

impl FolderLock {
    fn take(folder: PathBuf, url: &str, writer: Writer) -> Result<Self, DataError> {
        let path = folder.join(LOCK_FILE);
        let io = |source| DataError::Io {
            path: path.display().to_string(),
            source,
        };
        let (mut tries, mut rounds) = (0, 0);
        loop {
            // A folder or file removed under us (by the ingest that held it) is tried again,
            // a bounded number of times.
            rounds += 1;
            if rounds > 100 {
                return Err(busy(url, &path, None));
            }
            let made_folder = !folder.is_dir();
            if let Some(file) = folder.ancestors().find(|a| a.is_file()) {
                return Err(DataError::Io {
                    path: file.display().to_string(),
                    source: std::io::Error::other("a file, where the output's folder must be"),
                });
            }
            std::fs::create_dir_all(&folder).map_err(|source| DataError::Io {
                path: folder.display().to_string(),
                source,
            })?;
            let mut file = match OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
            {
                // The ingest that held it removed the folder it had made, just now.
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                opened => opened.map_err(io)?,
            };
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) if tries + 1 < TRIES => {
                    tries += 1;
                    std::thread::sleep(PAUSE);
                    continue;
                }
                Err(TryLockError::WouldBlock) => return Err(busy(url, &path, Some(&mut file))),
                Err(TryLockError::Error(source)) => return Err(io(source)),
            }
            // The ingest that held it may have removed the file between our opening and our
            // locking it: a lock on that file keeps no one out, so take the one at the path.
            let file_id = identity(&file.metadata().map_err(io)?);
            if !names_file(&path, file_id).unwrap_or(false) {
                continue;
            }
            file.set_len(0).map_err(io)?;
            file.write_all(format!("{} {}\n", std::process::id(), writer.name()).as_bytes())
                .map_err(io)?;
            held_folders().push((path.clone(), file_id));
            return Ok(FolderLock {
                file,
                path,
                file_id,
                made_folder: made_folder.then_some(folder),
            });
        }
    }
}

impl FolderLock {
    /// `Ok` while the lock file at its path is the file this writer locked.
    fn check_in_place(&self) -> Result<(), DataError> {
        let same = names_file(&self.path, self.file_id).map_err(|source| DataError::Io {
            path: self.path.display().to_string(),
            source,
        })?;
        match same {
            true => Ok(()),
            false => Err(DataError::Busy(format!(
                "{} was removed or replaced while this command wrote it (its lock file {} is \
                 gone), and what it had written with it; nothing more is written there: run \
                 the command again",
                self.path.parent().unwrap_or(&self.path).display(),
                self.path.display()
            ))),
        }
    }
}

impl Drop for FolderLock {
    /// Removes the file while still holding its lock (see `take` for one opened just before),
    /// then releases it by closing the file.
    fn drop(&mut self) {
        held_folders().retain(|(held, _)| *held != self.path);
        // Only the file this writer locked: after its folder was replaced, the lock at the
        // path (and the folder) are the next writer's.
        if names_file(&self.path, self.file_id).unwrap_or(false) {
            let _ = std::fs::remove_file(&self.path);
            if let Some(folder) = &self.made_folder {
                // Only where nothing else was written there (a refused or failed ingest).
                let _ = std::fs::remove_dir(folder);
            }
        }
        let _ = self.file.unlock();
    }
}

/// Whether another writer holds the output at `root` now, for `ingest --dry-run`: the refusal
/// a run would meet, else `Ok`. Writes nothing (it only looks for a held lock).
pub fn check_free(object_store: &dyn ObjectStore, root: &Path, url: &str) -> Result<(), DataError> {
    let Some(folder) = store::local_path(object_store, root) else {
        return store_lease::check_free(object_store, root, url, LeaseTiming::default());
    };
    let path = folder.join(LOCK_FILE);
    let mut file = match File::open(&path) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        opened => opened.map_err(|source| DataError::Io {
            path: path.display().to_string(),
            source,
        })?,
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            Ok(())
        }
        Err(TryLockError::WouldBlock) => Err(busy(url, &path, Some(&mut file))),
        Err(TryLockError::Error(source)) => Err(DataError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// The refusal of an output whose lock file `file` (at `path`) another writer holds. The file
/// names its pid and command ("4242 merge"; an ingest of before 2026-12-06 wrote the pid alone).
fn busy(url: &str, path: &std::path::Path, file: Option<&mut File>) -> DataError {
    let mut text = String::new();
    if let Some(file) = file {
        let _ = file.read_to_string(&mut text);
    }
    let mut words = text.split_whitespace();
    let pid = words.next().and_then(|w| w.parse::<u32>().ok());
    // A pid alone is an older ingest's; a file without one (its holder has not written it yet,
    // or it was not read) names no command.
    let writer = pid.and_then(|_| words.next().map_or(Some(Writer::Ingest), Writer::from_name));
    let who = match (writer, pid) {
        (Some(writer), Some(pid)) => format!("another {} (pid {pid})", writer.name()),
        _ => "another ecgfm command".to_string(),
    };
    DataError::Busy(format!(
        "{} is being written by {who}, which holds {}; {TWO_WRITERS}",
        store::redact_url(url),
        path.display()
    ))
}

/// Why a second writer is refused, and the way out: the end of every refusal of a held output.
pub(crate) const TWO_WRITERS: &str = "two writers into one dataset would leave it broken: wait \
     until it ends (an interrupted ingest or merge is resumed by running it again) or choose \
     another --out";

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    fn local(dir: &std::path::Path) -> store::StoreRoot {
        store::open_url(dir.to_str().unwrap()).unwrap()
    }

    #[test]
    fn a_folder_removed_while_written_stops_its_writer() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("ds");
        let (object_store, root) = local(&out);
        let lock =
            OutputLock::take(&object_store, &root, out.to_str().unwrap(), Writer::Synth).unwrap();
        lock.check_held().unwrap();
        std::fs::remove_dir_all(&out).unwrap();
        // The next shard's write would make the folder again: still refused.
        std::fs::create_dir_all(&out).unwrap();
        let err = lock.check_held().unwrap_err().to_string();
        assert!(
            err.contains("ds was removed or replaced while this command wrote it"),
            "{err}"
        );
        // The next writer's lock there outlives the first writer's end.
        let next =
            OutputLock::take(&object_store, &root, out.to_str().unwrap(), Writer::Ingest).unwrap();
        drop(lock);
        next.check_held().unwrap();
        assert!(next.path().unwrap().exists());
    }

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("ds");
        let (object_store, root) = local(&out);
        let url = out.to_str().unwrap();
        let first = OutputLock::take(&object_store, &root, url, Writer::Ingest).unwrap();
        assert_eq!(
            std::fs::read_to_string(first.path().unwrap()).unwrap(),
            format!("{} ingest\n", std::process::id())
        );
        let err = OutputLock::take(&object_store, &root, url, Writer::Ingest)
            .unwrap_err()
            .to_string();
        let pid = std::process::id();
        assert!(
            err.starts_with(&format!(
                "{url} is being written by another ingest (pid {pid}), which holds {url}/{LOCK_FILE}"
            )),
            "{err}"
        );
        let err = check_free(object_store.as_ref(), &root, url)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("(pid {pid})")), "{err}");
        drop(first);
        // The lock made the folder and nothing else was written: both are gone.
        assert!(!out.exists());
        check_free(object_store.as_ref(), &root, url).unwrap();
        let again = OutputLock::take(&object_store, &root, url, Writer::Merge).unwrap();
        assert!(again.path().is_some());
        let err = OutputLock::take(&object_store, &root, url, Writer::Ingest)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("by another merge (pid {pid})")),
            "{err}"
        );
        std::fs::write(out.join("manifest.json"), b"{}").unwrap();
        drop(again);
        assert_eq!(
            std::fs::read_dir(&out).unwrap().count(),
            1,
            "only the manifest stays"
        );
    }

    /// A local output given as a `file://` URL with a query string (a token pasted along with
    /// it) is refused by a URL without the token: the refusal shows it redacted.
    #[test]
    fn a_refusal_shows_the_output_url_redacted() {
        let tmp = tempfile::tempdir().unwrap();
        let url = format!("file://{}?sig=SECRET42", tmp.path().display());
        let (object_store, root) = store::open_url(&url).unwrap();
        let _first = OutputLock::take(&object_store, &root, &url, Writer::Ingest).unwrap();
        for err in [
            OutputLock::take(&object_store, &root, &url, Writer::Merge).unwrap_err(),
            check_free(object_store.as_ref(), &root, &url).unwrap_err(),
        ] {
            let err = err.to_string();
            assert!(!err.contains("SECRET42"), "{err}");
            let shown = format!("file://{}?*** is being written by", tmp.path().display());
            assert!(err.starts_with(&shown), "{err}");
        }
    }

    #[test]
    fn a_file_left_by_a_killed_ingest_is_taken_over() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(LOCK_FILE), b"999999999\n").unwrap();
        let (object_store, root) = local(tmp.path());
        let url = tmp.path().to_str().unwrap();
        check_free(object_store.as_ref(), &root, url).unwrap();
        let lock = OutputLock::take(&object_store, &root, url, Writer::Ingest).unwrap();
        assert_eq!(
            std::fs::read_to_string(lock.path().unwrap()).unwrap(),
            format!("{} ingest\n", std::process::id())
        );
    }

    #[test]
    fn a_holder_is_named_by_its_file_in_either_format() {
        let tmp = tempfile::tempdir().unwrap();
        let (object_store, root) = local(tmp.path());
        let url = tmp.path().to_str().unwrap();
        let path = tmp.path().join(LOCK_FILE);
        for (text, who) in [
            ("77\n", "another ingest (pid 77)"),
            ("78 synth\n", "another synth (pid 78)"),
            ("79 export\n", "another ecgfm command,"),
            // Taken an instant ago by any writer, not written yet.
            ("", "another ecgfm command,"),
        ] {
            std::fs::write(&path, text).unwrap();
            let held = File::open(&path).unwrap();
            held.try_lock().unwrap();
            let err = OutputLock::take(&object_store, &root, url, Writer::Merge)
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("is being written by {who}")), "{err}");
            drop(held);
        }
    }

    /// Set in the child process `release_held_leaves_only_other_writers_locks` starts.
    const ALONE: &str = "ECGFM_RELEASE_HELD_ALONE";

    /// A writer stopped by a signal exits without dropping its locks: `release_held` removes its
    /// folders' lock files and its object-store leases, but no lock another writer has taken
    /// (in a folder replaced while it was written, or a lease replaced). In a child process of
    /// its own: the locks held are listed process-wide, and other tests hold theirs meanwhile.
    #[test]
    fn release_held_leaves_only_other_writers_locks() {
        if std::env::var_os(ALONE).is_none() {
            let name = "out_lock::tests::release_held_leaves_only_other_writers_locks";
            let child = std::process::Command::new(std::env::current_exe().unwrap())
                .args([name, "--exact", "--test-threads=1"])
                .env(ALONE, "1")
                .output()
                .unwrap();
            let out = String::from_utf8_lossy(&child.stdout);
            let err = String::from_utf8_lossy(&child.stderr);
            assert!(out.contains("test result: ok. 1 passed"), "{out}{err}");
            return;
        }
        let take = |url: &str| {
            let (object_store, root) = store::open_url(url).unwrap();
            OutputLock::take(&object_store, &root, url, Writer::Ingest).unwrap()
        };
        let tmp = tempfile::tempdir().unwrap();
        let (held, replaced) = (tmp.path().join("held"), tmp.path().join("replaced"));
        let _held = take(held.to_str().unwrap());
        let _replaced = take(replaced.to_str().unwrap());
        std::fs::remove_dir_all(&replaced).unwrap();
        std::fs::create_dir_all(&replaced).unwrap();
        std::fs::write(replaced.join(LOCK_FILE), "4242 merge\n").unwrap();
        let (leased, lost) = ("memory://release-held/leased", "memory://release-held/lost");
        let _leased = take(leased);
        let _lost = take(lost);
        let (object_store, root) = store::open_url(lost).unwrap();
        let rival =
            r#"{"writer":"synth","pid":7,"host":"elsewhere","lease":"a rival's","renewals":0}"#;
        let path = store::join(&root, LOCK_FILE);
        store::block_on(object_store.put(&path, rival.into())).unwrap();

        release_held();
        assert!(
            !held.join(LOCK_FILE).exists(),
            "the held folder's lock file was left"
        );
        let other = std::fs::read_to_string(replaced.join(LOCK_FILE)).unwrap();
        assert_eq!(
            other, "4242 merge\n",
            "the next writer's lock file was removed"
        );
        let (object_store, root) = store::open_url(leased).unwrap();
        check_free(object_store.as_ref(), &root, leased).unwrap();
        let (object_store, root) = store::open_url(lost).unwrap();
        let err = check_free(object_store.as_ref(), &root, lost)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("by another synth (pid 7 on elsewhere)"),
            "{err}"
        );
    }

    #[test]
    fn an_object_store_output_is_leased() {
        let url = "memory://lock-test/ds";
        let (object_store, root) = store::open_url(url).unwrap();
        let lock = OutputLock::take(&object_store, &root, url, Writer::Synth).unwrap();
        assert_eq!((lock.path(), lock.note()), (None, None));
        lock.check_held().unwrap();
        let err = OutputLock::take(&object_store, &root, url, Writer::Ingest)
            .unwrap_err()
            .to_string();
        let pid = std::process::id();
        assert!(
            err.starts_with(&format!(
                "{url} is being written by another synth (pid {pid} on "
            )),
            "{err}"
        );
        assert!(err.contains(&format!("whose lock {url}/{LOCK_FILE} was renewed 0 s ago")));
        let free = check_free(object_store.as_ref(), &root, url).unwrap_err();
        assert_eq!(free.to_string(), err);
        drop(lock);
        check_free(object_store.as_ref(), &root, url).unwrap();
        OutputLock::take(&object_store, &root, url, Writer::Ingest).unwrap();
    }
}
