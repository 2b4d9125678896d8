//! `merge`: several datasets written with the same preprocessing (say PTB-XL, CinC 2021 and a
//! hospital's own export, each ingested with its own format) into one dataset a run trains on.
//!
//! The inputs' shards are copied as they are, renumbered in input order, each checked against
//! its input manifest's size and SHA-256 on the way (a shard changed since it was written stops
//! the merge; nothing is lost, the inputs are only read). Rows keep their `source`, patient ids
//! (source-prefixed, so the patient-hash splits of different sources never share a patient) and
//! splits. The manifest's sources, counts, quarantine and partial lists are the inputs' together.
//! It is written last: an interrupted merge run again keeps the shards already copied (each
//! re-checked by its SHA-256) and copies the rest.

use std::collections::BTreeMap;

use indicatif::ProgressBar;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};

use crate::error::DataError;
use crate::ingest::shard_writer::shard_path;
use crate::manifest::{Counts, Manifest, ShardEntry, MANIFEST_FILE};
use crate::store;

/// What a merge did.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeReport {
    pub manifest: Manifest,
    /// Shards copied by this run.
    pub shards_copied: u64,
    /// Shards found already copied by an interrupted earlier run (their SHA-256 checked).
    pub shards_kept: u64,
    /// Inputs whose manifests predate the count of rows by present leads: the merged dataset
    /// has none either (a partial count would mislead a sweep's compute plan).
    pub without_lead_counts: Vec<String>,
}

/// One opened input dataset.
struct Input {
    url: String,
    store: std::sync::Arc<dyn ObjectStore>,
    root: Path,
    manifest: Manifest,
}

/// Merges the datasets at `inputs` (two or more) into a new dataset at `out`; `progress` counts
/// the shard bytes copied (its length is set here).
pub fn merge(
    inputs: &[String],
    out: &str,
    progress: &ProgressBar,
) -> Result<MergeReport, DataError> {
    if inputs.len() < 2 {
        return Err(DataError::Config(format!(
            "merge needs two or more datasets, got {}",
            inputs.len()
        )));
    }
    let inputs = inputs
        .iter()
        .map(|url| {
            let (store, root) = store::open_url(url)?;
            let manifest = Manifest::load(store.as_ref(), &root)?;
            Ok(Input {
                url: store::redact_url(url),
                store,
                root,
                manifest,
            })
        })
        .collect::<Result<Vec<_>, DataError>>()?;
    check_compatible(&inputs)?;
    let (out_store, out_root) = store::open_url(out)?;
    let manifest_location = store::join(&out_root, MANIFEST_FILE);
    if store::block_on(out_store.head(&manifest_location)).is_ok() {
        return Err(DataError::Config(format!(
            "{} already holds a dataset ({MANIFEST_FILE}); merge writes a new one: choose another --out",
            store::redact_url(out)
        )));
    }
    progress.set_length(
        inputs
            .iter()
            .flat_map(|i| &i.manifest.shards)
            .map(|s| s.bytes)
            .sum(),
    );
    let first = &inputs[0].manifest;
    let mut merged = Manifest::new(
        first.sampling_rate,
        first.window_samples,
        first.row_group_rows,
    );
    merged.signal_scale = first.signal_scale;
    merged.leads = first.leads.clone();
    merged.preprocessing = first.preprocessing.clone();
    let (mut shards_copied, mut shards_kept) = (0, 0);
    for input in &inputs {
        for shard in &input.manifest.shards {
            let path = shard_path(merged.shards.len());
            let destination = store::join(&out_root, &path);
            if holds_copy(out_store.as_ref(), &destination, shard)? {
                shards_kept += 1;
            } else {
                copy_shard(input, shard, out_store.as_ref(), &destination)?;
                shards_copied += 1;
            }
            progress.inc(shard.bytes);
            merged.shards.push(ShardEntry {
                path,
                ..shard.clone()
            });
        }
        let m = &input.manifest;
        merged.sources.extend(m.sources_with_lead_counts());
        merged.quarantine.extend(m.quarantine.iter().cloned());
        merged.partial.extend(m.partial.iter().cloned());
        add_counts(&mut merged.counts, &m.counts);
    }
    let without_lead_counts: Vec<String> = inputs
        .iter()
        .filter(|i| i.manifest.counts.leads_present.is_empty() && i.manifest.counts.rows > 0)
        .map(|i| i.url.clone())
        .collect();
    if !without_lead_counts.is_empty() {
        merged.counts.leads_present.clear();
    }
    merged.save(out_store.as_ref(), &out_root)?;
    Ok(MergeReport {
        manifest: merged,
        shards_copied,
        shards_kept,
        without_lead_counts,
    })
}

/// Refuses inputs whose windows differ (rate, length, scale, leads, row groups, preprocessing)
/// or that repeat a source: their rows could not be trained on as one dataset.
fn check_compatible(inputs: &[Input]) -> Result<(), DataError> {
    let first = &inputs[0];
    let a = &first.manifest;
    for input in &inputs[1..] {
        let b = &input.manifest;
        let settings = [
            (
                "the sampling rate (Hz)",
                a.sampling_rate.to_string(),
                b.sampling_rate.to_string(),
            ),
            (
                "the window length (samples)",
                a.window_samples.to_string(),
                b.window_samples.to_string(),
            ),
            (
                "signal_scale",
                a.signal_scale.to_string(),
                b.signal_scale.to_string(),
            ),
            ("the lead order", a.leads.join(","), b.leads.join(",")),
            (
                "row_group_rows",
                a.row_group_rows.to_string(),
                b.row_group_rows.to_string(),
            ),
        ];
        if let Some((what, x, y)) = settings.into_iter().find(|(_, x, y)| x != y) {
            return Err(DataError::Config(format!(
                "{} cannot be merged with {}: its {what} is {y}, not {x}",
                input.url, first.url
            )));
        }
        let mut paths = Vec::new();
        differing_settings(
            "preprocessing",
            &a.preprocessing,
            &b.preprocessing,
            &mut paths,
        );
        if !paths.is_empty() {
            return Err(DataError::Config(format!(
                "{} cannot be merged with {}: they were preprocessed differently ({}); ingest them with the same settings",
                input.url,
                first.url,
                paths.join(", ")
            )));
        }
    }
    let mut seen = BTreeMap::new();
    for input in inputs {
        for source in &input.manifest.sources {
            if let Some(other) = seen.insert((&source.name, &source.uri), &input.url) {
                return Err(DataError::Config(format!(
                    "{} and {} both hold source {} ({}): its records would be counted twice",
                    other, input.url, source.name, source.uri
                )));
            }
        }
    }
    Ok(())
}

/// The dotted paths (under `at`) where two settings trees differ, with both values.
fn differing_settings(
    at: &str,
    a: &serde_json::Value,
    b: &serde_json::Value,
    out: &mut Vec<String>,
) {
    match (a, b) {
        (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            let null = serde_json::Value::Null;
            for key in keys {
                let (u, v) = (x.get(key).unwrap_or(&null), y.get(key).unwrap_or(&null));
                differing_settings(&format!("{at}.{key}"), u, v, out);
            }
        }
        _ if a != b => out.push(format!("{at}: {a} and {b}")),
        _ => {}
    }
}

/// Whether `destination` already holds `shard` whole (left by an interrupted merge).
fn holds_copy(
    out_store: &dyn ObjectStore,
    destination: &Path,
    shard: &ShardEntry,
) -> Result<bool, DataError> {
    match store::block_on(out_store.head(destination)) {
        Ok(meta) if meta.size == shard.bytes => {
            let bytes = store::block_on(store::get_bytes(out_store, destination))?;
            Ok(hex::encode(Sha256::digest(&bytes)) == shard.sha256)
        }
        _ => Ok(false),
    }
}

/// Copies one shard, checking it against the input manifest first.
fn copy_shard(
    input: &Input,
    shard: &ShardEntry,
    out_store: &dyn ObjectStore,
    destination: &Path,
) -> Result<(), DataError> {
    let location = store::join(&input.root, &shard.path);
    let bytes = store::block_on(store::get_bytes(input.store.as_ref(), &location))?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    if bytes.len() as u64 != shard.bytes || sha256 != shard.sha256 {
        return Err(DataError::Corrupt {
            path: format!("{}/{}", input.url, shard.path),
            reason: format!(
                "{} bytes with SHA-256 {sha256}; its manifest says {} bytes with {}: the shard \
                 changed after it was written (`ecgfm data inspect` checks a whole dataset)",
                bytes.len(),
                shard.bytes,
                shard.sha256
            ),
        });
    }
    store::block_on(store::put_bytes(out_store, destination, bytes))
}

/// Adds `more` to the totals `into` (every map key by key).
fn add_counts(into: &mut Counts, more: &Counts) {
    into.rows += more.rows;
    into.records += more.records;
    let add = |a: &mut BTreeMap<String, u64>, b: &BTreeMap<String, u64>| {
        for (key, n) in b {
            *a.entry(key.clone()).or_default() += n;
        }
    };
    add(&mut into.labels, &more.labels);
    add(&mut into.splits, &more.splits);
    add(&mut into.quarantine, &more.quarantine);
    for (split, by_leads) in &more.leads_present {
        let to = into.leads_present.entry(split.clone()).or_default();
        for (leads, n) in by_leads {
            *to.entry(*leads).or_default() += n;
        }
    }
}
