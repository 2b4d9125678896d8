//! Optimiser settings and state: the AdamW hyper-parameters and the host copy of its moments.
//! The update itself runs in the backend (see `Mae::optimizer_step`).

pub mod adamw;

pub use adamw::{AdamWConfig, OptimizerState};
