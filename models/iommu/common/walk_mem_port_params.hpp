// SPDX-License-Identifier: Apache-2.0
#pragma once
// Parameters of the kernel-free walk memory port.
#include "models/common/time.hpp"

namespace iommusim::iommu {

struct WalkMemPortParams {
    /// ns; calibration.md "IOMMU memory read per page-walk access (fitted)": 197 ns (SOSP'24 §2.2).
    static constexpr double kReadLatencyNs = 197.0;
    /// ns; a posted descriptor write (A/D update) is assumed to cost one read round trip
    /// (no published figure; the compare-exchange is a read-modify-write on the same line).
    static constexpr double kWriteLatencyNs = 197.0;

    Duration read_latency = Duration::ns(kReadLatencyNs);
    Duration write_latency = Duration::ns(kWriteLatencyNs);
};

} // namespace iommusim::iommu
