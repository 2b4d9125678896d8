//! The ViT masked autoencoder of docs/model.md: configuration (`config`), parameter layout
//! (`layout`), statistics and FLOPs (`stats`), batches (`batch`), and the model itself over the
//! kernels' `Backend` trait (`mae`); `encoder` is its encoder with a classification head, as
//! evaluation uses it. Beside them: `profile` (`ProfiledBackend`, per-op timings), `recompute`
//! (which activations a step reruns), `rng` (the seeded generator of initialisation and masks)
//! and `error`; inside: `block` and `stack` (the transformer blocks), `tokens` (token packing),
//! `pos` (the position table) and `init` (parameter initialisation).

pub mod batch;
mod block;
pub mod config;
pub mod encoder;
pub mod error;
mod init;
pub mod layout;
pub mod mae;
mod pos;
pub mod profile;
pub mod recompute;
pub mod rng;
mod stack;
pub mod stats;
mod tokens;

pub use batch::HostBatch;
pub use config::{Masking, ModelConfig};
pub use encoder::{Encoder, HeadSpec, Pooling, Targets};
pub use error::ModelError;
pub use layout::{ParamEntry, ParamLayout};
pub use mae::{GradsReady, Mae, MaeMemory};
pub use profile::{DeviceSync, OpTiming, ProfiledBackend};
pub use recompute::Recompute;
pub use stats::{render_table, FlopCounter, ModelStats};
