//! Launch of kernels/cuda/adamw.cu. The step's constants are computed here exactly as the CPU
//! backend does (`StepConstants`: f64, rounded to f32), so both backends apply the same f32 update.

use super::device::{Arg, Device, Module};
use super::launch::elementwise;
use super::KernelBackend;
use crate::backend::AdamW;
use crate::cpu::adamw::StepConstants;

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
