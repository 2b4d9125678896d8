// What the host runtime (runtime.cpp) tells the sanitizer the kernels are built with (build.rs,
// ECGFM_HOST_SANITIZE=address or thread); without one, every hook does nothing.
//
// AddressSanitizer must know which stack runs, so each fiber switch is announced, and it is
// told which shared-memory bytes lie past the launch's. ThreadSanitizer sees each block thread
// as a fiber of its own, switched to without implied ordering, and is told the orderings a GPU
// guarantees: everything before a launch happens before each of its threads, a __syncthreads()
// orders the block's threads' accesses before it against theirs after it, and a launch's
// threads all happen before whatever comes after the launch. Nothing else is ordered (not the
// lanes of a warp at a shuffle, not two blocks run one after the other), so a thread that reads
// or writes what another thread wrote, with no barrier between, is reported whichever order the
// harness ran them in. One exception keeps it fast: blocks alternate between two sets of fibers,
// stacks and shared memory (runtime.cpp), and a block is ordered after the last block of its set,
// so a race between two blocks is found when they run one after the other, in either order (a
// grid of two blocks, or neighbours), not between blocks further apart.
#pragma once

#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(ECGFM_HOST_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

namespace ecgfm_host::hooks {

#if defined(__SANITIZE_ADDRESS__)
inline void start_switch(void** save, const void* bottom, size_t size) {
    __sanitizer_start_switch_fiber(save, bottom, size);
}
inline void finish_switch(void* save, const void** bottom, size_t* size) {
    __sanitizer_finish_switch_fiber(save, bottom, size);
}
inline void poison(void* at, size_t bytes) { ASAN_POISON_MEMORY_REGION(at, bytes); }
inline void unpoison(void* at, size_t bytes) { ASAN_UNPOISON_MEMORY_REGION(at, bytes); }
#else
inline void start_switch(void**, const void*, size_t) {}
inline void finish_switch(void*, const void**, size_t*) {}
inline void poison(void*, size_t) {}
inline void unpoison(void*, size_t) {}
#endif

#if defined(ECGFM_HOST_TSAN)
inline void* current_fiber() { return __tsan_get_current_fiber(); }
inline void* new_fiber() { return __tsan_create_fiber(0); }
inline void drop_fiber(void* fiber) { __tsan_destroy_fiber(fiber); }
inline void switch_to(void* fiber) { __tsan_switch_to_fiber(fiber, __tsan_switch_to_fiber_no_sync); }
inline void release(void* sync) { __tsan_release(sync); }
inline void acquire(void* sync) { __tsan_acquire(sync); }
#else
inline void* current_fiber() { return nullptr; }
inline void* new_fiber() { return nullptr; }
inline void drop_fiber(void*) {}
inline void switch_to(void*) {}
inline void release(void*) {}
inline void acquire(void*) {}
#endif

}  // namespace ecgfm_host::hooks
