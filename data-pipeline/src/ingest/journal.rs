//! The resume journal `_ingest_state.json`: after every stored shard, the ingest writes how many
//! records of its (deterministic) plan are fully done, the shards holding them and the running
//! totals. A later run with the same settings and plan keeps those shards (after checking they
//! are still there with the recorded size) and goes on from the next record.

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::DataError;
use crate::ingest::options::IngestOptions;
use crate::ingest::plan::PlannedRecord;
use crate::manifest::{Counts, PartialEntry, QuarantineEntry, ShardEntry};
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
/// the planned record names.
pub fn fingerprint(options: &IngestOptions, source_name: &str, plan: &[PlannedRecord]) -> String {
    let mut normalized = options.clone();
    normalized.threads = 0;
    normalized.stop_after_shards = None;
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(&normalized).expect("options serialise"));
    hasher.update(source_name.as_bytes());
    for record in plan {
        hasher.update(record.name.as_bytes());
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

    /// The journal of an earlier run with this fingerprint whose shards are all still present
    /// with their recorded sizes; a fresh journal otherwise.
    pub fn resume(
        object_store: &dyn ObjectStore,
        root: &Path,
        fingerprint: &str,
    ) -> Result<Self, DataError> {
        let location = store::join(root, JOURNAL_FILE);
        let bytes = match store::block_on(store::get_bytes(object_store, &location)) {
            Ok(bytes) => bytes,
            Err(DataError::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }) => return Ok(Self::new(fingerprint.to_string())),
            Err(e) => return Err(e),
        };
        let journal: Journal =
            serde_json::from_slice(&bytes).map_err(|source| DataError::Json {
                path: location.to_string(),
                source,
            })?;
        if journal.fingerprint != fingerprint || !shards_intact(object_store, root, &journal)? {
            return Ok(Self::new(fingerprint.to_string()));
        }
        Ok(journal)
    }

    /// Stores the journal.
    pub fn save(&self, object_store: &dyn ObjectStore, root: &Path) -> Result<(), DataError> {
        let location = store::join(root, JOURNAL_FILE);
        let bytes = serde_json::to_vec_pretty(self).expect("journal serialises");
        store::block_on(store::put_bytes(object_store, &location, bytes.into()))
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
