//! The resume journal `_ingest_state.json`: after every stored shard, the ingest writes how many
//! records of its (deterministic) plan are fully done, the shards holding them and the running
//! totals. A later run with the same settings and plan (every record's labels and metadata
//! included) keeps those shards (after checking they are still there with the recorded size) and
//! goes on from the next record.
//!
//! An output that holds something else is refused, never overwritten: a dataset (`manifest.json`)
//! that is not this very run's finished output, or the journal of an ingest with other settings,
//! labels or records (whether it finished or not: starting over would rewrite its shards from the
//! first while what it wrote stays beside them). The way out is another `--out`, removing the
//! folder, or (for an unfinished ingest) running it again as it was.

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::DataError;
use crate::ingest::options::IngestOptions;
use crate::ingest::plan::PlannedRecord;
use crate::manifest::{Counts, PartialEntry, QuarantineEntry, ShardEntry, MANIFEST_FILE};
use crate::store;

/// Object name of the journal at the dataset root.
pub const JOURNAL_FILE: &str = "_ingest_state.json";

/// The state of an ingest after its last stored shard.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    /// Hash of the settings and the plan; a journal with another fingerprint is ignored.
    pub fingerprint: String,
    /// Records of the plan, from the first, whose outcome is final.
    pub records_done: usize,
    pub shards: Vec<ShardEntry>,
    pub counts: Counts,
    pub quarantine: Vec<QuarantineEntry>,
    pub partial: Vec<PartialEntry>,
}

/// Hash of everything that decides the output: the settings (less threads and stop point) and
/// every planned record with what the plan knows of it (labels, patient, age, sex, fold), so a
/// changed label file (`--label-csv`, `ptbxl_database.csv`, `REFERENCE.csv`) changes it.
pub fn fingerprint(options: &IngestOptions, source_name: &str, plan: &[PlannedRecord]) -> String {
    let mut normalized = options.clone();
    normalized.threads = 0;
    normalized.stop_after_shards = None;
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(&normalized).expect("options serialise"));
    hasher.update(source_name.as_bytes());
    for record in plan {
        hasher.update(serde_json::to_vec(record).expect("record serialises"));
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

impl Journal {
    /// A fresh journal.
    pub fn new(fingerprint: String) -> Self {
        Journal {
            fingerprint,
            ..Journal::default()
        }
    }

    /// The journal to go on from in the output at `root` (`url` names it in errors): an earlier
    /// run's with this fingerprint whose shards are all still present with their recorded sizes
    /// (a finished run is then not redone), or a fresh one where the output holds neither a
    /// dataset nor a journal, or only an unfinished journal of this fingerprint whose shards
    /// changed (the same settings write the same shards again). Anything else is refused (see
    /// the module's documentation) and left as it is.
    pub fn resume(
        object_store: &dyn ObjectStore,
        root: &Path,
        url: &str,
        fingerprint: &str,
    ) -> Result<Self, DataError> {
        let has_dataset = exists(object_store, &store::join(root, MANIFEST_FILE))?;
        let way_out = "choose another --out or remove the folder";
        let Some(journal) = Self::load(object_store, root)? else {
            if has_dataset {
                return Err(DataError::Refused(format!(
                    "{url} already holds a dataset ({MANIFEST_FILE}) that this ingest did not \
                     write; ingest writes a new one: {way_out}"
                )));
            }
            return Ok(Self::new(fingerprint.to_string()));
        };
        if journal.fingerprint != fingerprint {
            let held = if has_dataset {
                format!("a dataset ({MANIFEST_FILE})")
            } else {
                format!(
                    "an unfinished ingest ({JOURNAL_FILE}; run it again as it was to finish it)"
                )
            };
            return Err(DataError::Refused(format!(
                "{url} already holds {held} ingested with other settings, labels or records; \
                 ingest writes a new one: {way_out}"
            )));
        }
        if shards_intact(object_store, root, &journal)? {
            Ok(journal)
        } else if has_dataset {
            Err(DataError::Refused(format!(
                "{url} already holds a dataset ({MANIFEST_FILE}) whose shards changed since it \
                 was written (`ecgfm data inspect` names them); ingest writes a new one: {way_out}"
            )))
        } else {
            Ok(Self::new(fingerprint.to_string()))
        }
    }

    /// The journal stored at `root`, if any.
    fn load(object_store: &dyn ObjectStore, root: &Path) -> Result<Option<Self>, DataError> {
        let location = store::join(root, JOURNAL_FILE);
        let bytes = match store::block_on(store::get_bytes(object_store, &location)) {
            Ok(bytes) => bytes,
            Err(DataError::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }) => return Ok(None),
            Err(e) => return Err(e),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| DataError::Json {
                path: location.to_string(),
                source,
            })
    }

    /// Stores the journal.
    pub fn save(&self, object_store: &dyn ObjectStore, root: &Path) -> Result<(), DataError> {
        let location = store::join(root, JOURNAL_FILE);
        let bytes = serde_json::to_vec_pretty(self).expect("journal serialises");
        store::block_on(store::put_bytes(object_store, &location, bytes.into()))
    }
}

/// Whether the object at `location` exists.
fn exists(object_store: &dyn ObjectStore, location: &Path) -> Result<bool, DataError> {
    match store::block_on(object_store.head(location)) {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(source) => Err(DataError::Store {
            location: location.to_string(),
            source,
        }),
    }
}

fn shards_intact(
    object_store: &dyn ObjectStore,
    root: &Path,
    journal: &Journal,
) -> Result<bool, DataError> {
    for shard in &journal.shards {
        let location = store::join(root, &shard.path);
        match store::block_on(object_store.head(&location)) {
            Ok(meta) if meta.size == shard.bytes => {}
            Ok(_) | Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(source) => {
                return Err(DataError::Store {
                    location: location.to_string(),
                    source,
                })
            }
        }
    }
    Ok(true)
}
