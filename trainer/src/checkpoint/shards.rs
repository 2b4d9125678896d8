//! ZeRO-1 optimizer shards in a checkpoint: each rank writes the AdamW moments of its flat range
//! as `optimizer.shard-RRRRR-of-NNNNN.safetensors` (tensors `adamw.m` and `adamw.v`, the range
//! and step in the metadata), and readers reassemble the whole state from all of them, so the
//! state can be re-split over another number of ranks.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

use super::marker::Marker;
use super::{as_bytes, parse, write_synced, CheckpointError};
use crate::OptimizerState;

const PREFIX: &str = "optimizer.shard-";

/// Where a shard sits in the whole optimizer state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct ShardMeta {
    step: u64,
    start: usize,
    end: usize,
    total: usize,
}

/// One rank's part of the AdamW state.
pub struct OptimizerShard<'a> {
    pub rank: usize,
    pub world_size: usize,
    /// Elements of the parameter buffer the moments cover.
    pub range: Range<usize>,
    /// Parameters in the whole buffer.
    pub total: usize,
    /// The moments of `range` and the step count.
    pub state: &'a OptimizerState,
}

/// Writes `shard` into the (partial) checkpoint folder `dir`.
pub fn write_optimizer_shard(dir: &Path, shard: &OptimizerShard) -> Result<(), CheckpointError> {
    let path = dir.join(format!(
        "{PREFIX}{:05}-of-{:05}.safetensors",
        shard.rank, shard.world_size
    ));
    let meta = ShardMeta {
        step: shard.state.step,
        start: shard.range.start,
        end: shard.range.end,
        total: shard.total,
    };
    let metadata = HashMap::from([(
        "ecgfm_shard".to_string(),
        serde_json::to_string(&meta).expect("shard metadata serialises"),
    )]);
    let (m, v) = (as_bytes(&shard.state.m), as_bytes(&shard.state.v));
    let len = shard.range.len();
    let malformed = |e: safetensors::SafeTensorError| CheckpointError::Malformed {
        path: path.clone(),
        reason: e.to_string(),
    };
    let views = vec![
        (
            "adamw.m".to_string(),
            TensorView::new(Dtype::F32, vec![len], &m).map_err(malformed)?,
        ),
        (
            "adamw.v".to_string(),
            TensorView::new(Dtype::F32, vec![len], &v).map_err(malformed)?,
        ),
    ];
    let bytes = safetensors::serialize(views, &Some(metadata)).map_err(malformed)?;
    write_synced(&path, &bytes)
}

/// Reassembles the whole optimizer state of `total` parameters from every shard the marker lists.
pub(super) fn read_all(
    dir: &Path,
    marker: &Marker,
    total: usize,
) -> Result<OptimizerState, CheckpointError> {
    let mut m = vec![0.0f32; total];
    let mut v = vec![0.0f32; total];
    let mut covered = 0usize;
    let mut step = None;
    for name in marker.names_with_prefix(PREFIX) {
        let path = dir.join(name);
        let bad = |reason: String| CheckpointError::Malformed {
            path: path.clone(),
            reason,
        };
        let bytes = marker.read_verified(&path)?;
        let (_, header) =
            safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let meta: ShardMeta = header
            .metadata()
            .as_ref()
            .and_then(|md| md.get("ecgfm_shard"))
            .and_then(|text| serde_json::from_str(text).ok())
            .ok_or_else(|| bad("no shard metadata".into()))?;
        if meta.total != total || meta.start > meta.end || meta.end > total {
            return Err(bad(format!(
                "shard {}..{} of {} does not fit a model of {total} parameters",
                meta.start, meta.end, meta.total
            )));
        }
        if step.is_some_and(|s| s != meta.step) {
            return Err(bad("shards of different optimizer steps".into()));
        }
        step = Some(meta.step);
        let tensors = parse(&bytes, &path)?;
        for (key, out) in [("adamw.m", &mut m), ("adamw.v", &mut v)] {
            let view = tensors.tensor(key).map_err(|e| bad(e.to_string()))?;
            if view.dtype() != Dtype::F32 || view.shape() != [meta.end - meta.start] {
                return Err(bad(format!("tensor {key} has the wrong type or length")));
            }
            for (dst, c) in out[meta.start..meta.end]
                .iter_mut()
                .zip(view.data().chunks_exact(4))
            {
                *dst = f32::from_le_bytes(c.try_into().expect("4 bytes"));
            }
        }
        covered += meta.end - meta.start;
    }
    let step = step.ok_or_else(|| CheckpointError::Corrupt {
        path: dir.to_path_buf(),
        reason: "no optimizer state (neither optimizer.safetensors nor shards)".into(),
    })?;
    if covered != total {
        return Err(CheckpointError::Corrupt {
            path: dir.to_path_buf(),
            reason: format!("the optimizer shards cover {covered} of {total} parameters"),
        });
    }
    Ok(OptimizerState { step, m, v })
}
