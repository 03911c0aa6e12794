// SPDX-License-Identifier: Apache-2.0
#pragma once
// Kernel-free simulated time. Plain C++ cores (caches, walkers, decoders)
// compute costs in Duration so that they can be unit-tested without the
// SystemC kernel; the SystemC shells convert at the boundary.
#include <compare>
#include <cstdint>

namespace iommusim {

/// A span of simulated time with picosecond resolution (the SystemC default
/// resolution), so conversions to sc_time are exact.
class Duration {
public:
    constexpr Duration() = default;
    static constexpr Duration ps(uint64_t v) { return Duration(v); }
    static constexpr Duration ns(double v) { return Duration(static_cast<uint64_t>(v * 1000.0 + 0.5)); }
    static constexpr Duration us(double v) { return ns(v * 1000.0); }
    static constexpr Duration zero() { return Duration(); }

    constexpr uint64_t as_ps() const { return ps_; }
    constexpr double as_ns() const { return static_cast<double>(ps_) / 1000.0; }
    constexpr double as_us() const { return static_cast<double>(ps_) / 1.0e6; }

    constexpr Duration& operator+=(Duration o) { ps_ += o.ps_; return *this; }
    constexpr Duration& operator-=(Duration o) { ps_ -= o.ps_; return *this; }
    friend constexpr Duration operator+(Duration a, Duration b) { return Duration(a.ps_ + b.ps_); }
    friend constexpr Duration operator-(Duration a, Duration b) { return Duration(a.ps_ - b.ps_); }
    friend constexpr Duration operator*(Duration a, uint64_t k) { return Duration(a.ps_ * k); }
    friend constexpr Duration operator*(uint64_t k, Duration a) { return Duration(a.ps_ * k); }
    friend constexpr auto operator<=>(Duration, Duration) = default;

private:
    constexpr explicit Duration(uint64_t v) : ps_(v) {}
    uint64_t ps_ = 0;
};

/// Time to move `bytes` over a resource of `bytes_per_ns` bandwidth (0 = infinite).
constexpr Duration transfer_time(uint64_t bytes, double bytes_per_ns) {
    return bytes_per_ns <= 0.0 ? Duration::zero() : Duration::ns(static_cast<double>(bytes) / bytes_per_ns);
}

/// A resource modelled in loosely-timed style (shared/DESIGN.md "Timing"): a
/// request arriving at t on a resource busy until b starts at max(t, b) and
/// pushes b forward, so queueing appears without a context switch.
class BusyUntil {
public:
    /// Returns the start time of an occupation of `hold` that arrives at `arrival`.
    constexpr Duration reserve(Duration arrival, Duration hold) {
        Duration start = arrival > busy_until_ ? arrival : busy_until_;
        busy_until_ = start + hold;
        return start;
    }
    constexpr Duration busy_until() const { return busy_until_; }

private:
    Duration busy_until_;
};

} // namespace iommusim
