// Exact (erf) GELU, forward beside backward, bit for bit the CPU backend's formula
// (kernels/src/cpu/gelu.rs): Phi from erfc(y) = t exp(-y^2) P(t), t = 1 / (1 + y / 2),
// y = |x| / sqrt 2, P the same degree-10 polynomial; exp(-x^2 / 2) shared with phi.
//   forward:  out = x Phi(x)                              x, out (n)
//             (bias_gelu_forward: x = product + bias first, kept in pre; rounded to bf16 in
//             bf16 precision, kernels/src/precision.rs)
//   backward: dinp = dout (Phi(x) + x phi(x))            dinp, dout (n)
//             (gelu_backward_colsum: also the column sums of dinp (T, M), the bias gradient)
// x, out and dinp are f32 or bf16 operand storage (store_operand / load_operand): out and dinp
// are read only by matrix products, x only here (as bf16 holds it exactly); the bias gradient
// sums the f32 values.
#include "common.cuh"

#define FRAC_1_SQRT_2PI 0.3989423f
#define FRAC_1_SQRT_2 0.70710678118654752440f

// Phi(x) into *cdf, and returns exp(-x^2 / 2).
static __device__ __forceinline__ float normal_cdf(float x, float* cdf) {
    const float P[11] = {0.2820948f,  0.28209374f, 0.24688467f, 0.17531629f,
                         0.09345715f, -0.05918964f, 0.13213458f, -0.4549322f,
                         0.49367835f, -0.23473553f, 0.04319783f};
    float y = fabsf(x) * FRAC_1_SQRT_2;
    float t = 1.0f / (1.0f + 0.5f * y);
    float p = P[10];
    for (int i = 9; i >= 0; i--) p = p * t + P[i];
    float e = exp_nonpositive(-0.5f * x * x);
    float half_erfc = 0.5f * t * e * p;
    *cdf = x >= 0.0f ? 1.0f - half_erfc : half_erfc;
    return e;
}

// `out` and `inp` are operand storage: bf16 bits when `out_bf16` / `inp_bf16` (common.cuh).
extern "C" __global__ void gelu_forward(void* out, int out_bf16, const void* inp, int inp_bf16,
                                        u64 n) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) {
        float x = load_operand(inp, i, inp_bf16), cdf;
        normal_cdf(x, &cdf);
        store_operand(out, i, x * cdf, out_bf16);
    }
}

// The MLP's first bias and GELU in one pass: x = product (T, M) + bias (M) on every row, rounded
// to bf16 when `round_pre` (bf16 precision), kept in pre; out = gelu(x). `product` may be `pre`
// itself when pre is f32. Column j per thread, rows strided over grid.y. Launch:
// grid = (ceil(M / BLOCK), min(T, 65535)), block = BLOCK. `pre` and `out` as in gelu_forward.
extern "C" __global__ void bias_gelu_forward(const float* product, void* pre, int pre_bf16,
                                             int round_pre, void* out, int out_bf16,
                                             const float* bias, int t, int m) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= m) return;
    float bj = bias[j];
    for (int r = blockIdx.y; r < t; r += gridDim.y) {
        u64 i = (u64)r * m + j;
        float x = product[i] + bj, cdf;
        if (round_pre) x = round_bf16(x);
        store_operand(pre, i, x, pre_bf16);
        normal_cdf(x, &cdf);
        store_operand(out, i, x * cdf, out_bf16);
    }
}

__device__ __forceinline__ float gelu_grad(float x, float dy) {
    float cdf;
    float e = normal_cdf(x, &cdf);
    return dy * (cdf + x * FRAC_1_SQRT_2PI * e);
}

extern "C" __global__ void gelu_backward(void* dinp, int dinp_bf16, const void* inp, int inp_bf16,
                                         const float* dout, u64 n) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x)
        store_operand(dinp, i, gelu_grad(load_operand(inp, i, inp_bf16), dout[i]), dinp_bf16);
}

// gelu_backward of (T, M) with the first pass of the bias gradient of the layer before the GELU:
// partial[chunk][j] = sum of dinp[r][j] over the chunk's rows r (f64, in row order), exactly
// colsum_partial (matmul.cu) of the dinp it writes. Column j per thread.
// Launch: grid = (ceil(M / BLOCK), chunks), block = BLOCK.
extern "C" __global__ void gelu_backward_colsum(double* partial, void* dinp, int dinp_bf16,
                                                const void* inp, int inp_bf16, const float* dout,
                                                int t, int m, int rows_per_chunk) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= m) return;
    int r0 = blockIdx.y * rows_per_chunk;
    int r1 = r0 + rows_per_chunk < t ? r0 + rows_per_chunk : t;
    double acc = 0.0;
    for (int r = r0; r < r1; r++) {
        u64 i = (u64)r * m + j;
        float dx = gelu_grad(load_operand(inp, i, inp_bf16), dout[i]);
        store_operand(dinp, i, dx, dinp_bf16);
        acc += (double)dx;
    }
    partial[(u64)blockIdx.y * m + j] = acc;
}
