// Classification-head ops for evaluation, each forward beside its backward (CPU twin:
// kernels/src/cpu/heads.rs). Sums run in f64 in a fixed order; the losses' row values are summed
// by sum_f64_to_scalar (elementwise.cu) into the device scalar.
//   mean pool:     out (B, C) row b = mean of inp (T, C) rows cu[b] .. cu[b+1] (0 when empty)
//                  dinp += dout[b] / len_b on the rows of sequence b
//   cross-entropy: logits (N, K), labels (N): rowloss = logsumexp(row) - row[label];
//                  dlogits = loss_scale (softmax - onehot) / N
//   BCE:           logits, targets (N, K): rowloss = sum_k max(x, 0) - x y + log(1 + exp(-|x|));
//                  dlogits = loss_scale (sigmoid(x) - y) / (N K)
#include "common.cuh"

// Launch: grid = (ceil(C / BLOCK), B), block = BLOCK; more than 65,535 sequences (grid.y's limit)
// in several launches, each given its sequences' out rows and cu_seqlens entries.
extern "C" __global__ void mean_pool_forward(float* out, const float* inp, const u32* cu_seqlens,
                                             int c) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    int b = blockIdx.y;
    if (j >= c) return;
    u32 start = cu_seqlens[b], end = cu_seqlens[b + 1];
    double sum = 0.0;
    for (u32 r = start; r < end; r++) sum += (double)inp[(u64)r * c + j];
    double inv = end > start ? 1.0 / (double)(end - start) : 0.0;
    out[(u64)b * c + j] = (float)(sum * inv);
}

// One thread per element of dinp (T, C); the row's sequence by binary search in cu_seqlens.
extern "C" __global__ void mean_pool_backward(float* dinp, const float* dout, const u32* cu_seqlens,
                                              int seqs, int t, int c) {
    u64 n_el = (u64)t * c;
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n_el; i += (u64)gridDim.x * blockDim.x) {
        u32 r = (u32)(i / c);
        int lo = 0, hi = seqs;  // the last b with cu_seqlens[b] <= r
        while (hi - lo > 1) {
            int mid = (lo + hi) / 2;
            if (cu_seqlens[mid] <= r) lo = mid; else hi = mid;
        }
        float inv = 1.0f / (float)(cu_seqlens[lo + 1] - cu_seqlens[lo]);
        dinp[i] += dout[(u64)lo * c + i % c] * inv;
    }
}

// log(sum(exp(row))) in f64, shifted by the row maximum.
static __device__ double logsumexp(const float* row, int k) {
    double max = -INFINITY;
    for (int j = 0; j < k; j++) max = fmax(max, (double)row[j]);
    double s = 0.0;
    for (int j = 0; j < k; j++) s += exp((double)row[j] - max);
    return max + log(s);
}

// One thread per row. Launch: grid = ceil(N / BLOCK), block = BLOCK.
extern "C" __global__ void cross_entropy_rows(double* rowloss, const float* logits, const u32* labels,
                                              int n, int k) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float* row = logits + (u64)i * k;
    rowloss[i] = logsumexp(row, k) - (double)row[labels[i]];
}

extern "C" __global__ void cross_entropy_backward(float* dlogits, const float* logits,
                                                  const u32* labels, int n, int k, float loss_scale) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    double coef = (double)loss_scale / (double)(n > 1 ? n : 1);
    const float* row = logits + (u64)i * k;
    double lse = logsumexp(row, k);
    u32 label = labels[i];
    for (int j = 0; j < k; j++) {
        double p = exp((double)row[j] - lse);
        dlogits[(u64)i * k + j] = (float)(coef * (p - ((u32)j == label ? 1.0 : 0.0)));
    }
}

// One thread per row. Launch: grid = ceil(N / BLOCK), block = BLOCK.
extern "C" __global__ void bce_rows(double* rowloss, const float* logits, const float* targets, int n,
                                    int k) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    double acc = 0.0;
    for (int j = 0; j < k; j++) {
        double x = logits[(u64)i * k + j], y = targets[(u64)i * k + j];
        acc += fmax(x, 0.0) - x * y + log1p(exp(-fabs(x)));
    }
    rowloss[i] = acc;
}

extern "C" __global__ void bce_backward(float* dlogits, const float* logits, const float* targets,
                                        int n, int k, float loss_scale) {
    u64 n_el = (u64)n * k;
    u64 nk = n_el > 1 ? n_el : 1;
    double coef = (double)loss_scale / (double)nk;
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n_el; i += (u64)gridDim.x * blockDim.x) {
        double sig = 1.0 / (1.0 + exp(-(double)logits[i]));
        dlogits[i] = (float)(coef * (sig - (double)targets[i]));
    }
}
