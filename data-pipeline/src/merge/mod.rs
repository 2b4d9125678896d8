//! `merge`: several datasets written with the same preprocessing (say PTB-XL, CinC 2021 and a
//! hospital's own export, each ingested with its own format) into one dataset a run trains on.
//!
//! The inputs' shards are copied as they are, renumbered in input order, several at once and
//! each checked against its input manifest's size and SHA-256 (a shard changed since it was
//! written stops the merge; nothing is lost, the inputs are only read); `copy.rs` does the
//! copying, by the store itself where an input and the output share one. Rows keep their
//! `source`, patient ids (source-prefixed, so the patient-hash splits of different sources never
//! share a patient id; a recording two sources both hold is another matter) and splits. The manifest's sources, counts, quarantine and partial lists are
//! the inputs' together (`duplicates` warns of sources known to hold the same recordings under
//! other ids). It is written last: an interrupted merge run again keeps the shards
//! already copied (each re-checked by its SHA-256), copies the rest and removes any shard an
//! earlier attempt left beyond them. A local output is locked while the merge writes it
//! (`crate::out_lock`).

mod copy;
mod duplicates;

use std::collections::BTreeMap;
use std::sync::Arc;

use indicatif::ProgressBar;
use object_store::path::Path;
use object_store::ObjectStore;

use crate::error::DataError;
use crate::ingest::shard_writer::{remove_unlisted_shards, shard_path};
use crate::manifest::{source_origin, Counts, Manifest, ShardEntry};
use crate::out_lock::{OutputLock, Writer};
use crate::store;
use copy::{copy_shards, CopyJob};

/// How a merge copies its shards.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeOptions {
    /// Shards copied at once. A shard passing through this machine is held in memory whole, so
    /// up to `jobs` shards (128 MiB each by default) are in memory at a time.
    pub jobs: usize,
    /// Let a store copy a shard itself when an input and the output are in it (a hard link on a
    /// local disk, a server-side copy within one bucket); false passes every shard's bytes
    /// through this machine.
    pub in_store_copy: bool,
    /// Store settings applied to every URL, on top of the environment (the keys of
    /// `store::open_url_with`; tests point them at a local S3 server).
    pub store_options: Vec<(String, String)>,
}

impl Default for MergeOptions {
    fn default() -> Self {
        MergeOptions {
            jobs: 4,
            in_store_copy: true,
            store_options: Vec::new(),
        }
    }
}

/// What a merge did.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeReport {
    pub manifest: Manifest,
    /// Shards copied by this run, through this machine.
    pub shards_copied: u64,
    /// Shards copied by this run, by the store itself.
    pub shards_copied_in_store: u64,
    /// Shards found already copied by an interrupted earlier run (their SHA-256 checked).
    pub shards_kept: u64,
    /// Shards an earlier attempt left beyond those of this merge (a merge of more inputs),
    /// removed.
    pub shards_removed: u64,
    /// Inputs whose manifests predate the count of rows by present leads: the merged dataset
    /// has none either (a partial count would mislead a sweep's compute plan).
    pub without_lead_counts: Vec<String>,
    /// Shards whose input entries lacked the chunk checksums, computed for the merged manifest.
    pub checksums_added: usize,
    /// Sources known to hold the same recordings under other ids (`duplicates`), and the
    /// output lock's note.
    pub warnings: Vec<String>,
}

/// One opened input dataset.
struct Input {
    url: String,
    store: Arc<dyn ObjectStore>,
    root: Path,
    manifest: Manifest,
    /// Whether the output's store holds it too.
    in_out_store: bool,
}

/// Merges the datasets at `inputs` into a new dataset at `out` (one input makes a checked
/// copy, with the chunk checksums an older dataset lacks); `progress` counts the shard bytes
/// copied (its length is set here).
pub fn merge(
    inputs: &[String],
    out: &str,
    options: &MergeOptions,
    progress: &ProgressBar,
) -> Result<MergeReport, DataError> {
    if inputs.is_empty() {
        return Err(DataError::Config("merge needs a dataset to read".into()));
    }
    let inputs = inputs
        .iter()
        .map(|url| {
            let (store, root) = store::open_url_with(url, &options.store_options)?;
            let manifest = Manifest::load(store.as_ref(), &root)?;
            Ok(Input {
                url: store::redact_url(url),
                store,
                root,
                manifest,
                in_out_store: options.in_store_copy && store::same_store(url, out),
            })
        })
        .collect::<Result<Vec<_>, DataError>>()?;
    check_compatible(&inputs)?;
    let (out_store, out_root) = store::open_url_with(out, &options.store_options)?;
    // Held to the end: another writer into this output is refused until then.
    let lock = OutputLock::take(&out_store, &out_root, out, Writer::Merge)?;
    Manifest::refuse_occupied(out_store.as_ref(), &out_root, out, "merge")?;
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
    // What an interrupted merge left, in one listing rather than a request per shard (after
    // removing the staging files of the writes it was killed in).
    let shards_prefix = store::join(&out_root, "shards");
    store::remove_local_staging(out_store.as_ref(), &shards_prefix)?;
    let existing: BTreeMap<Path, u64> =
        store::block_on(store::list(out_store.as_ref(), &shards_prefix))?
            .into_iter()
            .map(|meta| (meta.location, meta.size))
            .collect();
    let mut work = Vec::new();
    for input in &inputs {
        for shard in &input.manifest.shards {
            let path = shard_path(merged.shards.len());
            let to = store::join(&out_root, &path);
            work.push(CopyJob {
                input_url: input.url.clone(),
                input_store: input.store.clone(),
                from: store::join(&input.root, &shard.path),
                existing: existing.get(&to).copied(),
                to,
                shard: shard.clone(),
                in_store: input.in_out_store,
            });
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
    let copied = copy_shards(work, &out_store, &lock, options.jobs, progress)?;
    let checksums_added = copied.checksums.len();
    for (i, checksums) in copied.checksums {
        merged.shards[i].set_checksums(checksums);
    }
    let without_lead_counts: Vec<String> = inputs
        .iter()
        .filter(|i| i.manifest.counts.leads_present.is_empty() && i.manifest.counts.rows > 0)
        .map(|i| i.url.clone())
        .collect();
    if !without_lead_counts.is_empty() {
        merged.counts.leads_present.clear();
    }
    lock.check_held()?;
    let shards_removed =
        remove_unlisted_shards(out_store.as_ref(), &out_root, merged.shards.len())?;
    lock.check_held()?;
    merged.save(out_store.as_ref(), &out_root)?;
    let mut warnings = duplicates::shared_recordings(&merged.sources);
    warnings.extend(lock.note());
    Ok(MergeReport {
        manifest: merged,
        shards_copied: copied.streamed,
        shards_copied_in_store: copied.in_store,
        shards_kept: copied.kept,
        shards_removed,
        without_lead_counts,
        checksums_added,
        warnings,
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
                "sampling rate (Hz)",
                a.sampling_rate.to_string(),
                b.sampling_rate.to_string(),
            ),
            (
                "window length (samples)",
                a.window_samples.to_string(),
                b.window_samples.to_string(),
            ),
            (
                "signal_scale",
                a.signal_scale.to_string(),
                b.signal_scale.to_string(),
            ),
            ("lead order", a.leads.join(","), b.leads.join(",")),
            (
                "row_group_rows",
                a.row_group_rows.to_string(),
                b.row_group_rows.to_string(),
            ),
        ];
        if let Some((what, x, y)) = settings.into_iter().find(|(_, x, y)| x != y) {
            return Err(DataError::Refused(format!(
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
            return Err(DataError::Refused(format!(
                "{} cannot be merged with {}: they were preprocessed differently ({}); ingest them with the same settings",
                input.url,
                first.url,
                paths.join(", ")
            )));
        }
    }
    // A record is known by its source's name and its id, a patient by an id prefixed by that
    // name: two sources of one name would mix their records (and patients across splits), and
    // the same source twice counts twice.
    // The same recordings under two names would be split twice, each copy on its own, so one
    // could sit in train and its twin in test: refused too.
    let mut seen: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    let mut read_from: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    for input in inputs {
        for source in &input.manifest.sources {
            let at = (input.url.as_str(), source.name.as_str());
            if let Some((other, other_name)) = read_from.insert(source.origin(), at) {
                if other_name != source.name {
                    return Err(DataError::Refused(format!(
                        "{other} (source {other_name}) and {} (source {}) were both read from \
                         {}: the same recordings under two names, each split on its own, would \
                         put a recording in one split and its copy in another; merge one of \
                         them{}",
                        input.url,
                        source.name,
                        source.uri,
                        synth_seed_hint(&source.uri)
                    )));
                }
            }
            let Some((other, other_uri)) = seen.insert(&source.name, (&input.url, &source.uri))
            else {
                continue;
            };
            let why = match source_origin(other_uri) == source.origin() {
                true => "its records would be counted twice".to_string(),
                false => format!(
                    "their records and patients, known by it, would collide ({other_uri} and {}): \
                     {}",
                    source.uri,
                    rename_hint(&source.uri)
                ),
            };
            return Err(DataError::Refused(format!(
                "{other} and {} both hold a source named {}: {why}",
                input.url, source.name
            )));
        }
    }
    Ok(())
}

/// Whether a source's address is `ecgfm data synth`'s (it names the seed).
fn is_synthetic(uri: &str) -> bool {
    uri.starts_with(crate::synth_dataset::SYNTH_URI_PREFIX)
}

/// How to give one of two sources of one name another name.
fn rename_hint(uri: &str) -> &'static str {
    match is_synthetic(uri) {
        true => "write one again with `data synth --source-name NAME`",
        false => "ingest one under another name (`--source-name`)",
    }
}

/// For a synthetic source, how to make a distinct one.
fn synth_seed_hint(uri: &str) -> &'static str {
    match is_synthetic(uri) {
        true => " (`ecgfm data synth` with another --seed makes other recordings)",
        false => "",
    }
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
