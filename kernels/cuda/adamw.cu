// AdamW exactly as torch.optim.AdamW (single-tensor path) and the CPU backend
// (kernels/src/cpu/adamw.rs): p *= decay_factor; m = m + (g - m)(1 - b1);
// v = b2 v + (1 - b2) g^2; p -= step_size * m / (sqrt(v) / bc2_sqrt + eps).
// step_size = lr / (1 - b1^step), bc2_sqrt = sqrt(1 - b2^step) and decay_factor = 1 - lr wd
// (1 without decay) are computed on the host in f64 and rounded to f32, as on the CPU.
//   param, grad, m, v (n)
#include "common.cuh"

// The update of element i with gradient g: both kernels below run exactly this.
static __device__ __forceinline__ void adamw_update(u64 i, float g, float* param, float* m, float* v,
                                                    float b1, float b2, float eps, float step_size,
                                                    float bc2_sqrt, float decay_factor) {
    float p = param[i] * decay_factor;
    float mi = m[i] + (g - m[i]) * (1.0f - b1);
    float vi = v[i] * b2 + (1.0f - b2) * (g * g);
    float denom = sqrtf(vi) / bc2_sqrt + eps;
    param[i] = p - step_size * (mi / denom);
    m[i] = mi;
    v[i] = vi;
}

extern "C" __global__ void adamw_step(float* param, const float* grad, float* m, float* v, u64 n,
                                      float b1, float b2, float eps, float step_size,
                                      float bc2_sqrt, float decay_factor) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) {
        adamw_update(i, grad[i], param, m, v, b1, b2, eps, step_size, bc2_sqrt, decay_factor);
    }
}

// The whole optimiser step of a buffer in one launch: AdamW over contiguous runs of elements
// (runs: nruns starts in increasing order, runs[0] = 0, and a decay flag per run; run r ends
// where run r + 1 starts, the last at n), with global-norm clipping fused in: when `sumsq` is
// given, g = grad * factor with factor = max_norm / (sqrt(sumsq[0]) + 1e-6) if factor < 1 (f32),
// the very product clip_by_norm writes, so the result is clip_by_norm then adamw_step on every
// run, bit for bit, without the gradients' extra pass (they are left unclipped).
//   param, grad, m, v (n); run_starts, run_decay (nruns)
extern "C" __global__ void adamw_runs(float* param, const float* grad, float* m, float* v,
                                      const u32* run_starts, const u32* run_decay, int nruns, u64 n,
                                      float b1, float b2, float eps, float step_size,
                                      float bc2_sqrt, float decay_factor, const float* sumsq,
                                      float max_norm) {
    float clip = 1.0f;
    if (sumsq) {
        float factor = max_norm / (sqrtf(sumsq[0]) + 1e-6f);
        if (factor < 1.0f) clip = factor;
    }
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) {
        // The run holding i: the last start <= i.
        int lo = 0, hi = nruns - 1;
        while (lo < hi) {
            int mid = (lo + hi + 1) / 2;
            if ((u64)run_starts[mid] <= i) lo = mid; else hi = mid - 1;
        }
        float g = clip < 1.0f ? grad[i] * clip : grad[i];
        adamw_update(i, g, param, m, v, b1, b2, eps, step_size, bc2_sqrt,
                     run_decay[lo] ? decay_factor : 1.0f);
    }
}
