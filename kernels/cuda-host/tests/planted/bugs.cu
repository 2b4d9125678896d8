// Kernels with deliberate bugs, built into the host harness beside kernels/cuda/*.cu (build.rs)
// for tests/planted_bugs.rs: each bug must be caught by the check meant for it, so a harness or
// sanitizer run that finds nothing in the real kernels means something. Never compiled for a GPU.

// Thread 0 writes shared memory that thread 1 then reads, with no __syncthreads() between: what
// thread 1 copies to out[0] depends on which thread runs first. Block of 2 threads, 4 bytes of
// dynamic shared memory.
extern "C" __global__ void planted_shared_race(float* out) {
    DYNAMIC_SMEM(float, cell);
    if (threadIdx.x == 0) cell[0] = 1.0f;
    if (threadIdx.x == 1) out[0] = cell[0];
}

// Block 1 reads what block 0 writes (nothing orders two blocks of one launch): out[1] is 1 or
// whatever out[0] held before. Grid of 2 blocks of 1 thread.
extern "C" __global__ void planted_block_race(float* out) {
    if (blockIdx.x == 0) out[0] = 1.0f;
    if (blockIdx.x == 1) out[1] = out[0];
}

// Each of n + 1 threads writes its element of an n-element buffer: the last writes past its end.
extern "C" __global__ void planted_global_overrun(float* out, int n) {
    int i = threadIdx.x;
    if (i <= n) out[i] = (float)i;
}

// Writes the float just past the launch's `bytes` of dynamic shared memory.
extern "C" __global__ void planted_shared_overrun(int bytes) {
    DYNAMIC_SMEM(float, cells);
    if (threadIdx.x == 0) cells[bytes / 4] = 1.0f;
}

// Thread 0 waits at the block's barrier while thread 1 waits at a warp shuffle: neither can
// complete (a barrier some threads of the block never reach). Block of 2 threads.
extern "C" __global__ void planted_deadlock(float* out) {
    if (threadIdx.x == 0) __syncthreads();
    else out[0] = __shfl_xor_sync(0xffffffffu, out[0], 1);
}

// Thread 0 copies a shared-memory float that no thread wrote. Block of 1 thread, 4 bytes.
extern "C" __global__ void planted_unwritten_shared_read(float* out) {
    DYNAMIC_SMEM(float, cells);
    out[0] = cells[0];
}

// A full-mask warp sum in a block of 48 threads: the second warp has 16 lanes, so its shuffles
// read lanes that do not exist. Block of 48 threads.
extern "C" __global__ void planted_partial_warp_shuffle(float* out) {
    float v = 1.0f;
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
    out[threadIdx.x] = v;
}

// Lanes 16..31 return; lanes 0..15 then shuffle with a full mask, reading the returned lanes.
// Block of 32 threads.
extern "C" __global__ void planted_shuffle_after_return(float* out) {
    if (threadIdx.x >= 16) return;
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 16);
}

// Thread 1 returns; thread 0 then waits at the block's barrier. Block of 2 threads.
extern "C" __global__ void planted_barrier_after_return(float* out) {
    if (threadIdx.x == 1) return;
    __syncthreads();
    out[0] = 1.0f;
}

// Lanes 0..15 shuffle while lanes 16..31 issue a tensor-core MMA: the two warp collectives meet,
// and each half reads the other's registers as its own. Block of 32 threads.
extern "C" __global__ void planted_mixed_collectives(float* out) {
    unsigned lane = threadIdx.x;
    if (lane < 16) {
        out[lane] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
    } else {
        float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        const unsigned a[4] = {0, 0, 0, 0}, b[2] = {0, 0};
        mma_bf16_16816(d, a, b);
        out[lane] = d[0];
    }
}

// Every lane shuffles within its half-warp's mask, which the harness does not emulate (it would
// exchange with all 32 lanes). Block of 32 threads.
extern "C" __global__ void planted_half_mask_shuffle(float* out) {
    unsigned lane = threadIdx.x;
    unsigned mask = lane < 16 ? 0x0000ffffu : 0xffff0000u;
    out[lane] = __shfl_xor_sync(mask, (float)lane, 1);
}
