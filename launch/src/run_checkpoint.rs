//! One complete checkpoint of a run directory (`--run DIR [--step N]`) with the configuration it
//! was written under (kept in its weights' metadata; the run's `config.toml` for checkpoints
//! without it), checked against each other: what `ecgfm export`, `eval` and `embed` start from.

use anyhow::{bail, Context, Result};
use ecgfm_trainer::checkpoint::{self, CheckpointError, TrainingState};
use ecgfm_trainer::config::{self, TrainConfig};
use ecgfm_trainer::ParamLayout;
use std::path::{Path, PathBuf};

/// Warns where the run's `config.toml` describes another model than the one checkpoint `dir`
/// was trained with (the checkpoint was copied in from another run): the checkpoint's is used,
/// the differing `[model]` keys named. Says nothing where config.toml does not read.
fn warn_of_another_model(config_path: &Path, trained: &TrainConfig, dir: &Path) {
    let run = match config::read_toml_file(config_path).map(TrainConfig::from_table) {
        Ok(Ok(run)) => run,
        _ => return,
    };
    let table = |c: &TrainConfig| toml::Table::try_from(&c.model).unwrap_or_default();
    let (run, trained) = (table(&run), table(trained));
    let differing: Vec<String> = (run.iter())
        .filter(|(key, value)| trained.get(*key) != Some(value))
        .map(|(key, value)| match trained.get(key) {
            Some(was) => format!("model.{key} = {value} there, {was} in the checkpoint"),
            None => format!("model.{key} = {value} there, absent in the checkpoint"),
        })
        .collect();
    if !differing.is_empty() {
        tracing::warn!(
            "{} describes another model than checkpoint {} was trained with ({}): the \
             checkpoint's own configuration is used",
            config_path.display(),
            dir.display(),
            differing.join("; ")
        );
    }
}

/// One checkpoint of a run, with the configuration it was trained with.
pub struct RunCheckpoint {
    pub run_dir: PathBuf,
    pub dir: PathBuf,
    pub config: TrainConfig,
    pub layout: ParamLayout,
    /// Every parameter, in the layout's order.
    pub params: Vec<f32>,
    /// SHA-256 of the weights file (`checkpoint::weights_sha256`).
    pub weights_sha256: String,
    pub state: TrainingState,
}

impl RunCheckpoint {
    /// The checkpoint at `step` of `run_dir`, or its newest complete one.
    pub fn open(run_dir: &Path, step: Option<u64>) -> Result<RunCheckpoint> {
        let config_path = run_dir.join("config.toml");
        if !config_path.is_file() {
            bail!(
                "{} is not an ecgfm run directory (no config.toml; `ecgfm pretrain --out DIR` \
                 writes one)",
                run_dir.display()
            );
        }
        let dir = choose(run_dir, step)?;
        // The checkpoint's own configuration: a resume may since have changed the run's
        // config.toml (`--steps`, a moved dataset's address).
        let (table, origin) = match checkpoint::load_config_text(&dir)? {
            Some(text) => {
                let origin = format!("{}/model.safetensors's ecgfm_config", dir.display());
                let table = toml::from_str(&text).with_context(|| format!("reading {origin}"))?;
                (table, origin)
            }
            None => (
                config::read_toml_file(&config_path)?,
                config_path.display().to_string(),
            ),
        };
        let config = TrainConfig::from_table(table).with_context(|| format!("reading {origin}"))?;
        if origin != config_path.display().to_string() {
            warn_of_another_model(&config_path, &config, &dir);
        }
        let layout = ParamLayout::new(&config.model);
        let m = &config.model;
        let params = match checkpoint::load_params(&dir, &layout) {
            Err(err @ CheckpointError::Malformed { .. }) => {
                return Err(anyhow::Error::new(err).context(format!(
                    "checkpoint {} does not match the model of {origin} (D={} depth={} \
                     heads={} Dd={} dec_depth={} L={} P={})",
                    dir.display(),
                    m.dim,
                    m.depth,
                    m.heads,
                    m.dec_dim,
                    m.dec_depth,
                    m.leads,
                    m.patch
                )))
            }
            params => params?,
        };
        let state = checkpoint::load_state(&dir)?;
        let weights_sha256 = checkpoint::weights_sha256(&dir)?;
        Ok(RunCheckpoint {
            run_dir: run_dir.to_path_buf(),
            dir,
            config,
            layout,
            params,
            weights_sha256,
            state,
        })
    }
}

/// The folder of the requested checkpoint, which must be complete.
fn choose(run_dir: &Path, step: Option<u64>) -> Result<PathBuf> {
    let newest = checkpoint::latest_complete(run_dir)?;
    let Some(step) = step else {
        return newest.with_context(|| {
            format!(
                "{} has no complete checkpoint (pretrain writes one every \
                 train.checkpoint_every steps and at the end)",
                run_dir.display()
            )
        });
    };
    let dir = checkpoint::checkpoint_dir(run_dir, step);
    let newest_note = match &newest {
        Some(path) => format!("the newest complete one is {}", path.display()),
        None => "the run has no complete checkpoint".to_string(),
    };
    if !dir.is_dir() {
        bail!(
            "no checkpoint at step {step}: {} does not exist ({newest_note})",
            dir.display()
        );
    }
    if !checkpoint::is_complete(&dir) {
        bail!(
            "checkpoint {} is incomplete (the run stopped while writing it; {newest_note})",
            dir.display()
        );
    }
    Ok(dir)
}
