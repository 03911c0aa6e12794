// SPDX-License-Identifier: Apache-2.0
#include "models/common/sc_asan.hpp"

#include <systemc>
#include <sysc/kernel/sc_dynamic_processes.h>
#include <vector>

namespace iommusim {

namespace {
/// Every thread process under `objs` that has not ended.
void live_threads(const std::vector<sc_core::sc_object*>& objs, std::vector<sc_core::sc_process_handle>& out) {
    for (sc_core::sc_object* o : objs) {
        sc_core::sc_process_handle h(o);
        if (h.valid() && h.proc_kind() == sc_core::SC_THREAD_PROC_ && !h.terminated()) out.push_back(h);
        live_threads(o->get_child_objects(), out);
    }
}
} // namespace

void unwind_live_threads() noexcept {
    if (sc_core::sc_get_status() != sc_core::SC_PAUSED) return;
    try {
        sc_core::sc_spawn_options method;
        method.spawn_method();
        sc_core::sc_spawn(
            [] {
                std::vector<sc_core::sc_process_handle> threads;
                live_threads(sc_core::sc_get_top_level_objects(), threads);
                for (auto& t : threads)
                    if (!t.terminated()) t.kill();
            },
            "end_of_run_unwind", &method);
        sc_core::sc_start(sc_core::SC_ZERO_TIME);
        restore_main_stack_for_asan();
    } catch (...) {
        // Callers are destructors; the unwinding is only for leak checkers.
    }
}

} // namespace iommusim
