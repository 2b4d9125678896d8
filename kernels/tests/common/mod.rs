//! Test helpers shared by the kernel tests: a seeded generator, padded device buffers of any
//! backend (so every op is exercised at a non-zero view offset, with NaN around the tensor), the
//! finite-difference gradient comparison, and `on_every_backend!`, which runs a check on the CPU
//! backend and, where a GPU is usable, on the CUDA backend.

#![allow(dead_code, unused_macros)] // each test binary uses a different subset of these helpers

use ecgfm_kernels::{AttnDims, Backend, CudaBackend, View, ViewMut};

/// Elements placed before every tensor in its buffer, so view offsets are really exercised.
pub const PAD: usize = 5;

/// Seeded, reproducible draws (test-support's SplitMix64).
pub struct Rng(ecgfm_test_support::Draws);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(ecgfm_test_support::Draws::new(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform() * scale).collect()
    }
}

/// Trailing NaNs after each tensor: 3, or none under AddressSanitizer (`scripts/host-sanitize.sh
/// address` sets ECGFM_HOST_SANITIZE), where the buffer ends with the tensor so that a kernel's
/// access past its end, a read or a write of NaN too, lands in the sanitizer's red zone.
fn tail() -> usize {
    if std::env::var_os("ECGFM_HOST_SANITIZE").is_some_and(|s| s == "address") {
        0
    } else {
        3
    }
}

/// A device buffer holding `data` between PAD leading and TAIL trailing NaNs.
pub fn up<B: Backend>(be: &B, data: &[f32]) -> B::Buf {
    let mut host = vec![f32::NAN; PAD];
    host.extend_from_slice(data);
    host.extend(std::iter::repeat_n(f32::NAN, tail()));
    let mut buf = be.alloc(host.len());
    be.upload(&host, (&mut buf).into());
    buf
}

/// An index buffer holding `data` after PAD elements.
pub fn up_idx<B: Backend>(be: &B, data: &[u32]) -> B::IdxBuf {
    let mut host = vec![u32::MAX; PAD];
    host.extend_from_slice(data);
    let mut buf = be.alloc_idx(host.len());
    be.upload_idx(&host, (&mut buf).into());
    buf
}

/// The whole buffer made by [`up`] for a tensor of n elements, padding included.
pub fn down<B: Backend>(be: &B, buf: &B::Buf, n: usize) -> Vec<f32> {
    let mut host = vec![0.0; PAD + n + tail()];
    be.download(buf.into(), &mut host);
    host
}

/// The n tensor elements of a buffer made by [`up`].
pub fn body<B: Backend>(be: &B, buf: &B::Buf, n: usize) -> Vec<f32> {
    let mut host = vec![0.0; n];
    be.download(View::new(buf, PAD), &mut host);
    host
}

pub fn v<T>(buf: &T) -> View<'_, T> {
    View::new(buf, PAD)
}

pub fn vm<T>(buf: &mut T) -> ViewMut<'_, T> {
    ViewMut::new(buf, PAD)
}

/// CUDA device 0, or None after a skip message (a failure where ECGFM_REQUIRE_GPU is set).
pub fn cuda_backend() -> Option<CudaBackend> {
    CudaBackend::new(0)
        .map_err(|e| ecgfm_test_support::skip_without_gpu(&e.to_string()))
        .ok()
}

/// One `#[test]` per `name => check`, running `check(&backend)` on the CPU backend and, where a
/// GPU is usable, on the CUDA backend.
macro_rules! on_every_backend {
    ($($name:ident => $check:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $check(&ecgfm_kernels::CpuBackend::new());
                if let Some(be) = common::cuda_backend() {
                    $check(&be);
                }
            }
        )*
    };
}

/// Cumulative offsets of sequence lengths (B + 1 entries, from 0).
pub fn cu_seqlens(lengths: &[usize]) -> Vec<u32> {
    let mut cu = vec![0u32];
    for &l in lengths {
        cu.push(cu.last().unwrap() + l as u32);
    }
    cu
}

/// cu_seqlens of packed sequences of `lengths`, and the attention dims for width C and H heads.
pub fn packed(lengths: &[usize], width: usize, heads: usize) -> (Vec<u32>, AttnDims) {
    let cu = cu_seqlens(lengths);
    let dims = AttnDims {
        seqs: lengths.len(),
        tokens: *cu.last().unwrap() as usize,
        width,
        heads,
    };
    (cu, dims)
}

/// sum_i out[i] * weights[i] in f64: the scalar objective whose gradient is checked.
pub fn dot(out: &[f32], weights: &[f32]) -> f64 {
    out.iter()
        .zip(weights)
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum()
}

/// Central-difference check of `analytic` = d objective / d x at up to `max_checks` evenly spread
/// entries of `x`. Fails when ||numeric - analytic|| / ||numeric|| exceeds `tol`, or when the
/// numeric gradient is identically zero (a check that could not fail).
pub fn check_grad(
    name: &str,
    x: &[f32],
    analytic: &[f32],
    max_checks: usize,
    step: f32,
    tol: f64,
    mut objective: impl FnMut(&[f32]) -> f64,
) {
    assert_eq!(x.len(), analytic.len(), "{name}: gradient length");
    let stride = x.len().div_ceil(max_checks).max(1);
    let mut xp = x.to_vec();
    let (mut err2, mut num2) = (0f64, 0f64);
    for i in (0..x.len()).step_by(stride) {
        xp[i] = x[i] + step;
        let up = objective(&xp);
        xp[i] = x[i] - step;
        let down = objective(&xp);
        xp[i] = x[i];
        let numeric = (up - down) / (2.0 * step as f64);
        err2 += (numeric - analytic[i] as f64).powi(2);
        num2 += numeric.powi(2);
    }
    assert!(
        num2 > 0.0,
        "{name}: numeric gradient is zero, the check proves nothing"
    );
    let rel = (err2 / num2).sqrt();
    assert!(
        rel < tol,
        "{name}: relative gradient error {rel:.3e} >= {tol:.1e}"
    );
}
