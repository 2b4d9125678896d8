//! `ecgfm export`: one checkpoint of a run as a package that loads without ecgfm, in the Hugging
//! Face layout (the folder can be uploaded to a model hub as it is):
//! - `model.safetensors`: the encoder's tensors by their documented names (docs/model.md), or
//!   every tensor with `--with-decoder`;
//! - `config.json`: the model's dimensions, the input it expects (leads, rate, length, patch,
//!   units) and the preprocessing of the training data;
//! - `README.md`: the model card (`model_card`);
//! - `ecgfm_encoder.py`: the PyTorch loader (python/ecgfm_encoder.py);
//! - `ecgfm_preprocess.py`: ingest's preprocessing in numpy and scipy, to prepare raw ECGs as the
//!   training data was (python/ecgfm_preprocess.py);
//! - `SHA256SUMS`, written last.
//!
//! The package is written into `PKG.partial` and renamed into place, and the same checkpoint
//! always exports to the same bytes (so `ecgfm publish` can tell the same package from another).

use crate::model_card::{self, CardInputs, EvalResult};
use crate::package::{self, FileSum, SUMS_FILE};
use crate::run_checkpoint::RunCheckpoint;
use anyhow::{bail, Context, Result};
use clap::Args;
use ecgfm_data::manifest::Manifest;
use ecgfm_data::store;
use ecgfm_trainer::checkpoint;
use ecgfm_trainer::config::as_written_f64;
use ecgfm_trainer::metrics::{self, StepRecord};
use safetensors::tensor::{Dtype, TensorView};
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The PyTorch loader shipped in every package.
const ENCODER_PY: &str = include_str!("../../python/ecgfm_encoder.py");
const PREPROCESS_PY: &str = include_str!("../../python/ecgfm_preprocess.py");

#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    /// Run directory written by `ecgfm pretrain`.
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// Checkpoint step (default: the newest complete checkpoint).
    #[arg(long, value_name = "N")]
    pub step: Option<u64>,
    /// Package folder to write (replaced if it holds an earlier package).
    #[arg(long, value_name = "PKG")]
    pub out: PathBuf,
    /// Export the decoder too (every tensor of the masked autoencoder).
    #[arg(long)]
    pub with_decoder: bool,
    /// `ecgfm eval` result file to report in the model card (repeatable); result files of the
    /// exported step in the run's `eval/` folder are reported too.
    #[arg(long = "eval", value_name = "FILE")]
    pub eval: Vec<PathBuf>,
    /// The run's dataset, where the run folder's address no longer opens it: moved, or a
    /// signed URL (saved without its signature). Checked by data digest against the checkpoint.
    #[arg(long, value_name = "URL")]
    pub data: Option<String>,
}

/// Runs `ecgfm export`.
pub fn run(args: &ExportArgs) -> Result<()> {
    let ckpt = RunCheckpoint::open(&args.run, args.step)?;
    let manifest = dataset_manifest(&ckpt, args.data.as_deref())?;
    let records = metrics_until(&ckpt.run_dir, ckpt.state.step)?;
    let mut evals = args
        .eval
        .iter()
        .map(|path| EvalResult::read(path))
        .collect::<Result<Vec<_>>>()?;
    for eval in &evals {
        if let Some(theirs) = other_run(eval, &ckpt) {
            bail!(
                "{} evaluated {theirs}, a checkpoint of another run than {}; the model card \
                 reports only results of this run's weights",
                eval.path.display(),
                ckpt.run_dir.display()
            );
        }
        if let Some(theirs) = other_weights(eval, &ckpt) {
            bail!(
                "{} evaluated other weights than {theirs} (its weights_sha256 differs: another \
                 run's checkpoint?); the model card reports only results of this run's weights",
                eval.path.display(),
            );
        }
    }
    let in_run = evals_in_run(&ckpt, &evals)?;
    evals.extend(in_run);
    let (weights, exported_params) = weights_file(&ckpt, args.with_decoder)?;
    let config = config_json(&ckpt, manifest.as_ref(), args.with_decoder);
    let card = model_card::render(&CardInputs {
        ckpt: &ckpt,
        manifest: manifest.as_ref(),
        metrics: &records,
        evals: &evals,
        with_decoder: args.with_decoder,
        exported_params,
    });
    let files: [(&str, &[u8]); 5] = [
        ("model.safetensors", &weights),
        ("config.json", config.as_bytes()),
        ("README.md", card.as_bytes()),
        ("ecgfm_encoder.py", ENCODER_PY.as_bytes()),
        ("ecgfm_preprocess.py", PREPROCESS_PY.as_bytes()),
    ];
    write_package(&args.out, &files)?;
    say!(
        "exported step {} of {} ({} parameters{}) to {}\nload it in PyTorch: \
         python3 -c \"import sys; sys.path.insert(0, '{}'); import ecgfm_encoder; \
         print(ecgfm_encoder.load('{}'))\"",
        ckpt.state.step,
        ckpt.run_dir.display(),
        exported_params,
        if args.with_decoder {
            ", with the decoder"
        } else {
            ", encoder"
        },
        args.out.display(),
        args.out.display(),
        args.out.display()
    );
    Ok(())
}

/// The manifest of the dataset the run trained on (`None` for the synthetic generator), read at
/// `data` when given (it must hold the data the checkpoint read), else at the saved address.
fn dataset_manifest(ckpt: &RunCheckpoint, data: Option<&str>) -> Result<Option<Manifest>> {
    let saved = &ckpt.config.data.source;
    if saved == "synth" {
        return Ok(None);
    }
    if data.is_none() && store::is_redacted(saved) {
        bail!(
            "the run's dataset {saved} was saved without its secrets (a signed URL's query \
             string): pass --data with the full URL (the model card and config.json describe the \
             training data from its manifest)"
        );
    }
    let url = data.unwrap_or(saved);
    let shown = store::redact_url(url);
    let (object_store, root) = store::open_url(url)
        .with_context(|| format!("opening the run's dataset {shown} for its manifest"))?;
    let manifest = Manifest::load(object_store.as_ref(), &root).with_context(|| {
        format!(
            "reading the manifest of the run's dataset {shown} (the model card and config.json \
             describe the training data from it; --data URL reads it elsewhere)"
        )
    })?;
    let trained_on = ckpt.state.data["data_digest"].as_str();
    if trained_on.is_some_and(|d| d != manifest.data_digest()) {
        let way_out = match data {
            Some(_) => "",
            None => "; pass --data with the dataset it trained on",
        };
        bail!(
            "{shown} holds other data than checkpoint {} read from {} (its data digest \
             differs){way_out}",
            ckpt.dir.display(),
            store::redact_url(saved)
        );
    }
    Ok(Some(manifest))
}

/// The checkpoint of this run, at the step `eval` evaluated, whose weights differ from the ones
/// it measured (by `weights_sha256`), if any: the exported one at its step, another one the run
/// keeps at another step (a result of another run of that step was reported as this run's until
/// 2026-12-06). A step the run no longer keeps cannot be checked (`model_card` says so), and
/// results written before `weights_sha256` was kept are taken at their word.
fn other_weights(eval: &EvalResult, ckpt: &RunCheckpoint) -> Option<String> {
    let measured = eval.value["weights_sha256"].as_str()?;
    let step = eval.value["step"].as_u64()?;
    let (dir, weights) = match step == ckpt.state.step {
        true => (ckpt.dir.clone(), ckpt.weights_sha256.clone()),
        false => {
            let dir = checkpoint::checkpoint_dir(&ckpt.run_dir, step);
            let weights = checkpoint::weights_sha256(&dir).ok()?;
            (dir, weights)
        }
    };
    (measured != weights).then(|| format!("checkpoint {} of step {step}", dir.display()))
}

/// The checkpoint `eval` names (its `checkpoint`, `RUN/checkpoints/step_N`) when that names
/// another run folder that is there: a result of another run's step this run never kept was
/// put in the card as this run's, unchecked, until 2026-12-06. A folder that is not there (the
/// run moved, or a relative path from elsewhere) tells nothing.
fn other_run(eval: &EvalResult, ckpt: &RunCheckpoint) -> Option<String> {
    let named = eval.value["checkpoint"].as_str()?;
    let run = Path::new(named).parent()?.parent()?;
    let (theirs, ours) = (run.canonicalize().ok()?, ckpt.run_dir.canonicalize().ok()?);
    (theirs != ours).then(|| named.to_string())
}

/// The `ecgfm eval` result files in the run's `eval/` folder that evaluated the exported
/// checkpoint, except those given with `--eval`: the same file, or the copy `ecgfm eval` keeps
/// there of one (the same result). A file there that is not a result, or a result of other
/// weights, is skipped with a warning.
fn evals_in_run(ckpt: &RunCheckpoint, given: &[EvalResult]) -> Result<Vec<EvalResult>> {
    let dir = ckpt.run_dir.join("eval");
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let mut found = Vec::new();
    for path in paths {
        let same_file = |g: &EvalResult| {
            std::fs::canonicalize(&g.path).ok() == std::fs::canonicalize(&path).ok()
        };
        if given.iter().any(same_file) {
            continue;
        }
        match EvalResult::read(&path) {
            Ok(result) if given.iter().any(|g| g.value == result.value) => {}
            Ok(result) if other_weights(&result, ckpt).is_some() => tracing::warn!(
                "{} evaluated other weights than {} (its weights_sha256 differs); not reported \
                 in the model card",
                path.display(),
                ckpt.dir.display()
            ),
            Ok(result) if result.value["step"].as_u64() == Some(ckpt.state.step) => {
                found.push(result)
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(
                "{}; not reported in the model card",
                crate::error_text(&err)
            ),
        }
    }
    Ok(found)
}

/// The metrics records of the steps before `step` (empty when the run has no metrics file).
fn metrics_until(run_dir: &Path, step: u64) -> Result<Vec<StepRecord>> {
    let path = run_dir.join("metrics.jsonl");
    if !path.exists() {
        return Ok(Vec::new());
    }
    let records =
        metrics::read_records(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(records.into_iter().filter(|r| r.step < step).collect())
}

/// `model.safetensors` bytes (the encoder's tensors, or all) and the number of parameters in it.
fn weights_file(ckpt: &RunCheckpoint, with_decoder: bool) -> Result<(Vec<u8>, usize)> {
    let limit = if with_decoder {
        ckpt.layout.total
    } else {
        ckpt.layout.encoder_params()
    };
    let entries: Vec<_> = ckpt
        .layout
        .entries
        .iter()
        .filter(|e| e.end() <= limit)
        .collect();
    let data: Vec<Vec<u8>> = entries
        .iter()
        .map(|e| {
            ckpt.params[e.offset..e.end()]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect()
        })
        .collect();
    let views = entries
        .iter()
        .zip(&data)
        .map(|(e, bytes)| {
            TensorView::new(Dtype::F32, e.shape.clone(), bytes).map(|v| (e.name.clone(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .context("building the safetensors views")?;
    // One metadata key (the Hugging Face convention), so the bytes are the same on every export.
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let bytes =
        safetensors::serialize(views, &Some(metadata)).context("serialising model.safetensors")?;
    Ok((bytes, limit))
}

/// `config.json`: everything a loader needs to rebuild the encoder and prepare its input.
fn config_json(ckpt: &RunCheckpoint, manifest: Option<&Manifest>, with_decoder: bool) -> String {
    let c = &ckpt.config;
    let m = &c.model;
    let sampling_rate = f64::from(crate::pretrained::pretraining_rate(manifest));
    let (_, input_units) = model_card::input_units(manifest);
    let preprocessing = manifest.map_or(serde_json::Value::Null, |man| man.preprocessing.clone());
    let value = json!({
        "architectures": ["EcgfmEncoder"],
        "model_type": "ecgfm-mae",
        "ecgfm_version": env!("CARGO_PKG_VERSION"),
        "weights": if with_decoder { "encoder+decoder" } else { "encoder" },
        "preset": c.preset,
        "fields_over_preset": c.model_fields_over_preset(),
        "dim": m.dim,
        "depth": m.depth,
        "heads": m.heads,
        "mlp_ratio": m.mlp_ratio,
        "dec_dim": m.dec_dim,
        "dec_depth": m.dec_depth,
        "dec_heads": m.dec_heads,
        "leads": m.leads,
        "lead_names": ecgfm_data::schema::STANDARD_LEADS,
        "samples": m.samples,
        "patch": m.patch,
        "patches_per_lead": m.patches_per_lead(),
        "mask_ratio": m.mask_ratio,
        "masking": m.masking,
        "norm_pix": m.norm_pix,
        "layer_norm_eps": 1e-6,
        "activation": "gelu (exact erf)",
        "position_embedding": "fixed 1-D sin-cos over the patch index (MAE)",
        "embedding": "mean of the encoder's output tokens over every patch of the present leads",
        "sampling_rate_hz": sampling_rate,
        "input_units": input_units,
        "preprocessing": preprocessing,
        "signal_scale": manifest.map(|man| as_written_f64(man.signal_scale)),
        "training": {
            "steps": ckpt.state.step,
            "samples_seen": ckpt.state.samples_seen,
            "flops": ckpt.state.flops,
            "data": store::redact_url(&c.data.source),
            "split": c.data.split,
            "repeat": c.data.repeat,
            "seed": c.train.seed,
            // What `ecgfm embed` (ecgfm_weights_sha256) and `ecgfm eval` (weights_sha256)
            // record of the checkpoint they read: ties their outputs to this package.
            "checkpoint_weights_sha256": ckpt.weights_sha256,
        },
    });
    serde_json::to_string_pretty(&value).expect("config.json serialises") + "\n"
}

/// Writes `files` and `SHA256SUMS` into `NAME.partial` beside `out`, then moves it to `out`,
/// replacing an earlier package there (and nothing else: a folder holding any other file is
/// refused).
fn write_package(out: &Path, files: &[(&str, &[u8])]) -> Result<()> {
    let Some(name) = out.file_name() else {
        bail!(
            "--out {} names no folder of its own: give the package folder's name",
            out.display()
        );
    };
    if out.exists() {
        refuse_unless_package(out)?;
    }
    let mut partial_name = name.to_owned();
    partial_name.push(".partial");
    let partial = out.with_file_name(partial_name);
    let io = |path: &Path| format!("writing {}", path.display());
    if partial.exists() {
        std::fs::remove_dir_all(&partial).with_context(|| io(&partial))?;
    }
    let written = (|| {
        std::fs::create_dir_all(&partial).with_context(|| io(&partial))?;
        let mut sums = Vec::with_capacity(files.len());
        for (name, bytes) in files {
            let path = partial.join(name);
            std::fs::write(&path, bytes).with_context(|| io(&path))?;
            sums.push(FileSum {
                name: name.to_string(),
                sha256: package::sha256_hex(bytes),
            });
        }
        let sums_path = partial.join(SUMS_FILE);
        std::fs::write(&sums_path, package::render(&sums)).with_context(|| io(&sums_path))
    })();
    if written.is_err() {
        // A full disk, say: what was written of the new package goes, the old one stays.
        let _ = std::fs::remove_dir_all(&partial);
    }
    written?;
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| io(out))?;
    }
    std::fs::rename(&partial, out).with_context(|| io(out))
}

/// Fails unless the existing folder `out` is empty or holds an earlier package: only the files
/// `ecgfm export` writes (and the `__pycache__` Python leaves beside its loader), listed by a
/// `SHA256SUMS` of a package.
fn refuse_unless_package(out: &Path) -> Result<()> {
    let (mut foreign, mut entries) = (Vec::new(), 0);
    for entry in std::fs::read_dir(out).with_context(|| format!("--out {}", out.display()))? {
        entries += 1;
        let name = entry?.file_name().to_string_lossy().into_owned();
        let ours = name == SUMS_FILE
            || name == package::PYTHON_CACHE
            || package::PACKAGE_FILES.contains(&name.as_str());
        if !ours {
            foreign.push(name);
        }
    }
    let sums_path = out.join(SUMS_FILE);
    let listing = std::fs::read_to_string(&sums_path)
        .ok()
        .and_then(|text| package::parse(&text, "").ok());
    let a_package = listing.is_some_and(|sums| package::is_package_listing(&sums));
    if foreign.is_empty() && (a_package || entries == 0) {
        return Ok(());
    }
    foreign.sort();
    let holds = match foreign.first() {
        Some(first) if foreign.len() == 1 => format!("it holds {first}"),
        Some(first) => format!("it holds {} other files, e.g. {first}", foreign.len()),
        None if sums_path.exists() => format!("its {SUMS_FILE} is not a package's"),
        None => format!("it has no {SUMS_FILE}"),
    };
    bail!(
        "--out {} exists and is not an ecgfm package ({holds}): export replaces only an \
         earlier package; choose another folder",
        out.display()
    )
}
