//! The whole model on the host-compiled CUDA kernels against the CPU backend: every gradient
//! tensor of a forward/backward pass of nano (shortened input, single-lead samples beside 12-lead
//! ones, so sequences of very different lengths share a batch), and the losses of a few AdamW
//! steps. The kernels work together: views, workspaces, every op in sequence.
//! (Weights are not compared: AdamW's first steps move a weight by about lr whatever the size of
//! its gradient, so rounding-level gradient differences of near-zero entries show up at lr.)

use ecgfm_cuda_host::host_backend;
use ecgfm_kernels::{Backend, CpuBackend};
use ecgfm_trainer::data::{BatchSource, SyntheticSource};
use ecgfm_trainer::{AdamWConfig, HostBatch, Mae, MaskSampler, ModelConfig};

const BATCH: usize = 2;
const STEPS: u64 = 3;

/// The gradients of the first step, and the losses of STEPS steps.
fn train<B: Backend>(backend: B, cfg: &ModelConfig) -> (Vec<f32>, Vec<f32>) {
    let mut model = Mae::new(backend, cfg.clone(), BATCH).unwrap();
    model.init_params(7);
    let mut source = SyntheticSource::new(cfg, 7, 0.5);
    let sampler = MaskSampler::new(cfg);
    let mut batch = HostBatch::new(cfg, BATCH);
    let (mut grads, mut losses) = (Vec::new(), Vec::new());
    for step in 0..STEPS {
        source.next_batch(&mut batch).unwrap();
        sampler.fill(7, step, 0, &mut batch);
        model.zero_grads();
        model.forward_backward(&batch, 1.0).unwrap();
        if step == 0 {
            grads = model.grads_to_host();
        }
        model.optimizer_step(&AdamWConfig::default(), 1e-3, Some(1.0));
        losses.push(model.loss_sum());
    }
    (grads, losses)
}

#[test]
fn nano_on_the_cuda_kernels_matches_the_cpu() {
    let mut cfg = ModelConfig::preset("nano").unwrap();
    cfg.samples = 750;
    let (host_grads, host_losses) = train(host_backend(), &cfg);
    let (cpu_grads, cpu_losses) = train(CpuBackend::new(), &cfg);
    let layout = Mae::new(CpuBackend::new(), cfg.clone(), BATCH)
        .unwrap()
        .layout()
        .clone();
    for e in &layout.entries {
        let (h, c) = (
            &host_grads[e.offset..e.end()],
            &cpu_grads[e.offset..e.end()],
        );
        let scale = c.iter().fold(0f32, |m, x| m.max(x.abs()));
        let err = h.iter().zip(c).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(scale > 0.0, "{}: zero gradient", e.name);
        assert!(
            err <= 1e-5 * scale,
            "{}: gradient error {:.2e} of {scale:.2e}",
            e.name,
            err
        );
    }
    println!("losses: host kernels {host_losses:?}, CPU {cpu_losses:?}");
    for (h, c) in host_losses.iter().zip(&cpu_losses) {
        assert!((h - c).abs() <= 1e-5 * c.abs(), "loss {h} vs {c}");
    }
}
