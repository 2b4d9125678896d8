// The host twin of the tensor-core instruction mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// (kernels/cuda/attention_bf16.cu defines the device version under the same name). Each lane
// passes its own fragment registers, exactly as on the GPU; the twin gathers all lanes'
// registers (warp_gather, one warp exchange) and each lane computes its own 4 outputs from the
// elements the fragment layouts place there.
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type"),
// g = lane >> 2, t = lane % 4, lower column / row index in the low 16 bits of each .b32:
//   a[0] = A(g, 2t..2t+1)  a[1] = A(g+8, 2t..)  a[2] = A(g, 2t+8..)  a[3] = A(g+8, 2t+8..)
//   b[0] = B(2t..2t+1, g)  b[1] = B(2t+8.., g)
//   d[0], d[1] = D(g, 2t), D(g, 2t+1)            d[2], d[3] = D(g+8, 2t), D(g+8, 2t+1)
// Products of bf16 values are exact in f32; each output is c + sum over k = 0..15 in order, in
// f32 (the hardware's internal summation order may differ in the last bits).
#pragma once

#include <cstdint>
#include <cstring>

namespace ecgfm_host {

// Registers per lane in the gathered set: a[0..3], then b[0..1].
constexpr unsigned MMA_WORDS = 6;

// The bf16 element `k % 2` (low or high half) of register `reg` of lane `lane`, as f32.
inline float mma_element(const uint32_t* all, unsigned lane, unsigned reg, unsigned k) {
    uint32_t u = (all[lane * MMA_WORDS + reg] >> (16 * (k % 2))) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// A(r, k): lane 4 (r % 8) + (k % 8) / 2, register (r >= 8) + 2 (k >= 8).
inline float mma_a(const uint32_t* all, unsigned r, unsigned k) {
    return mma_element(all, 4 * (r % 8) + (k % 8) / 2, (r >= 8) + 2 * (k >= 8), k);
}

// B(k, n): lane 4 n + (k % 8) / 2, register 4 + (k >= 8).
inline float mma_b(const uint32_t* all, unsigned k, unsigned n) {
    return mma_element(all, 4 * n + (k % 8) / 2, 4 + (k >= 8), k);
}

}  // namespace ecgfm_host

inline void mma_bf16_16816(float d[4], const unsigned a[4], const unsigned b[2]) {
    uint32_t mine[ecgfm_host::MMA_WORDS] = {a[0], a[1], a[2], a[3], b[0], b[1]};
    uint32_t all[32 * ecgfm_host::MMA_WORDS];
    ecgfm_host::warp_gather(mine, ecgfm_host::MMA_WORDS, all);
    unsigned lane = ecgfm_host::thread_idx().x % 32;
    unsigned g = lane >> 2, t = lane & 3;
    for (unsigned i = 0; i < 4; i++) {
        unsigned r = g + 8 * (i >> 1), n = 2 * t + (i & 1);
        float acc = d[i];
        for (unsigned k = 0; k < 16; k++)
            acc += ecgfm_host::mma_a(all, r, k) * ecgfm_host::mma_b(all, k, n);
        d[i] = acc;
    }
}
