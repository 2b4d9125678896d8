//! Launch of kernels/cuda/adamw.cu. The step's constants are computed here exactly as the CPU
//! backend does (`StepConstants`: f64, rounded to f32), so both backends apply the same f32 update.
//! The fused step's run table lives on the device, uploaded once and reused while the runs stay
//! the same (they change only when the optimiser's shard does).

use std::sync::Mutex;

use super::device::{Arg, Device, Module};
use super::launch::elementwise;
use super::KernelBackend;
use crate::backend::AdamW;
use crate::cpu::adamw::StepConstants;

/// The runs a table was uploaded for, with its device copies: starts and decay flags.
type Uploaded<I> = (Vec<(usize, usize, bool)>, I, I);

/// The device copy of the last run table: (starts, decay flags), each `nruns` long.
pub(crate) struct RunTable<I> {
    cached: Mutex<Option<Uploaded<I>>>,
}

impl<I> RunTable<I> {
    pub(crate) fn new() -> Self {
        Self {
            cached: Mutex::new(None),
        }
    }
}

/// One AdamW update of n parameters.
pub(super) fn step<D: Device>(
    k: &KernelBackend<D>,
    (param, grad, m, v): (u64, u64, u64, u64),
    n: usize,
    hp: &AdamW,
    decay: bool,
) {
    let StepConstants {
        step_size,
        bc2_sqrt,
        decay_factor,
    } = StepConstants::new(hp, decay);
    if let Some(dims) = elementwise(n) {
        let args = [
            Arg::Ptr(param),
            Arg::Ptr(grad),
            Arg::Ptr(m),
            Arg::Ptr(v),
            Arg::U64(n as u64),
            Arg::F32(hp.beta1),
            Arg::F32(hp.beta2),
            Arg::F32(hp.eps),
            Arg::F32(step_size),
            Arg::F32(bc2_sqrt),
            Arg::F32(decay_factor),
        ];
        k.dev.launch(Module::Adamw, "adamw_step", dims, &args);
    }
}

/// The whole buffer's AdamW over `runs` (contiguous from 0), clipping fused in when `sumsq` (a
/// device scalar's address) is given.
pub(super) fn fused<D: Device>(
    k: &KernelBackend<D>,
    (param, grad, m, v): (u64, u64, u64, u64),
    runs: &[(usize, usize, bool)],
    hp: &AdamW,
    clip: Option<(u64, f32)>,
) {
    let n = runs.last().map_or(0, |r| r.1);
    let Some(dims) = elementwise(n) else { return };
    assert!(
        n <= u32::MAX as usize,
        "the fused AdamW indexes runs with u32 ({n} elements)"
    );
    let mut cached = k.runs.cached.lock().unwrap_or_else(|e| e.into_inner());
    if cached.as_ref().is_none_or(|(r, _, _)| r != runs) {
        let starts: Vec<u32> = runs.iter().map(|r| r.0 as u32).collect();
        let decay: Vec<u32> = runs.iter().map(|r| u32::from(r.2)).collect();
        let (mut s, mut d) = (k.dev.alloc_idx(runs.len()), k.dev.alloc_idx(runs.len()));
        k.dev.upload_idx(&starts, &mut s, 0);
        k.dev.upload_idx(&decay, &mut d, 0);
        *cached = Some((runs.to_vec(), s, d));
    }
    let (_, starts, decay) = cached.as_ref().expect("uploaded above");
    let StepConstants {
        step_size,
        bc2_sqrt,
        decay_factor,
    } = StepConstants::new(hp, true);
    let (sumsq, max_norm) = clip.unwrap_or((0, 0.0));
    let args = [
        Arg::Ptr(param),
        Arg::Ptr(grad),
        Arg::Ptr(m),
        Arg::Ptr(v),
        Arg::Ptr(k.dev.idx_addr(starts, 0, runs.len())),
        Arg::Ptr(k.dev.idx_addr(decay, 0, runs.len())),
        Arg::I32(runs.len() as i32),
        Arg::U64(n as u64),
        Arg::F32(hp.beta1),
        Arg::F32(hp.beta2),
        Arg::F32(hp.eps),
        Arg::F32(step_size),
        Arg::F32(bc2_sqrt),
        Arg::F32(decay_factor),
        Arg::Ptr(sumsq),
        Arg::F32(max_norm),
    ];
    k.dev.launch(Module::Adamw, "adamw_runs", dims, &args);
}
