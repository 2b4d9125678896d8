// The host twin of the tensor-core instruction mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// (kernels/cuda/attention_bf16.cu defines the device version under the same name). Each lane
// passes its own fragment registers, exactly as on the GPU; the twin moves them between lanes
// with warp_exchange, as the hardware routes them, and each lane computes its own 4 outputs.
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

inline float bf16_value(uint32_t bits16) {
    uint32_t u = (bits16 & 0xffffu) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// The four bf16 values of an 8-byte exchange: the low then the high half of each .b32.
inline void unpack4(uint64_t v, float* lo_pair, float* hi_pair) {
    lo_pair[0] = bf16_value((uint32_t)v);
    lo_pair[1] = bf16_value((uint32_t)(v >> 16));
    hi_pair[0] = bf16_value((uint32_t)(v >> 32));
    hi_pair[1] = bf16_value((uint32_t)(v >> 48));
}

}  // namespace ecgfm_host

inline void mma_bf16_16816(float d[4], const unsigned a[4], const unsigned b[2]) {
    using ecgfm_host::unpack4;
    using ecgfm_host::warp_exchange;
    unsigned lane = ecgfm_host::thread_idx().x % 32;
    unsigned g = lane >> 2, t = lane & 3;
    // Rows g and g + 8 of A: lane 4g + j holds their columns 2j, 2j+1 (a[0], a[1]) and
    // 2j+8, 2j+9 (a[2], a[3]).
    float row[2][16];
    uint64_t a01 = (uint64_t)a[0] | ((uint64_t)a[1] << 32);
    uint64_t a23 = (uint64_t)a[2] | ((uint64_t)a[3] << 32);
    for (unsigned j = 0; j < 4; j++) {
        unpack4(warp_exchange(a01, 4 * g + j), &row[0][2 * j], &row[1][2 * j]);
        unpack4(warp_exchange(a23, 4 * g + j), &row[0][2 * j + 8], &row[1][2 * j + 8]);
    }
    // Columns 2t and 2t + 1 of B: lane 4n + j holds rows 2j, 2j+1 (b[0]) and 2j+8, 2j+9 (b[1])
    // of column n.
    float col[2][16];
    uint64_t b01 = (uint64_t)b[0] | ((uint64_t)b[1] << 32);
    for (unsigned j = 0; j < 8; j++) {
        unsigned n = j / 4, jj = j % 4;
        unpack4(warp_exchange(b01, 4 * (2 * t + n) + jj), &col[n][2 * jj], &col[n][2 * jj + 8]);
    }
    for (int i = 0; i < 4; i++) {
        float acc = d[i];
        for (int k = 0; k < 16; k++) acc += row[i >> 1][k] * col[i & 1][k];
        d[i] = acc;
    }
}
