// Elementwise helpers (fill, copy, residual add with or without a bias and its backward's
// add_assign, scale), the fixed-order sum of squares behind the global gradient norm, and the
// clipping that reads it.
// One thread per element, grid-stride (add_bias_f32: one per column). Shapes: (n) unless noted.
#include "common.cuh"

extern "C" __global__ void fill_f32(float* dst, u64 n, float value) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x)
        dst[i] = value;
}

extern "C" __global__ void copy_f32(float* dst, const float* src, u64 n) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x)
        dst[i] = src[i];
}

// out = a + b (residual forward).
extern "C" __global__ void add_f32(float* out, const float* a, const float* b, u64 n) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x)
        out[i] = a[i] + b[i];
}

// out (T, C) = a + (b + bias), bias (C) on every row: the residual add of a linear layer's
// output whose bias its GEMM left out. Column j per thread, rows strided over grid.y.
// Launch: grid = (ceil(C / BLOCK), min(T, 65535)), block = BLOCK.
extern "C" __global__ void add_bias_f32(float* out, const float* a, const float* b,
                                        const float* bias, int t, int c) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= c) return;
    float bj = bias[j];
    for (int r = blockIdx.y; r < t; r += gridDim.y) {
        u64 i = (u64)r * c + j;
        out[i] = a[i] + (b[i] + bj);
    }
}

// dst += src (gradient and loss accumulation).
extern "C" __global__ void add_assign_f32(float* dst, const float* src, u64 n) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x)
        dst[i] += src[i];
}

extern "C" __global__ void scale_f32(float* dst, u64 n, float factor) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x)
        dst[i] *= factor;
}

// Sum of squares, pass 1: block b sums src[b*chunk .. (b+1)*chunk)^2 in f64 (each thread a fixed
// strided subset, then the block's tree) into partial[b]. Launch: grid = ceil(n / chunk),
// block = BLOCK, shared = BLOCK doubles.
extern "C" __global__ void sum_squares_partial(double* partial, const float* src, u64 n, u64 chunk) {
    DYNAMIC_SMEM(double, scratch);
    u64 start = blockIdx.x * chunk;
    u64 end = start + chunk < n ? start + chunk : n;
    double acc = 0.0;
    for (u64 i = start + threadIdx.x; i < end; i += blockDim.x) acc += (double)src[i] * (double)src[i];
    double total = block_sum_f64(acc, scratch);
    if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

// Pass 2 of every device scalar (sum of squares, losses): one block adds the `parts` f64 values
// in a fixed order and writes (f32) (total / divisor) to out[0] (0 when divisor is 0).
// Launch: grid = 1, block = BLOCK, shared = BLOCK doubles.
extern "C" __global__ void sum_f64_to_scalar(float* out, const double* parts, u64 n_parts,
                                             double divisor) {
    DYNAMIC_SMEM(double, scratch);
    double acc = 0.0;
    for (u64 i = threadIdx.x; i < n_parts; i += blockDim.x) acc += parts[i];
    double total = block_sum_f64(acc, scratch);
    if (threadIdx.x == 0) out[0] = divisor != 0.0 ? (float)(total / divisor) : 0.0f;
}

// Global-norm clipping (torch.nn.utils.clip_grad_norm_): factor = max_norm / (sqrt(sumsq) + 1e-6)
// in f32; grads *= factor when factor < 1. Every thread reads the device scalar itself.
extern "C" __global__ void clip_by_norm(float* grads, u64 n, const float* sumsq, float max_norm) {
    float factor = max_norm / (sqrtf(sumsq[0]) + 1e-6f);
    if (!(factor < 1.0f)) return;
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x)
        grads[i] *= factor;
}
