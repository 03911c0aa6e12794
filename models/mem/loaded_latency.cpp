// SPDX-License-Identifier: Apache-2.0
#include "models/mem/loaded_latency.hpp"

#include <array>
#include <utility>

namespace iommusim::mem {

double load_factor(double u) {
    // calibration.md "loaded-latency shape": (u, factor); saturation 1.8-2.9, midpoint [estimate].
    static constexpr std::array<std::pair<double, double>, 5> kCurve{
        {{0.0, 1.0}, {0.25, 1.10}, {0.5, 1.20}, {0.8, 1.40}, {1.0, 2.35}}};
    if (u <= 0) return 1.0;
    for (size_t i = 1; i < kCurve.size(); ++i) {
        const auto [u0, f0] = kCurve[i - 1];
        const auto [u1, f1] = kCurve[i];
        if (u <= u1) return f0 + (f1 - f0) * (u - u0) / (u1 - u0);
    }
    return kCurve.back().second;
}

void LoadMeter::advance(uint64_t t) {
    if (t < cur_start_ + window_ps_) return; // in the current bucket (or an earlier arrival: counted in it)
    const uint64_t k = (t - cur_start_) / window_ps_;
    prev_ = k == 1 ? cur_ : 0;
    cur_ = 0;
    cur_start_ += k * window_ps_;
}

void LoadMeter::record(Duration at, uint64_t bytes) {
    if (!window_ps_) return;
    advance(at.as_ps());
    cur_ += bytes;
}

double LoadMeter::utilisation(Duration at) const {
    if (!window_ps_ || bytes_per_ns_ <= 0) return 0.0;
    const uint64_t t = at.as_ps();
    double bytes = 0;
    if (t < cur_start_ + window_ps_) {
        // The older bucket counts for the part of it still inside the window ending at t.
        const double into = t > cur_start_ ? static_cast<double>(t - cur_start_) / static_cast<double>(window_ps_) : 0.0;
        bytes = static_cast<double>(prev_) * (1.0 - into) + static_cast<double>(cur_);
    } else if (t < cur_start_ + 2 * window_ps_) {
        const double into = static_cast<double>(t - cur_start_ - window_ps_) / static_cast<double>(window_ps_);
        bytes = static_cast<double>(cur_) * (1.0 - into);
    }
    return bytes / (static_cast<double>(window_ps_) / 1000.0 * bytes_per_ns_);
}

} // namespace iommusim::mem
