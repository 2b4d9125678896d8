//! `--device`: opens the backend a run computes on. `cuda` fails within seconds with the probe's
//! error naming what is missing (driver, NVRTC, cuBLAS, a GPU); `auto` falls back to the CPU
//! with one log line saying why.

use anyhow::{Context, Result};
use ecgfm_kernels::cuda::DeviceInfo;
use ecgfm_kernels::{CudaBackend, Precision};
use ecgfm_trainer::config::DeviceChoice;

/// The backend a run got.
pub enum Opened {
    Cpu,
    Cuda(Box<CudaBackend>),
}

/// Opens the backend `text` (cpu, cuda, cuda:N, auto) names.
pub fn open(text: &str) -> Result<Opened> {
    match DeviceChoice::parse(text)? {
        DeviceChoice::Cpu => Ok(Opened::Cpu),
        DeviceChoice::Cuda(ordinal) => CudaBackend::new(ordinal)
            .map(|be| Opened::Cuda(Box::new(be)))
            .with_context(|| format!("--device {text}")),
        DeviceChoice::Auto => match CudaBackend::new(0) {
            Ok(be) => Ok(Opened::Cuda(Box::new(be))),
            Err(e) => {
                tracing::info!("--device auto: training on the CPU ({e})");
                Ok(Opened::Cpu)
            }
        },
    }
}

/// One line for the start-up table: name, memory and compute capability.
pub fn describe(info: &DeviceInfo) -> String {
    format!(
        "cuda:{} {} | {:.1} GiB | compute capability {}.{}",
        info.ordinal,
        info.name,
        info.total_bytes as f64 / (1u64 << 30) as f64,
        info.capability.0,
        info.capability.1
    )
}

/// The start-up table's words for the precision of the matrix products.
pub fn describe_precision(precision: Precision, on_gpu: bool) -> &'static str {
    match (precision, on_gpu) {
        (Precision::Fp32, _) => "fp32 matrix products",
        (Precision::Bf16, true) => "bf16 matrix products on tensor cores (f32 sums and weights)",
        (Precision::Bf16, false) => "bf16 matrix products, emulated (f32 sums and weights; slower)",
    }
}

/// Peak dense fp32 (no tensor cores) TFLOP/s of well-known GPUs, for the MFU of a true-fp32
/// step; None for others (pass --peak-tflops).
pub fn peak_fp32_tflops(name: &str) -> Option<f64> {
    const PEAKS: [(&str, f64); 7] = [
        ("H200", 67.0),
        ("H100 PCIe", 51.0),
        ("H100", 67.0),
        ("A100", 19.5),
        ("L40S", 91.6),
        ("RTX 4090", 82.6),
        ("A10", 31.2),
    ];
    PEAKS
        .iter()
        .find(|(key, _)| name.contains(key))
        .map(|&(_, peak)| peak)
}

/// Peak dense bf16 tensor-core TFLOP/s (fp32 accumulation, no sparsity) of well-known GPUs: the
/// MFU of mixed-precision steps, ours and PyTorch's; None for others (pass --peak-bf16-tflops).
pub fn peak_bf16_tflops(name: &str) -> Option<f64> {
    const PEAKS: [(&str, f64); 7] = [
        ("H200", 989.0),
        ("H100 PCIe", 756.0),
        ("H100", 989.0),
        ("A100", 312.0),
        ("L40S", 362.0),
        ("RTX 4090", 165.2),
        ("A10", 125.0),
    ];
    PEAKS
        .iter()
        .find(|(key, _)| name.contains(key))
        .map(|&(_, peak)| peak)
}
