//! The resume journal `_ingest_state.json`: after a stored shard (every one while the journal is
//! small, see `SaveCadence`), the ingest writes how many records of its (deterministic) plan are
//! fully done, the shards holding them and the running totals, and the settings that decide the
//! output ([`IngestSettings`]: paths canonical, files by their contents). A later run with the same
//! settings and plan (every record's labels and metadata included), however it spells its paths,
//! keeps those shards (after checking they are still there with the recorded size) and goes on from
//! the next record, writing again, to the same bytes, any shard stored after the journal's last
//! save.
//!
//! An output that holds something else is refused, never overwritten: a dataset (`manifest.json`)
//! that is not this very run's finished output, or the journal of an ingest with other settings,
//! labels or records (whether it finished or not: starting over would rewrite its shards from the
//! first while what it wrote stays beside them); the refusal names the settings that differ. The
//! way out is another `--out`, removing the folder, or (for an unfinished ingest) running it
//! again as it was.

use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use ecgfm_preprocess::{BandPassConfig, PipelineConfig};

use crate::error::DataError;
use crate::ingest::options::{IngestOptions, SourceFormat};
use crate::ingest::plan::PlannedRecord;
use crate::manifest::{Counts, PartialEntry, QuarantineEntry, ShardEntry, MANIFEST_FILE};
use crate::split::SplitFractions;
use crate::store;

/// Object name of the journal at the dataset root.
pub const JOURNAL_FILE: &str = "_ingest_state.json";

/// The state of an ingest after the last shard stored before the journal's last save.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    /// Hash of the settings and the plan ([`IngestSettings::fingerprint`]); a journal with
    /// another fingerprint is not resumed.
    pub fingerprint: String,
    /// The settings the fingerprint hashes, so a refusal can name the ones that differ. Absent
    /// from the journals of earlier versions (whose fingerprint hashed the options as typed,
    /// [`legacy_fingerprint`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<IngestSettings>,
    /// Records of the plan, from the first, whose outcome is final.
    pub records_done: usize,
    pub shards: Vec<ShardEntry>,
    pub counts: Counts,
    pub quarantine: Vec<QuarantineEntry>,
    pub partial: Vec<PartialEntry>,
}

/// Everything that decides an ingest's output, whatever the paths' spelling: the source folder
/// by its canonical path (a URL without its trailing `/` and secrets), the resolved format (not
/// `auto`), the label CSV and record lists by their contents' SHA-256 (not their names), the
/// preprocessing and layout, and a hash of the plan: every planned record with what the plan
/// knows of it (labels, patient, age, sex, fold), so a changed label table
/// (`ptbxl_database.csv`, `REFERENCE.csv`) changes it too. Not `--out`, the threads or the stop
/// point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestSettings {
    pub source: String,
    pub format: SourceFormat,
    pub source_name: String,
    pub preprocessing: PipelineConfig,
    pub shard_target_bytes: u64,
    pub row_group_rows: usize,
    pub zstd_level: i32,
    /// SHA-256 of the `--label-csv` file's bytes.
    pub label_csv: Option<String>,
    /// SHA-256 of the `--records` file's bytes.
    pub records: Option<String>,
    /// SHA-256 of the `--exclude` file's bytes.
    pub exclude: Option<String>,
    pub verify_checksums: bool,
    pub split_fractions: SplitFractions,
    pub seed: u64,
    pub limit: Option<usize>,
    /// Records in the plan.
    pub planned_records: usize,
    /// SHA-256 of the planned records.
    pub plan: String,
}

/// The contents of the files given beside the source, as [`IngestSettings`] hashes them.
#[derive(Debug, Clone, Copy, Default)]
pub struct SideFiles<'a> {
    pub label_csv: Option<&'a [u8]>,
    pub records: Option<&'a [u8]>,
    pub exclude: Option<&'a [u8]>,
}

/// Hex SHA-256 of `bytes`.
fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl IngestSettings {
    /// The settings of an ingest with `options` of the source whose identity is `source`
    /// (`SourceRoot::identity`), read as `format` (resolved), whose rows are named
    /// `source_name`, planning `plan`.
    pub fn new(
        options: &IngestOptions,
        source: String,
        format: SourceFormat,
        source_name: &str,
        side_files: SideFiles<'_>,
        plan: &[PlannedRecord],
    ) -> Self {
        let mut hasher = Sha256::new();
        for record in plan {
            hasher.update(serde_json::to_vec(record).expect("record serialises"));
            hasher.update([0]);
        }
        IngestSettings {
            source,
            format,
            source_name: source_name.to_string(),
            preprocessing: options.preprocessing.clone(),
            shard_target_bytes: options.shard_target_bytes,
            row_group_rows: options.row_group_rows,
            zstd_level: options.zstd_level,
            label_csv: side_files.label_csv.map(sha256),
            records: side_files.records.map(sha256),
            exclude: side_files.exclude.map(sha256),
            verify_checksums: options.verify_checksums,
            split_fractions: options.split_fractions,
            seed: options.seed,
            limit: options.limit,
            planned_records: plan.len(),
            plan: hex::encode(hasher.finalize()),
        }
    }

    /// The hash a journal of these settings carries.
    pub fn fingerprint(&self) -> String {
        sha256(&serde_json::to_vec(self).expect("settings serialise"))
    }

    /// What differs between the settings of an earlier run (`self`) and `now`, one phrase each,
    /// in the flags' terms where a flag sets it (`--rate 250 then, 500 now`).
    pub fn differences(&self, now: &IngestSettings) -> Vec<String> {
        let mut out = Vec::new();
        let mut differ = |what: &str, then: String, now: String| {
            if then != now {
                out.push(format!("{what} {then} then, {now} now"));
            }
        };
        let (a, b) = (&self.preprocessing, &now.preprocessing);
        differ("the source", self.source.clone(), now.source.clone());
        differ("--format", self.format.to_string(), now.format.to_string());
        differ(
            "--source-name",
            self.source_name.clone(),
            now.source_name.clone(),
        );
        differ(
            "--label-csv",
            file_digest(&self.label_csv),
            file_digest(&now.label_csv),
        );
        differ(
            "--records",
            file_digest(&self.records),
            file_digest(&now.records),
        );
        differ(
            "--exclude",
            file_digest(&self.exclude),
            file_digest(&now.exclude),
        );
        differ("--limit", optional(self.limit), optional(now.limit));
        differ(
            "--rate",
            a.target_rate_hz.to_string(),
            b.target_rate_hz.to_string(),
        );
        differ(
            "--window-s",
            seconds(a.window.window_samples, a.target_rate_hz),
            seconds(b.window.window_samples, b.target_rate_hz),
        );
        let stride = |p: &PipelineConfig| {
            let samples = p.window.stride_samples;
            samples.map_or_else(|| "none".to_string(), |s| seconds(s, p.target_rate_hz))
        };
        differ("--stride-s", stride(a), stride(b));
        differ("--bandpass", band_pass(a), band_pass(b));
        differ(
            "--standardize",
            json_text(&a.standardize.mode),
            json_text(&b.standardize.mode),
        );
        // What no flag sets (the resampler, quality thresholds, ...), named by its field.
        let mut rest = a.clone();
        rest.target_rate_hz = b.target_rate_hz;
        rest.window.window_samples = b.window.window_samples;
        rest.window.stride_samples = b.window.stride_samples;
        rest.band_pass = b.band_pass.clone();
        rest.standardize.mode = b.standardize.mode;
        if rest != *b {
            let (mut then_leaves, mut now_leaves) = Default::default();
            leaves("", &to_value(&rest), &mut then_leaves);
            leaves("", &to_value(b), &mut now_leaves);
            let none = "none".to_string();
            let keys: BTreeSet<&String> = then_leaves.keys().chain(now_leaves.keys()).collect();
            for key in keys {
                differ(
                    &format!("the preprocessing setting {key}"),
                    then_leaves.get(key).unwrap_or(&none).clone(),
                    now_leaves.get(key).unwrap_or(&none).clone(),
                );
            }
        }
        differ(
            "--shard-mb",
            shard_mb(self.shard_target_bytes),
            shard_mb(now.shard_target_bytes),
        );
        differ(
            "--row-group-rows",
            self.row_group_rows.to_string(),
            now.row_group_rows.to_string(),
        );
        differ(
            "the zstd level",
            self.zstd_level.to_string(),
            now.zstd_level.to_string(),
        );
        let checks = |on: bool| if on { "on" } else { "off" }.to_string();
        differ(
            "header checksum checks",
            checks(self.verify_checksums),
            checks(now.verify_checksums),
        );
        let fractions = |f: &SplitFractions| format!("{}/{}/{}", f.train, f.val, f.test);
        differ(
            "the train/val/test fractions",
            fractions(&self.split_fractions),
            fractions(&now.split_fractions),
        );
        differ("--seed", self.seed.to_string(), now.seed.to_string());
        // The plan follows from the source, format, label CSV and lists: when they are the
        // same, the source's records or its own label tables changed.
        let same_inputs = (&self.source, self.format, &self.label_csv, &self.records)
            == (&now.source, now.format, &now.label_csv, &now.records)
            && (&self.exclude, self.limit) == (&now.exclude, now.limit);
        if same_inputs && self.plan != now.plan {
            out.push(format!(
                "the source's records or their labels and metadata (its label tables?): {} \
                 planned records then, {} now, not the same",
                self.planned_records, now.planned_records
            ));
        }
        out
    }
}

/// `none`, or a file's contents by the start of their SHA-256.
fn file_digest(digest: &Option<String>) -> String {
    match digest {
        Some(digest) => format!(
            "(a file with SHA-256 {}...)",
            &digest[..12.min(digest.len())]
        ),
        None => "none".to_string(),
    }
}

fn optional<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "none".to_string(), |v| v.to_string())
}

/// The shortest `--shard-mb` that gives `bytes` (the flag's MB are truncated to bytes, so
/// `0.05` is 52,428 bytes, not 0.049999237... MB).
fn shard_mb(bytes: u64) -> String {
    const MB: f64 = 1024.0 * 1024.0;
    let mb = bytes as f64 / MB;
    (0..=9)
        .map(|decimals| format!("{mb:.decimals$}"))
        .find(|text| text.parse::<f64>().is_ok_and(|v| (v * MB) as u64 == bytes))
        .unwrap_or_else(|| mb.to_string())
}

/// `samples` at `rate` Hz, in seconds.
fn seconds(samples: usize, rate: f64) -> String {
    (samples as f64 / rate).to_string()
}

/// The `--bandpass` value of `config`.
fn band_pass(config: &PipelineConfig) -> String {
    match &config.band_pass {
        None => "none".to_string(),
        Some(bp) if bp.order == BandPassConfig::default().order => {
            format!("{}:{}", bp.low_hz, bp.high_hz)
        }
        Some(bp) => format!("{}:{} (order {})", bp.low_hz, bp.high_hz, bp.order),
    }
}

fn to_value<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("settings serialise")
}

/// A JSON value as text: strings without their quotes.
fn json_text<T: Serialize>(value: &T) -> String {
    match to_value(value) {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }
}

/// Every scalar of `value` by its dotted path below `prefix`.
fn leaves(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    match value {
        serde_json::Value::Object(fields) if !fields.is_empty() => {
            for (key, field) in fields {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                leaves(&path, field, out);
            }
        }
        serde_json::Value::Null => {
            out.insert(prefix.to_string(), "none".to_string());
        }
        other => {
            out.insert(prefix.to_string(), json_text(other));
        }
    }
}

/// The fingerprint of journals written before they carried their settings: the options as typed
/// (less threads and stop point), the source name and the plan. A journal of that version is
/// still resumed by the very command that wrote it.
pub fn legacy_fingerprint(
    options: &IngestOptions,
    source_name: &str,
    plan: &[PlannedRecord],
) -> String {
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
    /// A fresh journal of an ingest with `settings`.
    pub fn new(settings: &IngestSettings) -> Self {
        Journal {
            fingerprint: settings.fingerprint(),
            settings: Some(settings.clone()),
            ..Journal::default()
        }
    }

    /// The journal to go on from in the output at `root` (`url` names it in errors): an earlier
    /// run's with these settings (or, written by an earlier version, the `legacy` fingerprint)
    /// whose shards are all still present with their recorded sizes (a finished run is then not
    /// redone), or a fresh one where the output holds neither a dataset nor a journal, or only
    /// an unfinished journal of these settings whose shards changed (the same settings write the
    /// same shards again). Anything else is refused (see the module's documentation), naming
    /// the settings that differ, and left as it is.
    pub fn resume(
        object_store: &dyn ObjectStore,
        root: &Path,
        url: &str,
        settings: &IngestSettings,
        legacy: &str,
    ) -> Result<Self, DataError> {
        let has_dataset = exists(object_store, &store::join(root, MANIFEST_FILE))?;
        let way_out = "choose another --out or remove the folder";
        let Some(mut journal) = Self::load(object_store, root)? else {
            if has_dataset {
                return Err(DataError::Refused(format!(
                    "{url} already holds a dataset ({MANIFEST_FILE}) that this ingest did not \
                     write; ingest writes a new one: {way_out}"
                )));
            }
            return Ok(Self::new(settings));
        };
        let fingerprint = settings.fingerprint();
        let same = match &journal.settings {
            Some(_) => journal.fingerprint == fingerprint,
            None => journal.fingerprint == legacy,
        };
        if !same {
            let held = if has_dataset {
                format!("a dataset ({MANIFEST_FILE})")
            } else {
                format!(
                    "an unfinished ingest ({JOURNAL_FILE}; run it again as it was to finish it)"
                )
            };
            let differences = journal
                .settings
                .as_ref()
                .map(|then| then.differences(settings))
                .unwrap_or_default();
            let why = if differences.is_empty() {
                "other settings, labels or records".to_string()
            } else {
                format!("other settings: {}", differences.join("; "))
            };
            return Err(DataError::Refused(format!(
                "{url} already holds {held} ingested with {why}; ingest writes a new one: \
                 {way_out}"
            )));
        }
        if shards_intact(object_store, root, &journal)? {
            journal.fingerprint = fingerprint;
            journal.settings = Some(settings.clone());
            Ok(journal)
        } else if has_dataset {
            Err(DataError::Refused(format!(
                "{url} already holds a dataset ({MANIFEST_FILE}) whose shards changed since it \
                 was written (`ecgfm data inspect` names them); ingest writes a new one: {way_out}"
            )))
        } else {
            Ok(Self::new(settings))
        }
    }

    /// The journal stored at `root`, if any.
    pub(super) fn load(
        object_store: &dyn ObjectStore,
        root: &Path,
    ) -> Result<Option<Self>, DataError> {
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

    /// Stores the journal; returns its size in bytes.
    pub fn save(&self, object_store: &dyn ObjectStore, root: &Path) -> Result<u64, DataError> {
        let location = store::join(root, JOURNAL_FILE);
        let bytes = serde_json::to_vec_pretty(self).expect("journal serialises");
        let size = bytes.len() as u64;
        store::block_on(store::put_bytes(object_store, &location, bytes.into()))?;
        Ok(size)
    }
}

/// Shard bytes stored per journal byte before the journal is saved again.
const SHARD_BYTES_PER_JOURNAL_BYTE: u64 = 32;

/// The longest the journal waits for its next save once a shard is stored.
const SAVE_AT_LEAST_EVERY: Duration = Duration::from_secs(60);

/// When the ingest saves its journal after a shard. The journal is written whole, every
/// quarantine and partial entry so far included, so saving it after every shard costs time
/// quadratic in the records where many are quarantined (500,000 entries make a 105 MB journal;
/// at 10 million records with 5% quarantined, about 2,200 saves after as many shards would write
/// about 115 GB). It is saved once the shards stored since its last save hold at least
/// [`SHARD_BYTES_PER_JOURNAL_BYTE`] times its last size, so its writes stay within a 32nd of the
/// shards' bytes (about 9 GB there): after every shard while it is below a 32nd of a shard
/// (4 MiB at the default 128 MiB), less often past that; and after any shard stored a minute or
/// more after its last save, so that a job killed again and again still gets on. The shards
/// stored after its last save are written again, to the same bytes, by a resume.
#[derive(Debug, Default)]
pub(crate) struct SaveCadence {
    shard_bytes: u64,
    journal_bytes: u64,
    last_save: Option<Instant>,
}

impl SaveCadence {
    /// A shard of `bytes` was stored.
    pub(crate) fn stored_shard(&mut self, bytes: u64) {
        self.shard_bytes += bytes;
    }

    /// Whether the journal is due to be saved at `now`.
    pub(crate) fn due(&self, now: Instant) -> bool {
        let waited = |last: Instant| now.duration_since(last) >= SAVE_AT_LEAST_EVERY;
        self.shard_bytes >= SHARD_BYTES_PER_JOURNAL_BYTE * self.journal_bytes
            || self.last_save.is_none_or(waited)
    }

    /// The journal was saved at `now`, `journal_bytes` long.
    pub(crate) fn saved(&mut self, journal_bytes: u64, now: Instant) {
        self.shard_bytes = 0;
        self.journal_bytes = journal_bytes;
        self.last_save = Some(now);
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

/// Whether every shard of `journal` is there with its recorded size: asked
/// [`store::REQUESTS_IN_FLIGHT`] at a time (an object store's latency is paid once per that many
/// shards, not once per shard), taken in the journal's order, so the answer, or the error, is
/// that of the first shard that is not intact.
fn shards_intact(
    object_store: &dyn ObjectStore,
    root: &Path,
    journal: &Journal,
) -> Result<bool, DataError> {
    store::block_on(async {
        let mut heads = futures::stream::iter(&journal.shards)
            .map(|shard| {
                let location = store::join(root, &shard.path);
                async move {
                    let head = object_store.head(&location).await;
                    (location, shard.bytes, head)
                }
            })
            .buffered(store::REQUESTS_IN_FLIGHT);
        while let Some((location, bytes, head)) = heads.next().await {
            match head {
                Ok(meta) if meta.size == bytes => {}
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn settings(options: &IngestOptions) -> IngestSettings {
        let plan = [PlannedRecord::bare("a/r1", false)];
        let side_files = SideFiles {
            label_csv: Some(b"record,labels\nr1,x:y\n"),
            ..SideFiles::default()
        };
        IngestSettings::new(
            options,
            "/data/src".into(),
            SourceFormat::Wfdb,
            "wfdb",
            side_files,
            &plan,
        )
    }

    /// Saves a journal of `then` at `ds/` and resumes it with `now`: the refusal's message.
    fn refusal(then: &Journal, now: &IngestSettings) -> String {
        let store = InMemory::new();
        let root = Path::from("ds");
        then.save(&store, &root).unwrap();
        Journal::resume(&store, &root, "ds", now, "legacy")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn paths_as_typed_and_the_output_are_not_settings() {
        let options = IngestOptions {
            source: "./src/".into(),
            out: "out".into(),
            label_csv: Some("lj.csv".into()),
            ..IngestOptions::default()
        };
        let respelled = IngestOptions {
            source: "/data/src".into(),
            out: "/elsewhere/out/".into(),
            label_csv: Some("./copy-of-lj.csv".into()),
            format: SourceFormat::Auto,
            threads: 3,
            stop_after_shards: Some(1),
            ..options.clone()
        };
        assert_eq!(
            settings(&options).fingerprint(),
            settings(&respelled).fingerprint()
        );
    }

    #[test]
    fn a_refusal_names_the_settings_that_differ() {
        let options = IngestOptions {
            limit: Some(60),
            ..IngestOptions::default()
        };
        let then = Journal::new(&settings(&options));
        let mut changed = options.clone();
        changed.preprocessing.target_rate_hz = 500.0;
        changed.preprocessing.window.window_samples = 10_000;
        changed.preprocessing.band_pass = None;
        changed.preprocessing.quality.flat_min_std *= 2.0;
        changed.limit = None;
        changed.shard_target_bytes = (0.05 * 1024.0 * 1024.0) as u64;
        let err = refusal(&then, &settings(&changed));
        for phrase in [
            "ds already holds an unfinished ingest (_ingest_state.json; run it again as it was \
             to finish it) ingested with other settings: ",
            "--limit 60 then, none now",
            "--rate 250 then, 500 now",
            "--window-s 10 then, 20 now",
            "--bandpass 0.67:40 then, none now",
            "the preprocessing setting quality.flat_min_std",
            "--shard-mb 128 then, 0.05 now",
            "choose another --out or remove the folder",
        ] {
            assert!(err.contains(phrase), "{phrase:?} not in {err}");
        }
        // A stride that follows the window is no second difference.
        assert!(!err.contains("--stride-s"), "{err}");
        let mut same_length = options.clone();
        same_length.preprocessing.target_rate_hz = 500.0;
        same_length.preprocessing.window.window_samples = 5000;
        same_length.preprocessing.window.stride_samples = Some(1000);
        let err = refusal(&then, &settings(&same_length));
        assert!(
            err.contains("--rate 250 then, 500 now; --stride-s none then, 2 now"),
            "{err}"
        );
        assert!(!err.contains("--window-s"), "{err}");

        let mut plan_changed = settings(&options);
        plan_changed.plan = "another".into();
        let err = refusal(&then, &plan_changed);
        assert!(
            err.ends_with(
                "with other settings: the source's records or their labels and metadata (its \
                 label tables?): 1 planned records then, 1 now, not the same; ingest writes a \
                 new one: choose another --out or remove the folder"
            ),
            "{err}"
        );
        let mut labels_changed = settings(&options);
        labels_changed.label_csv = Some("f00".repeat(20));
        labels_changed.plan = "another".into();
        let err = refusal(&then, &labels_changed);
        assert!(err.contains("--label-csv (a file with SHA-256 "), "{err}");
        assert!(
            err.contains("then, (a file with SHA-256 f00f00f00f00...) now"),
            "{err}"
        );
        assert!(!err.contains("planned records"), "{err}");
    }

    #[test]
    fn a_journal_without_settings_resumes_by_its_legacy_fingerprint() {
        let store = InMemory::new();
        let root = Path::from("ds");
        let now = settings(&IngestOptions::default());
        let old = Journal {
            fingerprint: "legacy".into(),
            records_done: 0,
            ..Journal::default()
        };
        old.save(&store, &root).unwrap();
        let resumed = Journal::resume(&store, &root, "ds", &now, "legacy").unwrap();
        assert_eq!(resumed.fingerprint, now.fingerprint());
        assert_eq!(resumed.settings.as_ref(), Some(&now));
        let err = Journal::resume(&store, &root, "ds", &now, "other")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ingested with other settings, labels or records; "),
            "{err}"
        );
    }

    #[test]
    fn shards_are_intact_until_one_of_them_is_missing_or_resized() {
        let store = InMemory::new();
        let root = Path::from("ds");
        let mut journal = Journal::default();
        for i in 0..40 {
            let path = format!("shards/shard-{i:05}.parquet");
            let bytes = vec![7u8; 10 + i];
            store::block_on(store::put_bytes(
                &store,
                &store::join(&root, &path),
                bytes.into(),
            ))
            .unwrap();
            journal.shards.push(ShardEntry {
                path,
                bytes: 10 + i as u64,
                ..ShardEntry::default()
            });
        }
        assert!(shards_intact(&store, &root, &journal).unwrap());
        let mut resized = journal.clone();
        resized.shards[33].bytes += 1;
        assert!(!shards_intact(&store, &root, &resized).unwrap());
        let at = |i: usize| store::join(&root, &journal.shards[i].path);
        store::block_on(store.delete(&at(3))).unwrap();
        assert!(!shards_intact(&store, &root, &journal).unwrap());
        let mut first_three = journal.clone();
        first_three.shards.truncate(3);
        assert!(shards_intact(&store, &root, &first_three).unwrap());
    }

    #[test]
    fn the_journal_is_saved_once_the_shards_since_outweigh_it_32_fold_or_a_minute_passed() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut cadence = SaveCadence::default();
        assert!(cadence.due(t0), "the first shard's journal is saved");
        cadence.saved(1_000, t0);
        cadence.stored_shard(31_999);
        assert!(!cadence.due(at(59)));
        assert!(cadence.due(at(60)), "a minute after the last save");
        cadence.stored_shard(1);
        assert!(
            cadence.due(at(1)),
            "32,000 shard bytes after a 1,000-byte journal"
        );
        cadence.saved(100, at(1));
        cadence.stored_shard(3_200);
        assert!(
            cadence.due(at(1)),
            "a small journal is saved after every shard"
        );
        cadence.saved(50_000_000, at(1));
        let saves = (0..36)
            .filter(|&i| {
                cadence.stored_shard(128 << 20);
                let now = at(2 + i);
                let due = cadence.due(now);
                if due {
                    cadence.saved(50_000_000, now);
                }
                due
            })
            .count();
        assert_eq!(saves, 3, "a 50 MB journal: every 12th 128 MiB shard");
    }
}
