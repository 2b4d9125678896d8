// Packed variable-length multi-head attention with bf16 tensor-core products, forward beside
// backward: the Precision::Bf16 twin of attention.cu (same layout and outputs; operands may be
// bf16 storage, given by flags; fixed 64-row tiles; the same "grid = tiles + B blocks" scheme;
// no atomics, deterministic). Layout as there: qkv (T, 3C) columns [q | k | v], head h in
// columns h*hd .. (h+1)*hd of each part; sequence b owns rows cu[b] .. cu[b+1]; out (T, C);
// lse (T, H); scale = 1 / sqrt(hd); hd a multiple of 16, <= 128.
//
// Every matrix product is mma.sync m16n8k16 (bf16 operands, f32 accumulation). The operands are
// rounded to bf16 (nearest even) as they are loaded, exactly where kernels/src/precision.rs
// says: q, k, v, dO, P before P V and P^T dO, dS = P * (dP - D) before dS K and dS^T Q; and the
// forward's output O is rounded to bf16 as it is written (f32 storage, or `out_bf16`: bf16 bits
// in operand storage). Softmax statistics, lse, D and dqkv stay f32. One difference of place: the
// forward rounds the
// online softmax's unnormalised exp(s - m) before P V and divides by the row sum afterwards in
// f32, where the CPU reference rounds the normalised P (one bf16 rounding either way).
//
// A block has 4 warps; each warp owns 16 rows of the block's 64-row tile (query rows in the
// forward and dQ, key rows in dK/dV) and keeps that operand in registers as mma A fragments,
// read straight from global memory. The other operand streams through shared memory in
// 64-row tiles of bf16 bits (row stride hd + 8). Scores live in mma accumulators and become the
// A fragments of the next product without leaving registers (FlashAttention-2).
//   forward:  S = Q K^T; online softmax (running max m and sum l per row); O += P V
//   backward: D = rowsum(dout * out) is attention_delta of attention.cu, then
//     attention_bf16_dkv_* (per key tile):   S^T = K Q^T, dP^T = V dO^T,
//                                            P^T = exp(scale S^T - lse), dS^T = P^T (dP^T - D);
//                                            dV += P^T dO; dK += dS^T Q
//     attention_bf16_dq_*  (per query tile): S = Q K^T, dP = dO V^T, dS as above; dQ += dS K
// Each output element has one writer and every sum runs in a fixed order. Every kernel comes in
// three instantiations, _hd64, _hd96 and _hd128, by the largest head size it takes. qkv is f32,
// or (`qkv_bf16`) bf16 bits: a bf16 backend's operand storage (Backend::alloc_operand), read
// as is where f32 would be rounded on loading: the same bits either way.
#include "common.cuh"

// Rows of a block's tile (4 warps x 16) and of the streamed tiles.
#define TILE 64
// The backward kernels take a streamed tile in two halves of HALF rows, so a warp's two score
// accumulators hold 16 x 32, not 16 x 64: 32 registers fewer, and every output element still
// sums its terms in the same order (the halves' 16-row chunks come in the tile's order).
#define HALF 32
// Each kernel is instantiated for HDM = 64, 96 and 128, the largest head size it takes: register
// arrays are sized by HDM (loops over them are unrolled and guarded by the real head size, so
// their indices stay constant and they stay in registers), so smaller heads do not pay for 128.

// Two values as one .b32 of bf16 pair: lo in the low 16 bits.
static __device__ __forceinline__ u32 pack_bf16(float lo, float hi) {
    return (u32)bf16_bits(lo) | ((u32)bf16_bits(hi) << 16);
}

#ifndef ECGFM_HOST
// d (16x8 f32) += a (16x16 bf16, row-major fragments) * b (16x8 bf16, "col" fragments), one warp.
// Fragments (PTX ISA, mma.m16n8k16 .bf16), with g = lane >> 2 and t = lane % 4, the lower
// column / row index in the low 16 bits of each .b32:
//   a[0] = A(g, 2t..2t+1)  a[1] = A(g+8, 2t..)  a[2] = A(g, 2t+8..)  a[3] = A(g+8, 2t+8..)
//   b[0] = B(2t..2t+1, g)  b[1] = B(2t+8.., g)
//   d[0], d[1] = D(g, 2t), D(g, 2t+1)            d[2], d[3] = D(g+8, 2t), D(g+8, 2t+1)
// The host harness defines its twin (kernels/cuda-host/src/mma_twin.h).
static __device__ __forceinline__ void mma_bf16_16816(float d[4], const u32 a[4], const u32 b[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
#endif

// This thread's lane, its fragment group g and its index t within the group.
struct Lane {
    int g, t;
};

static __device__ __forceinline__ Lane lane_of() {
    int lane = (int)(threadIdx.x % 32);
    return Lane{lane >> 2, lane & 3};
}

// Maps blockIdx.x to the tile-th TILE-row tile of some sequence (as attention.cu's find_tile):
// its first row s0, the sequence length len and the tile's first row within the sequence t0.
static __device__ bool find_tile_bf16(const u32* cu, int seqs, int* s0, int* len, int* t0) {
    int index = blockIdx.x;
    for (int b = 0; b < seqs; b++) {
        int l = (int)(cu[b + 1] - cu[b]);
        int tiles = (l + TILE - 1) / TILE;
        if (index < tiles) {
            *s0 = (int)cu[b];
            *len = l;
            *t0 = index * TILE;
            return true;
        }
        index -= tiles;
    }
    return false;
}

// The bf16 bits of an element of an f32 matrix (rounded) or of a bf16 one (as stored).
static __device__ __forceinline__ u16 bits_of(float x) { return bf16_bits(x); }
static __device__ __forceinline__ u16 bits_of(u16 x) { return x; }

// x(r, col) and x(r, col + 1) of an f32 or bf16 matrix E (row stride `stride`) as a bf16 pair; 0
// for rows r >= rows.
template <typename E>
static __device__ __forceinline__ u32 global_pair(const E* x, u64 stride, int rows, int r,
                                                  int col) {
    if (r >= rows) return 0u;
    const E* p = x + (u64)r * stride + col;
    return (u32)bits_of(p[0]) | ((u32)bits_of(p[1]) << 16);
}

// A fragment of rows r0..r0+16, columns k0..k0+16 of a matrix in global memory.
template <typename E>
static __device__ void load_a_global(u32 a[4], const E* x, u64 stride, int rows, int r0, int k0,
                                     Lane l) {
    a[0] = global_pair(x, stride, rows, r0 + l.g, k0 + 2 * l.t);
    a[1] = global_pair(x, stride, rows, r0 + l.g + 8, k0 + 2 * l.t);
    a[2] = global_pair(x, stride, rows, r0 + l.g, k0 + 2 * l.t + 8);
    a[3] = global_pair(x, stride, rows, r0 + l.g + 8, k0 + 2 * l.t + 8);
}

// B fragment (k0..k0+16, n0..n0+8) of B = M^T, M (N x K) bf16 row-major in shared memory with
// row stride ld: the pairs along k are adjacent.
static __device__ __forceinline__ void load_b_nk(u32 b[2], const u16* m, int ld, int k0, int n0,
                                                 Lane l) {
    const u16* row = m + (n0 + l.g) * ld + k0 + 2 * l.t;
    b[0] = *(const u32*)row;
    b[1] = *(const u32*)(row + 8);
}

// B fragment (k0..k0+16, n0..n0+8) of B = M, M (K x N) bf16 row-major in shared memory.
static __device__ __forceinline__ void load_b_kn(u32 b[2], const u16* m, int ld, int k0, int n0,
                                                 Lane l) {
    const u16* col = m + (k0 + 2 * l.t) * ld + n0 + l.g;
    b[0] = (u32)col[0] | ((u32)col[ld] << 16);
    b[1] = (u32)col[8 * ld] | ((u32)col[9 * ld] << 16);
}

// The A fragment of columns 16 kc .. 16 kc + 16 of a 16 x 8 NT f32 accumulator s (NT n-tiles of
// 8 columns), rounded to bf16: accumulator layout and A layout agree row for row.
template <int NT>
static __device__ __forceinline__ void acc_to_a(u32 a[4], const float s[NT][4], int kc) {
    a[0] = pack_bf16(s[2 * kc][0], s[2 * kc][1]);
    a[1] = pack_bf16(s[2 * kc][2], s[2 * kc][3]);
    a[2] = pack_bf16(s[2 * kc + 1][0], s[2 * kc + 1][1]);
    a[3] = pack_bf16(s[2 * kc + 1][2], s[2 * kc + 1][3]);
}

// Copies `rows` rows of hd columns from src (f32 or bf16, row stride `stride`) into dst as bf16
// bits (row stride ld); rows up to TILE beyond that are zero.
template <typename E>
static __device__ void load_tile_bf16(u16* dst, int ld, const E* src, u64 stride, int rows,
                                      int hd) {
    for (int e = threadIdx.x; e < TILE * hd; e += blockDim.x) {
        int i = e / hd, d = e % hd;
        dst[i * ld + d] = i < rows ? bits_of(src[(u64)i * stride + d]) : (u16)0;
    }
}

// acc (16 x 8 NT) = a (16 x hd, A fragments by 16-column chunk) m^T for m (8 NT x hd) in shared
// memory: the first 2 * chunks n-tiles (8 columns each) of acc; the rest stay untouched.
template <int HDM, int NT>
static __device__ void product_nt(float acc[NT][4], const u32 a[HDM / 16][4], const u16* m,
                                  int ld, int hd, int chunks, Lane l) {
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        if (nt < 2 * chunks) {
            acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
#pragma unroll
            for (int kd = 0; kd < HDM / 16; kd++) {
                if (kd < hd / 16) {
                    u32 b[2];
                    load_b_nk(b, m, ld, 16 * kd, 8 * nt, l);
                    mma_bf16_16816(acc[nt], a[kd], b);
                }
            }
        }
    }
}

// out (16 x hd) += p (16 x 8 NT accumulator, rounded to bf16 here) m for m (8 NT x hd) in
// shared memory, over the first `chunks` 16-row chunks of m.
template <int HDM, int NT>
static __device__ void product_acc(float out[HDM / 8][4], const float p[NT][4], const u16* m,
                                   int ld, int hd, int chunks, Lane l) {
#pragma unroll
    for (int kc = 0; kc < NT / 2; kc++) {
        if (kc < chunks) {
            u32 a[4];
            acc_to_a<NT>(a, p, kc);
#pragma unroll
            for (int nd = 0; nd < HDM / 8; nd++) {
                if (nd < hd / 8) {
                    u32 b[2];
                    load_b_kn(b, m, ld, 16 * kc, 8 * nd, l);
                    mma_bf16_16816(out[nd], a, b);
                }
            }
        }
    }
}

// The A fragments of a warp's 16 rows r0.. (of `rows`) of an f32 or bf16 matrix, all hd columns.
template <int HDM, typename E>
static __device__ void load_rows_a(u32 a[HDM / 16][4], const E* x, u64 stride, int rows,
                                   int r0, int hd, Lane l) {
#pragma unroll
    for (int kd = 0; kd < HDM / 16; kd++)
        if (kd < hd / 16) load_a_global(a[kd], x, stride, rows, r0, 16 * kd, l);
}

template <int HDM>
static __device__ void zero_acc(float acc[HDM / 8][4]) {
#pragma unroll
    for (int nd = 0; nd < HDM / 8; nd++) acc[nd][0] = acc[nd][1] = acc[nd][2] = acc[nd][3] = 0.0f;
}

// Maximum and sum over the 4 lanes that share a fragment row (lanes 4g .. 4g+3).
static __device__ __forceinline__ float quad_max(float v) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
    return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}

static __device__ __forceinline__ float quad_sum(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// One block per (query tile, head); each warp owns 16 query rows.
template <int HDM, typename E>
static __device__ void forward_impl(void* out, int out_bf16, float* lse, const E* qkv,
                                    const u32* cu, int seqs, int c, int heads, float scale) {
    int s0, len, q0;
    if (!find_tile_bf16(cu, seqs, &s0, &len, &q0)) return;
    int h = blockIdx.y, hd = c / heads, ld = hd + 8;
    int rows = min(TILE, len - q0);
    int r0 = 16 * (int)(threadIdx.x / 32);  // the warp's first row within the tile
    bool active = r0 < rows;
    Lane l = lane_of();
    u64 stride = 3 * (u64)c;
    DYNAMIC_SMEM(u16, smem);
    u16* ks = smem;             // (64, hd) bf16, row stride ld
    u16* vs = ks + TILE * ld;   // (64, hd)
    const E* base = qkv + (u64)s0 * stride + h * hd;
    u32 qa[HDM / 16][4];     // (16, hd) query rows as A fragments
    float o[HDM / 8][4];     // (16, hd) output accumulator
    float m[2] = {-INFINITY, -INFINITY}, sum[2] = {0.0f, 0.0f};  // rows g, g + 8
    if (active) load_rows_a<HDM>(qa, base + (u64)q0 * stride, stride, rows, r0, hd, l);
    zero_acc<HDM>(o);
    for (int k0 = 0; k0 < len; k0 += TILE) {
        int cols = min(TILE, len - k0);
        __syncthreads();  // the previous tile is no longer read
        load_tile_bf16(ks, ld, base + (u64)k0 * stride + c, stride, cols, hd);
        load_tile_bf16(vs, ld, base + (u64)k0 * stride + 2 * c, stride, cols, hd);
        __syncthreads();
        if (!active) continue;
        int chunks = (cols + 15) / 16;
        float s[TILE / 8][4];  // (16, 64) scores, then probabilities
        product_nt<HDM, TILE / 8>(s, qa, ks, ld, hd, chunks, l);
        float mx[2] = {m[0], m[1]};
#pragma unroll
        for (int nt = 0; nt < TILE / 8; nt++) {
            if (nt < 2 * chunks) {
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    int j = 8 * nt + 2 * l.t + (i & 1);
                    s[nt][i] = j < cols ? s[nt][i] * scale : -INFINITY;
                    mx[i >> 1] = fmaxf(mx[i >> 1], s[nt][i]);
                }
            }
        }
        float alpha[2], part[2] = {0.0f, 0.0f};
#pragma unroll
        for (int r = 0; r < 2; r++) {
            mx[r] = quad_max(mx[r]);
            alpha[r] = exp_nonpositive(m[r] - mx[r]);
            m[r] = mx[r];
        }
#pragma unroll
        for (int nt = 0; nt < TILE / 8; nt++) {
            if (nt < 2 * chunks) {
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    s[nt][i] = exp_nonpositive(s[nt][i] - mx[i >> 1]);
                    part[i >> 1] += s[nt][i];
                }
            }
        }
#pragma unroll
        for (int r = 0; r < 2; r++) sum[r] = sum[r] * alpha[r] + quad_sum(part[r]);
#pragma unroll
        for (int nd = 0; nd < HDM / 8; nd++) {
            o[nd][0] *= alpha[0];
            o[nd][1] *= alpha[0];
            o[nd][2] *= alpha[1];
            o[nd][3] *= alpha[1];
        }
        product_acc<HDM, TILE / 8>(o, s, vs, ld, hd, chunks, l);
    }
    if (!active) return;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int i = r0 + l.g + 8 * r;
        if (i >= rows) continue;
        u64 row = (u64)(s0 + q0 + i);
#pragma unroll
        for (int nd = 0; nd < HDM / 8; nd++) {
            if (nd >= hd / 8) break;
            u64 at = row * c + h * hd + 8 * nd + 2 * l.t;
            store_operand(out, at, round_bf16(o[nd][2 * r] / sum[r]), out_bf16);
            store_operand(out, at + 1, round_bf16(o[nd][2 * r + 1] / sum[r]), out_bf16);
        }
        if (l.t == 0) lse[row * heads + h] = m[r] + logf(sum[r]);
    }
}

// forward_impl on qkv stored as f32 or (`qkv_bf16`) bf16.
template <int HDM>
static __device__ void forward_dispatch(void* out, int out_bf16, float* lse, const void* qkv,
                                        int qkv_bf16, const u32* cu, int seqs, int c, int heads,
                                        float scale) {
    if (qkv_bf16)
        forward_impl<HDM>(out, out_bf16, lse, (const u16*)qkv, cu, seqs, c, heads, scale);
    else
        forward_impl<HDM>(out, out_bf16, lse, (const float*)qkv, cu, seqs, c, heads, scale);
}

// Launch: grid = (ceil(T / 64) + B, H), block = 128, shared = 2 * 64 * (hd + 8) u16 (k, v);
// _hd64, _hd96 and _hd128 for head sizes up to 64, 96 and 128.
extern "C" __global__ void attention_bf16_forward_hd64(void* out, int out_bf16, float* lse,
                                                        const void* qkv, int qkv_bf16,
                                                        const u32* cu, int seqs, int c, int heads,
                                                        float scale) {
    forward_dispatch<64>(out, out_bf16, lse, qkv, qkv_bf16, cu, seqs, c, heads, scale);
}

extern "C" __global__ void attention_bf16_forward_hd96(void* out, int out_bf16, float* lse,
                                                        const void* qkv, int qkv_bf16,
                                                        const u32* cu, int seqs, int c, int heads,
                                                        float scale) {
    forward_dispatch<96>(out, out_bf16, lse, qkv, qkv_bf16, cu, seqs, c, heads, scale);
}

extern "C" __global__ void attention_bf16_forward_hd128(void* out, int out_bf16, float* lse,
                                                        const void* qkv, int qkv_bf16,
                                                        const u32* cu, int seqs, int c, int heads,
                                                        float scale) {
    forward_dispatch<128>(out, out_bf16, lse, qkv, qkv_bf16, cu, seqs, c, heads, scale);
}

// One block per (key tile, head); each warp owns 16 key rows.
template <int HDM, typename E>
static __device__ void dkv_impl(float* dqkv, const float* dout, const E* qkv, const float* lse,
                                const float* delta, const u32* cu, int seqs, int c, int heads,
                                float scale) {
    int s0, len, k0;
    if (!find_tile_bf16(cu, seqs, &s0, &len, &k0)) return;
    int h = blockIdx.y, hd = c / heads, ld = hd + 8;
    int cols = min(TILE, len - k0);
    int r0 = 16 * (int)(threadIdx.x / 32);  // the warp's first key row within the tile
    bool active = r0 < cols;
    Lane l = lane_of();
    u64 stride = 3 * (u64)c;
    DYNAMIC_SMEM(u16, smem);
    u16* qs = smem;                              // (64, hd) query rows
    u16* dos = qs + TILE * ld;                   // (64, hd) dout rows
    float* lse_t = (float*)(dos + TILE * ld);    // (64) per query row
    float* d_t = lse_t + TILE;                   // (64)
    const E* base = qkv + (u64)s0 * stride + h * hd;
    u32 ka[HDM / 16][4], va[HDM / 16][4];  // (16, hd) key and value rows as A fragments
    float dk[HDM / 8][4], dv[HDM / 8][4];  // (16, hd) accumulators
    if (active) {
        load_rows_a<HDM>(ka, base + (u64)k0 * stride + c, stride, cols, r0, hd, l);
        load_rows_a<HDM>(va, base + (u64)k0 * stride + 2 * c, stride, cols, r0, hd, l);
    }
    zero_acc<HDM>(dk);
    zero_acc<HDM>(dv);
    for (int q0 = 0; q0 < len; q0 += TILE) {
        int rows = min(TILE, len - q0);
        u64 row0 = (u64)(s0 + q0);
        __syncthreads();
        load_tile_bf16(qs, ld, qkv + row0 * stride + h * hd, stride, rows, hd);
        load_tile_bf16(dos, ld, dout + row0 * c + h * hd, c, rows, hd);
        for (int i = threadIdx.x; i < TILE; i += blockDim.x) {
            lse_t[i] = i < rows ? lse[(row0 + i) * heads + h] : 0.0f;
            d_t[i] = i < rows ? delta[(row0 + i) * heads + h] : 0.0f;
        }
        __syncthreads();
        if (!active) continue;
        for (int j0 = 0; j0 < rows; j0 += HALF) {
            int chunks = (min(HALF, rows - j0) + 15) / 16;
            const u16 *qh = qs + j0 * ld, *doh = dos + j0 * ld;
            // (16 keys, 32 queries): S^T, then P^T; dP^T, then dS^T
            float p[HALF / 8][4], ds[HALF / 8][4];
            product_nt<HDM, HALF / 8>(p, ka, qh, ld, hd, chunks, l);
            product_nt<HDM, HALF / 8>(ds, va, doh, ld, hd, chunks, l);
#pragma unroll
            for (int nt = 0; nt < HALF / 8; nt++) {
                if (nt < 2 * chunks) {
#pragma unroll
                    for (int i = 0; i < 4; i++) {
                        int j = j0 + 8 * nt + 2 * l.t + (i & 1);
                        float pv = j < rows ? exp_nonpositive(p[nt][i] * scale - lse_t[j]) : 0.0f;
                        p[nt][i] = pv;
                        ds[nt][i] = pv * (ds[nt][i] - d_t[j]);
                    }
                }
            }
            product_acc<HDM, HALF / 8>(dv, p, doh, ld, hd, chunks, l);
            product_acc<HDM, HALF / 8>(dk, ds, qh, ld, hd, chunks, l);
        }
    }
    if (!active) return;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int j = r0 + l.g + 8 * r;
        if (j >= cols) continue;
        float* row = dqkv + (u64)(s0 + k0 + j) * stride + h * hd + 2 * l.t;
#pragma unroll
        for (int nd = 0; nd < HDM / 8; nd++) {
            if (nd >= hd / 8) break;
            row[c + 8 * nd] = dk[nd][2 * r] * scale;
            row[c + 8 * nd + 1] = dk[nd][2 * r + 1] * scale;
            row[2 * c + 8 * nd] = dv[nd][2 * r];
            row[2 * c + 8 * nd + 1] = dv[nd][2 * r + 1];
        }
    }
}

// dkv_impl on qkv stored as f32 or (`qkv_bf16`) bf16.
template <int HDM>
static __device__ void dkv_dispatch(float* dqkv, const float* dout, const void* qkv, int qkv_bf16,
                           const float* lse, const float* delta, const u32* cu, int seqs, int c,
                           int heads, float scale) {
    if (qkv_bf16)
        dkv_impl<HDM>(dqkv, dout, (const u16*)qkv, lse, delta, cu, seqs, c, heads, scale);
    else
        dkv_impl<HDM>(dqkv, dout, (const float*)qkv, lse, delta, cu, seqs, c, heads, scale);
}

// Launch: grid = (ceil(T / 64) + B, H), block = 128, shared = 2 * 64 * (hd + 8) u16 (q, dout)
// + 2 * 64 f32 (lse, D); _hd64, _hd96 and _hd128 for head sizes up to 64, 96 and 128.
extern "C" __global__ void attention_bf16_dkv_hd64(float* dqkv, const float* dout, const void* qkv,
                                                   int qkv_bf16, const float* lse,
                                                   const float* delta, const u32* cu, int seqs,
                                                   int c, int heads, float scale) {
    dkv_dispatch<64>(dqkv, dout, qkv, qkv_bf16, lse, delta, cu, seqs, c, heads, scale);
}

extern "C" __global__ void attention_bf16_dkv_hd96(float* dqkv, const float* dout, const void* qkv,
                                                   int qkv_bf16, const float* lse,
                                                   const float* delta, const u32* cu, int seqs,
                                                   int c, int heads, float scale) {
    dkv_dispatch<96>(dqkv, dout, qkv, qkv_bf16, lse, delta, cu, seqs, c, heads, scale);
}

extern "C" __global__ void attention_bf16_dkv_hd128(float* dqkv, const float* dout, const void* qkv,
                                                    int qkv_bf16, const float* lse,
                                                    const float* delta, const u32* cu, int seqs,
                                                    int c, int heads, float scale) {
    dkv_dispatch<128>(dqkv, dout, qkv, qkv_bf16, lse, delta, cu, seqs, c, heads, scale);
}

// One block per (query tile, head); each warp owns 16 query rows.
template <int HDM, typename E>
static __device__ void dq_impl(float* dqkv, const float* dout, const E* qkv, const float* lse,
                               const float* delta, const u32* cu, int seqs, int c, int heads,
                               float scale) {
    int s0, len, q0;
    if (!find_tile_bf16(cu, seqs, &s0, &len, &q0)) return;
    int h = blockIdx.y, hd = c / heads, ld = hd + 8;
    int rows = min(TILE, len - q0);
    int r0 = 16 * (int)(threadIdx.x / 32);
    bool active = r0 < rows;
    Lane l = lane_of();
    u64 stride = 3 * (u64)c;
    DYNAMIC_SMEM(u16, smem);
    u16* ks = smem;            // (64, hd)
    u16* vs = ks + TILE * ld;  // (64, hd)
    const E* base = qkv + (u64)s0 * stride + h * hd;
    u32 qa[HDM / 16][4], doa[HDM / 16][4];  // (16, hd) query and dout rows
    float dq[HDM / 8][4];                      // (16, hd)
    float lse_r[2] = {0.0f, 0.0f}, d_r[2] = {0.0f, 0.0f};  // rows g, g + 8
    if (active) {
        load_rows_a<HDM>(qa, base + (u64)q0 * stride, stride, rows, r0, hd, l);
        load_rows_a<HDM>(doa, dout + (u64)(s0 + q0) * c + h * hd, c, rows, r0, hd, l);
        for (int r = 0; r < 2; r++) {
            int i = r0 + l.g + 8 * r;
            if (i < rows) {
                lse_r[r] = lse[(u64)(s0 + q0 + i) * heads + h];
                d_r[r] = delta[(u64)(s0 + q0 + i) * heads + h];
            }
        }
    }
    zero_acc<HDM>(dq);
    for (int k0 = 0; k0 < len; k0 += TILE) {
        int cols = min(TILE, len - k0);
        __syncthreads();
        load_tile_bf16(ks, ld, base + (u64)k0 * stride + c, stride, cols, hd);
        load_tile_bf16(vs, ld, base + (u64)k0 * stride + 2 * c, stride, cols, hd);
        __syncthreads();
        if (!active) continue;
        for (int j0 = 0; j0 < cols; j0 += HALF) {
            int chunks = (min(HALF, cols - j0) + 15) / 16;
            const u16 *kh = ks + j0 * ld, *vh = vs + j0 * ld;
            float s[HALF / 8][4], ds[HALF / 8][4];  // (16 queries, 32 keys): S -> P, dP -> dS
            product_nt<HDM, HALF / 8>(s, qa, kh, ld, hd, chunks, l);
            product_nt<HDM, HALF / 8>(ds, doa, vh, ld, hd, chunks, l);
#pragma unroll
            for (int nt = 0; nt < HALF / 8; nt++) {
                if (nt < 2 * chunks) {
#pragma unroll
                    for (int i = 0; i < 4; i++) {
                        int j = j0 + 8 * nt + 2 * l.t + (i & 1);
                        float pv =
                            j < cols ? exp_nonpositive(s[nt][i] * scale - lse_r[i >> 1]) : 0.0f;
                        ds[nt][i] = pv * (ds[nt][i] - d_r[i >> 1]);
                    }
                }
            }
            product_acc<HDM, HALF / 8>(dq, ds, kh, ld, hd, chunks, l);
        }
    }
    if (!active) return;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int i = r0 + l.g + 8 * r;
        if (i >= rows) continue;
        float* row = dqkv + (u64)(s0 + q0 + i) * stride + h * hd + 2 * l.t;
#pragma unroll
        for (int nd = 0; nd < HDM / 8; nd++) {
            if (nd >= hd / 8) break;
            row[8 * nd] = dq[nd][2 * r] * scale;
            row[8 * nd + 1] = dq[nd][2 * r + 1] * scale;
        }
    }
}

// dq_impl on qkv stored as f32 or (`qkv_bf16`) bf16.
template <int HDM>
static __device__ void dq_dispatch(float* dqkv, const float* dout, const void* qkv, int qkv_bf16,
                          const float* lse, const float* delta, const u32* cu, int seqs, int c,
                          int heads, float scale) {
    if (qkv_bf16)
        dq_impl<HDM>(dqkv, dout, (const u16*)qkv, lse, delta, cu, seqs, c, heads, scale);
    else
        dq_impl<HDM>(dqkv, dout, (const float*)qkv, lse, delta, cu, seqs, c, heads, scale);
}

// Launch: grid = (ceil(T / 64) + B, H), block = 128, shared = 2 * 64 * (hd + 8) u16 (k, v);
// _hd64, _hd96 and _hd128 for head sizes up to 64, 96 and 128.
extern "C" __global__ void attention_bf16_dq_hd64(float* dqkv, const float* dout, const void* qkv,
                                                  int qkv_bf16, const float* lse,
                                                  const float* delta, const u32* cu, int seqs,
                                                  int c, int heads, float scale) {
    dq_dispatch<64>(dqkv, dout, qkv, qkv_bf16, lse, delta, cu, seqs, c, heads, scale);
}

extern "C" __global__ void attention_bf16_dq_hd96(float* dqkv, const float* dout, const void* qkv,
                                                  int qkv_bf16, const float* lse,
                                                  const float* delta, const u32* cu, int seqs,
                                                  int c, int heads, float scale) {
    dq_dispatch<96>(dqkv, dout, qkv, qkv_bf16, lse, delta, cu, seqs, c, heads, scale);
}

extern "C" __global__ void attention_bf16_dq_hd128(float* dqkv, const float* dout, const void* qkv,
                                                   int qkv_bf16, const float* lse,
                                                   const float* delta, const u32* cu, int seqs,
                                                   int c, int heads, float scale) {
    dq_dispatch<128>(dqkv, dout, qkv, qkv_bf16, lse, delta, cu, seqs, c, heads, scale);
}

// The MMA and the fragment loaders alone, for a test of their layouts: one warp computes
// d (16, 8) = a (16, 16) b (16, 8) (f32 row-major in global memory, rounded to bf16) twice,
// reading b from shared memory as stored (K x N, load_b_kn) into d and transposed (N x K,
// load_b_nk) into d_t. Launch: grid = 1, block = 32, shared = 2 * 16 * 24 u16.
extern "C" __global__ void attention_bf16_mma_check(float* d, float* d_t, const float* a,
                                                    const float* b) {
    Lane l = lane_of();
    // Named apart from the templates' `smem`: an extern "C" kernel's block-scope extern shares
    // no linkage with theirs (NVRTC warning #1556); all name the same dynamic shared memory.
    DYNAMIC_SMEM(u16, check_smem);
    u16* kn = check_smem;     // (16, 8), row stride 24
    u16* nk = kn + 16 * 24;   // (8, 16), row stride 24
    for (int e = threadIdx.x; e < 16 * 8; e += blockDim.x) {
        int k = e / 8, n = e % 8;
        kn[k * 24 + n] = bf16_bits(b[e]);
        nk[n * 24 + k] = bf16_bits(b[e]);
    }
    __syncthreads();
    u32 af[4], bf[2];
    load_a_global(af, a, 16, 16, 0, 0, l);
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f}, acc_t[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    load_b_kn(bf, kn, 24, 0, 0, l);
    mma_bf16_16816(acc, af, bf);
    load_b_nk(bf, nk, 24, 0, 0, l);
    mma_bf16_16816(acc_t, af, bf);
    for (int i = 0; i < 4; i++) {
        int e = (l.g + 8 * (i >> 1)) * 8 + 2 * l.t + (i & 1);
        d[e] = acc[i];
        d_t[e] = acc_t[i];
    }
}
