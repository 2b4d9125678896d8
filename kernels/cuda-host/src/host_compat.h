// CUDA-on-the-host compatibility layer: compiles the kernels of kernels/cuda/*.cu with g++ so the
// host harness can run them without a GPU. Included before each .cu (g++ -include).
//
// A launch runs the grid's blocks one after another. The threads of a block are fibers
// (fiber_switch.h) on the calling OS thread: each runs until it reaches __syncthreads() or a warp
// shuffle, then the next one runs (in ascending order, or descending for blocks and threads
// alike when the launch asks: a race shows up in one order or the other); a barrier releases
// when every thread still running has arrived (threads that returned count as arrived, as on
// current GPUs). Cooperative fibers
// keep hundreds of block threads cheap on a two-core machine and make every run of a launch
// identical. A barrier that can never release (a __syncthreads() some threads skip) aborts the
// launch with an error instead of hanging. Each block gets its own dynamic shared memory, NaN
// bytes followed by a NaN guard that must stay untouched, and at most 48 KiB of it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

using std::max;
using std::min;

#define __global__
#define __device__
#define __forceinline__ inline

struct dim3 {
    unsigned x, y, z;
};

namespace ecgfm_host {

// The running launch's per-thread coordinates and shared state (defined in runtime.cpp).
const dim3& thread_idx();
extern thread_local dim3 block_idx, block_dim, grid_dim;
void* dynamic_shared();
void sync_block();
// Exchanges 8 bytes with the other lanes of the warp: returns lane `src_lane`'s value. `mask` is
// the shuffle's member mask: the harness emulates the full mask only, and refuses any other.
uint64_t warp_exchange(uint64_t mine, unsigned src_lane, unsigned mask);
// Most 32-bit words one warp_gather moves per lane.
constexpr unsigned WARP_GATHER_WORDS = 8;
// Every lane of the warp publishes `words` (<= WARP_GATHER_WORDS) words and receives all 32
// lanes' in `all` (lane l's at all[l * words]; zeros for lanes beyond the block): one exchange
// of whole register sets, as a warp-collective instruction sees them.
void warp_gather(const uint32_t* mine, unsigned words, uint32_t* all);

}  // namespace ecgfm_host

#define threadIdx (ecgfm_host::thread_idx())
#define blockIdx (ecgfm_host::block_idx)
#define blockDim (ecgfm_host::block_dim)
#define gridDim (ecgfm_host::grid_dim)
#define __syncthreads() ecgfm_host::sync_block()
#define DYNAMIC_SMEM(type, name) type* name = static_cast<type*>(ecgfm_host::dynamic_shared())

template <typename T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask) {
    static_assert(sizeof(T) <= 8, "shuffle of at most 8 bytes");
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    unsigned lane = ecgfm_host::thread_idx().x % 32;
    uint64_t got = ecgfm_host::warp_exchange(bits, lane ^ (unsigned)lane_mask, mask);
    T out;
    std::memcpy(&out, &got, sizeof(T));
    return out;
}

// The host twin of the tensor-core MMA (attention_bf16.cu).
#include "mma_twin.h"

inline unsigned __float_as_uint(float f) {
    unsigned u;
    std::memcpy(&u, &f, 4);
    return u;
}

inline float __uint_as_float(unsigned u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

namespace ecgfm_host {

// A kernel entry as the registry holds it: its name, its address, and a caller that unpacks the
// type-erased arguments after checking their number and kinds.
struct Kernel {
    const char* name;
    void* fn;
    // One kind letter per parameter (see kind_of), checked against the launch's arguments.
    const char* kinds;
    void (*invoke)(void* fn, void** args);
};

// Kind letter of a parameter type: p pointer, i int, u unsigned long long, f float, d double.
template <typename T>
constexpr char kind_of() {
    if constexpr (std::is_pointer_v<T>) return 'p';
    else if constexpr (std::is_same_v<T, int>) return 'i';
    else if constexpr (std::is_same_v<T, unsigned long long>) return 'u';
    else if constexpr (std::is_same_v<T, float>) return 'f';
    else if constexpr (std::is_same_v<T, double>) return 'd';
    else return '?';
}

template <typename... A, size_t... I>
void call_unpacked(void (*k)(A...), void** args, std::index_sequence<I...>) {
    k(*static_cast<std::remove_reference_t<A>*>(args[I])...);
}

template <typename... A>
void invoke(void* fn, void** args) {
    call_unpacked(reinterpret_cast<void (*)(A...)>(fn), args, std::index_sequence_for<A...>{});
}

template <typename... A>
struct Kinds {
    static constexpr char value[] = {kind_of<A>()..., '\0'};
};

template <typename... A>
Kernel entry(const char* name, void (*k)(A...)) {
    return Kernel{name, reinterpret_cast<void*>(k), Kinds<A...>::value, &invoke<A...>};
}

}  // namespace ecgfm_host
