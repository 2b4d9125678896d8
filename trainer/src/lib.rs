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
//!   `validation`: the held-out masked reconstruction loss measured during training (and again
//!   by `ecgfm validate`, a piece at a time: `validation::SetReader`).
//! - `eval`: downstream evaluation of a checkpoint's encoder (`model::Encoder` with a
//!   classification head): linear probe, fine-tuning, from scratch, metrics with bootstrap CIs.
//! - `data_parallel`: one rank of a data-parallel job (bucketed gradient reduction overlapped
//!   with the backward pass, ZeRO-1); `exchange` moves the buckets in the backend's own memory
//!   through a `comm_wire` on the `comm_thread` (`HostComm`: the CPU collective;
//!   `nccl_rank::NcclComm`: NCCL on device buffers, for `RankBackend`s CPU and CUDA);
//!   `fault`: the fault injection its tests use.
//! - `device_memory`: the GPU memory a training step takes, counted before a GPU is touched.
//! - `write_whole`: small files (`config.toml`, a sweep's files) written whole or not at all.
//!
//! Depends on `ecgfm-kernels` for every numeric op, `ecgfm-dist` for collectives, `cudarc`
//! (CUDA events and streams of GPU ranks) and `ecgfm-synth` (the signals of `data`'s built-in
//! synthetic source). Start with docs/model.md, then
//! `model/mae.rs`; `tests/parity.rs` checks the model against the PyTorch reference fixture.

pub mod checkpoint;
mod comm_thread;
pub mod comm_wire;
pub mod config;
pub mod data;
pub mod data_parallel;
pub mod device_memory;
pub mod eval;
mod exchange;
pub mod fault;
#[cfg(test)]
mod loopback_ranks;
pub mod mask;
pub mod metrics;
pub mod model;
pub mod nccl_rank;
pub mod optim;
pub mod rank_backend;
pub mod schedule;
pub mod tensorboard;
pub mod train;
pub mod validation;
pub mod write_whole;

pub use mask::MaskSampler;
pub use model::{HostBatch, Mae, ModelConfig, ModelError, ModelStats, ParamEntry, ParamLayout};
pub use optim::{AdamWConfig, OptimizerState};
pub use schedule::LrSchedule;
