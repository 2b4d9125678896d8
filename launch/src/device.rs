//! `--device`: opens the backend a run computes on. `cuda` fails within seconds with the probe's
//! error naming what is missing (driver, NVRTC, cuBLAS, a GPU); `auto` falls back to the CPU
//! with one log line saying why.

use anyhow::{bail, Context, Result};
use ecgfm_kernels::cuda::DeviceInfo;
use ecgfm_kernels::{CudaBackend, Precision};
use ecgfm_trainer::config::{parse_precision, DeviceChoice};

/// The backend a run got.
pub enum Opened {
    Cpu,
    Cuda(Box<CudaBackend>),
}

/// Opens the backend `text` (cpu, cuda, cuda:N, auto) names for a single process: `cuda` and
/// `auto` mean device 0.
pub fn open(text: &str) -> Result<Opened> {
    open_for_rank(text, None)
}

/// Opens the backend `text` names for the rank `local_rank` of its node (`None`: a single
/// process). `cuda` and `auto` give each local rank its own GPU of those visible
/// ([`rank_ordinal`]); `cuda:N` is device N whatever the rank.
pub fn open_for_rank(text: &str, local_rank: Option<usize>) -> Result<Opened> {
    let own_gpu = || -> Result<usize, ecgfm_kernels::cuda::CudaError> {
        let Some(local) = local_rank else {
            return Ok(0);
        };
        let visible = ecgfm_kernels::cuda::probe::visible_devices()?;
        let ordinal = rank_ordinal(local, visible);
        tracing::info!("local rank {local}: cuda:{ordinal} of the {visible} GPU(s) it sees");
        Ok(ordinal)
    };
    match DeviceChoice::parse(text)? {
        DeviceChoice::Cpu => Ok(Opened::Cpu),
        DeviceChoice::Cuda(ordinal) => ordinal
            .map_or_else(own_gpu, Ok)
            .and_then(CudaBackend::new)
            .map(|be| Opened::Cuda(Box::new(be)))
            .with_context(|| format!("--device {text}")),
        DeviceChoice::Auto => match own_gpu().and_then(CudaBackend::new) {
            Ok(be) => Ok(Opened::Cuda(Box::new(be))),
            Err(e) => {
                tracing::info!("--device auto: running on the CPU ({e})");
                Ok(Opened::Cpu)
            }
        },
    }
}

/// The GPU of local rank `local_rank` among the `visible` ones: its own where each rank sees
/// every GPU of the node (torchrun, mpirun, srun without binding), device 0 where the launcher
/// or SLURM gave each rank one (`CUDA_VISIBLE_DEVICES` of one device, `--gpus-per-task=1`).
pub fn rank_ordinal(local_rank: usize, visible: usize) -> usize {
    local_rank % visible.max(1)
}

/// One line for the start-up table: name, memory and compute capability.
pub fn describe(info: &DeviceInfo) -> String {
    format!(
        "cuda:{} {} | {:.1} GiB | compute capability {}.{}",
        info.ordinal,
        info.name,
        ecgfm_kernels::gib(info.total_bytes as u64),
        info.capability.0,
        info.capability.1
    )
}

/// The precision `text` (`train.precision`, `--precision`) means on GPU `info`: `auto` is bf16
/// where the bf16 tensor-core kernels run (compute capability 8.0 or newer) and fp32 elsewhere;
/// `bf16` on an older GPU is refused.
pub fn gpu_precision(text: &str, info: &DeviceInfo) -> Result<Precision> {
    let tensor_cores = info.capability.0 >= 8;
    let precision = parse_precision(text, tensor_cores)?;
    if precision == Precision::Bf16 && !tensor_cores {
        bail!(
            "precision bf16 needs bf16 tensor cores (compute capability 8.0 or newer); {} has \
             {}.{}: use --precision fp32",
            info.name,
            info.capability.0,
            info.capability.1
        );
    }
    Ok(precision)
}

/// `be` with matrix products in `precision`. Two switches measure what a saving is worth
/// (scripts/gpu-check.sh items 8d and 8f), each giving the same results on the host harness and
/// results within bf16 tolerance on a GPU (whether bitwise there: gpu-check item 3c):
/// `ECGFM_CUDA_F32_OPERANDS=1` keeps the tensors a bf16 backend would store in bf16
/// (`Backend::alloc_operand`) in f32; `ECGFM_CUDA_NO_GEMM_EPILOGUES=1` adds every linear layer's
/// bias in a pass after its GEMM instead of in the GEMM's epilogue.
pub fn cuda_with_precision(be: CudaBackend, precision: Precision) -> CudaBackend {
    let on = |name: &str| std::env::var(name).as_deref() == Ok("1");
    let mut be = be.with_precision(precision);
    if on("ECGFM_CUDA_F32_OPERANDS") {
        be = be.with_f32_operands();
    }
    if on("ECGFM_CUDA_NO_GEMM_EPILOGUES") {
        be = be.without_gemm_epilogues();
    }
    be
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
    const PEAKS: [(&str, f64); 9] = [
        ("GB200", 80.0),
        ("B200", 75.0),
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
    const PEAKS: [(&str, f64); 9] = [
        ("GB200", 2500.0),
        ("B200", 2250.0),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(capability: (i32, i32)) -> DeviceInfo {
        DeviceInfo {
            ordinal: 0,
            name: "test GPU".into(),
            total_bytes: 1 << 34,
            capability,
        }
    }

    #[test]
    fn auto_precision_is_bf16_only_where_bf16_tensor_cores_exist() {
        let (hopper, volta) = (gpu((9, 0)), gpu((7, 0)));
        assert_eq!(gpu_precision("auto", &hopper).unwrap(), Precision::Bf16);
        assert_eq!(gpu_precision("auto", &volta).unwrap(), Precision::Fp32);
        assert_eq!(gpu_precision("fp32", &hopper).unwrap(), Precision::Fp32);
        let err = gpu_precision("bf16", &volta).unwrap_err().to_string();
        assert!(
            err.contains("compute capability 8.0") && err.contains("7.0"),
            "{err}"
        );
        assert!(gpu_precision("fp16", &hopper).is_err());
    }

    #[test]
    fn each_local_rank_gets_its_own_gpu_or_the_one_it_was_given() {
        // Every GPU of the node visible (torchrun, srun without binding): the local rank's own.
        assert_eq!(
            (0..4).map(|r| rank_ordinal(r, 4)).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        // One GPU a rank (the launcher's CUDA_VISIBLE_DEVICES, --gpus-per-task=1): device 0.
        assert_eq!(rank_ordinal(3, 1), 0);
        assert_eq!(rank_ordinal(9, 8), 1);
    }

    #[test]
    fn a_rank_without_a_gpu_falls_back_or_names_what_is_missing() {
        if ecgfm_kernels::cuda::probe::visible_devices().is_ok() {
            return; // a GPU here: the fallback cannot be seen
        }
        assert!(matches!(open_for_rank("auto", Some(1)), Ok(Opened::Cpu)));
        let Err(err) = open_for_rank("cuda", Some(1)) else {
            panic!("cuda opened without a GPU");
        };
        assert!(format!("{err:#}").contains("--device cuda"), "{err:#}");
    }

    #[test]
    fn peaks_are_found_by_the_driver_s_device_names() {
        let peaks = |name: &str| (peak_fp32_tflops(name), peak_bf16_tflops(name));
        assert_eq!(peaks("NVIDIA H200"), (Some(67.0), Some(989.0)));
        assert_eq!(peaks("NVIDIA H100 80GB HBM3"), (Some(67.0), Some(989.0)));
        assert_eq!(peaks("NVIDIA H100 PCIe"), (Some(51.0), Some(756.0)));
        assert_eq!(peaks("NVIDIA B200"), (Some(75.0), Some(2250.0)));
        assert_eq!(peaks("NVIDIA GB200"), (Some(80.0), Some(2500.0)));
        assert_eq!(peaks("NVIDIA A100-SXM4-80GB"), (Some(19.5), Some(312.0)));
        assert_eq!(peaks("Tesla V100"), (None, None));
    }
}
