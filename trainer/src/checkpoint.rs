//! Checkpoints: `checkpoints/step_NNNNNNNN/` under the run directory.
//!
//! A checkpoint holds `model.safetensors` (every parameter by its documented name, the resolved
//! config in the metadata key `ecgfm_config`), the AdamW moments, `state.json` (where training
//! stands: step, data-source position, elapsed time, global batch) and `COMPLETE`, written last.
//! The moments are either `optimizer.safetensors` (`adamw.m.<name>` / `adamw.v.<name>`, the step
//! count in the metadata) or, under ZeRO-1, one `optimizer.shard-RRRRR-of-NNNNN.safetensors` per
//! rank (that rank's flat range); readers reassemble them, so a run resumes on any rank count.
//! Everything is written into a `.partial` folder first, synced, marked complete, then renamed
//! into place: a run killed at any moment leaves either a complete checkpoint or an ignorable
//! partial one, never a checkpoint that looks complete but is not. `COMPLETE` records the size
//! and SHA-256 of every file (`marker.rs`); every reader verifies them, and resuming skips a
//! corrupt newest checkpoint for the newest intact one, with a warning naming it.

mod marker;
mod shards;

pub use shards::{write_optimizer_shard, OptimizerShard};

use crate::{OptimizerState, ParamLayout};
use marker::Marker;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use safetensors::SafeTensorError;
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
    #[error("checkpoint file {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// Intact (its checksums hold) but of another shape than the configuration reading it.
    #[error(
        "checkpoint file {path} was written by another model: {detail}; read it with the \
         configuration it was trained with (its metadata `ecgfm_config` records it), or train \
         this configuration as a new run (another --out)"
    )]
    OtherModel { path: PathBuf, detail: String },
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
    /// Training FLOPs so far, counted from the leads each batch's samples have
    /// (`model::FlopCounter`), over every rank's batches (each step's count of samples by present
    /// leads travels with its losses, so every rank holds the same total). Absent in
    /// checkpoints written before it was counted (the run then no longer reports it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flops: Option<f64>,
    /// Wall-clock seconds spent training before this checkpoint.
    pub elapsed_s: f64,
    /// The data source's position (its own format).
    pub data: serde_json::Value,
    /// Samples per optimiser step over all ranks (ranks x micro-batch x accumulation); a resume
    /// may change the rank count but not this. Absent in checkpoints written before it was
    /// recorded (older single-process runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_batch: Option<u64>,
    /// The definition of the validation set the run measured on up to here
    /// (`validation::VALIDATION_VERSION`); absent in checkpoints of version 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_version: Option<u32>,
    /// Steps skipped in a row for a non-finite loss or gradient (`train.on_nonfinite = skip`)
    /// up to this checkpoint, so a resume stops where an uninterrupted run would.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub nonfinite_in_a_row: u32,
    /// The precision the matrix products ran in (`fp32`, `bf16`: `train.precision` as the
    /// device resolved it, `auto` giving bf16 on a GPU and fp32 on the CPU) since the last
    /// resume; absent in checkpoints written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
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

/// The folder a checkpoint of `step` is written into before it is complete.
pub fn partial_dir(run_dir: &Path, step: u64) -> PathBuf {
    run_dir
        .join("checkpoints")
        .join(format!(".step_{step:08}.partial"))
}

/// Removes the partial folders that interrupted saves left in `run_dir` (a checkpoint at a step
/// off the `checkpoint_every` grid, or a stop's, killed while written, is never written again to
/// replace it), and the folders of old checkpoints whose removal (`remove_older`) was
/// interrupted; a run calls it before it writes any. One line for each folder removed.
pub fn remove_unfinished(run_dir: &Path) -> Result<Vec<String>, CheckpointError> {
    let dir = run_dir.join("checkpoints");
    let Ok(entries) = fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut removed = Vec::new();
    for path in entries.flatten().map(|e| e.path()) {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if !name.starts_with(".step_") || !path.is_dir() {
            continue;
        }
        let why = if name.ends_with(".partial") {
            "a checkpoint left unfinished by an interrupted save"
        } else if name.ends_with(".removing") {
            "an old checkpoint whose removal was interrupted"
        } else {
            continue;
        };
        fs::remove_dir_all(&path).map_err(io_err(&path))?;
        removed.push(format!("removed {}: {why}", path.display()));
    }
    removed.sort();
    Ok(removed)
}

/// Removes every complete checkpoint of `run_dir` but the newest `keep` (`train.keep_checkpoints`;
/// 0 keeps all), oldest first; the folders removed. Each is first renamed to
/// `.step_NNNNNNNN.removing`, so a removal cut short never leaves a checkpoint that looks
/// complete but lacks files (`remove_unfinished` finishes it).
pub fn remove_older(run_dir: &Path, keep: usize) -> Result<Vec<PathBuf>, CheckpointError> {
    let mut all = complete_newest_first(run_dir)?;
    if keep == 0 || all.len() <= keep {
        return Ok(Vec::new());
    }
    let mut old = all.split_off(keep);
    old.reverse();
    for dir in &old {
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        let removing = dir.with_file_name(format!(".{name}.removing"));
        fs::rename(dir, &removing).map_err(io_err(dir))?;
        fs::remove_dir_all(&removing).map_err(io_err(&removing))?;
    }
    sync_dir(&run_dir.join("checkpoints"))?;
    Ok(old)
}

/// A checkpoint being written: files go into its partial folder, `finish` seals it.
pub struct CheckpointWriter {
    partial: PathBuf,
    final_dir: PathBuf,
}

/// Starts the checkpoint of `step`: an empty partial folder (a stale one is removed).
pub fn begin(run_dir: &Path, step: u64) -> Result<CheckpointWriter, CheckpointError> {
    let partial = partial_dir(run_dir, step);
    if partial.exists() {
        fs::remove_dir_all(&partial).map_err(io_err(&partial))?;
    }
    fs::create_dir_all(&partial).map_err(io_err(&partial))?;
    Ok(CheckpointWriter {
        partial,
        final_dir: checkpoint_dir(run_dir, step),
    })
}

fn malformed(path: PathBuf) -> impl FnOnce(String) -> CheckpointError {
    move |reason| CheckpointError::Malformed { path, reason }
}

impl CheckpointWriter {
    /// The weights, with the resolved config in the metadata.
    pub fn write_model(
        &self,
        layout: &ParamLayout,
        config_toml: &str,
        params: &[f32],
    ) -> Result<(), CheckpointError> {
        // One metadata key per file: safetensors writes metadata from a HashMap, and a single key
        // keeps the file bytes (and so their hashes) identical between identical runs.
        let meta = HashMap::from([("ecgfm_config".to_string(), config_toml.to_string())]);
        let path = self.partial.join(MODEL_FILE);
        let bytes =
            safetensors_bytes(layout, &[("", params)], meta).map_err(malformed(path.clone()))?;
        write_synced(&path, &bytes)
    }

    /// The whole AdamW state in one file.
    pub fn write_optimizer(
        &self,
        layout: &ParamLayout,
        optimizer: &OptimizerState,
    ) -> Result<(), CheckpointError> {
        let meta = HashMap::from([("step".to_string(), optimizer.step.to_string())]);
        let path = self.partial.join(OPTIMIZER_FILE);
        let bytes = safetensors_bytes(
            layout,
            &[("adamw.m.", &optimizer.m), ("adamw.v.", &optimizer.v)],
            meta,
        )
        .map_err(malformed(path.clone()))?;
        write_synced(&path, &bytes)
    }

    pub fn write_state(&self, state: &TrainingState) -> Result<(), CheckpointError> {
        let path = self.partial.join(STATE_FILE);
        write_synced(
            &path,
            &serde_json::to_vec_pretty(state).expect("state serialises"),
        )
    }

    /// Seals the checkpoint: records every file's size and SHA-256 in `COMPLETE`, then moves the
    /// folder into place. Returns the final folder.
    pub fn finish(self) -> Result<PathBuf, CheckpointError> {
        sync_dir(&self.partial)?;
        let marker = Marker::of_folder(&self.partial)?;
        write_synced(&self.partial.join(COMPLETE_MARKER), &marker.to_bytes())?;
        sync_dir(&self.partial)?;
        if self.final_dir.exists() {
            fs::remove_dir_all(&self.final_dir).map_err(io_err(&self.final_dir))?;
        }
        fs::rename(&self.partial, &self.final_dir).map_err(io_err(&self.final_dir))?;
        let parent = self
            .final_dir
            .parent()
            .expect("checkpoint dir has a parent");
        sync_dir(parent)?;
        Ok(self.final_dir)
    }
}

/// Writes a complete single-file checkpoint for `state.step` and returns its folder.
pub fn save(
    run_dir: &Path,
    layout: &ParamLayout,
    config_toml: &str,
    params: &[f32],
    optimizer: &OptimizerState,
    state: &TrainingState,
) -> Result<PathBuf, CheckpointError> {
    let writer = begin(run_dir, state.step)?;
    writer.write_model(layout, config_toml, params)?;
    writer.write_optimizer(layout, optimizer)?;
    writer.write_state(state)?;
    writer.finish()
}

/// The newest complete checkpoint of a run, if any. Partial folders are ignored.
pub fn latest_complete(run_dir: &Path) -> Result<Option<PathBuf>, CheckpointError> {
    Ok(complete_newest_first(run_dir)?.into_iter().next())
}

/// Every complete checkpoint of a run, newest first.
fn complete_newest_first(run_dir: &Path) -> Result<Vec<PathBuf>, CheckpointError> {
    let root = run_dir.join("checkpoints");
    if !root.exists() {
        return Ok(Vec::new());
    }
    let mut found: Vec<(u64, PathBuf)> = Vec::new();
    for entry in fs::read_dir(&root).map_err(io_err(&root))? {
        let path = entry.map_err(io_err(&root))?.path();
        let step = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("step_"))
            .and_then(|s| s.parse::<u64>().ok());
        if let Some(step) = step {
            if is_complete(&path) {
                found.push((step, path));
            }
        }
    }
    found.sort_by_key(|(step, _)| std::cmp::Reverse(*step));
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

/// The newest checkpoint of a run that reads back intact (`load_latest_intact`).
pub struct LatestIntact {
    pub checkpoint: Checkpoint,
    /// One warning for each newer checkpoint that did not read back, naming it and why.
    pub warnings: Vec<String>,
    /// The folders of those newer checkpoints (for `set_aside_corrupt`).
    pub corrupt: Vec<PathBuf>,
}

/// The newest complete checkpoint that reads back intact (every checksum verified), and the
/// newer ones that did not. A checkpoint of another model is no damage to step over: its error
/// is returned at once.
pub fn load_latest_intact(
    run_dir: &Path,
    layout: &ParamLayout,
) -> Result<Option<LatestIntact>, CheckpointError> {
    let mut skipped = Vec::new();
    for dir in complete_newest_first(run_dir)? {
        match load(&dir, layout) {
            Ok(checkpoint) => {
                let warnings = (skipped.iter())
                    .map(|(dir, err): &(PathBuf, CheckpointError)| {
                        format!(
                            "skipping checkpoint {}: {err}; resuming from the older {}",
                            dir.display(),
                            checkpoint.dir.display()
                        )
                    })
                    .collect();
                let corrupt = skipped.into_iter().map(|(dir, _)| dir).collect();
                return Ok(Some(LatestIntact {
                    checkpoint,
                    warnings,
                    corrupt,
                }));
            }
            Err(err @ (CheckpointError::Corrupt { .. } | CheckpointError::Malformed { .. })) => {
                skipped.push((dir, err))
            }
            Err(err) => return Err(err),
        }
    }
    if !skipped.is_empty() {
        let skipped: Vec<String> = (skipped.iter())
            .map(|(dir, err)| format!("skipping checkpoint {}: {err}", dir.display()))
            .collect();
        return Err(CheckpointError::Corrupt {
            path: run_dir.join("checkpoints"),
            reason: format!("no intact checkpoint left: {}", skipped.join("; ")),
        });
    }
    Ok(None)
}

/// Renames each checkpoint folder of `corrupt` (found damaged by a resume, which went on from an
/// older one) to `step_NNNNNNNN.corrupt` (`.corrupt.2`, ... where that is taken): kept for a
/// look, but no longer a checkpoint, so nothing resumes from it and `remove_older` does not keep
/// it in place of an intact one (it did until 2026-12-06: a resume past a damaged newest
/// checkpoint removed the intact one it had resumed from). One line for each.
pub fn set_aside_corrupt(corrupt: &[PathBuf]) -> Result<Vec<String>, CheckpointError> {
    let mut lines = Vec::new();
    for dir in corrupt {
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        let aside = (1..)
            .map(|n| match n {
                1 => dir.with_file_name(format!("{name}.corrupt")),
                n => dir.with_file_name(format!("{name}.corrupt.{n}")),
            })
            .find(|path| !path.exists())
            .expect("some suffix is free");
        fs::rename(dir, &aside).map_err(io_err(dir))?;
        lines.push(format!(
            "set the damaged checkpoint {} aside as {}: no longer a checkpoint, nor counted by \
             train.keep_checkpoints (remove it once you have looked at it)",
            dir.display(),
            aside.display()
        ));
    }
    if let Some(root) = corrupt.first().and_then(|dir| dir.parent()) {
        sync_dir(root)?;
    }
    Ok(lines)
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
        let view = tensors.tensor(&name).map_err(|err| match err {
            SafeTensorError::TensorNotFound(_) => CheckpointError::OtherModel {
                path: path.to_path_buf(),
                detail: format!("it has no tensor {name}, which this configuration has"),
            },
            err => CheckpointError::Malformed {
                path: path.to_path_buf(),
                reason: format!("tensor {name}: {err}"),
            },
        })?;
        if view.dtype() == Dtype::F32 && view.shape() != e.shape.as_slice() {
            return Err(CheckpointError::OtherModel {
                path: path.to_path_buf(),
                detail: format!(
                    "tensor {name} is {:?}, this configuration makes it {:?}",
                    view.shape(),
                    e.shape
                ),
            });
        }
        if view.dtype() != Dtype::F32 {
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

fn parse<'a>(bytes: &'a [u8], path: &Path) -> Result<SafeTensors<'a>, CheckpointError> {
    SafeTensors::deserialize(bytes).map_err(|e| CheckpointError::Malformed {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Reads only the weights of a checkpoint folder (for evaluation and publishing), verified
/// against the checksum in its `COMPLETE` marker.
pub fn load_params(dir: &Path, layout: &ParamLayout) -> Result<Vec<f32>, CheckpointError> {
    let marker = Marker::read(&dir.join(COMPLETE_MARKER))?;
    read_params(dir, &marker, layout)
}

fn read_params(
    dir: &Path,
    marker: &Marker,
    layout: &ParamLayout,
) -> Result<Vec<f32>, CheckpointError> {
    let path = dir.join(MODEL_FILE);
    let bytes = marker.read_verified(&path)?;
    read_named(&parse(&bytes, &path)?, &path, layout, "")
}

/// The resolved configuration (`config.toml`'s text) the run had when it wrote the checkpoint
/// in `dir`, from the weights file's metadata: the checkpoint's own, whatever a later resume
/// changed in the run's `config.toml`. `None` where the metadata lacks it. Reads only the
/// file's header; `load_params` verifies the whole file.
pub fn load_config_text(dir: &Path) -> Result<Option<String>, CheckpointError> {
    use std::io::Read;
    let path = dir.join(MODEL_FILE);
    let malformed = |reason: String| CheckpointError::Malformed {
        path: path.clone(),
        reason,
    };
    let mut file = File::open(&path).map_err(io_err(&path))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(io_err(&path))?;
    let len = u64::from_le_bytes(len);
    let file_len = file.metadata().map_err(io_err(&path))?.len();
    if len > file_len.saturating_sub(8) {
        return Err(malformed(format!(
            "its header claims {len} bytes, the file has {file_len}"
        )));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header).map_err(io_err(&path))?;
    #[derive(Deserialize)]
    struct Header {
        #[serde(rename = "__metadata__", default)]
        metadata: HashMap<String, String>,
    }
    let header: Header = serde_json::from_slice(&header)
        .map_err(|e| malformed(format!("its header is not safetensors JSON: {e}")))?;
    Ok(header.metadata.get("ecgfm_config").cloned())
}

/// The SHA-256 (hex) of the checkpoint's weights file as its `COMPLETE` marker records it: what
/// names the weights an evaluation measured (`ecgfm eval` keeps it in its result file, and
/// `ecgfm export` reports only results of the weights it exports).
pub fn weights_sha256(dir: &Path) -> Result<String, CheckpointError> {
    let marker = Marker::read(&dir.join(COMPLETE_MARKER))?;
    marker
        .sha256(MODEL_FILE)
        .map(str::to_string)
        .ok_or_else(|| CheckpointError::Corrupt {
            path: dir.join(MODEL_FILE),
            reason: "the completion marker does not list this file".into(),
        })
}

/// Where training stood at the checkpoint in `dir` (step, samples seen, time), verified against
/// its `COMPLETE` marker, without reading the weights.
pub fn load_state(dir: &Path) -> Result<TrainingState, CheckpointError> {
    let marker = Marker::read(&dir.join(COMPLETE_MARKER))?;
    read_state(dir, &marker)
}

fn read_state(dir: &Path, marker: &Marker) -> Result<TrainingState, CheckpointError> {
    let path = dir.join(STATE_FILE);
    let bytes = marker.read_verified(&path)?;
    serde_json::from_slice(&bytes).map_err(|e| CheckpointError::Malformed {
        path: path.clone(),
        reason: e.to_string(),
    })
}

/// Reads a whole checkpoint folder, verifying every file against its `COMPLETE` marker. The
/// optimizer state is the whole buffer, reassembled from ZeRO-1 shards if it was written so.
pub fn load(dir: &Path, layout: &ParamLayout) -> Result<Checkpoint, CheckpointError> {
    let marker = Marker::read(&dir.join(COMPLETE_MARKER))?;
    let params = read_params(dir, &marker, layout)?;
    let optimizer = if marker.has(OPTIMIZER_FILE) {
        read_optimizer(dir, &marker, layout)?
    } else {
        shards::read_all(dir, &marker, layout.total)?
    };
    Ok(Checkpoint {
        dir: dir.to_path_buf(),
        params,
        optimizer,
        state: read_state(dir, &marker)?,
    })
}

fn read_optimizer(
    dir: &Path,
    marker: &Marker,
    layout: &ParamLayout,
) -> Result<OptimizerState, CheckpointError> {
    let opt_path = dir.join(OPTIMIZER_FILE);
    let opt_bytes = marker.read_verified(&opt_path)?;
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
    Ok(OptimizerState {
        step,
        m: read_named(&tensors, &opt_path, layout, "adamw.m.")?,
        v: read_named(&tensors, &opt_path, layout, "adamw.v.")?,
    })
}
