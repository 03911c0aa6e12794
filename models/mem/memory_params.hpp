// SPDX-License-Identifier: Apache-2.0
#pragma once
#include <cstdint>

#include "models/common/time.hpp"

namespace iommusim::mem {

struct MemoryParams {
    // bytes; DESIGN.md example platform. Sparse: only touched pages cost host RAM.
    static constexpr uint64_t kDefaultSize = uint64_t{64} << 30;
    // ns; idle DRAM read latency: calibration.md "DRAM idle read latency, local"
    // 81-90 ns (Skylake / Cascade Lake / Ice Lake-SP), the upper end. Load adds to it
    // (load_window_ns).
    static constexpr double kDefaultReadLatencyNs = 90.0;
    // ns; posted writes retire into the memory controller's write queue.
    static constexpr double kDefaultWriteLatencyNs = 40.0;
    // bytes/ns (= GB/s); one DDR4-3200 channel, 3200 MT/s x 8 B.
    static constexpr double kDefaultBandwidth = 25.6;
    // ns; the window over which the controller's utilisation is measured for the
    // loaded-latency curve (LoadMeter) [estimate: a few hundred requests at the
    // default bandwidth; short enough to follow a burst, long enough to average it].
    static constexpr double kDefaultLoadWindowNs = 1000.0;

    uint64_t size_bytes = kDefaultSize;
    Duration read_latency = Duration::ns(kDefaultReadLatencyNs);
    Duration write_latency = Duration::ns(kDefaultWriteLatencyNs);
    double bandwidth_bytes_per_ns = kDefaultBandwidth; ///< 0 = unlimited
    Duration load_window = Duration::ns(kDefaultLoadWindowNs); ///< 0 = reads always at the idle latency
};

} // namespace iommusim::mem
