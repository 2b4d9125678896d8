//! ecgfm-trainer: pretraining an ST-MEM-style ViT masked autoencoder on ECGs.
//!
//! What lives here:
//! - `model`: the model contract of docs/model.md in Rust: `ModelConfig` (presets, validation),
//!   `ParamLayout` (one contiguous parameter buffer), `ModelStats` (parameter counts, FLOPs),
//!   `HostBatch`, and `Mae`, the forward/backward pass over the `ecgfm_kernels::Backend` trait.
//! - `optim`: AdamW settings and optimiser state (the update runs in the backend).
//! - `mask`: the seeded patch-mask sampler; `schedule`: the learning-rate schedule.
//! - `train`: the training loop (`Trainer`) over a `data::BatchSource`, with `config`,
//!   `checkpoint` and `metrics` (`metrics.jsonl` plus TensorBoard events, `tensorboard`);
//!   `validation`: the held-out masked reconstruction loss measured during training.
//! - `data_parallel`: one rank of a data-parallel job (bucketed gradient reduction overlapped
//!   with the backward pass, ZeRO-1) over an `ecgfm-dist` collective run by `comm_thread`;
//!   `fault`: the fault injection its tests use.
//!
//! Depends on `ecgfm-kernels` for every numeric op and `ecgfm-dist` for collectives. Start with docs/model.md, then
//! `model/mae.rs`; `tests/parity.rs` checks the model against the PyTorch reference fixture.

pub mod checkpoint;
mod comm_thread;
pub mod config;
pub mod data;
pub mod data_parallel;
pub mod fault;
pub mod mask;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod schedule;
pub mod tensorboard;
pub mod train;
pub mod validation;

pub use mask::MaskSampler;
pub use model::{HostBatch, Mae, ModelConfig, ModelError, ModelStats, ParamEntry, ParamLayout};
pub use optim::{AdamWConfig, OptimizerState};
pub use schedule::LrSchedule;
