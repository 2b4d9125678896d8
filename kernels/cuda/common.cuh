// Shared by every kernel file: index types, the exact-arithmetic helpers that mirror the CPU
// backend's (kernels/src/cpu/fastmath.rs), and fixed-order block reductions. NVRTC sees this
// file pasted in place of `#include "common.cuh"`; the host harness (kernels/cuda-host) finds it
// on its include path. Compiled without fused multiply-add (--fmad=false on the device,
// -ffp-contract=off on the host), so a + b * c rounds twice, as on the CPU.
#pragma once

#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif

// The block's dynamic shared memory (the launch's shared-memory size) as `type name[]`; the host
// harness's compatibility header gives each emulated block its own.
#ifndef DYNAMIC_SMEM
#define DYNAMIC_SMEM(type, name) extern __shared__ type name[]
#endif

typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

// Marks a decoder row that takes the mask token (kernels/src/backend.rs MASKED_ROW).
#define MASKED_ROW 0xffffffffu

// Threads per block of the elementwise and row kernels (the Rust launch code uses the same).
#define BLOCK 256

// exp(z) for z <= 0, exactly as fastmath::exp_nonpositive: z = n ln2 + r, e^r by its degree-7
// Taylor polynomial, 2^n through the exponent bits; 0 below -87.
static __device__ __forceinline__ float exp_nonpositive(float z) {
    const float LN2_HI = 0.69314575f;
    const float LN2_LO = 1.4286068e-6f;
    const float ROUND = 12582912.0f;
    float zc = fmaxf(z, -87.0f);
    float shifted = zc * 1.44269504088896340736f + ROUND;
    float n = shifted - ROUND;
    float r = (zc - n * LN2_HI) - n * LN2_LO;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    u32 n_bits = __float_as_uint(shifted) - __float_as_uint(ROUND);
    float scale = __uint_as_float((n_bits + 127u) << 23);
    return z < -87.0f ? 0.0f : p * scale;
}

// The bf16 bits of x rounded to nearest even (crate::precision::round_bf16); NaN stays NaN.
static __device__ __forceinline__ u16 bf16_bits(float x) {
    u32 b = __float_as_uint(x);
    if ((b & 0x7fffffffu) > 0x7f800000u) return (u16)((b | 0x00400000u) >> 16);
    return (u16)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

// x rounded to the nearest bf16 (ties to even), as an f32.
static __device__ __forceinline__ float round_bf16(float x) {
    return __uint_as_float((u32)bf16_bits(x) << 16);
}

// Element i of operand storage (Backend::alloc_operand): f32, or when `bf16` its bits rounded to
// bf16 (in bf16 precision the only values its readers take).
static __device__ __forceinline__ void store_operand(void* out, u64 i, float v, int bf16) {
    if (bf16)
        ((u16*)out)[i] = bf16_bits(v);
    else
        ((float*)out)[i] = v;
}

// Element i of operand storage, widened to f32 when it holds bf16 bits.
static __device__ __forceinline__ float load_operand(const void* in, u64 i, int bf16) {
    return bf16 ? __uint_as_float((u32)((const u16*)in)[i] << 16) : ((const float*)in)[i];
}

// Sum over the block of one f64 value per thread, in a fixed tree order (no atomics): every
// thread gets the total. `scratch` holds blockDim.x doubles of shared memory; blockDim.x must be
// a power of two.
static __device__ double block_sum_f64(double v, double* scratch) {
    scratch[threadIdx.x] = v;
    __syncthreads();
    for (u32 half = blockDim.x / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) scratch[threadIdx.x] += scratch[threadIdx.x + half];
        __syncthreads();
    }
    double total = scratch[0];
    __syncthreads();  // every thread has read the total: the caller may reuse scratch at once
    return total;
}

// Sum over a warp of one f32 value per lane, in the fixed butterfly order: every lane gets it.
static __device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

// Maximum over a warp (every lane gets it).
static __device__ __forceinline__ float warp_max(float v) {
    for (int offset = 16; offset > 0; offset /= 2)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}
