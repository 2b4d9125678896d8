//! `manifest.json`: the description of a dataset (settings, sources, shards, counts, quarantine)
//! written last by ingest / synth and read first by the loader and `inspect`.

use std::collections::BTreeMap;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use crate::chunk_crc::ShardChecksums;
use crate::error::DataError;
use crate::ingest::{QuarantineReport, JOURNAL_FILE, QUARANTINE_REPORT_FILE};
use crate::split::Split;
use crate::store;

use crate::schema::{DEFAULT_SIGNAL_SCALE, SCHEMA_VERSION, STANDARD_LEADS};

/// File name of the manifest at the dataset root.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Folder (relative to the dataset root) holding the Parquet shards.
pub const SHARDS_DIR: &str = "shards";

/// Default rows per Parquet row group.
pub const DEFAULT_ROW_GROUP_ROWS: usize = 256;

/// The whole `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    pub created_by: String,
    /// Hz of every window after resampling.
    pub sampling_rate: f32,
    /// Samples per lead in each window (`signal` holds 12 × this).
    pub window_samples: usize,
    /// Physical value (mV) of one stored `signal` unit.
    pub signal_scale: f32,
    pub leads: Vec<String>,
    pub row_group_rows: usize,
    /// Every preprocessing setting used (resampler, band-pass, standardisation, window, stride,
    /// quality thresholds), as written by the tool that made the dataset.
    pub preprocessing: serde_json::Value,
    pub sources: Vec<SourceEntry>,
    pub shards: Vec<ShardEntry>,
    pub counts: Counts,
    pub quarantine: Vec<QuarantineEntry>,
    /// Ingested records that lost something on the way (leads that are not standard ECG leads,
    /// windows failing the hard quality rule).
    #[serde(default)]
    pub partial: Vec<PartialEntry>,
}

/// One source dataset that went into this dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceEntry {
    pub name: String,
    pub uri: String,
    pub format: String,
    pub records_seen: u64,
    /// This source's rows of each split by number of present leads (its part of
    /// `counts.leads_present`), so a run that repeats some sources (`data.repeat`) can plan its
    /// compute. Empty in manifests that predate it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub leads_present: BTreeMap<String, BTreeMap<u8, u64>>,
}

impl SourceEntry {
    /// Where the source's recordings came from, however the address was spelled (without
    /// `file://` or a trailing `/`; ingest writes local addresses whole): two sources of one
    /// origin hold the same recordings whatever their names. A synthetic source's is its
    /// generator seed's ([`synth_origin`]).
    pub fn origin(&self) -> &str {
        source_origin(&self.uri)
    }
}

/// [`SourceEntry::origin`] of a source address.
pub fn source_origin(uri: &str) -> &str {
    uri.strip_prefix("file://")
        .unwrap_or(uri)
        .trim_end_matches('/')
}

/// The origin of the generator's recordings of `seed`: `ecgfm data synth --seed SEED`'s source
/// address, whose record `synth-NNNNNN` is sample N of the pretraining stream of that seed.
pub fn synth_origin(seed: u64) -> String {
    format!("{}{seed}", crate::synth_dataset::SYNTH_URI_PREFIX)
}

/// One Parquet shard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// Path relative to the dataset root, e.g. `shards/shard-00000.parquet`.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    /// Lower-case hex SHA-256 of the shard file.
    pub sha256: String,
    /// Rows in each row group, in file order.
    pub row_groups: Vec<u64>,
    /// CRC-32C of each row group's `signal` column chunk (its bytes as stored), in file order.
    /// The signal is stored uncompressed, so nothing else would notice a flipped bit in it; the
    /// loader checks these on every chunk it fetches. Empty in manifests that predate it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signal_crc32c: Vec<u32>,
    /// CRC-32C of each row group's `lead_mask` and `n_samples` column chunks (the two chunks'
    /// bytes as stored, hashed in that order), in file order: the loader's other reads, checked
    /// the same way. Empty in manifests that predate it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lead_mask_n_samples_crc32c: Vec<u32>,
    /// CRC-32C of each row group's `split` and `source` column chunks (hashed in that order), in
    /// file order: which rows a split reads, checked the same way. Empty in manifests that
    /// predate it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub split_source_crc32c: Vec<u32>,
    /// CRC-32C of the footer's metadata bytes (the row-group layout and the statistics the loader
    /// reads a uniform split from), checked when the shard is opened. Absent in manifests that
    /// predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footer_crc32c: Option<u32>,
}

/// Totals over the dataset. Maps are sorted so the JSON is deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub rows: u64,
    pub records: u64,
    /// Rows carrying each label.
    pub labels: BTreeMap<String, u64>,
    /// Rows in each split.
    pub splits: BTreeMap<String, u64>,
    /// Rows of each split by their number of present leads (1..=12): what a sweep plans its
    /// compute with, since the model packs only present leads. Empty in manifests that predate
    /// it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub leads_present: BTreeMap<String, BTreeMap<u8, u64>>,
    /// Quarantined records per reason kind.
    pub quarantine: BTreeMap<String, u64>,
}

/// A record that could not be ingested, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineEntry {
    pub source: String,
    pub record: String,
    pub uri: String,
    /// Short category, the key of `counts.quarantine` (`truncated signal file`, ...).
    pub kind: String,
    /// The full reason, naming the file.
    pub reason: String,
}

/// An ingested record that lost leads or windows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialEntry {
    pub source: String,
    pub record: String,
    /// `name (why)` of each source signal left out.
    pub dropped_leads: Vec<String>,
    /// Windows left out by the hard quality rule.
    pub hard_failed_windows: u64,
}

impl PartialEntry {
    /// What the ingest left out of the record, for a person: each dropped lead with its reason,
    /// then the windows failing the hard quality rule, `; `-separated.
    pub fn left_out(&self) -> String {
        let windows = match self.hard_failed_windows {
            0 => None,
            1 => Some("1 window failing the hard quality rule".to_string()),
            n => Some(format!("{n} windows failing the hard quality rule")),
        };
        let what: Vec<String> = self.dropped_leads.iter().cloned().chain(windows).collect();
        what.join("; ")
    }
}

impl ShardEntry {
    /// How a copy of the shard of `size` bytes with SHA-256 `sha256` differs from this entry
    /// (`None`: it is the shard the manifest lists).
    pub fn mismatch(&self, size: u64, sha256: &str) -> Option<String> {
        (size != self.bytes || sha256 != self.sha256).then(|| {
            format!(
                "{size} bytes with SHA-256 {sha256}; the manifest says {} bytes with {}",
                self.bytes, self.sha256
            )
        })
    }

    /// The checksums the loader checks the shard against.
    pub fn checksums(&self) -> ShardChecksums {
        ShardChecksums {
            chunks: [
                self.signal_crc32c.clone(),
                self.lead_mask_n_samples_crc32c.clone(),
                self.split_source_crc32c.clone(),
            ],
            footer: self.footer_crc32c,
        }
    }

    /// Sets the checksums the loader checks the shard against.
    pub fn set_checksums(&mut self, checksums: ShardChecksums) {
        let [signal, lead_mask, split] = checksums.chunks;
        self.signal_crc32c = signal;
        self.lead_mask_n_samples_crc32c = lead_mask;
        self.split_source_crc32c = split;
        self.footer_crc32c = checksums.footer;
    }

    /// Whether the entry lacks some of the checksums the loader checks (written before ecgfm
    /// kept them; `merge` adds them to its copy).
    pub fn lacks_chunk_checksums(&self) -> bool {
        self.checksums().incomplete()
    }
}

impl Manifest {
    /// An empty manifest with the given window settings and the documented defaults.
    pub fn new(sampling_rate: f32, window_samples: usize, row_group_rows: usize) -> Self {
        Manifest {
            schema_version: SCHEMA_VERSION,
            created_by: format!("ecgfm {}", env!("CARGO_PKG_VERSION")),
            sampling_rate,
            window_samples,
            signal_scale: DEFAULT_SIGNAL_SCALE,
            leads: STANDARD_LEADS.iter().map(|s| s.to_string()).collect(),
            row_group_rows,
            preprocessing: serde_json::Value::Object(Default::default()),
            sources: Vec::new(),
            shards: Vec::new(),
            counts: Counts::default(),
            quarantine: Vec::new(),
            partial: Vec::new(),
        }
    }

    /// The manifest of a dataset made from one `source` with these preprocessing settings,
    /// before its shards and counts are filled in.
    pub fn for_source(
        preprocessing: &ecgfm_preprocess::PipelineConfig,
        window_samples: usize,
        row_group_rows: usize,
        source: SourceEntry,
    ) -> Self {
        let mut manifest = Manifest::new(
            preprocessing.target_rate_hz as f32,
            window_samples,
            row_group_rows,
        );
        manifest.preprocessing =
            serde_json::to_value(preprocessing).expect("preprocessing settings serialise");
        manifest.sources.push(source);
        manifest
    }

    /// Pretty JSON bytes of the manifest.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("manifest serialises: all keys are strings")
    }

    /// Parses manifest JSON; `uri` names the file in the error.
    pub fn from_json(bytes: &[u8], uri: &str) -> Result<Self, DataError> {
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|source| DataError::Json {
                path: uri.to_string(),
                source,
            })?;
        if manifest.schema_version != SCHEMA_VERSION {
            return Err(DataError::Corrupt {
                path: uri.to_string(),
                reason: format!(
                    "manifest schema_version {} is not supported (expected {SCHEMA_VERSION})",
                    manifest.schema_version
                ),
            });
        }
        Ok(manifest)
    }

    /// Reads `manifest.json` of the dataset at `root` (blocking).
    pub fn load(object_store: &dyn ObjectStore, root: &Path) -> Result<Self, DataError> {
        store::block_on(Self::read(object_store, root))
    }

    /// Reads `manifest.json` of the dataset at `root`; a missing one is
    /// `DataError::UnfinishedIngest` where an ingest's journal lies there,
    /// `DataError::UnfinishedWrite` where shards do (a merge's or a synth's),
    /// `DataError::FailedIngest` where an ingest that ingested no record left its report, else
    /// `DataError::NoDataset`.
    pub async fn read(object_store: &dyn ObjectStore, root: &Path) -> Result<Self, DataError> {
        let location = store::join(root, MANIFEST_FILE);
        let bytes = match store::get_bytes(object_store, &location).await {
            Err(DataError::Store {
                location,
                source: source @ object_store::Error::NotFound { .. },
            }) => {
                if crate::store_hint::is_missing_bucket(&source) {
                    return Err(DataError::NoBucket { location });
                }
                let journal = store::join(root, JOURNAL_FILE);
                if object_store.head(&journal).await.is_ok() {
                    return Err(DataError::UnfinishedIngest { location });
                }
                if let Some(report) = QuarantineReport::read(object_store, root).await {
                    let report_location = store::join(root, QUARANTINE_REPORT_FILE);
                    return Err(DataError::FailedIngest {
                        location,
                        report: store::shown(object_store, &report_location),
                        quarantined: report.quarantine.len(),
                    });
                }
                let shards = store::list(object_store, &store::join(root, "shards")).await;
                return Err(match shards.is_ok_and(|listed| !listed.is_empty()) {
                    true => DataError::UnfinishedWrite { location },
                    false => DataError::NoDataset { location },
                });
            }
            bytes => bytes?,
        };
        Self::from_json(&bytes, &store::shown(object_store, &location))
    }

    /// Refuses `url` (at `root`) as the `--out` of `command` (`merge`, `synth`), which writes a
    /// new dataset, where a dataset or an unfinished ingest lies: it would overwrite their shards.
    pub fn refuse_occupied(
        object_store: &dyn ObjectStore,
        root: &Path,
        url: &str,
        command: &str,
    ) -> Result<(), DataError> {
        let url = store::redact_url(url);
        let holds = match store::block_on(Self::read(object_store, root)) {
            Err(
                DataError::NoDataset { .. }
                | DataError::UnfinishedWrite { .. }
                | DataError::FailedIngest { .. },
            ) => return Ok(()),
            Err(DataError::UnfinishedIngest { .. }) => format!(
                "an unfinished ingest ({JOURNAL_FILE}; run the same `ecgfm data ingest` again to \
                 finish it)"
            ),
            Err(err @ (DataError::Store { .. } | DataError::NoBucket { .. })) => return Err(err),
            _ => format!("a dataset ({MANIFEST_FILE})"),
        };
        Err(DataError::Refused(format!(
            "{url} already holds {holds}; {command} writes a new dataset: choose another --out"
        )))
    }

    /// Writes `manifest.json` of the dataset at `root` (blocking).
    pub fn save(&self, object_store: &dyn ObjectStore, root: &Path) -> Result<(), DataError> {
        let location = store::join(root, MANIFEST_FILE);
        store::block_on(store::put_bytes(
            object_store,
            &location,
            self.to_json().into(),
        ))
    }

    /// SHA-256 (hex) of what the loader reads: the window settings, the lead order and each
    /// shard's path, rows and SHA-256, in manifest order. Two datasets with the same digest give
    /// a training run the same samples, wherever each is stored and whatever else their
    /// manifests say (who wrote them, the raw files' addresses, the quarantine).
    pub fn data_digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let shards: Vec<_> = (self.shards.iter())
            .map(|s| (&s.path, s.rows, &s.sha256))
            .collect();
        let read = (
            self.sampling_rate,
            self.window_samples,
            self.signal_scale,
            &self.leads,
            shards,
        );
        let read = serde_json::to_string(&read).expect("numbers and strings serialise");
        hex::encode(Sha256::digest(read))
    }

    /// Sets the counts of a one-source dataset, that source's lead counts with them.
    pub fn set_counts(&mut self, counts: Counts) {
        if let [only] = self.sources.as_mut_slice() {
            // A source without rows says so with every split empty: an empty map would read as
            // a manifest from before the counts, and take a merged dataset's counts with it.
            only.leads_present = match counts.rows {
                0 => [Split::Train, Split::Val, Split::Test]
                    .map(|split| (split.as_str().to_string(), BTreeMap::new()))
                    .into(),
                _ => counts.leads_present.clone(),
            };
        }
        self.counts = counts;
    }

    /// Rows of `split` (every split for `"all"`) by number of present leads, over the dataset.
    pub fn leads_in(&self, split: &str) -> BTreeMap<u8, u64> {
        leads_in(&self.counts.leads_present, split)
    }

    /// The sources, the only source of a dataset written before sources kept their own lead
    /// counts given the dataset's (what `merge` keeps and `leads_by_source` reads).
    pub fn sources_with_lead_counts(&self) -> Vec<SourceEntry> {
        let mut sources = self.sources.clone();
        if let [only] = sources.as_mut_slice() {
            if only.leads_present.is_empty() {
                only.leads_present = self.counts.leads_present.clone();
            }
        }
        sources
    }

    /// Rows of `split` (every split for `"all"`) by number of present leads, per source name
    /// (sources of the same name together); `None` when the manifest does not tell (it predates
    /// the counts, or several sources were merged before they were kept per source).
    pub fn leads_by_source(&self, split: &str) -> Option<BTreeMap<String, BTreeMap<u8, u64>>> {
        let sources = self.sources_with_lead_counts();
        if sources.is_empty() || sources.iter().any(|s| s.leads_present.is_empty()) {
            return None;
        }
        let mut out: BTreeMap<String, BTreeMap<u8, u64>> = BTreeMap::new();
        for source in &sources {
            let to = out.entry(source.name.clone()).or_default();
            for (leads, n) in leads_in(&source.leads_present, split) {
                *to.entry(leads).or_default() += n;
            }
        }
        Some(out)
    }
}

/// Rows of `split` (every split for `"all"`) by number of present leads, from counts by split.
fn leads_in(by_split: &BTreeMap<String, BTreeMap<u8, u64>>, split: &str) -> BTreeMap<u8, u64> {
    let mut rows = BTreeMap::new();
    let chosen = by_split
        .iter()
        .filter(|(s, _)| split == "all" || *s == split);
    for (&leads, &n) in chosen.flat_map(|(_, by_leads)| by_leads) {
        *rows.entry(leads).or_default() += n;
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_record_says_which_leads_and_windows_it_lost() {
        let entry = |dropped_leads: &[&str], hard_failed_windows| PartialEntry {
            source: "wfdb".into(),
            record: "r".into(),
            dropped_leads: dropped_leads.iter().map(|l| l.to_string()).collect(),
            hard_failed_windows,
        };
        let leads = [
            "V (not a standard ECG lead)",
            "RESP (not a standard ECG lead)",
        ];
        assert_eq!(
            entry(&leads, 0).left_out(),
            "V (not a standard ECG lead); RESP (not a standard ECG lead)"
        );
        assert_eq!(
            entry(&leads[..1], 3).left_out(),
            "V (not a standard ECG lead); 3 windows failing the hard quality rule"
        );
        assert_eq!(
            entry(&[], 1).left_out(),
            "1 window failing the hard quality rule"
        );
    }

    fn sample() -> Manifest {
        let mut m = Manifest::new(250.0, 2500, 256);
        m.sources.push(SourceEntry {
            name: "ptbxl".into(),
            uri: "/data/ptbxl".into(),
            format: "ptbxl".into(),
            records_seen: 2,
            leads_present: BTreeMap::new(),
        });
        m.shards.push(ShardEntry {
            path: "shards/shard-00000.parquet".into(),
            rows: 300,
            bytes: 1234,
            sha256: "ab".repeat(32),
            row_groups: vec![256, 44],
            signal_crc32c: vec![7, 9],
            lead_mask_n_samples_crc32c: vec![8, 10],
            split_source_crc32c: vec![11, 12],
            footer_crc32c: Some(13),
        });
        m.counts.rows = 300;
        m.counts.labels.insert("scp:NORM".into(), 12);
        m.quarantine.push(QuarantineEntry {
            source: "ptbxl".into(),
            record: "00042_hr".into(),
            uri: "/data/ptbxl/00042_hr".into(),
            kind: "truncated signal file".into(),
            reason: "truncated signal file".into(),
        });
        m
    }

    #[test]
    fn json_round_trip_keeps_everything() {
        let m = sample();
        let back = Manifest::from_json(&m.to_json(), "mem").unwrap();
        assert_eq!(back, m);
        let text = String::from_utf8(m.to_json()).unwrap();
        assert!(text.contains("\"row_groups\""));
        assert!(text.contains("\"signal_scale\": 0.001"));
    }

    #[test]
    fn lead_counts_by_source_come_from_the_sources_or_the_only_source() {
        let mut m = sample();
        assert_eq!(m.leads_by_source("train"), None, "no lead counts at all");
        let counts = |pairs: &[(&str, u8, u64)]| {
            let mut by_split: BTreeMap<String, BTreeMap<u8, u64>> = BTreeMap::new();
            for &(split, leads, n) in pairs {
                by_split.entry(split.into()).or_default().insert(leads, n);
            }
            by_split
        };
        m.counts.leads_present = counts(&[("train", 12, 250), ("val", 12, 50)]);
        let one = m.leads_by_source("train").unwrap();
        assert_eq!(
            one,
            BTreeMap::from([("ptbxl".into(), BTreeMap::from([(12, 250)]))])
        );
        let mut cinc = m.sources[0].clone();
        cinc.name = "cinc2017".into();
        m.sources.push(cinc);
        assert_eq!(
            m.leads_by_source("train"),
            None,
            "merged without per-source counts"
        );
        m.sources[0].leads_present = counts(&[("train", 12, 200), ("val", 12, 40)]);
        m.sources[1].leads_present = counts(&[("train", 1, 50), ("val", 1, 10)]);
        let all = m.leads_by_source("all").unwrap();
        assert_eq!(all["ptbxl"], BTreeMap::from([(12, 240)]));
        assert_eq!(all["cinc2017"], BTreeMap::from([(1, 60)]));

        // A source whose every record was quarantined counts its (no) rows, and keeps the
        // merged dataset's counts, through a manifest file.
        let mut empty = sample();
        empty.sources[0].name = "empty".into();
        empty.set_counts(Counts::default());
        let empty = Manifest::from_json(&empty.to_json(), "empty/manifest.json").unwrap();
        m.sources.push(empty.sources[0].clone());
        let all = m.leads_by_source("train").unwrap();
        assert_eq!(all["empty"], BTreeMap::new());
        assert_eq!(all["cinc2017"], BTreeMap::from([(1, 50)]));
    }

    #[test]
    fn the_data_digest_follows_what_the_loader_reads_and_nothing_else() {
        let m = sample();
        let digest = m.data_digest();
        assert_eq!(digest.len(), 64);
        let mut bookkeeping = sample();
        bookkeeping.created_by = "ecgfm 9.9.9".into();
        bookkeeping.sources[0].uri = "s3://elsewhere/ptbxl".into();
        bookkeeping.quarantine.clear();
        bookkeeping.counts.labels.clear();
        assert_eq!(bookkeeping.data_digest(), digest);
        let changes: [fn(&mut Manifest); 5] = [
            |m| m.shards[0].sha256 = "cd".repeat(32),
            |m| m.shards[0].rows = 299,
            |m| m.shards[0].path = "shards/shard-00001.parquet".into(),
            |m| m.signal_scale = 0.002,
            |m| m.leads.swap(0, 1),
        ];
        for change in changes {
            let mut other = sample();
            change(&mut other);
            assert_ne!(other.data_digest(), digest, "{:?}", other.shards[0]);
        }
    }

    #[test]
    fn wrong_version_and_garbage_are_errors_naming_the_file() {
        let mut m = sample();
        m.schema_version = 99;
        let err = Manifest::from_json(&m.to_json(), "s3://b/x/manifest.json").unwrap_err();
        assert!(err.to_string().contains("s3://b/x/manifest.json"));
        assert!(err.to_string().contains("99"));
        let err = Manifest::from_json(b"{", "here.json").unwrap_err();
        assert!(err.to_string().starts_with("here.json"));
    }

    #[test]
    fn a_local_manifest_is_named_by_its_absolute_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST_FILE), "{").unwrap();
        let (store, root) = crate::store::open_url(dir.path().to_str().unwrap()).unwrap();
        let err = Manifest::load(store.as_ref(), &root)
            .unwrap_err()
            .to_string();
        let path = dir.path().join(MANIFEST_FILE);
        assert!(
            err.starts_with(&format!("{}: invalid JSON", path.display())),
            "{err}"
        );
    }

    #[test]
    fn save_and_load_through_the_memory_store() {
        let (store, root) = crate::store::open_url("memory://manifest-test/ds").unwrap();
        let m = sample();
        m.save(store.as_ref(), &root).unwrap();
        assert_eq!(Manifest::load(store.as_ref(), &root).unwrap(), m);
        let (_, missing) = crate::store::open_url("memory://manifest-test/none").unwrap();
        let err = Manifest::load(store.as_ref(), &missing).unwrap_err();
        assert!(matches!(err, DataError::NoDataset { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("manifest-test/none/manifest.json not found: no dataset there"),
            "{err}"
        );
        let (_, stopped) = crate::store::open_url("memory://manifest-test/stopped").unwrap();
        let journal = crate::store::join(&stopped, JOURNAL_FILE);
        crate::store::block_on(crate::store::put_bytes(
            store.as_ref(),
            &journal,
            "{}".into(),
        ))
        .unwrap();
        let (_, killed) = crate::store::open_url("memory://manifest-test/killed").unwrap();
        let shard = crate::store::join(&killed, "shards/shard-00000.parquet");
        crate::store::block_on(crate::store::put_bytes(store.as_ref(), &shard, "x".into()))
            .unwrap();
        let err = Manifest::load(store.as_ref(), &killed).unwrap_err();
        assert!(matches!(err, DataError::UnfinishedWrite { .. }), "{err:?}");
        assert!(
            err.to_string().contains("run the same command again"),
            "{err}"
        );
        let err = Manifest::load(store.as_ref(), &stopped).unwrap_err();
        assert!(matches!(err, DataError::UnfinishedIngest { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains("run the same `ecgfm data ingest` command again"),
            "{err}"
        );
    }
}
