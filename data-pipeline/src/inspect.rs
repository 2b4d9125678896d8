//! `ecgfm data inspect`: a summary of a dataset (rows, records, shards, label and split counts,
//! a quality-score histogram and quality-flag counts read from the shards, quarantine) with a
//! human-readable Display. Every shard is read whole, so its size and SHA-256 are checked
//! against the manifest on the way; the next shards are fetched while one is decoded. A shard
//! that cannot be fetched or decoded is reported with the others that differ (its rows left out
//! of the counts) and the rest are still read. The rows of each split counted in the shards are
//! checked against the manifest's.

use std::collections::BTreeMap;
use std::fmt;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, UInt8Type};
use bytes::Bytes;
use indicatif::ProgressBar;

use crate::error::DataError;
use crate::ingest::shard_writer::sha256_hex;
use crate::manifest::{Manifest, QuarantineEntry, SourceEntry};
use crate::schema::{col, quality_flag, N_LEADS};
use crate::shard_columns;
use crate::store;

/// Bins of the quality histogram: [0, 0.1), [0.1, 0.2), ..., [0.9, 1.0].
pub const QUALITY_BINS: usize = 10;

/// What `inspect` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetSummary {
    pub url: String,
    pub rows: u64,
    pub records: u64,
    pub shards: usize,
    pub bytes: u64,
    pub sampling_rate: f32,
    pub window_samples: usize,
    /// `Manifest::data_digest`: the same for every copy of the dataset, wherever it is stored.
    pub data_digest: String,
    /// The source datasets, as in the manifest (several after `merge`).
    pub sources: Vec<SourceEntry>,
    pub labels: BTreeMap<String, u64>,
    /// Rows per split, as the manifest counts them.
    pub splits: BTreeMap<String, u64>,
    /// Rows per split, as counted in the shards that could be read.
    pub shard_splits: BTreeMap<String, u64>,
    /// Rows of each split by number of present leads (empty for datasets that predate it).
    pub leads_present: BTreeMap<String, BTreeMap<u8, u64>>,
    /// Rows per quality-score bin (see [`QUALITY_BINS`]) of the shards that could be read.
    pub quality_histogram: [u64; QUALITY_BINS],
    /// Rows with each quality flag (see [`FLAG_NAMES`]) raised on at least one lead.
    pub flagged_rows: [u64; FLAG_NAMES.len()],
    pub quarantine: BTreeMap<String, u64>,
    /// The first few quarantined records, with their reasons.
    pub quarantine_examples: Vec<QuarantineEntry>,
    /// Records ingested with dropped leads or windows.
    pub partial_records: usize,
    /// Shards whose size or SHA-256 differ from the manifest, that are gone, or that cannot be
    /// decoded, with what differs and the error (which names the file).
    pub damaged_shards: Vec<(String, String)>,
    /// Shards that are there but could not be fetched here (no permission, the store
    /// unreachable): no verdict on their data. With the error, which names the file.
    pub unreachable_shards: Vec<(String, String)>,
    /// Shards that could not be fetched or decoded: their rows are in no count read from shards.
    pub unread_shards: usize,
    /// Shards whose entries lack the chunk checksums the loader checks each read against.
    pub unchecked_shards: usize,
}

/// Quality flag bits (`schema::quality_flag`) and their names, in bit order.
pub const FLAG_NAMES: [(u8, &str); 5] = [
    (quality_flag::MISSING, "missing samples"),
    (quality_flag::FLAT, "flat line"),
    (quality_flag::CLIPPING, "clipping"),
    (quality_flag::IMPLAUSIBLE_AMPLITUDE, "implausible amplitude"),
    (quality_flag::HIGH_FREQUENCY_NOISE, "high-frequency noise"),
];

/// Shards fetched ahead of the one being read (each held whole in memory).
const PREFETCH_SHARDS: usize = 3;

/// Quarantined records listed in the summary.
const EXAMPLES: usize = 5;

/// What the columns of the shards read so far hold.
#[derive(Default)]
struct ShardCounts {
    histogram: [u64; QUALITY_BINS],
    flagged_rows: [u64; FLAG_NAMES.len()],
    splits: BTreeMap<String, u64>,
}

impl ShardCounts {
    fn add(&mut self, other: ShardCounts) {
        for (total, n) in self.histogram.iter_mut().zip(other.histogram) {
            *total += n;
        }
        for (total, n) in self.flagged_rows.iter_mut().zip(other.flagged_rows) {
            *total += n;
        }
        for (split, n) in other.splits {
            *self.splits.entry(split).or_default() += n;
        }
    }
}

/// Whether a failed fetch says the shard is gone (a verdict on the dataset), not that it could
/// not be read here (no permission, the store unreachable).
fn is_missing(error: &DataError) -> bool {
    match error {
        DataError::Store { source, .. } => matches!(source, object_store::Error::NotFound { .. }),
        _ => false,
    }
}

/// Reads the manifest and the `quality_score`, `quality_flags` and `split` columns of every
/// shard of the dataset at `url`; `progress` counts the shard bytes read (its length is set
/// here). A shard that is gone or cannot be decoded is an entry of `damaged_shards`, one that
/// cannot be fetched here an entry of `unreachable_shards`, neither an error.
pub fn inspect(
    url: &str,
    options: &[(&str, &str)],
    progress: &ProgressBar,
) -> Result<DatasetSummary, DataError> {
    let (object_store, root) = store::open_url_with(url, options)?;
    let manifest = Manifest::load(object_store.as_ref(), &root)?;
    progress.set_length(manifest.shards.iter().map(|s| s.bytes).sum());
    let mut counts = ShardCounts::default();
    let (mut damaged_shards, mut unreachable_shards, mut unread_shards) =
        (Vec::new(), Vec::new(), 0);
    let locations: Vec<_> = (manifest.shards.iter())
        .map(|shard| store::join(&root, &shard.path))
        .collect();
    let fetch = |i: usize| {
        let (object_store, location) = (object_store.clone(), locations[i].clone());
        store::runtime()
            .spawn(async move { store::get_bytes(object_store.as_ref(), &location).await })
    };
    let mut fetches: std::collections::VecDeque<_> = (0..manifest.shards.len())
        .take(PREFETCH_SHARDS + 1)
        .map(fetch)
        .collect();
    for (i, (shard, location)) in manifest.shards.iter().zip(&locations).enumerate() {
        let next = fetches.pop_front().expect("a fetch per shard");
        let ahead = i + PREFETCH_SHARDS + 1;
        if ahead < manifest.shards.len() {
            fetches.push_back(fetch(ahead));
        }
        let (mismatch, read) = match store::block_on(next).expect("a shard fetch panicked") {
            Ok(bytes) => {
                progress.inc(bytes.len() as u64);
                let mismatch = shard.mismatch(bytes.len() as u64, &sha256_hex(&bytes));
                let shown = store::shown(object_store.as_ref(), location);
                (mismatch, count_shard(bytes, &shown))
            }
            Err(error) if !is_missing(&error) => {
                unread_shards += 1;
                unreachable_shards.push((shard.path.clone(), error.to_string()));
                continue;
            }
            Err(error) => (None, Err(error)),
        };
        let unread = match read {
            Ok(shard_counts) => {
                counts.add(shard_counts);
                None
            }
            Err(error) => {
                unread_shards += 1;
                Some(format!("cannot be read: {error}"))
            }
        };
        let damage: Vec<String> = mismatch.into_iter().chain(unread).collect();
        if !damage.is_empty() {
            damaged_shards.push((shard.path.clone(), damage.join("; ")));
        }
    }
    Ok(DatasetSummary {
        url: store::redact_url(url),
        rows: manifest.counts.rows,
        records: manifest.counts.records,
        shards: manifest.shards.len(),
        bytes: manifest.shards.iter().map(|s| s.bytes).sum(),
        sampling_rate: manifest.sampling_rate,
        window_samples: manifest.window_samples,
        data_digest: manifest.data_digest(),
        sources: manifest.sources,
        labels: manifest.counts.labels,
        splits: manifest.counts.splits,
        shard_splits: counts.splits,
        leads_present: manifest.counts.leads_present,
        quality_histogram: counts.histogram,
        flagged_rows: counts.flagged_rows,
        quarantine: manifest.counts.quarantine,
        quarantine_examples: manifest.quarantine.into_iter().take(EXAMPLES).collect(),
        partial_records: manifest.partial.len(),
        damaged_shards,
        unreachable_shards,
        unread_shards,
        unchecked_shards: (manifest.shards.iter())
            .filter(|s| s.lacks_chunk_checksums())
            .count(),
    })
}

/// Counts the quality scores, flags and splits of one shard's rows (`path` names it in errors).
fn count_shard(bytes: Bytes, path: &str) -> Result<ShardCounts, DataError> {
    let corrupt = |reason: &str| shard_columns::corrupt(path, reason);
    let columns = [col::QUALITY_SCORE, col::QUALITY_FLAGS, col::SPLIT];
    let mut counts = ShardCounts::default();
    for batch in shard_columns::decode(bytes, path, &columns, None, None)? {
        let scores = batch.column_by_name(col::QUALITY_SCORE);
        let scores = scores
            .and_then(|c| c.as_primitive_opt::<Float32Type>())
            .ok_or_else(|| corrupt("quality_score is not Float32"))?;
        for score in scores.values() {
            let bin = (score.clamp(0.0, 1.0) * QUALITY_BINS as f32) as usize;
            counts.histogram[bin.min(QUALITY_BINS - 1)] += 1;
        }
        let flags = batch
            .column_by_name(col::QUALITY_FLAGS)
            .and_then(|c| c.as_fixed_size_list_opt())
            .filter(|c| c.value_length() as usize == N_LEADS)
            .and_then(|c| c.values().as_primitive_opt::<UInt8Type>().cloned())
            .ok_or_else(|| corrupt("quality_flags is not FixedSizeList<UInt8, 12>"))?;
        for row in flags.values().chunks_exact(N_LEADS) {
            let any = row.iter().fold(0u8, |acc, &f| acc | f);
            for (count, (bit, _)) in counts.flagged_rows.iter_mut().zip(FLAG_NAMES) {
                *count += u64::from(any & bit != 0);
            }
        }
        let splits = batch
            .column_by_name(col::SPLIT)
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| corrupt("split is not Utf8"))?;
        for split in splits.iter() {
            let split = split.unwrap_or_default();
            match counts.splits.get_mut(split) {
                Some(n) => *n += 1,
                None => {
                    counts.splits.insert(split.to_string(), 1);
                }
            }
        }
    }
    Ok(counts)
}

impl DatasetSummary {
    /// The splits whose rows in the shards differ from the manifest's count: (split, rows in the
    /// shards, rows in the manifest). Empty when they agree, and when a shard could not be read
    /// (its rows are not counted, so nothing can be compared).
    pub fn split_mismatches(&self) -> Vec<(String, u64, u64)> {
        if self.unread_shards > 0 {
            return Vec::new();
        }
        let names: std::collections::BTreeSet<&String> =
            self.splits.keys().chain(self.shard_splits.keys()).collect();
        let rows = |counts: &BTreeMap<String, u64>, split| counts.get(split).copied().unwrap_or(0);
        names
            .into_iter()
            .map(|split| {
                let (shards, manifest) =
                    (rows(&self.shard_splits, split), rows(&self.splits, split));
                (split.clone(), shards, manifest)
            })
            .filter(|(_, shards, manifest)| shards != manifest)
            .collect()
    }
}

impl fmt::Display for DatasetSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "dataset {}", self.url)?;
        writeln!(
            f,
            "  {} rows from {} records in {} shards ({:.1} MB); windows of {} samples at {} Hz",
            self.rows,
            self.records,
            self.shards,
            self.bytes as f64 / 1e6,
            self.window_samples,
            self.sampling_rate
        )?;
        writeln!(
            f,
            "  data digest {} (a run resumes on any copy with this digest)",
            self.data_digest
        )?;
        writeln!(f, "sources:")?;
        for source in &self.sources {
            // Of several sources, each one's rows by split (from its lead counts).
            let rows: Vec<String> = source
                .leads_present
                .iter()
                .map(|(split, by_leads)| format!("{split} {}", by_leads.values().sum::<u64>()))
                .collect();
            let rows = match self.sources.len() > 1 && !rows.is_empty() {
                true => format!("; rows: {}", rows.join(", ")),
                false => String::new(),
            };
            writeln!(
                f,
                "  {:<8} {} records seen ({}, {}){rows}",
                source.name, source.records_seen, source.format, source.uri
            )?;
        }
        writeln!(f, "splits:")?;
        for (split, n) in &self.splits {
            writeln!(f, "  {split:<8} {n}")?;
        }
        if !self.leads_present.is_empty() {
            writeln!(f, "leads present (rows):")?;
            for (split, by_leads) in &self.leads_present {
                let counts: Vec<String> = by_leads
                    .iter()
                    .rev()
                    .map(|(leads, n)| {
                        format!("{leads} lead{}: {n}", if *leads == 1 { "" } else { "s" })
                    })
                    .collect();
                writeln!(f, "  {split:<8} {}", counts.join(", "))?;
            }
        }
        writeln!(f, "labels ({}):", self.labels.len())?;
        let mut labels: Vec<_> = self.labels.iter().collect();
        labels.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (label, n) in labels {
            writeln!(f, "  {label:<32} {n}")?;
        }
        let unread = match self.unread_shards {
            0 => String::new(),
            n => format!("; not counted: the {n} shard(s) that cannot be read"),
        };
        writeln!(f, "quality score (rows per bin{unread}):")?;
        let widest = self
            .quality_histogram
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
            .max(1);
        for (bin, n) in self.quality_histogram.iter().enumerate() {
            let bar = "#".repeat((n * 40).div_ceil(widest) as usize);
            let low = bin as f32 / QUALITY_BINS as f32;
            writeln!(f, "  {low:.1}-{:.1} {n:>8} {bar}", low + 0.1)?;
        }
        writeln!(f, "quality flags (rows with the flag on any lead{unread}):")?;
        for (n, (_, name)) in self.flagged_rows.iter().zip(FLAG_NAMES) {
            writeln!(f, "  {name:<24} {n:>8}")?;
        }
        writeln!(
            f,
            "quarantine: {} records; partial: {} records",
            self.quarantine.values().sum::<u64>(),
            self.partial_records
        )?;
        for (kind, n) in &self.quarantine {
            writeln!(f, "  {kind:<32} {n}")?;
        }
        for q in &self.quarantine_examples {
            writeln!(f, "  e.g. {}: {}", q.record, q.reason)?;
        }
        match self.damaged_shards.len() {
            0 => writeln!(
                f,
                "shards: all {} match the manifest's SHA-256",
                self.shards
            )?,
            n => writeln!(
                f,
                "shards: {n} of {} DIFFER from the manifest:",
                self.shards
            )?,
        }
        for (path, what) in &self.damaged_shards {
            writeln!(f, "  {path}: {what}")?;
        }
        if !self.unreachable_shards.is_empty() {
            writeln!(
                f,
                "shards: {} could not be read here, so they were not checked:",
                self.unreachable_shards.len()
            )?;
        }
        for (path, why) in &self.unreachable_shards {
            writeln!(f, "  {path}: {why}")?;
        }
        let mismatches: Vec<String> = (self.split_mismatches().into_iter())
            .map(|(split, shards, manifest)| {
                format!("{split} {shards} (the manifest says {manifest})")
            })
            .collect();
        match (self.unread_shards, mismatches.is_empty()) {
            (0, true) => writeln!(f, "rows per split: the shards hold the manifest's counts")?,
            (0, false) => writeln!(
                f,
                "rows per split: the shards' DIFFER from the manifest's: {}",
                mismatches.join(", ")
            )?,
            (n, _) => writeln!(
                f,
                "rows per split: not checked against the manifest ({n} shard(s) cannot be read)"
            )?,
        }
        if self.unchecked_shards > 0 {
            writeln!(
                f,
                "chunk checksums: {} of {} shards lack some (written before ecgfm kept them), so \
                 the loader cannot check all of their footer and column chunks on each read; \
                 `ecgfm data merge {} --out NEW` writes a copy that has them",
                self.unchecked_shards, self.shards, self.url
            )?;
        }
        Ok(())
    }
}
