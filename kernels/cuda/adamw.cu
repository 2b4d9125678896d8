// AdamW exactly as torch.optim.AdamW (single-tensor path) and the CPU backend
// (kernels/src/cpu/adamw.rs): p *= decay_factor; m = m + (g - m)(1 - b1);
// v = b2 v + (1 - b2) g^2; p -= step_size * m / (sqrt(v) / bc2_sqrt + eps).
// step_size = lr / (1 - b1^step), bc2_sqrt = sqrt(1 - b2^step) and decay_factor = 1 - lr wd
// (1 without decay) are computed on the host in f64 and rounded to f32, as on the CPU.
//   param, grad, m, v (n)
#include "common.cuh"

extern "C" __global__ void adamw_step(float* param, const float* grad, float* m, float* v, u64 n,
                                      float b1, float b2, float eps, float step_size,
                                      float bc2_sqrt, float decay_factor) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) {
        float g = grad[i];
        float p = param[i] * decay_factor;
        float mi = m[i] + (g - m[i]) * (1.0f - b1);
        float vi = v[i] * b2 + (1.0f - b2) * (g * g);
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        param[i] = p - step_size * (mi / denom);
        m[i] = mi;
        v[i] = vi;
    }
}
