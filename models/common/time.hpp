// SPDX-License-Identifier: Apache-2.0
#pragma once
// Kernel-free simulated time. Plain C++ cores (caches, walkers, decoders)
// compute costs in Duration so that they can be unit-tested without the
// SystemC kernel; the SystemC shells convert at the boundary.
#include <algorithm>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

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
    /// A span is never negative: subtracting a later time from an earlier one is
    /// a model bug (an unsigned wrap would report ~2^64 ps), so it throws.
    constexpr Duration& operator-=(Duration o) { ps_ = checked_sub(ps_, o.ps_); return *this; }
    friend constexpr Duration operator+(Duration a, Duration b) { return Duration(a.ps_ + b.ps_); }
    friend constexpr Duration operator-(Duration a, Duration b) { return Duration(checked_sub(a.ps_, b.ps_)); }
    /// a - b, or zero when b is later (for "how long until", never for a measured latency).
    friend constexpr Duration saturating_sub(Duration a, Duration b) { return Duration(a.ps_ > b.ps_ ? a.ps_ - b.ps_ : 0); }
    friend constexpr Duration operator*(Duration a, uint64_t k) { return Duration(a.ps_ * k); }
    friend constexpr Duration operator*(uint64_t k, Duration a) { return Duration(a.ps_ * k); }
    friend constexpr auto operator<=>(Duration, Duration) = default;

private:
    constexpr explicit Duration(uint64_t v) : ps_(v) {}
    // Inline (it is on every walk and time stamp); only the throw is out of line.
    static constexpr uint64_t checked_sub(uint64_t a, uint64_t b) {
        if (b > a) [[unlikely]] negative_span(a, b);
        return a - b;
    }
    [[noreturn, gnu::cold, gnu::noinline]] static void negative_span(uint64_t a, uint64_t b) {
        throw std::logic_error("negative simulated time span: " + std::to_string(a) + " ps - " + std::to_string(b) + " ps");
    }
    uint64_t ps_ = 0;
};

/// Time to move `bytes` over a resource of `bytes_per_ns` bandwidth (0 = infinite).
constexpr Duration transfer_time(uint64_t bytes, double bytes_per_ns) {
    return bytes_per_ns <= 0.0 ? Duration::zero() : Duration::ns(static_cast<double>(bytes) / bytes_per_ns);
}

/// A resource modelled in loosely-timed style (shared/DESIGN.md "Timing"):
/// each use reserves [start, start + hold) where start is the first free
/// slot at or after its arrival, so queueing appears without a context
/// switch. Reservations fill gaps: with temporal decoupling, requests reach
/// a resource out of time order, and a request arriving at t must not wait
/// behind one reserved for a later time when the resource is free at t (a
/// single busy-until pointer would serialize a pipelining initiator's
/// requests). The oldest reservations are forgotten past kMaxIntervals, which
/// only matters for arrivals that far in the past.
class BusyUntil {
public:
    static constexpr size_t kMaxIntervals = 64;

    /// Returns the start time of an occupation of `hold` that arrives at `arrival`.
    Duration reserve(Duration arrival, Duration hold) {
        const uint64_t t = arrival.as_ps(), h = hold.as_ps();
        // Fast path: at or after every reservation (in-order arrivals).
        if (iv_.empty() || t >= iv_.back().second) {
            if (h == 0) return arrival;
            if (!iv_.empty() && t == iv_.back().second) iv_.back().second += h;
            else iv_.push_back({t, t + h});
            trim();
            return arrival;
        }
        // First reservation that ends after t; try the gap before each.
        size_t i = static_cast<size_t>(
            std::upper_bound(iv_.begin(), iv_.end(), t, [](uint64_t v, const auto& x) { return v < x.second; }) -
            iv_.begin());
        uint64_t s = t;
        for (; i < iv_.size(); ++i) {
            if (s + h <= iv_[i].first) break;
            s = std::max(s, iv_[i].second);
        }
        if (h == 0) return Duration::ps(s);
        insert(i, s, s + h);
        trim();
        return Duration::ps(s);
    }
    /// The earliest time at or after `t` that a zero-length use would start: what
    /// reserve(t, zero) returns, without changing anything. Only a reservation that started
    /// before `t` and ends after it moves it (to that reservation's end: reservations that
    /// touch are merged). In time-ordered use `t` is past every reservation but the last,
    /// so the last decides in O(1); otherwise a binary search.
    Duration free_at(Duration t) const {
        const uint64_t v = t.as_ps();
        if (iv_.empty() || v >= iv_.back().second) return t;
        if (v > iv_.back().first) return Duration::ps(iv_.back().second);
        const auto it = std::upper_bound(iv_.begin(), iv_.end(), v, [](uint64_t x, const auto& r) { return x < r.second; });
        return Duration::ps(v > it->first ? it->second : v);
    }
    Duration busy_until() const { return Duration::ps(iv_.empty() ? 0 : iv_.back().second); }
    /// Allocates the most the reservation list ever holds up front (no allocation per use).
    void preallocate() { iv_.reserve(kMaxIntervals + 1); }

private:
    void insert(size_t i, uint64_t s, uint64_t e) {
        const bool join_prev = i > 0 && iv_[i - 1].second == s;
        const bool join_next = i < iv_.size() && iv_[i].first == e;
        if (join_prev && join_next) {
            iv_[i - 1].second = iv_[i].second;
            iv_.erase(iv_.begin() + static_cast<std::ptrdiff_t>(i));
        } else if (join_prev) {
            iv_[i - 1].second = e;
        } else if (join_next) {
            iv_[i].first = s;
        } else {
            iv_.insert(iv_.begin() + static_cast<std::ptrdiff_t>(i), {s, e});
        }
    }
    void trim() {
        if (iv_.size() > kMaxIntervals) iv_.erase(iv_.begin(), iv_.begin() + static_cast<std::ptrdiff_t>(iv_.size() - kMaxIntervals / 2));
    }
    std::vector<std::pair<uint64_t, uint64_t>> iv_; ///< disjoint, sorted [start, end) in ps
};

} // namespace iommusim
