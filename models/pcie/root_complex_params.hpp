// SPDX-License-Identifier: Apache-2.0
#pragma once
#include "models/common/time.hpp"

namespace iommusim::pcie {

struct RootComplexParams {
    // ns; root-port-to-host-bridge traversal each way: calibration.md "root complex
    // traversal, one way" ~100 ns [estimate, weak: what remains of a 407-424 ns MMIO
    // read of a NIC BAR after the link hops and the device].
    static constexpr double kDefaultLatencyNs = 100.0;
    Duration latency = Duration::ns(kDefaultLatencyNs);
};

} // namespace iommusim::pcie
