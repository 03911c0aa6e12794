// SPDX-License-Identifier: Apache-2.0
#pragma once
#include <cstdint>

#include "models/common/cache_params.hpp"

namespace iommusim::iommu {

/// Paging-structure caches of one stage: one cache per non-leaf level.
struct WalkCacheParams {
    /// count per level; calibration.md "Intel/AMD IOTLB and paging-structure cache sizes":
    /// PWC-L3 estimated 64-128 entries (SOSP'24 fn. 3); MMU-600 has 256 per level per stage.
    static constexpr uint32_t kEntriesPerLevel = 128;
    static constexpr uint32_t kWays = 4;
    CacheGeometry per_level{kEntriesPerLevel, kWays, Replacement::lru, 3};
    /// Highest level whose descriptors are cached (2 = PDE cache only ... 6); levels
    /// above it always read memory.
    uint8_t top_cached_level = 5;
};

} // namespace iommusim::iommu
