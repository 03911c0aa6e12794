// SPDX-License-Identifier: Apache-2.0
#pragma once
#include "models/common/cache_params.hpp"

namespace iommusim::iommu {

struct IotlbParams {
    /// count; calibration.md "Intel/AMD IOTLB and paging-structure cache sizes": not published;
    /// 512 x 8-way as in shared/DESIGN.md's example platform (gem5 SMMUv3 uses 2048 x 4-way).
    static constexpr uint32_t kEntries = 512;
    static constexpr uint32_t kWays = 8;
    CacheGeometry geometry{kEntries, kWays, Replacement::lru, 1};
};

/// The stage-2 (IPA -> PA) cache used by nested walks.
struct S2CacheParams {
    /// count; calibration.md "MMU-600 walk cache": 256 entries per level per stage.
    static constexpr uint32_t kEntries = 256;
    static constexpr uint32_t kWays = 4;
    CacheGeometry geometry{kEntries, kWays, Replacement::lru, 2};
};

} // namespace iommusim::iommu
