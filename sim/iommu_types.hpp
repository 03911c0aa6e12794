// SPDX-License-Identifier: Apache-2.0
#pragma once
#include <vector>

namespace iommusim::sim {
struct IommuType;
/// The IOMMU families built in ("vtd"; AMD-Vi and SMMUv3 add rows here).
const std::vector<IommuType>& builtin_iommu_types();
} // namespace iommusim::sim
