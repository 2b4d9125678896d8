//! Where `ecgfm eval` and `ecgfm embed` run the encoder: `--device` (as `ecgfm pretrain`'s: cpu,
//! cuda, cuda:N or auto) with `--precision`, opened into a backend, and the line that says so.
//! The encoder's memory is counted before anything is allocated (`gpu_memory`, `cpu_memory`).

use crate::device::{self, Opened};
use crate::{cpu_memory, gpu_memory};
use anyhow::Result;
use clap::Args;
use ecgfm_kernels::{Backend, CpuBackend, CudaBackend, Precision};
use ecgfm_trainer::config::parse_precision;
use ecgfm_trainer::device_memory::EncoderWork;
use ecgfm_trainer::model::HeadSpec;
use ecgfm_trainer::ModelConfig;

/// The device flags of the downstream commands.
#[derive(Args, Debug, Clone)]
pub struct ComputeArgs {
    /// Where the encoder runs: cpu, cuda (GPU 0), cuda:N, or auto (CUDA when a GPU is usable,
    /// else the CPU).
    #[arg(long, default_value = "auto", value_name = "DEVICE")]
    pub device: String,
    /// Matrix products in fp32, bf16 or auto (bf16 on a GPU with bf16 tensor cores, fp32 on the
    /// CPU).
    #[arg(long, default_value = "auto", value_name = "PRECISION")]
    pub precision: String,
    /// CPU threads (default: all cores).
    #[arg(long, value_parser = crate::cli::cpu_threads)]
    pub threads: Option<usize>,
}

/// The backend the encoder got.
pub enum Device {
    Cpu(CpuBackend),
    Cuda(Box<CudaBackend>),
}

impl Device {
    /// The precision of the matrix products.
    pub fn precision(&self) -> Precision {
        match self {
            Device::Cpu(be) => be.precision(),
            Device::Cuda(be) => be.precision(),
        }
    }

    /// What the result files record: `cpu`, or the GPU's start-up line (name, memory, compute
    /// capability).
    pub fn name(&self) -> String {
        match self {
            Device::Cpu(_) => "cpu".into(),
            Device::Cuda(be) => device::describe(be.device().info()),
        }
    }

    /// What a result's bits depend on of the device: `cpu`, or the GPU's name and compute
    /// capability, not which of a node's GPUs ran it (a job restarted on another keeps its
    /// evaluation's finished units).
    pub fn kind(&self) -> String {
        match self {
            Device::Cpu(_) => "cpu".into(),
            Device::Cuda(be) => {
                let info = be.device().info();
                let (major, minor) = info.capability;
                format!("{} compute capability {major}.{minor}", info.name)
            }
        }
    }

    /// One line for the terminal: the device and its precision.
    pub fn describe(&self) -> String {
        let on_gpu = matches!(self, Device::Cuda(_));
        let words = device::describe_precision(self.precision(), on_gpu);
        match self {
            Device::Cpu(_) => format!("cpu | {} threads | {words}", rayon::current_num_threads()),
            Device::Cuda(_) => format!("{} | {words}", self.name()),
        }
    }

    /// The encoder's memory for `work` at batch `batch` against what is free: on a GPU the note
    /// to print, or the error when it does not fit; on the CPU the error only (else None).
    pub fn check_memory(
        &self,
        model: &ModelConfig,
        head: HeadSpec,
        batch: usize,
        work: EncoderWork,
    ) -> Result<Option<String>> {
        let Device::Cuda(be) = self else {
            cpu_memory::check_encoder(model, head, batch, self.precision(), work)?;
            return Ok(None);
        };
        let fit = gpu_memory::check_encoder(be, model, head, batch, be.precision(), work)?;
        Ok(Some(fit.note))
    }
}

/// Opens the device `args` name with its precision.
pub fn open(args: &ComputeArgs) -> Result<Device> {
    Ok(match device::open(&args.device)? {
        Opened::Cpu => {
            let precision = parse_precision(&args.precision, false)?;
            Device::Cpu(CpuBackend::with_precision(precision))
        }
        Opened::Cuda(be) => {
            let precision = device::gpu_precision(&args.precision, be.device().info())?;
            Device::Cuda(Box::new(device::cuda_with_precision(*be, precision)))
        }
    })
}
