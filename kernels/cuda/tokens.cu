// Token-level gathers and scatters, each forward beside its backward: patches out of the signal
// (the patch-embedding input and the loss targets), lead and position embeddings added per
// token, and the decoder's mask-token scatter. tokens (T, 3) holds (b, l, n) per row.
#include "common.cuh"

// out (T, P) row r = x[b, l, n*P .. (n+1)*P] with x (B, L, S); out is operand storage (rounded
// to bf16 as it is written when out_bf16: the patch embedding's GEMM reads it as it is). One
// thread per element.
extern "C" __global__ void gather_patches(void* out, int out_bf16, const float* x, const u32* tokens,
                                          int t, int leads, int samples, int patch) {
    u64 n_el = (u64)t * patch;
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n_el; i += (u64)gridDim.x * blockDim.x) {
        u64 r = i / patch, k = i % patch;
        u64 b = tokens[3 * r], l = tokens[3 * r + 1], n = tokens[3 * r + 2];
        store_operand(out, i, x[(b * leads + l) * samples + n * patch + k], out_bf16);
    }
}

// h (T, D) += lead_embed[l] + pos[n], lead_embed (L, D), pos (N, D). One thread per element.
extern "C" __global__ void add_lead_pos_forward(float* h, const float* lead_embed, const float* pos,
                                                const u32* tokens, int t, int d) {
    u64 n_el = (u64)t * d;
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n_el; i += (u64)gridDim.x * blockDim.x) {
        u64 r = i / d, j = i % d;
        u64 l = tokens[3 * r + 1], n = tokens[3 * r + 2];
        h[i] += lead_embed[l * d + j] + pos[n * d + j];
    }
}

// dlead_embed (L, D) += rows of dh (T, D) summed by lead, pass 1: partial[chunk] (L, D) holds,
// at [l][j], the sum of column j over the chunk's rows of lead l (f64, in row order; a lead's
// runs are summed in a register and added as each ends). One thread per (column, chunk), so no
// atomics; pass 2 is colsum_finish (matmul.cu) over the L x D entries, chunks in order.
// Launch: grid = (ceil(D / BLOCK), chunks), block = BLOCK.
extern "C" __global__ void lead_partial(double* __restrict__ partial, const float* __restrict__ dh,
                                        const u32* __restrict__ tokens, int t, int d, int leads,
                                        int rows_per_chunk) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= d) return;
    double* mine = partial + (u64)blockIdx.y * leads * d;
    for (int l = 0; l < leads; l++) mine[(u64)l * d + j] = 0.0;
    int r0 = blockIdx.y * rows_per_chunk;
    int r1 = r0 + rows_per_chunk < t ? r0 + rows_per_chunk : t;
    u32 current = MASKED_ROW;
    double acc = 0.0;
    for (int r = r0; r < r1; r++) {
        u32 l = tokens[3 * (u64)r + 1];
        if (l != current) {
            if (current != MASKED_ROW) mine[(u64)current * d + j] += acc;
            current = l;
            acc = 0.0;
        }
        acc += (double)dh[(u64)r * d + j];
    }
    if (current != MASKED_ROW) mine[(u64)current * d + j] += acc;
}

// out (T_dec, D) row r = z[src_rows[r]] with z (T_enc, D), or mask_token (D) when
// src_rows[r] == MASKED_ROW; src_rows (T_dec).
extern "C" __global__ void mask_scatter_forward(float* out, const float* z, const float* mask_token,
                                                const u32* src_rows, int t_dec, int d) {
    u64 n_el = (u64)t_dec * d;
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n_el; i += (u64)gridDim.x * blockDim.x) {
        u64 r = i / d, j = i % d;
        u32 src = src_rows[r];
        out[i] = src == MASKED_ROW ? mask_token[j] : z[(u64)src * d + j];
    }
}

// dz[src_rows[r]] += dout[r] for visible rows (each encoder row is the source of at most one
// decoder row, so every element has one writer). One thread per element.
extern "C" __global__ void mask_scatter_backward_dz(float* dz, const float* dout, const u32* src_rows,
                                                    int t_dec, int d) {
    u64 n_el = (u64)t_dec * d;
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n_el; i += (u64)gridDim.x * blockDim.x) {
        u64 r = i / d, j = i % d;
        u32 src = src_rows[r];
        if (src != MASKED_ROW) dz[(u64)src * d + j] += dout[i];
    }
}

// dmask_token pass 1: partial[chunk][j] = sum of dout[r][j] over the chunk's masked rows (f64,
// in row order); pass 2 is colsum_finish (matmul.cu). Launch: grid = (ceil(D / BLOCK), chunks).
extern "C" __global__ void mask_token_partial(double* partial, const float* dout, const u32* src_rows,
                                              int t_dec, int d, int rows_per_chunk) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= d) return;
    int r0 = blockIdx.y * rows_per_chunk;
    int r1 = r0 + rows_per_chunk < t_dec ? r0 + rows_per_chunk : t_dec;
    double acc = 0.0;
    for (int r = r0; r < r1; r++)
        if (src_rows[r] == MASKED_ROW) acc += (double)dout[(u64)r * d + j];
    partial[(u64)blockIdx.y * d + j] = acc;
}
