// LayerNorm over rows (eps 1e-6, biased variance), forward beside backward.
// Forward:  xhat = (x - mean) * rstd, rstd = 1 / sqrt(mean((x - mean)^2) + eps),
//           out = xhat * weight + bias.                          x, out (T, C); mean, rstd (T)
//           (add_layernorm_forward: x = a + (b + b_bias) first, the residual add fused in)
// Backward: g = dout * weight;
//           dx += rstd * (g - mean(g) - xhat * mean(g * xhat))   one warp per row
//           dweight += sum_rows dout * xhat, dbias += sum_rows dout  (f64 partials over fixed
//           chunks of rows, then the chunks in order: colsum_finish in matmul.cu)
#include "common.cuh"

#define LN_EPS 1e-6f

// Row `row` of the output from x, that row's input (C), whose lane's share of the sum (elements
// lane, lane + 32, ...) is `sum`; one warp. The lane reads back only the elements it summed, so
// x may just have been written by this lane (add_layernorm_forward). `out` is a matrix-product
// operand: bf16 bits when `out_bf16` (common.cuh store_operand).
static __device__ __forceinline__ void layernorm_row(void* out, int out_bf16, float* mean, float* rstd,
                                                     const float* x, float sum, const float* weight,
                                                     const float* bias, int row, int c, int lane) {
    float mu = warp_sum(sum) / (float)c;
    float sq = 0.0f;
    for (int j = lane; j < c; j += 32) sq += (x[j] - mu) * (x[j] - mu);
    float var = warp_sum(sq) / (float)c;
    float rs = 1.0f / sqrtf(var + LN_EPS);
    u64 o = (u64)row * c;
    for (int j = lane; j < c; j += 32)
        store_operand(out, o + j, (x[j] - mu) * rs * weight[j] + bias[j], out_bf16);
    if (lane == 0) {
        mean[row] = mu;
        rstd[row] = rs;
    }
}

// One warp per row. Launch: grid = ceil(T / (BLOCK / 32)), block = BLOCK.
extern "C" __global__ void layernorm_forward(void* out, int out_bf16, float* mean, float* rstd,
                                             const float* inp, const float* weight,
                                             const float* bias, int t, int c) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (row >= t) return;
    const float* x = inp + (u64)row * c;
    float sum = 0.0f;
    for (int j = lane; j < c; j += 32) sum += x[j];
    layernorm_row(out, out_bf16, mean, rstd, x, sum, weight, bias, row, c, lane);
}

// The residual add fused with the LayerNorm after it: res = a + (b + b_bias) (T, C; b_bias (C)
// optional: the bias of the linear layer that wrote b, left out of its GEMM), then
// layernorm_forward of res, bit for bit the unfused kernels without reading res back from
// memory. Launch as layernorm_forward.
extern "C" __global__ void add_layernorm_forward(float* res, void* out, int out_bf16, float* mean,
                                                 float* rstd,
                                                 const float* a, const float* b,
                                                 const float* b_bias, const float* weight,
                                                 const float* bias, int t, int c) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (row >= t) return;
    u64 base = (u64)row * c;
    float* x = res + base;
    float sum = 0.0f;
    for (int j = lane; j < c; j += 32) {
        float bj = b[base + j];
        if (b_bias) bj += b_bias[j];
        float v = a[base + j] + bj;
        x[j] = v;
        sum += v;
    }
    layernorm_row(out, out_bf16, mean, rstd, x, sum, weight, bias, row, c, lane);
}

// dx (T, C) += ...; one warp per row. Launch as layernorm_forward.
extern "C" __global__ void layernorm_backward_dx(float* dinp, const float* dout, const float* inp,
                                                 const float* weight, const float* mean,
                                                 const float* rstd, int t, int c) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (row >= t) return;
    const float* x = inp + (u64)row * c;
    const float* dy = dout + (u64)row * c;
    float mu = mean[row], rs = rstd[row];
    float g_sum = 0.0f, gx_sum = 0.0f;
    for (int j = lane; j < c; j += 32) {
        float g = dy[j] * weight[j];
        g_sum += g;
        gx_sum += g * ((x[j] - mu) * rs);
    }
    float g_mean = warp_sum(g_sum) / (float)c;
    float gx_mean = warp_sum(gx_sum) / (float)c;
    float* dx = dinp + (u64)row * c;
    for (int j = lane; j < c; j += 32) {
        float xhat = (x[j] - mu) * rs;
        dx[j] += rs * (dy[j] * weight[j] - g_mean - xhat * gx_mean);
    }
}

// Pass 1 of dweight / dbias: chunk blockIdx.y of `rows_per_chunk` rows, column per thread:
// partial_w[chunk][j] = sum dout * xhat, partial_b[chunk][j] = sum dout (f64, rows in order).
// Launch: grid = (ceil(C / BLOCK), chunks), block = BLOCK.
extern "C" __global__ void layernorm_backward_partials(double* partial_w, double* partial_b,
                                                       const float* dout, const float* inp,
                                                       const float* mean, const float* rstd,
                                                       int t, int c, int rows_per_chunk) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= c) return;
    int r0 = blockIdx.y * rows_per_chunk;
    int r1 = r0 + rows_per_chunk < t ? r0 + rows_per_chunk : t;
    double dw = 0.0, db = 0.0;
    for (int r = r0; r < r1; r++) {
        float dy = dout[(u64)r * c + j];
        float xhat = (inp[(u64)r * c + j] - mean[r]) * rstd[r];
        dw += (double)(dy * xhat);
        db += (double)dy;
    }
    partial_w[(u64)blockIdx.y * c + j] = dw;
    partial_b[(u64)blockIdx.y * c + j] = db;
}
