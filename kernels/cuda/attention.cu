// Packed variable-length multi-head attention, FlashAttention-2 style, forward beside backward.
// qkv (T, 3C) columns [q | k | v], head h in columns h*hd .. (h+1)*hd of each part; sequence b
// owns rows cu[b] .. cu[b+1]; out (T, C); lse (T, H); scale = 1 / sqrt(hd).
//
// Forward (one block per (query tile of a sequence, head)): the query tile stays in shared
// memory while key/value tiles stream through; an online softmax keeps the running row maximum m
// and sum l, rescaling the output accumulator by exp(m_old - m_new). The T x T scores never
// exist: only one (tile x tile) block of them. Saves lse = m + log(l) for the backward.
//
// Backward, without atomics (each output element has one writer), P recomputed from lse:
//   attention_delta:  D (T, H) = rowsum(dout * out) per head
//   attention_dkv:    one block per (key tile, head) walks the query tiles:
//                     dV += P^T dO;  dK += scale dS^T Q   with dS = P * (dO V^T - D)
//   attention_dq:     one block per (query tile, head) walks the key tiles: dQ += scale dS K
// Tiles are `tile` rows (chosen on the host so shared memory fits); blockDim.x threads share
// each tile's work in a fixed assignment, and every sum runs in a fixed order: deterministic.
// A (tile x hd) tile in shared memory has rows of ld = hd + 1 floats: the lanes of a warp that
// read one column of consecutive rows (k[j][d] for 32 j) then hit 32 banks, not one.
#include "common.cuh"

// Maps blockIdx.x to the tile-th tile of some sequence: its first row s0, the sequence length
// len and the tile's first row within the sequence t0. False for the spare blocks of the grid
// (the grid has ceil(T / tile) + B blocks in x, an upper bound on the number of tiles).
static __device__ bool find_tile(const u32* cu, int seqs, int tile, int* s0, int* len, int* t0) {
    int index = blockIdx.x;
    for (int b = 0; b < seqs; b++) {
        int l = (int)(cu[b + 1] - cu[b]);
        int tiles = (l + tile - 1) / tile;
        if (index < tiles) {
            *s0 = (int)cu[b];
            *len = l;
            *t0 = index * tile;
            return true;
        }
        index -= tiles;
    }
    return false;
}

// Copies `rows` rows of `hd` columns from src (row stride `stride`) into dst (row stride hd + 1);
// rows up to `tile` beyond that are zero-filled.
static __device__ void load_tile(float* dst, const float* src, u64 stride, int rows, int tile, int hd) {
    for (int e = threadIdx.x; e < tile * hd; e += blockDim.x) {
        int i = e / hd, d = e % hd;
        dst[i * (hd + 1) + d] = i < rows ? src[(u64)i * stride + d] : 0.0f;
    }
}

// Zeroes a (tile x hd) tile of row stride hd + 1.
static __device__ void zero_tile(float* dst, int tile, int hd) {
    for (int e = threadIdx.x; e < tile * (hd + 1); e += blockDim.x) dst[e] = 0.0f;
}

// S (tile x tile) = scale * A B^T over hd columns (rows of hd + 1), for i < rows_a and j < rows_b;
// -inf elsewhere.
static __device__ void scores(float* s, const float* a, const float* b, int rows_a, int rows_b, int tile,
                       int hd, float scale) {
    for (int e = threadIdx.x; e < tile * tile; e += blockDim.x) {
        int i = e / tile, j = e % tile;
        float acc = -INFINITY;
        if (i < rows_a && j < rows_b) {
            acc = 0.0f;
            for (int d = 0; d < hd; d++) acc += a[i * (hd + 1) + d] * b[j * (hd + 1) + d];
            acc *= scale;
        }
        s[e] = acc;
    }
}

// Launch: grid = (ceil(T / tile) + B, H), block = 128,
// shared = (4 tile (hd + 1) + tile tile + 3 tile) floats (q, k, v, o, s, m, l, alpha).
extern "C" __global__ void attention_forward(float* out, float* lse, const float* qkv, const u32* cu,
                                             int seqs, int c, int heads, int tile, float scale) {
    int s0, len, q0;
    if (!find_tile(cu, seqs, tile, &s0, &len, &q0)) return;
    int h = blockIdx.y, hd = c / heads, ld = hd + 1;
    int rows = min(tile, len - q0);
    u64 stride = 3 * (u64)c;
    DYNAMIC_SMEM(float, smem);
    float* q = smem;
    float* k = q + tile * ld;
    float* v = k + tile * ld;
    float* o = v + tile * ld;
    float* s = o + tile * ld;
    float* m = s + tile * tile;
    float* l = m + tile;
    float* alpha = l + tile;
    const float* base = qkv + (u64)s0 * stride + h * hd;
    load_tile(q, base + (u64)q0 * stride, stride, rows, tile, hd);
    zero_tile(o, tile, hd);
    for (int i = threadIdx.x; i < tile; i += blockDim.x) {
        m[i] = -INFINITY;
        l[i] = 0.0f;
    }
    for (int k0 = 0; k0 < len; k0 += tile) {
        int cols = min(tile, len - k0);
        __syncthreads();  // the previous tile's k, v and s are no longer read
        load_tile(k, base + (u64)k0 * stride + c, stride, cols, tile, hd);
        load_tile(v, base + (u64)k0 * stride + 2 * c, stride, cols, tile, hd);
        __syncthreads();
        scores(s, q, k, rows, cols, tile, hd, scale);
        __syncthreads();
        // Online softmax: one thread per query row.
        for (int i = threadIdx.x; i < rows; i += blockDim.x) {
            float mx = m[i];
            for (int j = 0; j < cols; j++) mx = fmaxf(mx, s[i * tile + j]);
            float sum = 0.0f;
            for (int j = 0; j < cols; j++) {
                float p = exp_nonpositive(s[i * tile + j] - mx);
                s[i * tile + j] = p;
                sum += p;
            }
            float a = exp_nonpositive(m[i] - mx);
            alpha[i] = a;
            l[i] = l[i] * a + sum;
            m[i] = mx;
        }
        __syncthreads();
        for (int e = threadIdx.x; e < rows * hd; e += blockDim.x) {
            int i = e / hd, d = e % hd;
            float acc = 0.0f;
            for (int j = 0; j < cols; j++) acc += s[i * tile + j] * v[j * ld + d];
            o[i * ld + d] = o[i * ld + d] * alpha[i] + acc;
        }
    }
    // No barrier: each thread normalises the o elements it accumulated itself, and m and l were
    // last written before the loop's last barrier.
    for (int e = threadIdx.x; e < rows * hd; e += blockDim.x) {
        int i = e / hd, d = e % hd;
        out[(u64)(s0 + q0 + i) * c + h * hd + d] = o[i * ld + d] / l[i];
    }
    for (int i = threadIdx.x; i < rows; i += blockDim.x)
        lse[(u64)(s0 + q0 + i) * heads + h] = m[i] + logf(l[i]);
}

// D (T, H) = rowsum over each head's columns of dout * out. One thread per (row, head).
// `out` is f32, or (`out_bf16`) bf16 operand storage (the tensor-core forward's output).
extern "C" __global__ void attention_delta(float* delta, const float* dout, const void* out,
                                           int out_bf16, int t, int c, int heads) {
    int hd = c / heads;
    u64 n = (u64)t * heads;
    for (u64 e = blockIdx.x * (u64)blockDim.x + threadIdx.x; e < n; e += (u64)gridDim.x * blockDim.x) {
        u64 r = e / heads, h = e % heads;
        float acc = 0.0f;
        for (int d = 0; d < hd; d++) {
            u64 i = r * c + h * hd + d;
            acc += dout[i] * load_operand(out, i, out_bf16);
        }
        delta[e] = acc;
    }
}

// P (in s) = exp(S - lse) and dS (in ds) = P * (dO V^T - D) for a (query tile, key tile) pair.
// q, dout (tile x hd, rows of hd + 1) hold the query rows, k, v the key rows; lse_t, d_t per
// query.
static __device__ void probs_and_dscores(float* s, float* ds, const float* q, const float* dout,
                                  const float* k, const float* v, const float* lse_t,
                                  const float* d_t, int rows, int cols, int tile, int hd,
                                  float scale) {
    for (int e = threadIdx.x; e < tile * tile; e += blockDim.x) {
        int i = e / tile, j = e % tile;
        float p = 0.0f, dsv = 0.0f;
        if (i < rows && j < cols) {
            float acc = 0.0f, dp = 0.0f;
            for (int d = 0; d < hd; d++) {
                acc += q[i * (hd + 1) + d] * k[j * (hd + 1) + d];
                dp += dout[i * (hd + 1) + d] * v[j * (hd + 1) + d];
            }
            p = exp_nonpositive(acc * scale - lse_t[i]);
            dsv = p * (dp - d_t[i]);
        }
        s[e] = p;
        ds[e] = dsv;
    }
}

// Loads what the backward needs of a query tile of head h: its q and dout rows (tile x hd, rows
// of hd + 1) and its per-row lse and D (0 beyond `rows`). The tile starts at row s0 + q0.
static __device__ void load_queries(float* q, float* dt, float* lse_t, float* d_t, const float* qkv,
                                    const float* dout, const float* lse, const float* delta, int s0,
                                    int q0, int rows, int tile, int c, int heads, int h) {
    int hd = c / heads;
    u64 row0 = (u64)(s0 + q0);
    load_tile(q, qkv + row0 * 3 * c + h * hd, 3 * (u64)c, rows, tile, hd);
    load_tile(dt, dout + row0 * c + h * hd, c, rows, tile, hd);
    for (int i = threadIdx.x; i < tile; i += blockDim.x) {
        lse_t[i] = i < rows ? lse[(row0 + i) * heads + h] : 0.0f;
        d_t[i] = i < rows ? delta[(row0 + i) * heads + h] : 0.0f;
    }
}

// One block per (key tile, head). Launch: grid = (ceil(T / tile) + B, H), block = 128,
// shared = (6 tile (hd + 1) + 2 tile tile + 2 tile) floats (k, v, dk, dv, q, dout, s, ds, lse, D).
extern "C" __global__ void attention_dkv(float* dqkv, const float* dout, const float* qkv,
                                         const float* lse, const float* delta, const u32* cu,
                                         int seqs, int c, int heads, int tile, float scale) {
    int s0, len, k0;
    if (!find_tile(cu, seqs, tile, &s0, &len, &k0)) return;
    int h = blockIdx.y, hd = c / heads, ld = hd + 1;
    int cols = min(tile, len - k0);
    u64 stride = 3 * (u64)c;
    DYNAMIC_SMEM(float, smem);
    float* k = smem;
    float* v = k + tile * ld;
    float* dk = v + tile * ld;
    float* dv = dk + tile * ld;
    float* q = dv + tile * ld;
    float* dt = q + tile * ld;
    float* s = dt + tile * ld;
    float* ds = s + tile * tile;
    float* lse_t = ds + tile * tile;
    float* d_t = lse_t + tile;
    const float* base = qkv + (u64)s0 * stride + h * hd;
    load_tile(k, base + (u64)k0 * stride + c, stride, cols, tile, hd);
    load_tile(v, base + (u64)k0 * stride + 2 * c, stride, cols, tile, hd);
    zero_tile(dk, tile, hd);
    zero_tile(dv, tile, hd);
    for (int q0 = 0; q0 < len; q0 += tile) {
        int rows = min(tile, len - q0);
        __syncthreads();
        load_queries(q, dt, lse_t, d_t, qkv, dout, lse, delta, s0, q0, rows, tile, c, heads, h);
        __syncthreads();
        probs_and_dscores(s, ds, q, dt, k, v, lse_t, d_t, rows, cols, tile, hd, scale);
        __syncthreads();
        for (int e = threadIdx.x; e < cols * hd; e += blockDim.x) {
            int j = e / hd, d = e % hd;
            float acc_v = 0.0f, acc_k = 0.0f;
            for (int i = 0; i < rows; i++) {
                acc_v += s[i * tile + j] * dt[i * ld + d];
                acc_k += ds[i * tile + j] * q[i * ld + d];
            }
            dv[j * ld + d] += acc_v;
            dk[j * ld + d] += acc_k;
        }
    }
    // No barrier: each thread writes out the dk and dv elements it accumulated itself.
    for (int e = threadIdx.x; e < cols * hd; e += blockDim.x) {
        int j = e / hd, d = e % hd;
        float* row = dqkv + (u64)(s0 + k0 + j) * stride + h * hd + d;
        row[c] = dk[j * ld + d] * scale;
        row[2 * c] = dv[j * ld + d];
    }
}

// One block per (query tile, head). Launch: grid = (ceil(T / tile) + B, H), block = 128,
// shared = (5 tile (hd + 1) + 2 tile tile + 2 tile) floats (q, dout, dq, k, v, s, ds, lse, D).
extern "C" __global__ void attention_dq(float* dqkv, const float* dout, const float* qkv,
                                        const float* lse, const float* delta, const u32* cu,
                                        int seqs, int c, int heads, int tile, float scale) {
    int s0, len, q0;
    if (!find_tile(cu, seqs, tile, &s0, &len, &q0)) return;
    int h = blockIdx.y, hd = c / heads, ld = hd + 1;
    int rows = min(tile, len - q0);
    u64 stride = 3 * (u64)c;
    DYNAMIC_SMEM(float, smem);
    float* q = smem;
    float* dt = q + tile * ld;
    float* dq = dt + tile * ld;
    float* k = dq + tile * ld;
    float* v = k + tile * ld;
    float* s = v + tile * ld;
    float* ds = s + tile * tile;
    float* lse_t = ds + tile * tile;
    float* d_t = lse_t + tile;
    const float* base = qkv + (u64)s0 * stride + h * hd;
    load_queries(q, dt, lse_t, d_t, qkv, dout, lse, delta, s0, q0, rows, tile, c, heads, h);
    zero_tile(dq, tile, hd);
    for (int k0 = 0; k0 < len; k0 += tile) {
        int cols = min(tile, len - k0);
        __syncthreads();
        load_tile(k, base + (u64)k0 * stride + c, stride, cols, tile, hd);
        load_tile(v, base + (u64)k0 * stride + 2 * c, stride, cols, tile, hd);
        __syncthreads();
        probs_and_dscores(s, ds, q, dt, k, v, lse_t, d_t, rows, cols, tile, hd, scale);
        __syncthreads();
        for (int e = threadIdx.x; e < rows * hd; e += blockDim.x) {
            int i = e / hd, d = e % hd;
            float acc = 0.0f;
            for (int j = 0; j < cols; j++) acc += ds[i * tile + j] * k[j * ld + d];
            dq[i * ld + d] += acc;
        }
    }
    // No barrier: each thread writes out the dq elements it accumulated itself.
    for (int e = threadIdx.x; e < rows * hd; e += blockDim.x) {
        int i = e / hd, d = e % hd;
        dqkv[(u64)(s0 + q0 + i) * stride + h * hd + d] = dq[i * ld + d] * scale;
    }
}
