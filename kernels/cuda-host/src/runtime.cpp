// The host harness's launch runtime: runs a kernel's grid block by block, the block's threads as
// cooperative fibers with barriers for __syncthreads() and warp shuffles (see host_compat.h).
#include "host_compat.h"

#include <cstdlib>
#include <vector>

#include "fiber_switch.h"
#include "sanitizer_hooks.h"

extern "C" const ecgfm_host::Kernel* ecgfm_host_find(const char* name);

namespace ecgfm_host {

thread_local dim3 block_idx, block_dim, grid_dim;

namespace {

constexpr size_t STACK_BYTES = 64 * 1024;
// Dynamic shared memory a GPU grants a launch without opting in (cudaFuncSetAttribute).
constexpr unsigned SHARED_LIMIT = 48 * 1024;
// NaN bytes after each block's shared memory: a read past its end gives NaN, a write there is
// found when the block ends.
constexpr size_t GUARD_DOUBLES = 64;
// Consecutive blocks alternate between this many sets of fibers, stacks and shared memory, so that
// under ThreadSanitizer two blocks run one after the other stay unordered (sanitizer_hooks.h).
constexpr unsigned SETS = 2;

enum class State { Runnable, WaitBlock, WaitWarp, Done };

struct Fiber {
    FiberContext ctx;
    char* stack;
    void* tsan_fiber;
    dim3 tid;
    unsigned linear;
    State state;
    uint64_t gen;  // the barrier generation it waits to see advance
};

// One block being run on this OS thread.
struct Block {
    std::vector<Fiber> fibers;
    FiberContext main;
    size_t current = 0;
    unsigned live = 0;
    unsigned block_arrived = 0;
    uint64_t block_gen = 0;
    std::vector<unsigned> warp_live, warp_arrived;
    std::vector<uint64_t> warp_gen;
    // Per warp, the collective its first lane to arrive is at (see sync_warp), until release.
    std::vector<uint64_t> warp_op;
    std::vector<uint64_t> slots;
    std::vector<uint32_t> gathered;  // WARP_GATHER_WORDS per thread
    std::vector<double> shared[SETS];  // doubles, so any type is aligned
    int misuse = 0;                    // a launch status (6-9) for the block's first misuse
    unsigned set = 0;                  // the set of the block running: its index mod SETS
    unsigned round = 0;                // and its index / SETS
    const Kernel* kernel = nullptr;
    void** args = nullptr;
    // The scheduler's stack and fiber, as the sanitizers' fiber annotations need them.
    const void* main_bottom = nullptr;
    size_t main_size = 0;
    void* main_fiber = nullptr;
};

// ThreadSanitizer's orderings on this OS thread (sanitizer_hooks.h): the scheduler releases
// `block_start` before a launch and its threads acquire it as they start. The k-th block of a
// launch runs set k % SETS in round k / SETS; its threads acquire `block_end[set][round % 2]` as
// they start and release `block_end[set][(round + 1) % 2]` as they end, so a block is ordered
// after the last block of its set (whose fibers, stacks and shared memory it reuses), neither
// after the block just before it nor a thread after another of its own block that ended first.
// The scheduler acquires every `block_end` after the launch. `barrier[set][g % 2]` is a block's
// __syncthreads() of generation g.
thread_local char block_start, block_end[SETS][2], barrier[SETS][2];

thread_local Block* running = nullptr;

// The stacks, and ThreadSanitizer's fibers, of this OS thread's block threads, kept across blocks
// and launches (allocating them per launch costs more than most kernels, and a sanitizer fiber
// costs far more). Thread i of a block of set s runs on stack i * SETS + s as that fiber.
struct FiberPool {
    std::vector<char*> stacks;
    std::vector<void*> sanitizer_fibers;
    ~FiberPool() {
        for (char* s : stacks) std::free(s);
        for (void* f : sanitizer_fibers) hooks::drop_fiber(f);
    }
    void ensure(size_t n) {
        while (stacks.size() < n) {
            stacks.push_back(static_cast<char*>(std::malloc(STACK_BYTES)));
            sanitizer_fibers.push_back(hooks::new_fiber());
        }
    }
};

thread_local FiberPool fiber_pool;

Fiber& me() { return running->fibers[running->current]; }

// From the scheduler into fiber `f`, back when it waits or ends.
void enter_fiber(Block& b, Fiber& f) {
    void* save = nullptr;
    hooks::start_switch(&save, f.stack, STACK_BYTES);
    hooks::switch_to(f.tsan_fiber);
    fiber_switch(b.main, f.ctx);
    hooks::finish_switch(save, nullptr, nullptr);
}

// From the running fiber back into the scheduler; returns when the scheduler resumes it.
void leave_fiber(Fiber& f) {
    void* save = nullptr;
    hooks::start_switch(&save, running->main_bottom, running->main_size);
    hooks::switch_to(running->main_fiber);
    fiber_switch(f.ctx, running->main);
    hooks::finish_switch(save, nullptr, nullptr);
}

void trampoline() {
    Block& b = *running;
    hooks::finish_switch(nullptr, &b.main_bottom, &b.main_size);
    hooks::acquire(&block_start);
    hooks::acquire(&block_end[b.set][b.round % 2]);
    b.kernel->invoke(b.kernel->fn, b.args);
    me().state = State::Done;
    hooks::release(&block_end[b.set][(b.round + 1) % 2]);
    // Back to the scheduler for good: this fiber's stack is done with.
    hooks::start_switch(nullptr, b.main_bottom, b.main_size);
    hooks::switch_to(b.main_fiber);
    FiberContext finished;
    fiber_switch(finished, b.main);
}

// Advances every barrier that all live threads (of the block / of the warp) have reached. A
// block barrier that threads which had returned never reached is noted (status 7): on a GPU
// every thread of the block must reach __syncthreads(). So is (status 6) a warp exchange (a
// shuffle, an MMA's gather) without all 32 lanes: every kernel's shuffles and MMAs take the full
// mask, which on a GPU needs all 32 lanes (a block not a multiple of 32 threads has absent lanes,
// a lane that returned is inactive) or reads undefined values.
void release(Block& b) {
    if (b.block_arrived > 0 && b.block_arrived == b.live) {
        if (b.live < b.fibers.size() && b.misuse == 0) b.misuse = 7;
        b.block_gen++;
        b.block_arrived = 0;
    }
    for (size_t w = 0; w < b.warp_live.size(); w++) {
        if (b.warp_arrived[w] > 0 && b.warp_arrived[w] == b.warp_live[w]) {
            if (b.warp_live[w] != 32 && b.misuse == 0) b.misuse = 6;
            b.warp_gen[w]++;
            b.warp_arrived[w] = 0;
        }
    }
}

bool runnable(const Block& b, const Fiber& f) {
    switch (f.state) {
        case State::Runnable: return true;
        case State::WaitBlock: return f.gen != b.block_gen;
        case State::WaitWarp: return f.gen != b.warp_gen[f.linear / 32];
        default: return false;
    }
}

// Runs one block to completion, its runnable threads in ascending order (descending when
// `reversed`) between barriers; false when its threads deadlock on a barrier.
bool run_block(Block& b, bool reversed) {
    size_t n = b.fibers.size();
    for (size_t i = 0; i < n; i++) {
        Fiber& f = b.fibers[i];
        f.state = State::Runnable;
        f.stack = fiber_pool.stacks[i * SETS + b.set];
        f.tsan_fiber = fiber_pool.sanitizer_fibers[i * SETS + b.set];
        fiber_init(f.ctx, f.stack, STACK_BYTES, trampoline);
    }
    b.live = (unsigned)n;
    b.block_arrived = 0;
    b.misuse = 0;
    for (size_t w = 0; w < b.warp_live.size(); w++) {
        b.warp_live[w] = (unsigned)std::min<size_t>(32, n - w * 32);
        b.warp_arrived[w] = 0;
    }
    while (b.live > 0) {
        bool ran = false;
        for (size_t k = 0; k < n; k++) {
            size_t i = reversed ? n - 1 - k : k;
            Fiber& f = b.fibers[i];
            if (!runnable(b, f)) continue;
            f.state = State::Runnable;
            b.current = i;
            enter_fiber(b, f);
            ran = true;
            if (f.state == State::Done) {
                b.live--;
                b.warp_live[f.linear / 32]--;
            }
            release(b);
        }
        if (!ran) {
            release(b);
            bool any = false;
            for (auto& f : b.fibers) any = any || runnable(b, f);
            if (!any) return false;
        }
    }
    return true;
}

void wait_here(State state, uint64_t gen) {
    Fiber& f = me();
    f.state = state;
    f.gen = gen;
    leave_fiber(f);
}

// Waits until every live lane of the warp has arrived. `op` names the collective the lane is at:
// lanes that meet at different ones (a shuffle against an MMA, or shuffles with different
// masks) each see another's registers as if they were their own, undefined on a GPU (status 8).
void sync_warp(uint64_t op) {
    Block& b = *running;
    unsigned w = me().linear / 32;
    if (b.warp_arrived[w] == 0) b.warp_op[w] = op;
    else if (b.warp_op[w] != op && b.misuse == 0) b.misuse = 8;
    b.warp_arrived[w]++;
    wait_here(State::WaitWarp, b.warp_gen[w]);
}

// Readies block `b`'s shared memory: NaN bytes, then the guard, poisoned for AddressSanitizer.
void begin_block(Block& b, size_t shared_bytes) {
    std::vector<double>& shared = b.shared[b.set];
    shared.resize((shared_bytes + 7) / 8 + GUARD_DOUBLES);
    std::memset(shared.data(), 0xff, shared.size() * 8);
    char* bytes = reinterpret_cast<char*>(shared.data());
    hooks::poison(bytes + shared_bytes, shared.size() * 8 - shared_bytes);
}

// Undoes begin_block; 4 when a thread wrote into the guard after the shared memory, else 0.
int end_block(Block& b, size_t shared_bytes) {
    std::vector<double>& shared = b.shared[b.set];
    unsigned char* bytes = reinterpret_cast<unsigned char*>(shared.data());
    size_t total = shared.size() * 8;
    hooks::unpoison(bytes + shared_bytes, total - shared_bytes);
    for (size_t at = shared_bytes; at < total; at++)
        if (bytes[at] != 0xff) return 4;
    return 0;
}

}  // namespace

const dim3& thread_idx() { return me().tid; }

void* dynamic_shared() { return running->shared[running->set].data(); }

void sync_block() {
    char* sync = &barrier[running->set][running->block_gen % 2];
    hooks::release(sync);
    running->block_arrived++;
    wait_here(State::WaitBlock, running->block_gen);
    hooks::acquire(sync);
}

uint64_t warp_exchange(uint64_t mine, unsigned src_lane, unsigned mask) {
    Block& b = *running;
    if (mask != 0xffffffffu && b.misuse == 0) b.misuse = 9;
    uint64_t op = uint64_t{1} << 32 | mask;
    unsigned linear = me().linear;
    b.slots[linear] = mine;
    sync_warp(op);
    unsigned src = linear / 32 * 32 + src_lane;
    uint64_t got = src < b.fibers.size() ? b.slots[src] : mine;
    sync_warp(op);
    return got;
}

void warp_gather(const uint32_t* mine, unsigned words, uint32_t* all) {
    Block& b = *running;
    unsigned linear = me().linear, first = linear / 32 * 32;
    uint64_t op = uint64_t{2} << 32 | words;
    std::memcpy(&b.gathered[linear * WARP_GATHER_WORDS], mine, words * 4);
    sync_warp(op);
    for (unsigned lane = 0; lane < 32; lane++) {
        if (first + lane < b.fibers.size())
            std::memcpy(all + lane * words, &b.gathered[(first + lane) * WARP_GATHER_WORDS],
                        words * 4);
        else
            std::memset(all + lane * words, 0, words * 4);
    }
    sync_warp(op);
}

}  // namespace ecgfm_host

using namespace ecgfm_host;

// Launches `name` over grid x block threads with `shared_bytes` of dynamic shared memory per
// block. args[i] points to the i-th argument, whose kind letter is kinds[i] (see kind_of).
// `reversed` runs the blocks, and each block's threads between barriers, in descending order
// instead of ascending: a kernel whose result depends on that order has a race (a read of what
// another thread or block writes, with no barrier between), which a GPU may run either way.
// Returns 0 on success, 1 for an unknown kernel, 2 when a block's barriers deadlock, 3 when the
// arguments do not match the kernel's parameters, 4 when a block wrote past its shared memory,
// 5 when the launch asks for more shared memory than a GPU grants without opting in, 6 when a
// warp shuffle or MMA ran in a warp without all 32 lanes live, 7 when a barrier was reached after
// threads of the block had returned (both undefined on a GPU, see release), 8 when a warp's lanes
// met at different collectives (see sync_warp), 9 when a shuffle's mask was not the full warp's
// (which the harness does not emulate).
extern "C" int ecgfm_host_launch(const char* name, const unsigned* grid, const unsigned* block,
                                 unsigned shared_bytes, void** args, const char* kinds,
                                 int reversed) {
    const Kernel* kernel = ecgfm_host_find(name);
    if (!kernel) return 1;
    if (std::strcmp(kernel->kinds, kinds) != 0) return 3;
    if (shared_bytes > SHARED_LIMIT) return 5;
    Block b;
    size_t threads = (size_t)block[0] * block[1] * block[2];
    b.fibers.resize(threads);
    fiber_pool.ensure(threads * SETS);
    for (size_t i = 0; i < threads; i++) {
        Fiber& f = b.fibers[i];
        f.linear = (unsigned)i;
        f.tid = dim3{(unsigned)(i % block[0]), (unsigned)(i / block[0] % block[1]),
                     (unsigned)(i / ((size_t)block[0] * block[1]))};
    }
    size_t warps = (threads + 31) / 32;
    b.warp_live.resize(warps);
    b.warp_arrived.resize(warps);
    b.warp_gen.assign(warps, 0);
    b.warp_op.assign(warps, 0);
    b.slots.resize(threads);
    b.gathered.resize(threads * WARP_GATHER_WORDS);
    b.kernel = kernel;
    b.args = args;
    block_dim = dim3{block[0], block[1], block[2]};
    grid_dim = dim3{grid[0], grid[1], grid[2]};
    Block* outer = running;
    running = &b;
    b.main_fiber = hooks::current_fiber();
    hooks::release(&block_start);
    int status = 0;
    size_t blocks = (size_t)grid[0] * grid[1] * grid[2];
    for (size_t k = 0; k < blocks && status == 0; k++) {
        size_t i = reversed ? blocks - 1 - k : k;
        block_idx = dim3{(unsigned)(i % grid[0]), (unsigned)(i / grid[0] % grid[1]),
                         (unsigned)(i / ((size_t)grid[0] * grid[1]))};
        b.set = (unsigned)(k % SETS);
        b.round = (unsigned)(k / SETS);
        begin_block(b, shared_bytes);
        status = run_block(b, reversed != 0) ? b.misuse : 2;
        int guard = end_block(b, shared_bytes);
        if (status == 0) status = guard;
    }
    for (auto& ends : block_end)
        for (char& end : ends) hooks::acquire(&end);
    running = outer;
    return status;
}

// The kind letters of kernel `name`'s parameters (see kind_of), or null when the host build has
// no such kernel: the shape-checking device (`shape_device()` in src/lib.rs) checks launches by
// them.
extern "C" const char* ecgfm_host_kinds(const char* name) {
    const Kernel* kernel = ecgfm_host_find(name);
    return kernel ? kernel->kinds : nullptr;
}

// How this build switches between block threads: "switch" (x86-64's own) or "ucontext"
// (fiber_switch.h).
extern "C" const char* ecgfm_host_fibers() { return ecgfm_host::kFiberSwitch; }
