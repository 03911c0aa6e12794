// SPDX-License-Identifier: Apache-2.0
#pragma once
#include "models/common/time.hpp"

namespace iommusim::pcie {

struct RootComplexParams {
    // ns; root-port-to-host-bridge traversal each way. Estimate: no published
    // per-component figure; calibration.md's fitted 65 ns per 4 KB DMA without
    // IOMMU bounds the whole non-memory path.
    static constexpr double kDefaultLatencyNs = 20.0;
    Duration latency = Duration::ns(kDefaultLatencyNs);
};

} // namespace iommusim::pcie
