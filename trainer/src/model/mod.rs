//! The ViT masked autoencoder of docs/model.md: configuration, parameter layout, statistics,
//! batches, and the model itself over the kernels' `Backend` trait.

pub mod batch;
mod block;
pub mod config;
pub mod error;
mod init;
pub mod layout;
pub mod mae;
mod pos;
pub mod profile;
pub mod rng;
mod stack;
pub mod stats;
mod tokens;

pub use batch::HostBatch;
pub use config::ModelConfig;
pub use error::ModelError;
pub use layout::{ParamEntry, ParamLayout};
pub use mae::{GradsReady, Mae};
pub use profile::{OpTiming, ProfiledBackend};
pub use stats::{render_table, ModelStats};
