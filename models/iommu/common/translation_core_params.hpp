// SPDX-License-Identifier: Apache-2.0
#pragma once
#include "models/iommu/common/iotlb_params.hpp"
#include "models/iommu/common/walker_params.hpp"

namespace iommusim::iommu {

struct TranslationCoreParams {
    IotlbParams iotlb;
    WalkerParams walker;
};

} // namespace iommusim::iommu
