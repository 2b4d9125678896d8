//! ecgfm-synth: a seeded, deterministic generator of realistic synthetic 12-lead ECGs, the
//! embedded default dataset for demos and tests (never a substitute for real data).
//!
//! Model, in the spirit of ECGSYN (McSharry et al. 2003) and its vectorcardiographic extension
//! (Sayadi et al.): the heart vector (Frank X, Y, Z) is a sum of Gaussian bumps (P, Q, R, S, T,
//! ...) placed along each beat's cycle, i.e. the ECGSYN limit-cycle equation solved in closed form,
//! with beat times from an RR tachogram with LF/HF variability. The Dower matrix projects it onto
//! I, II, V1-V6; III, aVR, aVL, aVF are derived exactly from I and II. Baseline wander, powerline
//! and muscle noise are added per electrode lead. Labelled variants: [`Condition`].
//!
//! Entry points: [`generate()`], [`generate_into`] (allocation-free, for on-the-fly training
//! batches), [`generate_into_with_meta`]; settings in [`SynthConfig`]. Every record is a pure
//! function of `(config, seed, index)`, with independent random streams per component (see
//! `rng.rs`). Setup uses a few libm calls (sin, cos, ln) per record; the per-sample loops use
//! in-crate arithmetic only. Depends only on serde and thiserror.
//!
//! Where to look next: `generate.rs` (the pipeline), `morphology.rs` (wave templates and the
//! per-condition changes), `wave.rs` (one Gaussian deflection and a fixed-capacity set of them),
//! `rhythm.rs` (beat timing), `dipole.rs` (rendering), `leads.rs`, `noise.rs`,
//! `fibrillation.rs`, `fastmath.rs` (portable exp and phasors for the sample loops),
//! `condition.rs` (the variants and their `synth:` labels), `config.rs` (settings, validation).
//! Tests in `tests/` measure the physiology with their own QRS detector (`tests/common`);
//! `examples/synth_speed.rs` measures throughput.

mod condition;
mod config;
mod dipole;
mod fastmath;
mod fibrillation;
mod generate;
mod leads;
mod morphology;
mod noise;
mod rhythm;
mod rng;
#[cfg(test)]
mod tone;
mod wave;

pub use condition::{Condition, ParseConditionError};
pub use config::{NoiseConfig, SynthConfig, SynthError};
pub use generate::{generate, generate_into, generate_into_with_meta, RecordMeta, SynthRecord};
pub use leads::LEAD_NAMES;
