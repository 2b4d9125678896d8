//! What an ingest that could not ingest a single record leaves in its output: not a dataset (a
//! `manifest.json` of no rows would be taken for one, read by `inspect` as a success and refuse
//! every other ingest into the folder), but [`QUARANTINE_REPORT_FILE`], the quarantined records
//! with their reasons, and no journal either, so that an ingest with other settings (another
//! `--format`, say) may use the folder. `Manifest::read` names the report when asked for the
//! dataset there (`DataError::FailedIngest`).

use std::collections::BTreeMap;

use object_store::path::Path;
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};

use crate::error::DataError;
use crate::ingest::journal::{Journal, JOURNAL_FILE};
use crate::manifest::{QuarantineEntry, SourceEntry};
use crate::store;

/// Object name, at the output's root, of the report of an ingest that ingested no record.
pub const QUARANTINE_REPORT_FILE: &str = "quarantine.json";

/// The contents of [`QUARANTINE_REPORT_FILE`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantineReport {
    /// What the file is, for whoever opens it.
    pub note: String,
    /// The source the ingest read.
    pub source: SourceEntry,
    /// Quarantined records by the entries' `kind`.
    pub counts: BTreeMap<String, u64>,
    /// Every planned record, with the reason it could not be ingested.
    pub quarantine: Vec<QuarantineEntry>,
}

impl QuarantineReport {
    /// The report of the finished `journal` of an ingest of `source` that ingested no record.
    pub fn new(source: SourceEntry, journal: &Journal) -> Self {
        QuarantineReport {
            note: "no record could be ingested, so this folder holds no dataset (no \
                   manifest.json); the reasons are below. Any ingest may write here."
                .to_string(),
            source,
            counts: journal.counts.quarantine.clone(),
            quarantine: journal.quarantine.clone(),
        }
    }

    /// Stores the report at `root`, then removes the journal (in that order: an ingest stopped
    /// in between leaves its journal, and the same command run again finishes it).
    pub fn save(&self, object_store: &dyn ObjectStore, root: &Path) -> Result<(), DataError> {
        let location = store::join(root, QUARANTINE_REPORT_FILE);
        let bytes = serde_json::to_vec_pretty(self).expect("report serialises");
        store::block_on(store::put_bytes(object_store, &location, bytes.into()))?;
        store::remove(object_store, &store::join(root, JOURNAL_FILE))
    }

    /// Reads the report at `root`, if there is one (one that does not parse counts as none).
    pub async fn read(object_store: &dyn ObjectStore, root: &Path) -> Option<Self> {
        let location = store::join(root, QUARANTINE_REPORT_FILE);
        let bytes = store::get_bytes(object_store, &location).await.ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// Removes the report an earlier ingest into `root` left, if any: a dataset is there now.
pub fn remove_report(object_store: &dyn ObjectStore, root: &Path) -> Result<(), DataError> {
    store::remove(object_store, &store::join(root, QUARANTINE_REPORT_FILE))
}
