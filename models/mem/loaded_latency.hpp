// SPDX-License-Identifier: Apache-2.0
#pragma once
// Loaded memory latency: a read's latency grows with how busy the memory
// controller is, along calibration.md's "loaded-latency shape" row (Intel MLC
// --loaded_latency on SKX/CLX/ICX, Mess curves for SPR): x1.10 at
// utilisation u = 0.25, x1.20 at 0.5, x1.40 at 0.8, x1.8-2.9 at saturation.
//
// Plain C++. LoadMeter measures u as the bytes served (reads and writes)
// over a sliding window of `window` (two buckets, the older weighted by how
// much of it is still inside the window) divided by what the data port moves
// in that time; load_factor() maps u to the latency multiplier, linear
// between the row's points, 1.0 at idle and the saturation range's midpoint
// 2.35 [estimate] from u = 1 on.
//
// Not modelled: the write-share correction of the row (writes cut the usable
// peak by 20-25 %), banks and row-buffer locality, NUMA distance; DMI
// accesses keep the idle latency.
#include <cstdint>

#include "models/common/time.hpp"

namespace iommusim::mem {

/// The latency multiplier at utilisation `u` (bandwidth / peak), calibration.md's curve.
double load_factor(double u);

class LoadMeter {
public:
    /// `window` = 0: never loaded (utilisation() is 0). `bytes_per_ns`: the data port's peak.
    LoadMeter(Duration window, double bytes_per_ns) : window_ps_(window.as_ps()), bytes_per_ns_(bytes_per_ns) {}
    /// `bytes` moved by a request arriving at `at`.
    void record(Duration at, uint64_t bytes);
    /// Bytes over the last window at `at` / (window x peak); may exceed 1 when requests queue.
    double utilisation(Duration at) const;

private:
    void advance(uint64_t t);
    uint64_t window_ps_;
    double bytes_per_ns_;
    uint64_t cur_start_ = 0; ///< start of the current bucket (a multiple of the window)
    uint64_t cur_ = 0, prev_ = 0;
};

} // namespace iommusim::mem
