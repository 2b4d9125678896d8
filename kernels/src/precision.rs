//! Arithmetic precision of a backend's matrix products: `fp32` (every product in true f32) or
//! `bf16` (mixed precision: the operands of each matrix product are rounded to bfloat16, the
//! products accumulate in f32, and the GELU's input is a bf16 number). Everything else stays f32
//! in both: parameters, gradients, optimiser state, LayerNorm and softmax statistics, GELU's
//! arithmetic, the losses.
//!
//! Where bf16 rounds, exactly (the contract every backend follows; docs/model.md "Precision"):
//! - linear layers: `inp` and `weight` in the forward; `dout`, `weight` and `inp` in the backward
//!   (the bias and its gradient stay f32);
//! - attention, at head sizes the tensor-core kernels take ([`bf16_attention_head`]; elsewhere
//!   attention stays f32 on every backend): q, k and v; the probabilities P before `P V` and
//!   `P^T dO`; dO; and dS = P * (dP - D) (computed from the f32 P and dP) before `dS K` and
//!   `dS^T Q`; and the output O as it is written, so the backward's D = rowsum(dO * O) takes
//!   the f32 dO and the rounded O. (The CPU rounds the normalised P; the tensor-core forward
//!   rounds exp(s - running max) and divides by the row sum after `P V`: one bf16 rounding in
//!   another place, within bf16's error.)
//! - the MLP's GELU input: the first MLP layer's output, bias added (`matmul_gelu_forward`'s
//!   `pre`), is rounded to bf16, as bf16 autocast stores a linear layer's output; the GELU's
//!   forward and backward compute in f32 from that value.
//!
//! The CPU backend emulates this by rounding copies of the operands (the same numbers a tensor
//! core multiplies), so a bf16 run's numerics are checked on any machine; it is not faster than
//! fp32 there. The CUDA backend multiplies on tensor cores, and stores the tensors read only by
//! bf16 matrix products (`Backend::alloc_operand`: the patches, the LayerNorm and GELU outputs,
//! and qkv where attention rounds it), attention's output there and the GELU's input in bf16,
//! which changes no value since those values are rounded anyway.

use std::fmt;
use std::str::FromStr;

/// The precision of matrix products.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// True f32 products (no TF32).
    #[default]
    Fp32,
    /// bf16 operands, f32 accumulation.
    Bf16,
}

impl Precision {
    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fp32" => Ok(Precision::Fp32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(format!("unknown precision {other:?} (fp32 or bf16)")),
        }
    }
}

/// Whether bf16 attention rounds at head size `hd`: the tensor-core kernels take multiples of 16
/// (the MMA's k) up to 128 (their register arrays). At other head sizes attention runs in f32 on
/// every backend, so the CPU's emulation and the GPU agree.
pub fn bf16_attention_head(hd: usize) -> bool {
    hd > 0 && hd.is_multiple_of(16) && hd <= 128
}

/// `x` rounded to the nearest bfloat16 (ties to even), returned as the f32 of the same value:
/// the top 16 bits of the f32. NaN stays NaN; values beyond the bf16 range become infinite.
pub fn round_bf16(x: f32) -> f32 {
    let bits = x.to_bits();
    if x.is_nan() {
        return f32::from_bits(bits | 0x0040_0000);
    }
    let rounding = 0x7fff + ((bits >> 16) & 1);
    f32::from_bits(bits.wrapping_add(rounding) & 0xffff_0000)
}

/// A copy of `xs` with every element rounded to bf16.
pub fn rounded_bf16(xs: &[f32]) -> Vec<f32> {
    xs.iter().map(|&x| round_bf16(x)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_to_nearest_even_and_keeps_specials() {
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even (1.0).
        assert_eq!(round_bf16(1.0 + 1.0 / 256.0), 1.0);
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: even is 1 + 2^-6.
        assert_eq!(round_bf16(1.0 + 3.0 / 256.0), 1.0 + 1.0 / 64.0);
        // Just above the halfway point rounds up.
        assert_eq!(round_bf16(1.0 + 1.0 / 256.0 + 1e-6), 1.0 + 1.0 / 128.0);
        assert_eq!(round_bf16(-2.5), -2.5);
        assert!(round_bf16(f32::NAN).is_nan());
        assert_eq!(round_bf16(f32::INFINITY), f32::INFINITY);
        assert_eq!(round_bf16(f32::MAX), f32::INFINITY);
        assert_eq!(round_bf16(0.0).to_bits(), 0);
        assert_eq!(round_bf16(-0.0).to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn rounded_values_have_eight_significant_bits() {
        let mut x = 0.123_456_79f32;
        for _ in 0..1000 {
            let r = round_bf16(x);
            assert_eq!(r.to_bits() & 0xffff, 0);
            assert!(((r - x) / x).abs() <= 1.0 / 256.0, "{x} -> {r}");
            x = x * 1.37 + 0.01;
            if x > 1e30 {
                x = 1e-30;
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for p in [Precision::Fp32, Precision::Bf16] {
            assert_eq!(p.name().parse::<Precision>(), Ok(p));
        }
        assert!("fp16".parse::<Precision>().is_err());
    }
}
