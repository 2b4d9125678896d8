//! Checkpoints: `checkpoints/step_NNNNNNNN/` under the run directory.
//!
//! A checkpoint holds `model.safetensors` (every parameter by its documented name, the resolved
//! config in the metadata key `ecgfm_config`), `optimizer.safetensors` (AdamW first and second moments as
//! `adamw.m.<name>` / `adamw.v.<name>`, the step count in the metadata), `state.json` (where
//! training stands: step, data-source position, elapsed time) and `COMPLETE`, written last.
//! Everything is written into a `.partial` folder first, synced, marked complete, then renamed
//! into place: a run killed at any moment leaves either a complete checkpoint or an ignorable
//! partial one, never a checkpoint that looks complete but is not.

use crate::{OptimizerState, ParamLayout};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

const COMPLETE_MARKER: &str = "COMPLETE";
const MODEL_FILE: &str = "model.safetensors";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";
const STATE_FILE: &str = "state.json";

/// Errors while writing or reading a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("checkpoint file {path} is malformed: {reason}")]
    Malformed { path: PathBuf, reason: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where training stands at a checkpoint; everything not in the weights or optimiser buffers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingState {
    /// Optimiser steps completed.
    pub step: u64,
    /// Samples consumed so far.
    pub samples_seen: u64,
    /// Wall-clock seconds spent training before this checkpoint.
    pub elapsed_s: f64,
    /// The data source's position (its own format).
    pub data: serde_json::Value,
}

/// A checkpoint read back from disk.
pub struct Checkpoint {
    pub dir: PathBuf,
    pub params: Vec<f32>,
    pub optimizer: OptimizerState,
    pub state: TrainingState,
}

/// The folder of the checkpoint at `step`.
pub fn checkpoint_dir(run_dir: &Path, step: u64) -> PathBuf {
    run_dir.join("checkpoints").join(format!("step_{step:08}"))
}

/// Whether the checkpoint folder `dir` was completely written (it has its `COMPLETE` marker).
pub fn is_complete(dir: &Path) -> bool {
    dir.join(COMPLETE_MARKER).is_file()
}

/// Where training stood at the checkpoint in `dir` (step, samples seen, time), without reading
/// the weights.
pub fn load_state(dir: &Path) -> Result<TrainingState, CheckpointError> {
    let path = dir.join(STATE_FILE);
    let json = fs::read(&path).map_err(io_err(&path))?;
    serde_json::from_slice(&json).map_err(|e| CheckpointError::Malformed {
        reason: e.to_string(),
        path,
    })
}

fn as_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let mut file = File::create(path).map_err(io_err(path))?;
    file.write_all(bytes).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

fn sync_dir(path: &Path) -> Result<(), CheckpointError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(io_err(path))
}

/// Serialises named slices of `buffer` (laid out by `layout`) as safetensors.
fn safetensors_bytes(
    layout: &ParamLayout,
    buffers: &[(&str, &[f32])],
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>, String> {
    let owned: Vec<(String, Vec<usize>, Vec<u8>)> = buffers
        .iter()
        .flat_map(|(prefix, buffer)| {
            layout.entries.iter().map(move |e| {
                let len: usize = e.shape.iter().product();
                let data = as_bytes(&buffer[e.offset..e.offset + len]);
                (format!("{prefix}{}", e.name), e.shape.clone(), data)
            })
        })
        .collect();
    let views = owned
        .iter()
        .map(|(name, shape, data)| {
            TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|v| (name.clone(), v))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize(views, &Some(metadata)).map_err(|e| e.to_string())
}

/// Writes a complete checkpoint for `state.step` and returns its folder.
pub fn save(
    run_dir: &Path,
    layout: &ParamLayout,
    config_toml: &str,
    params: &[f32],
    optimizer: &OptimizerState,
    state: &TrainingState,
) -> Result<PathBuf, CheckpointError> {
    let final_dir = checkpoint_dir(run_dir, state.step);
    let parent = final_dir.parent().expect("checkpoint dir has a parent");
    let partial = parent.join(format!(".step_{:08}.partial", state.step));
    if partial.exists() {
        fs::remove_dir_all(&partial).map_err(io_err(&partial))?;
    }
    fs::create_dir_all(&partial).map_err(io_err(&partial))?;

    let malformed =
        |path: PathBuf| move |reason: String| CheckpointError::Malformed { path, reason };
    // One metadata key per file: safetensors writes metadata from a HashMap, and a single key
    // keeps the file bytes (and so their hashes) identical between identical runs.
    let model_meta = HashMap::from([("ecgfm_config".to_string(), config_toml.to_string())]);
    let model_path = partial.join(MODEL_FILE);
    let model = safetensors_bytes(layout, &[("", params)], model_meta)
        .map_err(malformed(model_path.clone()))?;
    write_synced(&model_path, &model)?;

    let opt_meta = HashMap::from([("step".to_string(), optimizer.step.to_string())]);
    let opt_path = partial.join(OPTIMIZER_FILE);
    let opt = safetensors_bytes(
        layout,
        &[("adamw.m.", &optimizer.m), ("adamw.v.", &optimizer.v)],
        opt_meta,
    )
    .map_err(malformed(opt_path.clone()))?;
    write_synced(&opt_path, &opt)?;

    let state_path = partial.join(STATE_FILE);
    let state_json = serde_json::to_vec_pretty(state).expect("state serialises");
    write_synced(&state_path, &state_json)?;
    sync_dir(&partial)?;
    write_synced(&partial.join(COMPLETE_MARKER), b"ok\n")?;
    sync_dir(&partial)?;

    if final_dir.exists() {
        fs::remove_dir_all(&final_dir).map_err(io_err(&final_dir))?;
    }
    fs::rename(&partial, &final_dir).map_err(io_err(&final_dir))?;
    sync_dir(parent)?;
    Ok(final_dir)
}

/// The newest complete checkpoint of a run, if any. Partial folders are ignored.
pub fn latest_complete(run_dir: &Path) -> Result<Option<PathBuf>, CheckpointError> {
    let root = run_dir.join("checkpoints");
    if !root.exists() {
        return Ok(None);
    }
    let mut best: Option<(u64, PathBuf)> = None;
    for entry in fs::read_dir(&root).map_err(io_err(&root))? {
        let path = entry.map_err(io_err(&root))?.path();
        let step = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("step_"))
            .and_then(|s| s.parse::<u64>().ok());
        if let Some(step) = step {
            if path.join(COMPLETE_MARKER).is_file() && best.as_ref().is_none_or(|(b, _)| step > *b)
            {
                best = Some((step, path));
            }
        }
    }
    Ok(best.map(|(_, p)| p))
}

fn read_named(
    tensors: &SafeTensors,
    path: &Path,
    layout: &ParamLayout,
    prefix: &str,
) -> Result<Vec<f32>, CheckpointError> {
    let mut out = vec![0.0f32; layout.total];
    for e in &layout.entries {
        let name = format!("{prefix}{}", e.name);
        let view = tensors
            .tensor(&name)
            .map_err(|err| CheckpointError::Malformed {
                path: path.to_path_buf(),
                reason: format!("tensor {name}: {err}"),
            })?;
        if view.dtype() != Dtype::F32 || view.shape() != e.shape.as_slice() {
            return Err(CheckpointError::Malformed {
                path: path.to_path_buf(),
                reason: format!(
                    "tensor {name} is {:?} {:?}, expected F32 {:?}",
                    view.dtype(),
                    view.shape(),
                    e.shape
                ),
            });
        }
        for (dst, chunk) in out[e.offset..].iter_mut().zip(view.data().chunks_exact(4)) {
            *dst = f32::from_le_bytes(chunk.try_into().expect("4-byte chunk"));
        }
    }
    Ok(out)
}

fn read_safetensors(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    fs::read(path).map_err(io_err(path))
}

fn parse<'a>(bytes: &'a [u8], path: &Path) -> Result<SafeTensors<'a>, CheckpointError> {
    SafeTensors::deserialize(bytes).map_err(|e| CheckpointError::Malformed {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Reads only the weights of a checkpoint folder (for evaluation and publishing).
pub fn load_params(dir: &Path, layout: &ParamLayout) -> Result<Vec<f32>, CheckpointError> {
    let path = dir.join(MODEL_FILE);
    let bytes = read_safetensors(&path)?;
    read_named(&parse(&bytes, &path)?, &path, layout, "")
}

/// Reads a whole checkpoint folder.
pub fn load(dir: &Path, layout: &ParamLayout) -> Result<Checkpoint, CheckpointError> {
    let params = load_params(dir, layout)?;

    let opt_path = dir.join(OPTIMIZER_FILE);
    let opt_bytes = read_safetensors(&opt_path)?;
    let (_, meta) =
        SafeTensors::read_metadata(&opt_bytes).map_err(|e| CheckpointError::Malformed {
            path: opt_path.clone(),
            reason: e.to_string(),
        })?;
    let step = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("step"))
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| CheckpointError::Malformed {
            path: opt_path.clone(),
            reason: "metadata has no optimizer step".into(),
        })?;
    let tensors = parse(&opt_bytes, &opt_path)?;
    let optimizer = OptimizerState {
        step,
        m: read_named(&tensors, &opt_path, layout, "adamw.m.")?,
        v: read_named(&tensors, &opt_path, layout, "adamw.v.")?,
    };

    let state_path = dir.join(STATE_FILE);
    let state_bytes = fs::read(&state_path).map_err(io_err(&state_path))?;
    let state = serde_json::from_slice(&state_bytes).map_err(|e| CheckpointError::Malformed {
        path: state_path.clone(),
        reason: e.to_string(),
    })?;
    Ok(Checkpoint {
        dir: dir.to_path_buf(),
        params,
        optimizer,
        state,
    })
}
