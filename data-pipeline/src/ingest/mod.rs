//! `ingest`: a source of ECG records (local folder or object-store URL; WFDB, PTB-XL, CinC 2017,
//! CinC 2021) into a dataset of zstd Parquet shards with a manifest (docs/dataset-format.md).
//!
//! The run: plan the records (`plan_records`: the source's records sorted, `plan.rs`, with a
//! label CSV's labels, `label_csv.rs`; `--records` keeps a listed cohort and `--exclude` leaves
//! listed records out, `record_list.rs`), read and preprocess them in parallel chunks on a rayon
//! pool (`record.rs`) while one writer thread consumes the outcomes in plan order: rows
//! (`row.rs`) go to the open shard (`shard_writer.rs`), failures to the quarantine list, and a
//! file that could not be read for a reason outside the record (`read_failure.rs`) stops the run. A shard
//! is stored when it passes its target size (at a record boundary), and the journal
//! (`journal.rs`) records the progress (after every shard while it is small, `SaveCadence`), so
//! an interrupted run resumes after the last shard it lists.
//! The manifest is written last; a run that ingested no record writes none, only the report of
//! its quarantined records (`no_records.rs`), and removes its journal. An output holding another
//! dataset or another ingest's journal
//! is refused before anything is written (`Journal::resume`), and so is an output another
//! writer (ingest, merge or synth) holds at the time (`crate::out_lock`: `_ingest.lock`); on an
//! object store the lock is a lease, checked before each shard, journal and manifest is written.

pub mod journal;
pub mod label_csv;
pub mod no_records;
pub mod options;
pub mod plan;
pub mod read_failure;
pub mod record;
pub mod record_list;
pub mod row;
pub mod shard_writer;
pub mod source;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::time::Instant;

use ecgfm_preprocess::Pipeline;
use indicatif::ProgressBar;
use object_store::path::Path;
use object_store::ObjectStore;
use rayon::prelude::*;

use crate::error::DataError;
use crate::manifest::{Manifest, SourceEntry};
use crate::out_lock::{OutputLock, Writer};
use crate::schema::DEFAULT_SIGNAL_SCALE;
use crate::store;

use journal::SaveCadence;
pub use journal::{IngestSettings, Journal, SideFiles, JOURNAL_FILE};
pub use label_csv::LabelOverride;
pub use no_records::{QuarantineReport, QUARANTINE_REPORT_FILE};
pub use options::{
    removed_shards_note, IngestOptions, IngestReport, SourceFormat, DEFAULT_SHARD_TARGET_BYTES,
};
pub use plan::{make_plan, Plan, PlannedRecord};
pub use record::{process_record, RecordContext, RecordOutcome};
pub use record_list::RecordList;
pub use row::WindowRow;
pub use shard_writer::{ShardLayout, ShardWriter};
pub use source::SourceRoot;

/// The preprocessing pipeline and shard layout `opts` describe, or the refusal of a setting
/// (split fractions, preprocessing, a row group too large to hold): what an ingest checks before
/// it reads anything, and `data ingest --dry-run` too.
pub fn check_settings(opts: &IngestOptions) -> Result<(Pipeline, ShardLayout), DataError> {
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
    Ok((pipeline, layout))
}

/// Runs an ingest (or resumes an interrupted one) and returns what it did. Record failures never
/// stop the run (they are quarantined); settings, source listing, label files, output failures
/// and a record file unreadable for a reason outside the record (`read_failure`) do.
pub fn ingest(opts: &IngestOptions, progress: &ProgressBar) -> Result<IngestReport, DataError> {
    let (pipeline, layout) = check_settings(opts)?;
    let source = SourceRoot::open(&opts.source, &opts.source_store_options)?;
    let Plan {
        format,
        records,
        warnings,
    } = plan_records(opts, &source)?;
    let (out_store, out_root) = store::open_url_with(&opts.out, &opts.out_store_options)?;
    // Held to the end: another writer into this output is refused until then.
    let lock = OutputLock::take(&out_store, &out_root, &opts.out, Writer::Ingest)?;
    let journal = output_journal(opts, format, &records, out_store.as_ref(), &out_root)?;
    // The staging files of shard writes a kill interrupted (a local folder's `NAME#N`).
    store::remove_local_staging(out_store.as_ref(), &store::join(&out_root, "shards"))?;
    let source_name = source_name(opts, format);
    let resumed = journal.shards.len() as u64;
    let ctx = RecordContext {
        pipeline: &pipeline,
        source_name: &source_name,
        signal_scale: DEFAULT_SIGNAL_SCALE,
        seed: opts.seed,
        fractions: opts.split_fractions,
        verify_checksums: opts.verify_checksums && format != SourceFormat::Cinc2017,
    };
    progress.set_length(records.len() as u64);
    progress.set_position(journal.records_done as u64);
    let run = Run {
        source: &source,
        records: &records,
        ctx: &ctx,
        out_store: out_store.as_ref(),
        out_root: &out_root,
        lock: &lock,
        layout,
        stop_after_shards: opts.stop_after_shards,
        threads: opts.threads,
        progress,
    };
    let (journal, complete) = run.execute(journal)?;
    lock.check_held()?;
    let shards_removed = match complete {
        true => shard_writer::remove_unlisted_shards(
            out_store.as_ref(),
            &out_root,
            journal.shards.len(),
        )?,
        false => 0,
    };
    let source_entry = SourceEntry {
        name: source_name.clone(),
        uri: source.identity(),
        format: format.as_str().to_string(),
        records_seen: records.len() as u64,
        leads_present: Default::default(),
    };
    lock.check_held()?;
    if complete && journal.counts.records == 0 {
        // No dataset: a manifest of no rows would pass for one (and refuse other ingests here).
        QuarantineReport::new(source_entry, &journal).save(out_store.as_ref(), &out_root)?;
    } else if complete {
        let mut manifest = Manifest::for_source(
            &opts.preprocessing,
            layout.window_samples,
            layout.row_group_rows,
            source_entry,
        );
        manifest.shards = journal.shards.clone();
        manifest.set_counts(journal.counts.clone());
        manifest.quarantine = journal.quarantine.clone();
        manifest.partial = journal.partial.clone();
        manifest.save(out_store.as_ref(), &out_root)?;
        no_records::remove_report(out_store.as_ref(), &out_root)?;
    }
    Ok(IngestReport {
        format,
        records_planned: records.len() as u64,
        records_ingested: journal.counts.records,
        records_quarantined: journal.quarantine.len() as u64,
        records_partial: journal.partial.len() as u64,
        shards: journal.shards.len() as u64,
        shards_written: journal.shards.len() as u64 - resumed,
        shards_resumed: resumed,
        shards_removed,
        complete,
        counts: journal.counts,
        warnings: warnings.into_iter().chain(lock.note()).collect(),
    })
}

/// The records an ingest of `source` with `opts` reads, in order: the source's plan with the
/// label CSV applied, then `--records`, `--exclude` and `--limit`. Reads only listings, label
/// tables and the lists, never a signal; `ingest --dry-run` prints it. Fails when nothing is
/// left to ingest (an empty dataset would only hide a wrong address or list), and when two of
/// the records, in different folders, would share a record id.
pub fn plan_records(opts: &IngestOptions, source: &SourceRoot) -> Result<Plan, DataError> {
    let labels = opts
        .label_csv
        .as_deref()
        .map(|csv| {
            let bytes = read_side_file(csv, &opts.source_store_options)?;
            LabelOverride::parse(&bytes, &store::redact_url(csv))
        })
        .transpose()?;
    let read_list = |list: &str| {
        let bytes = read_side_file(list, &opts.source_store_options)?;
        RecordList::parse(&bytes, &store::redact_url(list))
    };
    let cohort = opts.records.as_deref().map(read_list).transpose()?;
    let excluded = opts.exclude.as_deref().map(read_list).transpose()?;
    let mut plan = make_plan(source, opts.format, labels.as_ref())?;
    if plan.records.is_empty() {
        return Err(DataError::NoRecords {
            location: source.describe(),
            format: plan.format.as_str().to_string(),
        });
    }
    if let Some(list) = &cohort {
        plan.records = list.select(std::mem::take(&mut plan.records), &source.describe())?;
    }
    if let Some(list) = &excluded {
        let (kept, warning) = list.exclude(std::mem::take(&mut plan.records), &source.describe());
        plan.records = kept;
        plan.warnings.extend(warning);
    }
    if let Some(limit) = opts.limit {
        plan.records.truncate(limit);
    }
    plan::refuse_shared_record_ids(&plan.records, &source.describe())?;
    if plan.records.is_empty() {
        return Err(DataError::Config(format!(
            "--records, --exclude and --limit leave no {} record of {} to ingest",
            plan.format.as_str(),
            source.describe()
        )));
    }
    Ok(plan)
}

/// The rows' source name: `--source-name`, else the format's.
fn source_name(opts: &IngestOptions, format: SourceFormat) -> String {
    opts.source_name
        .clone()
        .unwrap_or_else(|| format.as_str().to_string())
}

/// The journal an ingest of `records` (in `format`) goes on from in its output at `out_root`:
/// a fresh one, or that of an earlier run of the same ingest (finished, or interrupted after
/// its shards), however its paths were spelled; an output holding anything else is refused
/// (`Journal::resume`), naming the settings that differ. Reads only (the label CSV and the
/// lists again, for their contents' hashes), so `ingest --dry-run` asks it too.
pub fn output_journal(
    opts: &IngestOptions,
    format: SourceFormat,
    records: &[PlannedRecord],
    out_store: &dyn ObjectStore,
    out_root: &Path,
) -> Result<Journal, DataError> {
    let source_name = source_name(opts, format);
    let read = |file: &Option<String>| {
        file.as_deref()
            .map(|file| read_side_file(file, &opts.source_store_options))
            .transpose()
    };
    let (label_csv, cohort, excluded) = (
        read(&opts.label_csv)?,
        read(&opts.records)?,
        read(&opts.exclude)?,
    );
    let side_files = SideFiles {
        label_csv: label_csv.as_deref(),
        records: cohort.as_deref(),
        exclude: excluded.as_deref(),
    };
    let settings = IngestSettings::new(
        opts,
        source::identity_of(&opts.source),
        format,
        &source_name,
        side_files,
        records,
    );
    let legacy = journal::legacy_fingerprint(opts, &source_name, records);
    let out_url = store::redact_url(&opts.out);
    Journal::resume(out_store, out_root, &out_url, &settings, &legacy)
}

/// Reads a file given beside the source (the label CSV, the record list) from a local path or
/// an object-store URL (with the source's store options).
fn read_side_file(file: &str, options: &[(String, String)]) -> Result<Vec<u8>, DataError> {
    if file.contains("://") && !file.starts_with("file://") {
        let (object_store, location) = store::open_url_with(file, options)?;
        Ok(store::block_on(store::get_bytes(object_store.as_ref(), &location))?.to_vec())
    } else {
        let path = file.strip_prefix("file://").unwrap_or(file);
        std::fs::read(path).map_err(|source| DataError::Io {
            path: path.to_string(),
            source,
        })
    }
}

/// One execution of the plan from the journal's position.
struct Run<'a> {
    source: &'a SourceRoot,
    records: &'a [PlannedRecord],
    ctx: &'a RecordContext<'a>,
    out_store: &'a dyn ObjectStore,
    out_root: &'a Path,
    lock: &'a OutputLock,
    layout: ShardLayout,
    stop_after_shards: Option<usize>,
    threads: usize,
    progress: &'a ProgressBar,
}

impl Run<'_> {
    /// Processes the remaining records; returns the final journal and whether the plan is done.
    fn execute(&self, journal: Journal) -> Result<(Journal, bool), DataError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.threads)
            .build()
            .map_err(|e| DataError::Internal(format!("cannot start worker threads: {e}")))?;
        let chunk = (pool.current_num_threads() * 4).max(8);
        let stop = Arc::new(AtomicBool::new(false));
        let (sender, receiver) = sync_channel::<Vec<RecordOutcome>>(2);
        let start = journal.records_done;
        std::thread::scope(|scope| {
            let writer = scope.spawn(|| self.write_outcomes(journal, receiver, &stop));
            let files = self.source.record_source();
            let mut next = start;
            while next < self.records.len() && !stop.load(Ordering::Relaxed) {
                let end = (next + chunk).min(self.records.len());
                let outcomes: Vec<RecordOutcome> = pool.install(|| {
                    self.records[next..end]
                        .par_iter()
                        .map(|planned| {
                            let uri = self.source.uri_of(&planned.name);
                            process_record(files.as_ref(), &uri, planned, self.ctx)
                        })
                        .collect()
                });
                if sender.send(outcomes).is_err() {
                    break;
                }
                next = end;
            }
            drop(sender);
            writer.join().expect("the shard writer thread panicked")
        })
    }

    /// The writer thread: consumes outcomes in plan order, stores shards and the journal.
    fn write_outcomes(
        &self,
        mut journal: Journal,
        receiver: std::sync::mpsc::Receiver<Vec<RecordOutcome>>,
        stop: &AtomicBool,
    ) -> Result<(Journal, bool), DataError> {
        let result = (|| {
            let mut writer = ShardWriter::new(self.layout)?;
            let mut cadence = SaveCadence::default();
            let mut done = journal.records_done;
            let mut written = 0usize;
            for outcomes in receiver.iter() {
                for outcome in outcomes {
                    record_outcome(&mut journal, &mut writer, outcome)?;
                    done += 1;
                    self.progress.inc(1);
                    if writer.is_full() {
                        written += 1;
                        let stop = self.stop_after_shards.is_some_and(|k| written >= k);
                        self.close_shard(&mut journal, &mut writer, done, &mut cadence, stop)?;
                        if stop {
                            return Ok((journal, false));
                        }
                    }
                }
            }
            if done < self.records.len() {
                return Err(DataError::Internal(
                    "record processing stopped before the end of the plan".into(),
                ));
            }
            self.close_shard(&mut journal, &mut writer, done, &mut cadence, true)?;
            Ok((journal, true))
        })();
        stop.store(true, Ordering::Relaxed);
        result
    }

    /// Stores the open shard (when it holds rows) and notes that `done` records are final; saves
    /// the journal when `last` or when `cadence` says it is due.
    fn close_shard(
        &self,
        journal: &mut Journal,
        writer: &mut ShardWriter,
        done: usize,
        cadence: &mut SaveCadence,
        last: bool,
    ) -> Result<(), DataError> {
        if let Some(shard) = writer.finish()? {
            self.lock.check_held()?;
            let index = journal.shards.len();
            let entry = shard_writer::store_shard(self.out_store, self.out_root, index, shard)?;
            cadence.stored_shard(entry.bytes);
            journal.shards.push(entry);
        }
        journal.records_done = done;
        if last || cadence.due(Instant::now()) {
            self.lock.check_held()?;
            let bytes = journal.save(self.out_store, self.out_root)?;
            cadence.saved(bytes, Instant::now());
        }
        Ok(())
    }
}

/// Adds one record's outcome to the running totals and the open shard.
pub(crate) fn record_outcome(
    journal: &mut Journal,
    writer: &mut ShardWriter,
    outcome: RecordOutcome,
) -> Result<(), DataError> {
    let counts = &mut journal.counts;
    match outcome {
        RecordOutcome::Rows { rows, partial } => {
            counts.records += 1;
            counts.rows += rows.len() as u64;
            for row in &rows {
                let split = row.split.as_str();
                *counts.splits.entry(split.to_string()).or_default() += 1;
                let present = row.lead_mask.iter().filter(|&&p| p).count() as u8;
                *counts
                    .leads_present
                    .entry(split.to_string())
                    .or_default()
                    .entry(present)
                    .or_default() += 1;
                for label in &row.labels {
                    *counts.labels.entry(label.clone()).or_default() += 1;
                }
            }
            journal.partial.extend(partial);
            writer.push_record(rows)
        }
        RecordOutcome::Quarantined(entry) => {
            *counts.quarantine.entry(entry.kind.clone()).or_default() += 1;
            journal.quarantine.push(entry);
            Ok(())
        }
        RecordOutcome::Unreadable(error) => Err(DataError::SourceUnreadable(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::shard_writer::tests::row;
    use super::*;
    use arrow_array::{cast::AsArray, Array};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    /// The record ids stored in the shards `journal` lists.
    fn listed_record_ids(out: &dyn ObjectStore, root: &Path, journal: &Journal) -> Vec<String> {
        let mut ids = Vec::new();
        for shard in &journal.shards {
            let location = store::join(root, &shard.path);
            let bytes = store::block_on(store::get_bytes(out, &location)).unwrap();
            for batch in ParquetRecordBatchReaderBuilder::try_new(bytes)
                .unwrap()
                .build()
                .unwrap()
            {
                let batch = batch.unwrap();
                let column = batch
                    .column_by_name("record_id")
                    .unwrap()
                    .as_string::<i32>();
                ids.extend((0..column.len()).map(|i| column.value(i).to_string()));
            }
        }
        ids
    }

    /// A journal saved by the cadence in the middle of a run (the first shard's save, not the
    /// last close's) says the records done are exactly those whose rows its shards hold: an
    /// ingest killed after that save resumes after them, neither skipping nor ingesting any
    /// twice. Here the run stops (its outcomes end) after three one-record shards of five.
    #[test]
    fn a_journal_saved_mid_run_counts_the_records_in_its_shards() {
        let source_dir = tempfile::tempdir().unwrap();
        let source = SourceRoot::open(source_dir.path().to_str().unwrap(), &[]).unwrap();
        let records: Vec<_> = (0..5)
            .map(|i| PlannedRecord::bare(&format!("r{i}"), false))
            .collect();
        let url = "memory://ingest-journal-mid-run";
        let (out_store, out_root) = store::open_url_with(url, &[] as &[(&str, &str)]).unwrap();
        let lock = OutputLock::take(&out_store, &out_root, url, Writer::Ingest).unwrap();
        let pipeline = Pipeline::new(Default::default()).unwrap();
        let ctx = RecordContext {
            pipeline: &pipeline,
            source_name: "test",
            signal_scale: DEFAULT_SIGNAL_SCALE,
            seed: 0,
            fractions: Default::default(),
            verify_checksums: false,
        };
        let progress = ProgressBar::hidden();
        let run = Run {
            source: &source,
            records: &records,
            ctx: &ctx,
            out_store: out_store.as_ref(),
            out_root: &out_root,
            lock: &lock,
            // Every record fills a shard of its own.
            layout: ShardLayout {
                window_samples: 8,
                row_group_rows: 1,
                shard_target_bytes: 1,
                zstd_level: 1,
            },
            stop_after_shards: None,
            threads: 1,
            progress: &progress,
        };
        let (sender, receiver) = sync_channel(1);
        let outcomes = (0..3).map(|i| RecordOutcome::Rows {
            rows: vec![row(8, i)],
            partial: None,
        });
        sender.send(outcomes.collect()).unwrap();
        // The outcomes end before the plan does: no last close saves the journal, which stays
        // as the cadence last saved it, as a kill would leave it.
        drop(sender);
        let stop = AtomicBool::new(false);
        let result = run.write_outcomes(Journal::default(), receiver, &stop);
        assert!(result.is_err(), "the plan was not finished");

        let saved = Journal::load(out_store.as_ref(), &out_root)
            .unwrap()
            .unwrap();
        assert!(!saved.shards.is_empty(), "the first shard's save lists it");
        let ids = listed_record_ids(out_store.as_ref(), &out_root, &saved);
        let first: Vec<_> = (0..saved.records_done).map(|i| format!("r{i}")).collect();
        assert_eq!(ids, first, "records_done {}", saved.records_done);
    }
}
