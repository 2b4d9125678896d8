// Switching between the host harness's fibers (runtime.cpp): a fiber's context is where its
// stack pointer stood when it last switched away.
//
// On x86-64 a switch pushes the callee-saved registers (rbx, rbp, r12-r15) on the running stack,
// stores the stack pointer, loads the other's and pops its registers: a few nanoseconds and no
// system call. glibc's swapcontext, which does the same, also saves and restores the signal mask
// with a system call each time; the harness switches at every block thread's start and end and at
// every barrier, so on x86-64 that call took most (over 85%) of its time. The floating-point
// control words (MXCSR, x87) are not switched: no kernel changes them. Other architectures keep
// ucontext, as does x86-64 built with ECGFM_HOST_UCONTEXT (build.rs: ECGFM_HOST_FIBERS=ucontext,
// which CI runs so that path is tested). Included by runtime.cpp alone (on x86-64 it defines the
// switch's symbol).
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__x86_64__) && !defined(ECGFM_HOST_UCONTEXT)

// System V: save_sp in rdi, load_sp in rsi.
extern "C" void ecgfm_host_switch(void** save_sp, void* load_sp);
asm(R"(
    .text
    .globl ecgfm_host_switch
    .type ecgfm_host_switch, @function
ecgfm_host_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size ecgfm_host_switch, .-ecgfm_host_switch
)");

namespace ecgfm_host {

constexpr const char* kFiberSwitch = "switch";

struct FiberContext {
    void* sp = nullptr;
};

// Readies `ctx` to start `entry` on `stack` at the next switch to it. `entry` must never return
// (it switches away for the last time instead).
inline void fiber_init(FiberContext& ctx, char* stack, size_t bytes, void (*entry)()) {
    uintptr_t top = (reinterpret_cast<uintptr_t>(stack) + bytes) & ~uintptr_t{15};
    void** sp = reinterpret_cast<void**>(top);
    *--sp = nullptr;                           // entry's return address: none
    *--sp = reinterpret_cast<void*>(entry);    // where the switch's `ret` goes
    for (int reg = 0; reg < 6; reg++) *--sp = nullptr;  // the six registers it pops
    ctx.sp = sp;
}

// Saves the running fiber's context in `from` and resumes `to`.
inline void fiber_switch(FiberContext& from, FiberContext& to) {
    ecgfm_host_switch(&from.sp, to.sp);
}

}  // namespace ecgfm_host

#else

#include <ucontext.h>

namespace ecgfm_host {

constexpr const char* kFiberSwitch = "ucontext";

struct FiberContext {
    ucontext_t uc;
};

inline void fiber_init(FiberContext& ctx, char* stack, size_t bytes, void (*entry)()) {
    getcontext(&ctx.uc);
    ctx.uc.uc_stack.ss_sp = stack;
    ctx.uc.uc_stack.ss_size = bytes;
    ctx.uc.uc_link = nullptr;
    makecontext(&ctx.uc, entry, 0);
}

inline void fiber_switch(FiberContext& from, FiberContext& to) { swapcontext(&from.uc, &to.uc); }

}  // namespace ecgfm_host

#endif
