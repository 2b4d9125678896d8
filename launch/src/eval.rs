//! `ecgfm eval`: a run's pretrained encoder on a labelled task of a dataset, by linear probe,
//! fine-tuning, from scratch and a probe of the random encoder, at chosen label fractions;
//! writes the JSON result file (and a copy in `<run>/eval/`, where `ecgfm export` finds it),
//! prints the table and adds TensorBoard scalars under `<run>/eval/`.

use crate::bad_config::RefusedConfig;
use crate::compute::{self, ComputeArgs, Device};
use crate::eval_copy::RunCopy;
use crate::eval_units::{UnitFile, UnitKeys};
use crate::held_windows::HoldArgs;
use crate::out_folder::{out_folder, prepare_out_file};
use crate::pretrain::thread_pool;
use crate::pretrained::{load_pretrained, rate_warning, read_windows, CheckpointDataArgs};
use crate::pretraining_check::{self, EvalData, RecordKey};
use crate::progress::EvalBar;
use anyhow::{Context, Result};
use clap::Args;
use ecgfm_data::manifest::Manifest;
use ecgfm_data::record_ids::{read_record_ids, RecordId};
use ecgfm_data::store::redact_url;
use ecgfm_trainer::device_memory::EncoderWork;
use ecgfm_trainer::eval::{
    result_warnings, run_protocols, task_warnings, Counts, EvalInputs, EvalReport, EvalSettings,
    FinetuneSettings, LabelledWindow, Part, Protocol, ScoreBy, ScratchDifference, Task, Vocabulary,
};
use ecgfm_trainer::model::{HeadSpec, Pooling, Recompute};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    #[command(flatten)]
    pub source: CheckpointDataArgs,
    /// Label vocabulary: ptbxl_superclass, cinc2017, snomed, synth, or the `vocabulary` part of
    /// the dataset's own `vocabulary:code` labels (e.g. `hosp` for `--label-csv` labels
    /// `hosp:af`), whose classes are its codes with --min-positives training windows.
    #[arg(long, value_name = "VOCAB")]
    pub labels: String,
    /// probe, finetune, scratch, random_probe, a comma-separated list of them, or all.
    #[arg(long, default_value = "all")]
    pub protocol: String,
    /// Fractions of the training labels, e.g. 1,0.1,0.01 (stratified, seeded).
    #[arg(long, default_value = "1", value_delimiter = ',')]
    pub fractions: Vec<f64>,
    /// Seed of the label fractions, initialisation, batch order and bootstrap.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The JSON result file to write.
    #[arg(long, value_name = "FILE.json")]
    pub out: PathBuf,
    /// Pooling of the encoder's tokens: mean (all tokens) or leads (per-lead means concatenated).
    #[arg(long, default_value = "mean")]
    pub pool: String,
    /// Most fine-tuning epochs (also for scratch).
    #[arg(long, default_value_t = FinetuneSettings::default().epochs)]
    pub epochs: usize,
    /// Epochs without a better validation macro AUROC before stopping early (at least 1).
    #[arg(long, default_value_t = FinetuneSettings::default().patience)]
    pub patience: usize,
    /// Peak fine-tuning learning rate.
    #[arg(long, default_value_t = FinetuneSettings::default().lr)]
    pub lr: f64,
    /// Layer-wise learning-rate decay (1: none; e.g. 0.75).
    #[arg(long, default_value_t = FinetuneSettings::default().layer_decay)]
    pub layer_decay: f32,
    /// Fewest windows per fine-tuning epoch (small training sets are repeated).
    #[arg(long, default_value_t = FinetuneSettings::default().min_epoch_windows)]
    pub min_epoch_windows: usize,
    /// Activations fine-tuning keeps: none (recompute nothing), pointwise or blocks (recompute
    /// the rest in the backward pass: the same results in less memory).
    #[arg(long, default_value = "none", value_name = "none|pointwise|blocks")]
    pub recompute: Recompute,
    /// Windows per batch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// What validation and the test metrics score: window, or record (the mean of its windows'
    /// scores). The intervals resample the test patients either way.
    #[arg(long, default_value = "window", value_name = "window|record")]
    pub score_by: ScoreBy,
    /// Bootstrap resamples of the test set for the 95% intervals.
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    /// SNOMED classes, and those of a vocabulary of the dataset's own, need this many positive
    /// training windows.
    #[arg(long, default_value_t = 10)]
    pub min_positives: usize,
    /// Evaluate even when validation or test records were in the encoder's pretraining split
    /// (refused otherwise: the metrics would be optimistic); the result's warnings say so.
    #[arg(long)]
    pub allow_pretraining_overlap: bool,
    #[command(flatten)]
    pub hold: HoldArgs,
    #[command(flatten)]
    pub compute: ComputeArgs,
}

/// The settings and label vocabulary `args` ask for; one they cannot be is a refused
/// configuration (exit 78). `ecgfm sweep run` checks its evaluations' arguments with it before
/// training anything.
pub(crate) fn settings(args: &EvalArgs) -> Result<(EvalSettings, Vocabulary)> {
    let refused = |e: &dyn std::fmt::Display| RefusedConfig(e.to_string());
    let vocabulary = Vocabulary::parse(&args.labels).map_err(|e| refused(&e))?;
    let settings = EvalSettings {
        protocols: Protocol::parse_list(&args.protocol).map_err(|e| refused(&e))?,
        fractions: args.fractions.clone(),
        seed: args.seed,
        pooling: Pooling::parse(&args.pool).map_err(|e| refused(&e))?,
        batch_size: args.batch_size,
        finetune: FinetuneSettings {
            epochs: args.epochs,
            patience: args.patience,
            lr: args.lr,
            layer_decay: args.layer_decay,
            min_epoch_windows: args.min_epoch_windows,
            recompute: args.recompute,
            ..FinetuneSettings::default()
        },
        bootstrap: args.bootstrap,
        score_by: args.score_by,
        ..EvalSettings::default()
    };
    settings.check().map_err(|e| refused(&e))?;
    Ok((settings, vocabulary))
}

/// Runs `ecgfm eval`.
pub fn run(args: &EvalArgs) -> Result<EvalReport> {
    crate::pretrained::refuse_folder_as_out_file(&args.out)?;
    let (settings, vocabulary) = settings(args)?;
    let pool = thread_pool(args.compute.threads.unwrap_or(0))?;
    pool.install(|| evaluate(args, vocabulary, settings))
}

fn evaluate(args: &EvalArgs, vocabulary: Vocabulary, settings: EvalSettings) -> Result<EvalReport> {
    // The device first: `--device cuda` without a GPU fails before any data is read.
    let device = compute::open(&args.compute)?;
    // Then, before any work (a fine-tuning may take hours), an `--out` that cannot be written.
    // The folders made for it and for the run's copy go again if the evaluation fails.
    let _made_for_out = prepare_out_file(&args.out, &format!("--out {}", args.out.display()))?;
    let pretrained = load_pretrained(&args.source.run, args.source.step)?;
    // The run's copy and its TensorBoard scalars go to `<run>/eval/`, where it can be written.
    let run_copy = RunCopy::prepare(&args.source.run)?;
    let out_dir = out_folder(&args.out);
    // The dataset's manifest and record ids first: a dataset without the task's labels is
    // refused before its windows are read.
    let (eval_manifest, eval_records) = read_record_ids(&args.source.data)
        .with_context(|| format!("opening the dataset {}", redact_url(&args.source.data)))?;
    check_vocabulary(&eval_manifest, &vocabulary, &args.source.data)?;
    let windows = read_windows(&args.source.data, "all", &pretrained.config, |bytes| {
        args.hold.choose(bytes, out_dir)
    })?;
    let patient_of: HashMap<(&str, &str), &str> = (eval_records.iter())
        .map(|r| {
            (
                (r.source.as_str(), r.record_id.as_str()),
                r.patient_id.as_str(),
            )
        })
        .collect();
    let labelled: Vec<LabelledWindow<'_>> = windows
        .0
        .windows
        .iter()
        .map(|w| {
            let record = (w.source.as_str(), w.record_id.as_str());
            LabelledWindow {
                split: &w.split,
                labels: &w.labels,
                record,
                patient: patient_of.get(&record).copied().unwrap_or(&w.record_id),
            }
        })
        .collect();
    let task = Task::build(vocabulary.clone(), &labelled, args.min_positives)
        .with_context(|| format!("building the {} task of {}", args.labels, args.source.data))?;
    let counts = Counts::of(&task);
    let split = |name: &str| {
        format!(
            "{} ({} records)",
            counts.windows[name], counts.records[name]
        )
    };
    // A window of two classes is skipped only where a window has one class.
    let ambiguous = match task.multi_label {
        true => String::new(),
        false => format!(", {} with two classes", task.skipped_ambiguous),
    };
    let negatives = match task.no_scored_class {
        0 => String::new(),
        n => format!(" ({n} with only codes too rare to be classes, kept as negatives)"),
    };
    say!(
        "{}: {} labelled windows{negatives} (train {}, val {}, test {}); skipped {} \
         unlabelled{ambiguous}, {} outside train/val/test",
        vocabulary.name(),
        task.windows.len(),
        split("train"),
        split("val"),
        split("test"),
        task.skipped_unlabelled,
        task.skipped_split
    );
    let held_out: BTreeSet<RecordKey> = (task.windows.iter().zip(&task.parts))
        .filter(|(_, part)| **part != Part::Train)
        .map(|(&i, _)| labelled[i].record)
        .map(|(source, record)| (source.to_string(), record.to_string()))
        .collect();
    let mut warnings = task_warnings(&task);
    warnings.extend(records_as_patients(
        &eval_manifest,
        &eval_records,
        &held_out,
    ));
    let eval_data = EvalData {
        url: &args.source.data,
        manifest: &eval_manifest,
        records: &eval_records,
    };
    let (pretraining, unseen) = pretraining_check::check(
        &pretrained,
        &eval_data,
        &held_out,
        args.allow_pretraining_overlap,
    )?;
    warnings.extend(unseen);
    let rate = windows.0.sampling_rate;
    warnings.extend(rate_warning(&pretrained.config, &args.source.data, rate));
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let model = &pretrained.config.model;
    say!("device: {}", device.describe());
    let head = HeadSpec {
        pooling: settings.pooling,
        classes: task.k(),
        multi_label: task.multi_label,
    };
    let work = match settings.protocols.iter().any(|p| p.trains_encoder()) {
        true => EncoderWork::Finetune(settings.finetune.recompute),
        false => EncoderWork::Forward,
    };
    if let Some(note) = device.check_memory(model, head, settings.batch_size, work)? {
        say!("GPU memory: {note}");
    }
    let inputs = EvalInputs {
        model,
        encoder_params: &pretrained.encoder,
        task: &task,
        source: &windows,
    };
    let (device_name, precision) = (device.name(), device.precision());
    let inputs_named = [
        ("ecgfm_version", env!("CARGO_PKG_VERSION").to_string()),
        ("weights_sha256", pretrained.weights_sha256.clone()),
        ("data", eval_manifest.data_digest()),
        ("vocabulary", vocabulary.name().to_string()),
        ("min_positives", args.min_positives.to_string()),
        ("device", device.kind()),
        ("precision", precision.to_string()),
    ];
    let mut units = UnitFile::open(&args.out, UnitKeys::new(&inputs_named, &settings)?)?;
    let mut bar = EvalBar::new();
    let results = match device {
        Device::Cpu(be) => run_protocols(be, &inputs, &settings, &mut bar, &mut units),
        Device::Cuda(be) => run_protocols(*be, &inputs, &settings, &mut bar, &mut units),
    };
    bar.finish();
    let results = results.map_err(|e| units.note_kept(e.into()))?;
    for w in result_warnings(&results, &settings) {
        tracing::warn!("{w}");
        warnings.push(w);
    }
    let report = EvalReport {
        ecgfm_version: env!("CARGO_PKG_VERSION").to_string(),
        checkpoint: pretrained.dir.display().to_string(),
        step: pretrained.step,
        weights_sha256: pretrained.weights_sha256.clone(),
        pretraining,
        data: redact_url(&args.source.data),
        vocabulary: vocabulary.name().to_string(),
        classes: task.classes.clone(),
        multi_label: task.multi_label,
        pooling: args.pool.clone(),
        device: device_name,
        precision: precision.to_string(),
        seed: settings.seed,
        bootstrap_resamples: settings.bootstrap,
        scored_by: settings.score_by,
        counts,
        warnings,
        finetune_settings: settings.finetune.clone(),
        against_scratch: ScratchDifference::of(&results, settings.bootstrap, settings.seed),
        results,
    };
    let json = serde_json::to_string_pretty(&report).context("serialising the report")?;
    // Read back from the text, not `to_value` (which would widen its f32s, and so the file's).
    let value = serde_json::from_str(&json).context("serialising the report")?;
    // The run keeps a copy, its TensorBoard scalars beside it: `ecgfm export` reports the
    // results of the exported step from there. Written before `--out`, and each file whole (written
    // beside and renamed), so an `--out` that exists means the evaluation finished; an `--out`
    // that fails after all (its folder removed during the run, say) leaves the results there.
    let name = args.out.file_name().context("--out names no file")?;
    let out_dir = std::fs::canonicalize(out_dir).ok();
    let run_eval = run_copy
        .folder()
        .and_then(|f| std::fs::canonicalize(f).ok());
    // An --out in the run's eval folder is the run's copy itself.
    let in_run_eval = out_dir.is_some() && run_eval == out_dir;
    let copy = match in_run_eval {
        true => Some(args.out.clone()),
        false => run_copy.path_for(&name.to_string_lossy(), &value),
    };
    if let Some(run_eval) = run_copy.folder() {
        report
            .write_tensorboard(run_eval)
            .with_context(|| format!("writing TensorBoard events to {}", run_eval.display()))?;
    }
    let apart = copy.as_ref().filter(|_| !in_run_eval);
    if let Some(copy) = apart {
        write_whole(copy, &json)?;
    }
    let written = write_whole(&args.out, &json);
    match apart {
        Some(copy) => {
            written.with_context(|| format!("the results are kept in {}", copy.display()))?
        }
        None => written?,
    }
    units.remove();
    say_inline!("{}", report.table());
    match (&copy, run_copy.folder()) {
        (Some(copy), Some(run_eval)) => say!(
            "results written to {} and {} (TensorBoard scalars in {})",
            args.out.display(),
            copy.display(),
            run_eval.display()
        ),
        _ => say!(
            "results written to {} (the run folder cannot be written: no copy kept there)",
            args.out.display()
        ),
    }
    Ok(report)
}

/// Refuses (exit 78) a dataset whose manifest counts no label of `vocabulary`, naming the
/// vocabularies it holds, before any window is read.
pub(crate) fn check_vocabulary(
    manifest: &Manifest,
    vocabulary: &Vocabulary,
    url: &str,
) -> Result<()> {
    let labels = manifest.counts.labels.keys().map(String::as_str);
    match vocabulary.missing_from(labels) {
        None => Ok(()),
        Some(why) => {
            Err(RefusedConfig(format!("the dataset {} holds {why}", redact_url(url))).into())
        }
    }
}

/// A warning for each source of the held-out records whose patient ids are ingest's stand-in
/// (every record its own patient, `source:record_id`): its splits and the bootstrap are then per
/// record, and one patient's records may sit in several splits. Synthetic records are each their
/// own patient indeed.
fn records_as_patients(
    manifest: &Manifest,
    records: &[RecordId],
    held_out: &BTreeSet<RecordKey>,
) -> Vec<String> {
    let synthetic =
        |source: &str| (manifest.sources.iter()).any(|s| s.name == source && s.format == "synth");
    let mut without: BTreeMap<&str, bool> = BTreeMap::new();
    for r in records {
        if held_out.contains(&(r.source.clone(), r.record_id.clone())) {
            *without.entry(&r.source).or_insert(true) &= r.patient_is_record();
        }
    }
    (without.into_iter())
        .filter(|&(source, stand_in)| stand_in && !synthetic(source))
        .map(|(source, _)| {
            format!(
                "source {source} has no patient ids (each record is its own patient): its split \
                 and intervals are per record, and one patient's records may be in several splits"
            )
        })
        .collect()
}

/// Writes `text` to `path` whole (`ecgfm_trainer::write_whole`): never seen half written.
pub(crate) fn write_whole(path: &Path, text: &str) -> Result<()> {
    ecgfm_trainer::write_whole::write_whole(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
