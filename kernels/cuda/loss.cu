// The masked reconstruction loss (docs/model.md), forward beside backward. target (M, P) holds
// the raw patches of the M masked tokens, rows (M) their row in pred (T_dec, P). With norm_pix a
// target row is (p - mean) / sqrt(var_unbiased + 1e-6), its statistics in f64.
//   forward:  rowloss[i] = (1 / P) sum_k (pred[rows[i]][k] - target_i[k])^2   (f64)
//             loss[0] = (f32) (sum_i rowloss[i]) / M      (sum_f64_to_scalar, elementwise.cu)
//   backward: dpred = 0, then dpred[rows[i]] = loss_scale 2 (pred - target_i) / (M P)
#include "common.cuh"

// Mean and 1 / std of a target row when normalising (else 0 and 1).
static __device__ void target_stats(const float* target, int p, int norm_pix, double* mean, double* inv_std) {
    *mean = 0.0;
    *inv_std = 1.0;
    if (!norm_pix) return;
    double s = 0.0;
    for (int k = 0; k < p; k++) s += (double)target[k];
    double mu = s / (double)p;
    double ss = 0.0;
    for (int k = 0; k < p; k++) ss += ((double)target[k] - mu) * ((double)target[k] - mu);
    *mean = mu;
    *inv_std = 1.0 / sqrt(ss / ((double)p - 1.0) + 1e-6);
}

// One thread per masked row: rowloss[i]. Launch: grid = ceil(M / BLOCK), block = BLOCK.
extern "C" __global__ void masked_mse_rows(double* rowloss, const float* pred, const float* target,
                                           const u32* rows, int m, int p, int norm_pix) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= m) return;
    const float* tg = target + (u64)i * p;
    const float* pr = pred + (u64)rows[i] * p;
    double mean, inv_std;
    target_stats(tg, p, norm_pix, &mean, &inv_std);
    double acc = 0.0;
    for (int k = 0; k < p; k++) {
        double diff = (double)pr[k] - ((double)tg[k] - mean) * inv_std;
        acc += diff * diff;
    }
    rowloss[i] = acc / (double)p;
}

// One thread per masked row writes its gradient row (rows distinct; dpred zeroed before).
extern "C" __global__ void masked_mse_backward(float* dpred, const float* pred, const float* target,
                                               const u32* rows, int m, int p, int norm_pix,
                                               float loss_scale) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= m) return;
    double coef = 2.0 * (double)loss_scale / ((double)m * (double)p);
    const float* tg = target + (u64)i * p;
    u64 r = rows[i];
    double mean, inv_std;
    target_stats(tg, p, norm_pix, &mean, &inv_std);
    for (int k = 0; k < p; k++) {
        double tv = ((double)tg[k] - mean) * inv_std;
        dpred[r * p + k] = (float)(coef * ((double)pred[r * p + k] - tv));
    }
}
