// SPDX-License-Identifier: Apache-2.0
#pragma once
// Conversions between the kernel-free Duration and sc_time. iommusim keeps
// SystemC's default 1 ps time resolution, so both are exact.
#include <systemc>

#include "models/common/time.hpp"

namespace iommusim {

/// sc_time::from_value() is a call into the library (~25 instructions, on every hop of every
/// request); sc_time's inline `*= double` computes int64(m_value * d + 0.5), which for 1 ps
/// times v is exactly v while v + 0.5 is representable, i.e. below 2^52 ps (75 simulated
/// minutes). Later times take the library call.
inline sc_core::sc_time to_sc(Duration d) {
    const uint64_t v = d.as_ps();
    if (v < (uint64_t{1} << 52)) [[likely]] {
        static const sc_core::sc_time one_ps = sc_core::sc_time::from_value(1);
        sc_core::sc_time t = one_ps;
        t *= static_cast<double>(v);
        return t;
    }
    return sc_core::sc_time::from_value(v);
}
inline Duration from_sc(const sc_core::sc_time& t) { return Duration::ps(t.value()); }

/// The kernel's current time, read on every walk and command step: the current context's
/// time_stamp() (what SystemC 2.3's out-of-line sc_time_stamp() returns; both the context
/// pointer and time_stamp() are public in sc_simcontext.h), read without a call once the
/// context exists.
inline Duration kernel_now() {
    if (const sc_core::sc_simcontext* c = sc_core::sc_curr_simcontext) return Duration::ps(c->time_stamp().value());
    return Duration::ps(sc_core::sc_time_stamp().value());
}
/// Delay from the kernel's current time to absolute time `at`, never negative
/// (a callee that wait()ed may have moved the kernel past `at`).
inline sc_core::sc_time from_now(Duration at) {
    const Duration n = kernel_now();
    return to_sc(at > n ? at - n : Duration::zero());
}

} // namespace iommusim
