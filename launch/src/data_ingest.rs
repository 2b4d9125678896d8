//! `ecgfm data ingest` and `ecgfm data synth`: records to a sharded Parquet dataset.

use crate::bad_config::RefusedConfig;
use crate::progress::record_bar;
use anyhow::{bail, Context, Result};
use clap::Args;
use ecgfm_data::ingest::{
    ingest, output_journal, plan_records, removed_shards_note, IngestOptions, SourceFormat,
    SourceRoot, QUARANTINE_REPORT_FILE,
};
use ecgfm_data::out_lock;
use ecgfm_data::store::{open_url_with, redact_url};
use ecgfm_data::synth_dataset::{write_synth_dataset, SynthDatasetOptions};
use ecgfm_preprocess::pipeline::MAX_RECORD_RATE_HZ;
use ecgfm_preprocess::{BandPassConfig, PipelineConfig, Standardization};

/// Preprocessing and shard-layout flags shared by `ingest` and `synth`.
#[derive(Args, Debug, Clone)]
pub struct LayoutArgs {
    /// Target sampling rate in Hz.
    #[arg(long, default_value_t = 250.0)]
    pub rate: f64,
    /// Window length in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub window_s: f64,
    /// Stride between windows in seconds (default: the window length, no overlap).
    #[arg(long)]
    pub stride_s: Option<f64>,
    /// Band-pass corners in Hz as LOW:HIGH (zero-phase Butterworth), or `none`.
    #[arg(long, default_value = "0.67:40")]
    pub bandpass: String,
    /// Standardisation: none, per_lead or per_record.
    #[arg(long, default_value = "none")]
    pub standardize: String,
    /// Target shard size in MB.
    #[arg(long, default_value_t = 128.0)]
    pub shard_mb: f64,
    /// Rows per Parquet row group.
    #[arg(long, default_value_t = 256)]
    pub row_group_rows: usize,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0, value_parser = crate::cli::cpu_threads)]
    pub threads: usize,
    /// Seed of the patient-hash split (for `data synth`, also of the generator).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl LayoutArgs {
    /// The preprocessing settings these flags describe; values they cannot take are a refused
    /// configuration (exit 78, as the library's refusals of these settings are).
    fn pipeline(&self) -> Result<PipelineConfig> {
        self.read_pipeline()
            .map_err(|err| RefusedConfig(crate::error_text(&err)).into())
    }

    fn read_pipeline(&self) -> Result<PipelineConfig> {
        // A record's highest sampling rate is also the highest to resample to: beyond it the
        // resampling filter and the windows grow to gigabytes.
        if !(self.rate > 0.0 && self.rate <= MAX_RECORD_RATE_HZ) {
            bail!(
                "--rate must be a sampling rate in Hz above 0 and at most {MAX_RECORD_RATE_HZ} (the \
                 highest a record may have), got {}",
                self.rate
            );
        }
        let mut config = PipelineConfig {
            target_rate_hz: self.rate,
            ..PipelineConfig::default()
        };
        if !(self.shard_mb > 0.0 && self.shard_mb.is_finite()) {
            bail!(
                "--shard-mb must be a positive size in MB, got {}",
                self.shard_mb
            );
        }
        config.window.window_samples = self.samples("--window-s", self.window_s)?;
        config.window.stride_samples = self
            .stride_s
            .map(|s| self.samples("--stride-s", s))
            .transpose()?;
        config.band_pass = match self.bandpass.as_str() {
            "none" => None,
            corners => {
                let (low, high) = corners
                    .split_once(':')
                    .context("--bandpass must be LOW:HIGH (e.g. 0.67:40) or none")?;
                Some(BandPassConfig {
                    low_hz: low.trim().parse().context("--bandpass low corner")?,
                    high_hz: high.trim().parse().context("--bandpass high corner")?,
                    ..config.band_pass.clone().unwrap_or_default()
                })
            }
        };
        config.standardize.mode = match self.standardize.as_str() {
            "none" => Standardization::None,
            "per_lead" | "lead" => Standardization::PerLead,
            "per_record" | "record" => Standardization::PerRecord,
            other => bail!("--standardize {other:?}: expected none, per_lead or per_record"),
        };
        Ok(config)
    }

    /// Samples at the target rate in `seconds`, given by `flag`: at least one.
    fn samples(&self, flag: &str, seconds: f64) -> Result<usize> {
        if !(seconds > 0.0 && seconds.is_finite()) {
            bail!("{flag} must be a positive number of seconds, got {seconds}");
        }
        let samples = (seconds * self.rate).round();
        if samples < 1.0 {
            bail!(
                "{flag} {seconds} is under one sample at --rate {} (a sample lasts {} s)",
                self.rate,
                1.0 / self.rate
            );
        }
        Ok(samples as usize)
    }

    fn shard_bytes(&self) -> u64 {
        (self.shard_mb * 1024.0 * 1024.0) as u64
    }
}

#[derive(Args, Debug, Clone)]
pub struct IngestArgs {
    /// Folder or URL of the source records (local, file://, s3://, gs://, az://).
    pub source: String,
    /// Source layout: wfdb, ptbxl, cinc2017, cinc2021 or auto.
    #[arg(long, default_value = "auto")]
    pub format: SourceFormat,
    /// Dataset folder or URL to write.
    #[arg(
        long,
        required_unless_present = "dry_run",
        default_value = "",
        hide_default_value = true
    )]
    pub out: String,
    /// Print which records the ingest would read (after --records, --exclude and --limit), how
    /// many have labels, and, with --out, whether the output is free, holds this ingest finished
    /// or interrupted, or would be refused; reads no signal and writes nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// CSV (`record,labels[,patient_id,age,sex]`) replacing the labels of the records it lists.
    #[arg(long, value_name = "FILE")]
    pub label_csv: Option<String>,
    /// Ingest only the records this file lists (one id or path per line, or a CSV's `record`
    /// column); a listed record missing from the source is an error.
    #[arg(long, value_name = "FILE")]
    pub records: Option<String>,
    /// Leave out the records this file lists (the same forms as --records), such as an external
    /// test set; a listed record missing from the source is a warning.
    #[arg(long, value_name = "FILE")]
    pub exclude: Option<String>,
    /// Ingest only the first N records (sorted by name; of those --records lists).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Stop after writing N shards; a later run resumes without redoing them.
    #[arg(long, value_parser = crate::cli::at_least_one)]
    pub stop_after_shards: Option<usize>,
    /// The rows' source name (default: the format, e.g. wfdb); two sources merge only under
    /// different names, since a record is known by its source and id, and patient ids are
    /// prefixed by it.
    #[arg(long, value_name = "NAME")]
    pub source_name: Option<String>,
    #[command(flatten)]
    pub layout: LayoutArgs,
}

/// `data ingest --dry-run`: the records an ingest would read, from listings and label tables.
fn print_plan(options: &IngestOptions) -> Result<()> {
    const SHOWN: usize = 5;
    // The settings first, as the ingest checks them: a dry run passes what the ingest takes.
    ecgfm_data::ingest::check_settings(options)
        .with_context(|| format!("ingesting {}", options.source))?;
    let source = SourceRoot::open(&options.source, &options.source_store_options)
        .with_context(|| format!("opening {}", options.source))?;
    let plan = plan_records(options, &source)
        .with_context(|| format!("planning the ingest of {}", options.source))?;
    let n = plan.records.len();
    say!(
        "{}: {n} records to ingest from {}; nothing written (--dry-run)",
        plan.format,
        source.describe()
    );
    let names: Vec<&str> = plan
        .records
        .iter()
        .take(SHOWN)
        .map(|r| r.name.as_str())
        .collect();
    let more = if n > SHOWN { ", ..." } else { "" };
    say!("  records: {}{more}", names.join(", "));
    let tabled = plan.records.iter().filter(|r| !r.labels.is_empty()).count();
    let from_headers = plan
        .records
        .iter()
        .filter(|r| r.labels.is_empty() && r.header_labels)
        .count();
    say!(
        "  labels: {tabled} from label tables, {from_headers} to be read from their headers, {} \
         none known",
        n - tabled - from_headers
    );
    for warning in &plan.warnings {
        say!("warning: {warning}");
    }
    if options.out.is_empty() {
        return Ok(());
    }
    let out = redact_url(&options.out);
    let (store, root) = open_url_with(&options.out, &options.out_store_options)?;
    out_lock::check_free(store.as_ref(), &root, &options.out)
        .with_context(|| format!("the ingest would be refused at {out}"))?;
    let journal = output_journal(options, plan.format, &plan.records, store.as_ref(), &root)
        .with_context(|| format!("the ingest would be refused at {out}"))?;
    let shards = journal.shards.len();
    match (shards, journal.records_done) {
        (0, _) => say!("  output {out}: nothing of this ingest there yet"),
        (_, done) if done == n => say!(
            "  output {out}: this ingest finished there ({shards} shards); running it again does \
             nothing"
        ),
        (_, done) => say!(
            "  output {out}: an interrupted run of this ingest left a journal of {shards} shards \
             ({done} of {n} records); the ingest goes on from there (shards stored after its last \
             save are written again)"
        ),
    }
    Ok(())
}

/// What `data ingest` says when a signal stops it (`signals::exit_on_stop`).
pub const INGEST_STOPPED: &str =
    "the shards it stored stay; run the same command again to go on from them";

/// What `data synth` says when a signal stops it.
pub const SYNTH_STOPPED: &str = "run it again to write the dataset (it starts over)";

/// Runs `ecgfm data ingest`; fails when no record could be ingested.
pub fn run_ingest(args: &IngestArgs) -> Result<()> {
    let options = IngestOptions {
        source: args.source.clone(),
        format: args.format,
        out: args.out.clone(),
        preprocessing: args.layout.pipeline()?,
        shard_target_bytes: args.layout.shard_bytes(),
        row_group_rows: args.layout.row_group_rows,
        label_csv: args.label_csv.clone(),
        records: args.records.clone(),
        exclude: args.exclude.clone(),
        threads: args.layout.threads,
        seed: args.layout.seed,
        limit: args.limit,
        stop_after_shards: args.stop_after_shards,
        source_name: args.source_name.clone(),
        ..IngestOptions::default()
    };
    if args.dry_run {
        return print_plan(&options);
    }
    let bar = record_bar("ingest");
    let report = ingest(&options, &bar).with_context(|| format!("ingesting {}", args.source))?;
    bar.finish_and_clear();
    say_inline!("{report}");
    if !report.complete {
        return Ok(());
    }
    if report.records_ingested == 0 {
        bail!(
            "no record of {} could be ingested ({} quarantined, with their reasons in {}/{}); no \
             dataset was written, so an ingest with other settings may use this --out",
            args.source,
            report.records_quarantined,
            redact_url(args.out.trim_end_matches('/')),
            QUARANTINE_REPORT_FILE
        );
    }
    say!("dataset written to {}", redact_url(&args.out));
    if report.records_quarantined + report.records_partial > 0 {
        say!(
            "every record quarantined or kept in part, with its reason: `ecgfm data inspect {} \
             --quarantine`",
            redact_url(&args.out)
        );
    }
    Ok(())
}

#[derive(Args, Debug, Clone)]
pub struct SynthArgs {
    /// Dataset folder or URL to write.
    #[arg(long)]
    pub out: String,
    /// Number of synthetic records, each 10 s long (or one window, when --window-s is longer).
    #[arg(long, default_value_t = 1000, value_parser = crate::cli::positive_config_integer)]
    pub records: u64,
    /// The rows' source name (synthetic sets merge only under different names and seeds).
    #[arg(long, default_value = "synth")]
    pub source_name: String,
    #[command(flatten)]
    pub layout: LayoutArgs,
}

/// Runs `ecgfm data synth`.
pub fn run_synth(args: &SynthArgs) -> Result<()> {
    let options = SynthDatasetOptions {
        out: args.out.clone(),
        records: args.records,
        source: args.source_name.clone(),
        seed: args.layout.seed,
        preprocessing: args.layout.pipeline()?,
        shard_target_bytes: args.layout.shard_bytes(),
        row_group_rows: args.layout.row_group_rows,
        threads: args.layout.threads,
        ..SynthDatasetOptions::default()
    };
    let bar = record_bar("synth");
    let report = write_synth_dataset(&options, &bar)
        .with_context(|| format!("writing the synthetic dataset {}", args.out))?;
    bar.finish_and_clear();
    let manifest = &report.manifest;
    say!(
        "{} synthetic records -> {} rows in {} shards at {}",
        args.records,
        manifest.counts.rows,
        manifest.shards.len(),
        redact_url(&args.out)
    );
    if report.shards_removed > 0 {
        say!("{}", removed_shards_note(report.shards_removed));
    }
    if let Some(note) = &report.lock_note {
        say!("warning: {note}");
    }
    Ok(())
}
