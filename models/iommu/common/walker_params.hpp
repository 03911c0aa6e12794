// SPDX-License-Identifier: Apache-2.0
#pragma once
#include "models/iommu/common/iotlb_params.hpp"
#include "models/iommu/common/walk_cache_params.hpp"

namespace iommusim::iommu {

struct WalkerParams {
    WalkCacheParams s1_walk_cache;  ///< paging-structure caches for stage-1 walks
    WalkCacheParams s2_walk_cache;  ///< paging-structure caches for stage-2 walks
    S2CacheParams s2_cache;         ///< IPA -> PA leaf cache used while walking nested
};

} // namespace iommusim::iommu
