// SPDX-License-Identifier: Apache-2.0
#pragma once
#include <cstdint>

#include "models/common/time.hpp"

namespace iommusim::mem {

struct MemoryParams {
    // bytes; DESIGN.md example platform. Sparse: only touched pages cost host RAM.
    static constexpr uint64_t kDefaultSize = uint64_t{64} << 30;
    // ns; loaded DRAM read latency of a server socket, cf. calibration.md
    // "base DMA cost per 4 KB without IOMMU (fitted) 65 ns" plus controller queueing.
    static constexpr double kDefaultReadLatencyNs = 90.0;
    // ns; posted writes retire into the memory controller's write queue.
    static constexpr double kDefaultWriteLatencyNs = 40.0;
    // bytes/ns (= GB/s); one DDR4-3200 channel, 3200 MT/s x 8 B.
    static constexpr double kDefaultBandwidth = 25.6;

    uint64_t size_bytes = kDefaultSize;
    Duration read_latency = Duration::ns(kDefaultReadLatencyNs);
    Duration write_latency = Duration::ns(kDefaultWriteLatencyNs);
    double bandwidth_bytes_per_ns = kDefaultBandwidth; ///< 0 = unlimited
};

} // namespace iommusim::mem
