// The linear layer's own kernels around its cuBLAS GEMMs (out = inp @ weight^T is cuBLAS: true
// fp32, or bf16 operands with f32 sums in a bf16 backend): the bias added to every output row (forward) and the bias gradient as column sums
// without atomics (backward): pass 1 sums fixed chunks of rows per column in f64, pass 2
// (colsum_finish, also pass 2 of layernorm's, gelu_backward_colsum's and the lead and mask-token
// gradients' column sums) adds the chunk partials in chunk order and accumulates into the
// gradient.
//   forward:  out (T, OC) += bias (OC) per row
//   backward: dout (T, OC) -> partial (chunks, OC) -> dbias (OC) += (f32) sum_chunks partial
// With bf16 operand storage, the f32 operand of a GEMM whose other operand is stored in bf16
// (the weight, the output gradient) is first rounded into bf16 scratch (to_bf16), so cuBLAS
// multiplies two bf16 matrices; an output stored in bf16 (attention's qkv) is the f32 product
// plus the bias, rounded once (bias_rows_to_bf16).
#include "common.cuh"

// dst (n, bf16 bits) = src (n) rounded to nearest even.
extern "C" __global__ void to_bf16(u16* dst, const float* src, u64 n) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x)
        dst[i] = bf16_bits(src[i]);
}

// out (T, OC) += bias (OC) on every row: the linear layer's bias after its GEMM.
// Column j per thread (its bias read once), rows strided over grid.y.
// Launch: grid = (ceil(OC / BLOCK), min(T, 65535)), block = BLOCK.
extern "C" __global__ void add_bias_rows(float* out, const float* bias, int t, int oc) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= oc) return;
    float bj = bias[j];
    for (int r = blockIdx.y; r < t; r += gridDim.y)
        out[(u64)r * oc + j] += bj;
}

// out (T, OC, bf16 bits) = acc (T, OC) + bias (OC, optional) on every row, rounded: the linear
// layer's bias after its GEMM when its output is bf16 operand storage. Launch as add_bias_rows.
extern "C" __global__ void bias_rows_to_bf16(u16* out, const float* acc, const float* bias, int t,
                                             int oc) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= oc) return;
    float bj = bias ? bias[j] : 0.0f;
    for (int r = blockIdx.y; r < t; r += gridDim.y) {
        u64 i = (u64)r * oc + j;
        out[i] = bf16_bits(bias ? acc[i] + bj : acc[i]);
    }
}

// Pass 1: partial[chunk][j] = sum of src[r][j] over the chunk's rows r (f64, in row order); with
// `copy` (else null) the same pass writes src rounded to bf16 there, the copy a bf16 GEMM reads.
// Launch: grid = (ceil(C / BLOCK), chunks), block = BLOCK.
extern "C" __global__ void colsum_partial(double* partial, u16* copy, const float* src, int t,
                                          int c, int rows_per_chunk) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= c) return;
    int r0 = blockIdx.y * rows_per_chunk;
    int r1 = r0 + rows_per_chunk < t ? r0 + rows_per_chunk : t;
    double acc = 0.0;
    for (int r = r0; r < r1; r++) {
        u64 i = (u64)r * c + j;
        float x = src[i];
        if (copy) copy[i] = bf16_bits(x);
        acc += (double)x;
    }
    partial[(u64)blockIdx.y * c + j] = acc;
}

// Pass 2: dst[j] += (f32) (((p_0 + p_1) + p_2) + ...). Launch: grid = ceil(C / BLOCK), block = BLOCK.
extern "C" __global__ void colsum_finish(float* dst, const double* partial, int chunks, int c) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= c) return;
    double acc = 0.0;
    for (int k = 0; k < chunks; k++) acc += partial[(u64)k * c + j];
    dst[j] += (float)acc;
}

