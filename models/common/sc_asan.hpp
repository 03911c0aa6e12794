// SPDX-License-Identifier: Apache-2.0
#pragma once
// AddressSanitizer and SystemC's coroutines: Debian's libsystemc announces its
// QuickThreads switches to ASan (__sanitizer_start/finish_switch_fiber), but
// for the switch back to sc_main's own coroutine it announces a stack of
// address 0 and size 0, so after sc_start returns ASan holds bogus bounds for
// the main thread's stack. Every C++ throw on the main thread afterwards
// ("ASan is ignoring requested __asan_handle_no_return") then leaves the
// unwound frames' redzones poisoned, and a later stack access reports a
// stack-buffer-overflow that is not one (google/sanitizers#189). Found by the
// CLI's write-failure test under `scripts/test --sanitize`.
// restore_main_stack_for_asan() re-announces the real bounds (as a switch to
// the main thread's own stack); call it on the main thread after sc_start. A
// no-op without ASan.
//
// LeakSanitizer and SystemC's coroutines: at the end of a run the model's
// threads are suspended in wait(), and what their frames own (payloads,
// vectors, the event list of a wait(a | b)) lives on their coroutine stacks,
// which SystemC never unwinds and LSan cannot scan here (use_stacks=0,
// scripts/test): it reports it all as leaked. unwind_live_threads() kills
// them (from a spawned method, as IEEE 1666 process control allows), which
// unwinds each stack and runs its destructors. Call it when results have been
// read (Platform's destructor, test rigs' destructors), with the simulation
// paused (sc_pause, or sc_start(duration) run out): a stopped simulation
// (sc_stop) cannot run the kill, and the call then does nothing.
#if defined(__SANITIZE_ADDRESS__)
#define IOMMUSIM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define IOMMUSIM_ASAN 1
#endif
#endif

#ifdef IOMMUSIM_ASAN
#include <cstddef>
#include <pthread.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace iommusim {

inline void restore_main_stack_for_asan() {
#ifdef IOMMUSIM_ASAN
    struct Stack {
        void* bottom = nullptr;
        size_t size = 0;
    };
    // The main thread's stack, read once (pthread_getattr_np parses /proc/self/maps).
    static const Stack main_stack = [] {
        Stack st;
        pthread_attr_t attr;
        if (pthread_getattr_np(pthread_self(), &attr) != 0) return st;
        if (pthread_attr_getstack(&attr, &st.bottom, &st.size) != 0) st = Stack{};
        pthread_attr_destroy(&attr);
        return st;
    }();
    if (main_stack.bottom == nullptr) return;
    void* fake_stack = nullptr;
    __sanitizer_start_switch_fiber(&fake_stack, main_stack.bottom, main_stack.size);
    __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#endif
}

/// Kills every SystemC thread that has not ended, so that its coroutine stack
/// unwinds (see above). Never throws; does nothing unless the simulation is
/// paused. Runs one delta cycle at the current time.
void unwind_live_threads() noexcept;

} // namespace iommusim
