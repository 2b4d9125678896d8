//! `ecgfm data synth`: a dataset of synthetic 12-lead ECGs (`ecgfm-synth`) in the same layout as
//! an ingest (docs/dataset-format.md): each record goes through the same preprocessing pipeline,
//! is labelled with its condition (`synth:afib`, ...), and is its own patient
//! (`synth:synth-000042`), split by the patient hash.

use ecgfm_preprocess::{Pipeline, PipelineConfig};
use ecgfm_synth::{generate, SynthConfig, LEAD_NAMES};
use ecgfm_wfdb::labels::Sex;
use indicatif::ProgressBar;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::DataError;
use crate::ingest::journal::Journal;
use crate::ingest::plan::PlannedRecord;
use crate::ingest::record::{windows_to_rows, RecordOutcome};
use crate::ingest::shard_writer::{remove_unlisted_shards, store_shard, ShardLayout, ShardWriter};
use crate::ingest::{record_outcome, DEFAULT_SHARD_TARGET_BYTES};
use crate::manifest::{synth_origin, Manifest, SourceEntry, DEFAULT_ROW_GROUP_ROWS};
use crate::out_lock::{OutputLock, Writer};
use crate::schema::DEFAULT_SIGNAL_SCALE;
use crate::split::{assign_split, SplitFractions};
use crate::store;

/// Source name (and label vocabulary) of synthetic records.
pub const SYNTH_SOURCE: &str = "synth";

/// Settings of `ecgfm data synth`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SynthDatasetOptions {
    /// Dataset folder or object-store URL to write.
    pub out: String,
    /// Explicit object-store settings for the output. Never logged.
    #[serde(skip_serializing)]
    pub out_store_options: Vec<(String, String)>,
    /// Number of records.
    pub records: u64,
    /// The rows' `source` (default `synth`; another name tells merged synthetic sets apart).
    pub source: String,
    /// Generator seed (also the split seed).
    pub seed: u64,
    pub synth: SynthConfig,
    pub preprocessing: PipelineConfig,
    pub shard_target_bytes: u64,
    pub row_group_rows: usize,
    pub zstd_level: i32,
    pub split_fractions: SplitFractions,
    /// Worker threads; 0 = one per core.
    pub threads: usize,
}

/// How a synthetic source's address begins; the seed follows: one seed, one set of recordings.
pub(crate) const SYNTH_URI_PREFIX: &str = "ecgfm-synth seed ";

impl Default for SynthDatasetOptions {
    fn default() -> Self {
        Self {
            out: String::new(),
            out_store_options: Vec::new(),
            records: 1000,
            source: SYNTH_SOURCE.into(),
            seed: 0,
            synth: SynthConfig::default(),
            preprocessing: PipelineConfig::default(),
            shard_target_bytes: DEFAULT_SHARD_TARGET_BYTES,
            row_group_rows: DEFAULT_ROW_GROUP_ROWS,
            zstd_level: 3,
            split_fractions: SplitFractions::default(),
            threads: 0,
        }
    }
}

/// The generator's settings with records at least one window long: windows longer than its
/// records (10 s by default) would otherwise be mostly zero padding.
fn covering_a_window(opts: &SynthDatasetOptions) -> SynthConfig {
    let mut synth = opts.synth.clone();
    let preprocessing = &opts.preprocessing;
    let window_s = preprocessing.window.window_samples as f64 / preprocessing.target_rate_hz;
    let needed = (window_s * f64::from(synth.sampling_rate)).ceil() as usize;
    synth.samples = synth.samples.max(needed);
    synth
}

/// Generates one record and turns it into rows.
fn synth_record(
    opts: &SynthDatasetOptions,
    pipeline: &Pipeline,
    index: u64,
) -> Result<RecordOutcome, DataError> {
    let record = generate(&opts.synth, opts.seed, index);
    let leads: Vec<&[f32]> = (0..LEAD_NAMES.len()).map(|l| record.lead(l)).collect();
    let processed = pipeline
        .process(f64::from(record.sampling_rate), &LEAD_NAMES, &leads)
        // The generator's records follow from the settings alone: preprocessing settings that
        // leave nothing of one (a band-pass above the ECG's band flattens every lead) would be
        // refused again, a refused configuration.
        .map_err(|e| {
            DataError::Config(format!(
                "the preprocessing settings leave nothing of synthetic record {index}: {e}"
            ))
        })?;
    let record_id = record.record_id();
    let planned = PlannedRecord {
        name: record_id.clone(),
        patient_id: Some(format!("{}:{record_id}", opts.source)),
        record_id,
        labels: vec![record.condition.label().to_string()],
        age: Some(record.age),
        sex: Some(if record.sex == 'F' {
            Sex::Female
        } else {
            Sex::Male
        }),
        fold: None,
        header_labels: false,
        header_comments: false,
    };
    let patient = planned.patient_id.as_deref().unwrap_or_default();
    let split = assign_split(
        &opts.source,
        patient,
        None,
        opts.seed,
        &opts.split_fractions,
    );
    let rows = windows_to_rows(
        &processed.windows,
        &planned,
        &opts.source,
        pipeline.config().target_rate_hz as f32,
        DEFAULT_SIGNAL_SCALE,
        split,
        LEAD_NAMES.iter().map(|s| s.to_string()).collect(),
    );
    Ok(RecordOutcome::Rows {
        rows,
        partial: None,
    })
}

/// What `write_synth_dataset` wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthReport {
    pub manifest: Manifest,
    /// Shards an earlier attempt into the folder left beyond this dataset's (a larger synth
    /// that was killed), removed.
    pub shards_removed: u64,
    /// What the output's lock says (`OutputLock::note`): a stale lease taken over, or a store
    /// that keeps no writers apart.
    pub lock_note: Option<String>,
}

/// Writes `opts.records` synthetic records as a dataset (`--out` locked meanwhile,
/// `crate::out_lock`).
pub fn write_synth_dataset(
    opts: &SynthDatasetOptions,
    progress: &ProgressBar,
) -> Result<SynthReport, DataError> {
    let opts = &SynthDatasetOptions {
        synth: covering_a_window(opts),
        ..opts.clone()
    };
    opts.synth
        .validate()
        .map_err(|e| DataError::Config(e.to_string()))?;
    opts.split_fractions
        .validate()
        .map_err(|e| DataError::Config(e.to_string()))?;
    let pipeline =
        Pipeline::new(opts.preprocessing.clone()).map_err(|e| DataError::Config(e.to_string()))?;
    let layout = ShardLayout {
        window_samples: opts.preprocessing.window.window_samples,
        row_group_rows: opts.row_group_rows,
        shard_target_bytes: opts.shard_target_bytes,
        zstd_level: opts.zstd_level,
    };
    layout.check()?;
    let (out_store, out_root) = store::open_url_with(&opts.out, &opts.out_store_options)?;
    // Held to the end: another writer into this output is refused until then.
    let lock = OutputLock::take(&out_store, &out_root, &opts.out, Writer::Synth)?;
    Manifest::refuse_occupied(out_store.as_ref(), &out_root, &opts.out, "synth")?;
    // The staging files of shard writes a kill interrupted (a local folder's `NAME#N`).
    store::remove_local_staging(out_store.as_ref(), &store::join(&out_root, "shards"))?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build()
        .map_err(|e| DataError::Internal(format!("cannot start worker threads: {e}")))?;
    let chunk = (pool.current_num_threads() as u64 * 16).max(16);
    progress.set_length(opts.records);
    let mut totals = Journal::default();
    let flush_open_shard = |totals: &mut Journal, writer: &mut ShardWriter| {
        flush(totals, writer, &lock, out_store.as_ref(), &out_root)
    };
    let mut writer = ShardWriter::new(layout)?;
    let mut next = 0u64;
    while next < opts.records {
        let end = (next + chunk).min(opts.records);
        let outcomes: Vec<RecordOutcome> = pool.install(|| {
            (next..end)
                .into_par_iter()
                .map(|index| synth_record(opts, &pipeline, index))
                .collect::<Result<_, _>>()
        })?;
        for outcome in outcomes {
            record_outcome(&mut totals, &mut writer, outcome)?;
            progress.inc(1);
            if writer.is_full() {
                flush_open_shard(&mut totals, &mut writer)?;
            }
        }
        next = end;
    }
    flush_open_shard(&mut totals, &mut writer)?;
    let mut manifest = Manifest::for_source(
        &opts.preprocessing,
        layout.window_samples,
        layout.row_group_rows,
        SourceEntry {
            name: opts.source.clone(),
            uri: synth_origin(opts.seed),
            format: SYNTH_SOURCE.into(),
            records_seen: opts.records,
            leads_present: Default::default(),
        },
    );
    manifest.shards = totals.shards;
    manifest.set_counts(totals.counts);
    lock.check_held()?;
    let shards_removed =
        remove_unlisted_shards(out_store.as_ref(), &out_root, manifest.shards.len())?;
    lock.check_held()?;
    manifest.save(out_store.as_ref(), &out_root)?;
    Ok(SynthReport {
        manifest,
        shards_removed,
        lock_note: lock.note(),
    })
}

fn flush(
    totals: &mut Journal,
    writer: &mut ShardWriter,
    lock: &OutputLock,
    out_store: &dyn object_store::ObjectStore,
    out_root: &object_store::path::Path,
) -> Result<(), DataError> {
    if let Some(shard) = writer.finish()? {
        lock.check_held()?;
        let entry = store_shard(out_store, out_root, totals.shards.len(), shard)?;
        totals.shards.push(entry);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecgfm_preprocess::BandPassConfig;

    #[test]
    fn settings_that_leave_no_window_are_a_refused_configuration() {
        let mut opts = SynthDatasetOptions {
            out: "memory://synth-tests/flat".into(),
            records: 1,
            threads: 1,
            ..SynthDatasetOptions::default()
        };
        // 100-120 Hz at 250 Hz: nothing of an ECG passes, every lead is flat.
        opts.preprocessing.band_pass = Some(BandPassConfig {
            low_hz: 100.0,
            high_hz: 120.0,
            ..BandPassConfig::default()
        });
        let err = write_synth_dataset(&opts, &ProgressBar::hidden()).unwrap_err();
        assert!(matches!(err, DataError::Config(_)), "{err:?}");
        assert!(
            err.to_string()
                .contains("the preprocessing settings leave nothing of synthetic record 0"),
            "{err}"
        );
    }
}
