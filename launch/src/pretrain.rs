//! `ecgfm pretrain`: resolves the configuration, opens the device (`--device`) and the data
//! source, and runs the trainer with a progress bar.

use crate::cli::PretrainArgs;
use crate::damaged_data::name_damaged_dataset;
use crate::device::{self, Opened};
use crate::gpu_memory;
use crate::pretrain_dist::JobRank;
use anyhow::{bail, Context, Result};
use ecgfm_data::store::{is_redacted, redact_url};
use ecgfm_kernels::{Backend, CpuBackend, Precision};
use ecgfm_trainer::config::{self, parse_precision, TrainConfig};
use ecgfm_trainer::data::{BatchSource, SyntheticSource};
use ecgfm_trainer::data_parallel::DataParallel;
use ecgfm_trainer::metrics::StepRecord;
use ecgfm_trainer::model::Recompute;
use ecgfm_trainer::train::{model_memory, RunSummary, Trainer};
use ecgfm_trainer::validation::{self, Validator};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};

/// Folder that holds run directories when `--out` is not given.
const RUNS_ROOT: &str = "runs";

/// Builds the TOML document from the saved or given config file, the flags and `--set`.
pub fn resolve_config(args: &PretrainArgs, run_dir: &Path) -> Result<TrainConfig> {
    let saved = run_dir.join("config.toml");
    let file = match (&args.config, args.resume && saved.exists()) {
        (Some(path), _) => Some(path.as_path()),
        (None, true) => Some(saved.as_path()),
        (None, false) => None,
    };
    let mut doc = match file {
        Some(path) => {
            let doc = config::read_toml_file(path)?;
            config::check_sections(&doc)
                .with_context(|| format!("in the config file {}", path.display()))?;
            doc
        }
        None => toml::Table::new(),
    };
    // An older file's settings are read with its own batch size, before --batch-size changes it.
    config::upgrade_legacy_keys(&mut doc)?;
    let flags: [(&str, Option<toml::Value>); 11] = [
        ("model.preset", args.model.clone().map(toml::Value::String)),
        (
            "train.steps",
            args.steps.map(|v| toml::Value::Integer(v as i64)),
        ),
        (
            "train.batch_size",
            args.batch_size.map(|v| toml::Value::Integer(v as i64)),
        ),
        (
            "train.seed",
            args.seed.map(|v| toml::Value::Integer(v as i64)),
        ),
        (
            "train.checkpoint_every",
            args.checkpoint_every
                .map(|v| toml::Value::Integer(v as i64)),
        ),
        (
            "train.keep_checkpoints",
            args.keep_checkpoints
                .map(|v| toml::Value::Integer(v as i64)),
        ),
        (
            "train.threads",
            args.threads.map(|v| toml::Value::Integer(v as i64)),
        ),
        ("data.source", args.data.clone().map(toml::Value::String)),
        ("train.device", args.device.clone().map(toml::Value::String)),
        (
            "train.precision",
            args.precision.clone().map(toml::Value::String),
        ),
        (
            "train.on_nonfinite",
            args.on_nonfinite.clone().map(toml::Value::String),
        ),
    ];
    for (key, value) in flags {
        if let Some(value) = value {
            config::set_path(&mut doc, key, value)?;
        }
    }
    for assignment in &args.set {
        let mut alone = toml::Table::new();
        config::apply_override(&mut alone, assignment)?;
        config::check_sections(&alone).with_context(|| format!("in --set {assignment}"))?;
        config::apply_override(&mut doc, assignment)?;
    }
    let config = TrainConfig::from_table(doc)?;
    config.check_threads()?;
    Ok(config)
}

/// The run directory: `--out`, else a new timestamped folder, else (with `--resume`) the newest.
pub fn choose_run_dir(args: &PretrainArgs) -> Result<PathBuf> {
    match &args.out {
        Some(out) => Ok(out.clone()),
        None => default_run_dir(args.resume),
    }
}

/// The run directory without `--out`: with `resume` the run under `runs/` written to last (its
/// `metrics.jsonl`, else its `config.toml`), else a new timestamped folder there, made now so
/// that two runs started in the same second get a folder each (`-2`, `-3`, ... after the
/// second).
pub fn default_run_dir(resume: bool) -> Result<PathBuf> {
    if resume {
        let written = |run: &Path| {
            let file = ["metrics.jsonl", "config.toml"]
                .map(|name| run.join(name))
                .into_iter()
                .find(|f| f.exists())?;
            std::fs::metadata(file).and_then(|m| m.modified()).ok()
        };
        let newest = std::fs::read_dir(RUNS_ROOT)
            .with_context(|| format!("--resume without --out looks in {RUNS_ROOT}/"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("config.toml").exists())
            .max_by_key(|p| (written(p), p.clone()));
        return newest.with_context(|| format!("no run to resume under {RUNS_ROOT}/"));
    }
    std::fs::create_dir_all(RUNS_ROOT).with_context(|| format!("creating {RUNS_ROOT}/"))?;
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string();
    for n in 1.. {
        let name = match n {
            1 => stamp.clone(),
            n => format!("{stamp}-{n}"),
        };
        let dir = Path::new(RUNS_ROOT).join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    unreachable!("the run folders of one second are finite")
}

/// Opens the batch source named by `data.source`, as rank `rank` of `world` (each rank gets its
/// part of every global batch).
pub fn open_source(
    config: &TrainConfig,
    rank: usize,
    world: usize,
) -> Result<Box<dyn BatchSource>> {
    if config.data.source == "synth" {
        if rank == 0 && std::path::Path::new("synth/manifest.json").exists() {
            say_err!(
                "warning: data.source `synth` is ecgfm's synthetic generator, not the dataset in \
                 the folder ./synth: to train on that folder give --data ./synth"
            );
        }
        let source = SyntheticSource::new(
            &config.model,
            config.train.seed,
            config.data.synth_single_lead_fraction,
        );
        return Ok(Box::new(source.for_rank(rank, world)));
    }
    crate::dataset_source::open(config, rank, world)
}

/// The fixed validation set of a run: the synthetic generator's held-out stream, or the
/// dataset's `val` split read as `validation_reading` says. `None` when `train.val_windows` is
/// 0, or (after a warning) when the dataset has no `val` split to read.
pub fn open_validator(config: &TrainConfig) -> Result<Option<Validator>> {
    let Some(sources) = open_validation_sources(config)? else {
        return Ok(None);
    };
    let url = &config.data.source;
    let mut validator = Validator::new(config, sources.whole)
        .map_err(anyhow::Error::from_boxed)
        .context("drawing the validation set")
        .map_err(|err| name_damaged_dataset(err, url))?;
    for (name, source) in sources.by_source {
        validator
            .add_source(config, &name, source)
            .map_err(anyhow::Error::from_boxed)
            .with_context(|| format!("drawing the validation set of {name}"))
            .map_err(|err| name_damaged_dataset(err, url))?;
    }
    Ok(Some(validator))
}

/// Where a validation set's windows come from: the whole set's source, and each source's own
/// (a dataset of several sources, `train.val_by_source`).
pub struct ValidationSources {
    pub whole: Box<dyn BatchSource>,
    pub by_source: Vec<(String, Box<dyn BatchSource>)>,
}

/// The sources of `open_validator`'s sets, opened to read the set's windows in its fixed order.
pub fn open_validation_sources(config: &TrainConfig) -> Result<Option<ValidationSources>> {
    if config.train.val_windows == 0 {
        return Ok(None);
    }
    let reading = validation_reading(config);
    let whole: Box<dyn BatchSource> = if config.data.source == "synth" {
        Box::new(validation::synthetic_held_out(config).map_err(anyhow::Error::from_boxed)?)
    } else {
        let split = crate::dataset_source::Split {
            name: "val",
            seed: 0,
            repeat: &Default::default(),
        };
        match crate::dataset_source::open_split(&reading, split, 0, 1) {
            Ok(source) => source,
            Err(err) => {
                tracing::warn!("no validation loss: {}", crate::error_text(&err));
                return Ok(None);
            }
        }
    };
    let by_source = match config.data.source != "synth" && config.train.val_by_source {
        true => source_validation(config, &reading)?,
        false => Vec::new(),
    };
    Ok(Some(ValidationSources { whole, by_source }))
}

/// `ECGFM_FAULT_HOLD_AFTER_STOP_MS=N`: a run stopped by a signal waits N ms after saving its
/// checkpoint, as a slow file system or terminal can hold it before it exits, so that a test
/// can signal it in that window (`signals::stop_saved`).
fn hold_after_stop() {
    if let Some(ms) = std::env::var("ECGFM_FAULT_HOLD_AFTER_STOP_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// Which ranks of a job of `world` a stop signal reached, as the stop's message says it: nothing
/// for one process; " to rank 1", " to ranks 0, 2", " to every rank". Every rank stops at the
/// same step whichever got it, so without this each rank's message named itself.
fn signalled_ranks(ranks: &[usize], world: usize) -> String {
    match ranks {
        _ if world == 1 => String::new(),
        _ if ranks.len() == world => " to every rank".into(),
        [one] => format!(" to rank {one}"),
        _ => {
            let list: Vec<String> = ranks.iter().map(usize::to_string).collect();
            format!(" to ranks {}", list.join(", "))
        }
    }
}

/// How a validation set is read, whatever the run's own data settings (`data.mix_row_groups`,
/// `data.mix_across_shards`, the batch size, the prefetch), so that the set depends on the
/// dataset and `train.val_windows` alone: with seed 0, the row groups of every shard shuffled
/// together and windows mixed four row groups at a time (the loader's default reach and
/// memory), so that the first windows come from across the split, not from one shard.
fn validation_reading(config: &TrainConfig) -> TrainConfig {
    let mut reading = config.clone();
    reading.train.batch_size = validation::READ_BATCH;
    reading.data.mix_row_groups = 4;
    reading.data.mix_across_shards = true;
    reading.data.prefetch_batches = 1;
    reading
}

/// Of a dataset of several sources, the source of each one's own validation set (the others'
/// rows repeated 0 times), read as the whole one is, so runs that mix differently are measured
/// on the same windows; a source without validation rows is left out with a warning.
fn source_validation(
    config: &TrainConfig,
    reading: &TrainConfig,
) -> Result<Vec<(String, Box<dyn BatchSource>)>> {
    let url = &config.data.source;
    let (store, root) = ecgfm_data::store::open_url(url)?;
    let manifest = ecgfm_data::manifest::Manifest::load(store.as_ref(), &root)
        .with_context(|| format!("reading the manifest of {url}"))?;
    let names: std::collections::BTreeSet<&str> =
        manifest.sources.iter().map(|s| s.name.as_str()).collect();
    if names.len() < 2 {
        return Ok(Vec::new());
    }
    let mut sources = Vec::new();
    for &name in &names {
        let others = names
            .iter()
            .filter(|&&other| other != name)
            .map(|&other| (other.to_string(), 0.0))
            .collect();
        let split = crate::dataset_source::Split {
            name: "val",
            seed: 0,
            repeat: &others,
        };
        match crate::dataset_source::open_split(reading, split, 0, 1) {
            Ok(source) => sources.push((name.to_string(), source)),
            Err(err) => tracing::warn!(
                "no validation loss of source {name}: {}",
                crate::error_text(&err)
            ),
        }
    }
    Ok(sources)
}

/// A CPU thread pool of `threads` threads (0: all cores); the work runs inside `pool.install`.
pub fn thread_pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("setting up the CPU thread pool")
}

fn progress_bar(config: &TrainConfig, start: u64) -> ProgressBar {
    let bar = ProgressBar::new(config.train.steps);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} step {pos}/{len} [{wide_bar}] {msg} elapsed {elapsed} ETA {eta}",
        )
        .expect("valid progress template"),
    );
    // The steps before a resume took no time here: the ETA follows this session's rate only.
    bar.set_position(start);
    bar.tick();
    bar.reset_eta();
    bar
}

/// Runs `ecgfm pretrain` (alone, or as one rank of a job started by a launcher).
pub fn run(args: &PretrainArgs) -> Result<RunSummary> {
    crate::pretrain_dist::prepare_nccl(args.device.as_deref());
    let mut job = JobRank::join(&args.dist)?;
    let mut made_here = false;
    let run_dir = job.agree_on_run_dir(|| {
        made_here = args.out.is_none() && !args.resume;
        choose_run_dir(args)
    })?;
    let trained = resolve_config(args, &run_dir).and_then(|config| {
        let pool = thread_pool(config.train.threads)?;
        pool.install(|| train(args, run_dir.clone(), config, job))
    });
    if trained.is_err() && made_here {
        // A run refused before it wrote anything (its configuration, its device) leaves no
        // empty timestamped folder behind; `remove_dir` takes only an empty one.
        let _ = std::fs::remove_dir(&run_dir);
    }
    trained
}

fn train(
    args: &PretrainArgs,
    run_dir: PathBuf,
    config: TrainConfig,
    mut job: JobRank,
) -> Result<RunSummary> {
    if args.resume && !run_dir.join("config.toml").exists() {
        bail!(
            "--resume: {} holds no run (no config.toml)",
            run_dir.display()
        );
    }
    if is_redacted(&config.data.source) {
        bail!(
            "data.source {} is a dataset address saved without its secrets (a run folder never \
             keeps a URL's query string or user name): pass --data with the full URL, freshly \
             signed if its signature expired",
            config.data.source
        );
    }
    let total = ecgfm_trainer::ParamLayout::new(&config.model).total;
    let local_rank = job.is_rank().then_some(job.env.local_rank);
    match device::open_for_rank(&config.train.device, local_rank)? {
        Opened::Cpu => {
            let precision = parse_precision(&config.train.precision, false)?;
            let threads = rayon::current_num_threads();
            let desc = format!(
                "cpu | {threads} threads per rank | {}",
                device::describe_precision(precision, false)
            );
            let dp = job.data_parallel_cpu(total, &args.dist)?;
            let memory = model_memory(&config, dp.as_ref());
            crate::cpu_memory::check(&config.model, config.train.batch_size, precision, memory)?;
            let be = CpuBackend::with_precision(precision);
            let opened = OpenedDevice { desc, precision };
            train_on(args, run_dir, config, job, be, dp, opened)
        }
        Opened::Cuda(be) => {
            let precision = device::gpu_precision(&config.train.precision, be.device().info())?;
            let desc = format!(
                "{} | {}",
                device::describe(be.device().info()),
                device::describe_precision(precision, true)
            );
            let dp = job.data_parallel_gpu(&be, total, &args.dist)?;
            let memory = model_memory(&config, dp.as_ref());
            let batch = config.train.batch_size;
            let fit = gpu_memory::check(&be, &config.model, batch, precision, memory)?;
            let be = device::cuda_with_precision(*be, precision);
            let desc = format!("{desc} | {}", fit.note);
            let opened = OpenedDevice { desc, precision };
            train_on(args, run_dir, config, job, be, dp, opened)
        }
    }
}

/// The device a run opened: the line describing it, and the precision `train.precision`
/// resolved to there.
struct OpenedDevice {
    desc: String,
    precision: Precision,
}

/// GPU memory in use for the progress line ("" on the CPU).
fn memory_note(record: &StepRecord) -> String {
    record
        .gpu_mem_bytes
        .map(|b| format!(" | GPU mem {:.2} GiB", ecgfm_kernels::gib(b)))
        .unwrap_or_default()
}

fn train_on<B: Backend>(
    args: &PretrainArgs,
    run_dir: PathBuf,
    config: TrainConfig,
    job: JobRank,
    backend: B,
    dp: Option<DataParallel<B>>,
    device: OpenedDevice,
) -> Result<RunSummary> {
    let (rank, world) = (job.rank(), job.world_size());
    let source = open_source(&config, rank, world)
        .map_err(|err| name_damaged_dataset(err, &config.data.source))?;
    // The run folder (config.toml, checkpoints) keeps the dataset's address without its
    // secrets: a signed URL's query string or user info is saved as `***`.
    let mut saved = config.clone();
    saved.data.source = redact_url(&config.data.source);
    // Rank 0 writes the run folder's shared files: one such process at a time, locked from
    // before the first write (not earlier: a start that fails leaves no folder) to the end.
    let _lock = match rank {
        0 => Some(crate::run_lock::lock(&run_dir)?),
        _ => None,
    };
    let mut trainer =
        Trainer::with_data_parallel(saved, &run_dir, backend, source, args.resume, dp)
            .with_context(|| format!("preparing the run in {}", run_dir.display()))?;
    // Rank 0 measures the validation loss: the weights are the same on every rank.
    let validator = match rank {
        0 => open_validator(&config)?,
        _ => None,
    };
    let validation = validator.as_ref().map(|v| v.describe().to_string());
    if let Some(validator) = validator {
        trainer.set_validator(validator);
    }
    let of_config = config.warning().filter(|_| rank == 0);
    for warning in trainer.warnings().iter().chain(&of_config) {
        say_err!("warning: {warning}");
    }
    if rank == 0 {
        match config.model_fields_over_preset().as_slice() {
            [] => say!("model preset: {}", config.preset),
            over => say!(
                "model preset: {}, with {} set over it",
                config.preset,
                over.join(", ")
            ),
        }
        say!("{}", ecgfm_trainer::model::render_table(&config.model));
        say!("device: {}", device.desc);
        say!(
            "activations: {:.1} MiB per micro-batch of {}{}",
            trainer.model().activation_bytes() as f64 / (1u64 << 20) as f64,
            config.train.batch_size,
            match config.train.recompute {
                Recompute::None => String::new(),
                mode => format!(" (train.recompute: {})", mode.describe()),
            }
        );
        say!(
            "run {} | data: {} | {} steps x {} samples ({} rank{} x {} x {} accumulated)",
            run_dir.display(),
            trainer.source_description(),
            config.train.steps,
            trainer.global_batch(),
            world,
            if world == 1 { "" } else { "s" },
            config.train.batch_size,
            config.train.accum_steps,
        );
        if let Some(validation) = validation {
            say!("validation: {validation}");
        }
        if let Some(from) = trainer.resumed_from() {
            say!(
                "resuming from {} in {} (train.precision {})",
                from.display(),
                device.precision,
                config.train.precision
            );
        } else if args.resume {
            say!(
                "--resume: no complete checkpoint in {} yet, so the run starts at step 1",
                run_dir.display()
            );
        }
    }
    // SIGTERM (preemption, the launcher), SIGINT, SIGUSR1 (SLURM's warning before the time
    // limit), SIGHUP (the terminal or ssh session closed): every rank finishes its step, the job
    // checkpoints it, and the run stops.
    crate::signals::catch(&crate::signals::STOPS);
    trainer.stop_when(|| crate::signals::received().is_some());
    let bar = match rank {
        0 => progress_bar(&config, trainer.step_index()),
        _ => ProgressBar::hidden(),
    };
    let summary = trainer.run(args.stop_after, |outcome, record| {
        if outcome.skipped && rank == 0 {
            bar.suspend(|| {
                let on = |what: &str, ranks: &[usize]| match ranks {
                    [] => None,
                    [r] => Some(format!("non-finite {what} on rank {r}")),
                    r => {
                        let r: Vec<String> = r.iter().map(usize::to_string).collect();
                        Some(format!("non-finite {what} on ranks {}", r.join(", ")))
                    }
                };
                let causes: Vec<String> = [
                    on("loss", &outcome.nonfinite_ranks),
                    on("input", &outcome.nonfinite_input_ranks),
                ]
                .into_iter()
                .flatten()
                .collect();
                let causes = match causes.is_empty() {
                    true => String::new(),
                    false => format!(" ({})", causes.join("; ")),
                };
                say_err!(
                    "warning: step {} skipped on every rank: loss {} / gradient norm {}{causes}",
                    outcome.step + 1,
                    outcome.loss,
                    outcome.grad_norm,
                )
            });
        }
        if rank != 0 {
            return;
        }
        bar.set_position(outcome.step + 1);
        bar.set_message(format!(
            "loss {:.4} | {:.0} samples/s{}",
            outcome.loss,
            record.samples_per_s,
            memory_note(record)
        ));
        if let Some(val) = record.val_loss {
            let sources: Vec<String> = record
                .val_loss_by_source
                .iter()
                .map(|(source, loss)| format!("{source} {loss:.4}"))
                .collect();
            let sources = match sources.is_empty() {
                true => String::new(),
                false => format!(" ({})", sources.join(", ")),
            };
            let step = outcome.step + 1;
            bar.suspend(|| tracing::info!("step {step}: val loss {val:.4}{sources}"));
        }
        if bar.is_hidden() && outcome.logged {
            tracing::info!(
                "step {}/{} loss {:.4} lr {:.2e} grad_norm {:.3} {:.0} samples/s{}",
                outcome.step + 1,
                bar.length().unwrap_or_default(),
                outcome.loss,
                outcome.lr,
                outcome.grad_norm,
                record.samples_per_s,
                memory_note(record)
            );
        }
    });
    let summary = summary.map_err(|err| name_damaged_dataset(err.into(), &config.data.source))?;
    bar.finish_and_clear();
    if summary.stopped_early {
        crate::signals::stop_saved();
        hold_after_stop();
        return Err(crate::signals::Stopped(format!(
            "stopped by a signal{} at step {}: checkpoint saved in {}; continue with --resume",
            signalled_ranks(&summary.stop_asked_by, world),
            summary.steps,
            run_dir.join("checkpoints").display()
        ))
        .into());
    }
    if rank != 0 {
        return Ok(summary);
    }
    match summary.final_loss {
        Some(loss) => say!(
            "done: step {}/{} | final loss {loss:.4}{} | {:.1} s | metrics {} | checkpoints {}{}\n\
             view the curves: tensorboard --logdir {}",
            summary.steps,
            config.train.steps,
            summary
                .val_loss
                .map_or(String::new(), |v| format!(" | val loss {v:.4}")),
            summary.elapsed_s,
            run_dir.join("metrics.jsonl").display(),
            run_dir.join("checkpoints").display(),
            match args.stop_after.is_some() && summary.steps < config.train.steps {
                true => " | stopped by --stop-after: continue with --resume",
                false => "",
            },
            run_dir.display()
        ),
        None => say!(
            "nothing to do: the run in {} is already at step {}",
            run_dir.display(),
            summary.steps
        ),
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_bar_estimates_from_this_sessions_steps_only() {
        let mut config = TrainConfig::default_config();
        config.train.steps = 2000;
        let bar = progress_bar(&config, 1000);
        std::thread::sleep(std::time::Duration::from_millis(50));
        bar.inc(1);
        // One step in about 50 ms leaves 999 steps for about 50 s; counting the 1000 steps before
        // the resume as done in no time would give about 0.
        assert!(bar.eta().as_secs_f64() > 5.0, "ETA {:?}", bar.eta());
    }
}
