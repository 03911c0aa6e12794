// SPDX-License-Identifier: Apache-2.0
#pragma once
// Virtual IOMMUs by the type of the physical unit a VM's devices sit behind:
// an explicit registry table (a family adds its row), as for IOMMU types.
#include <string>
#include <vector>

#include "models/host/vm/vm.hpp"

namespace iommusim::sim {

struct ViommuType {
    std::string iommu_type;   ///< the physical unit's "type" in /iommus
    std::string description;
    bool caching_mode;        ///< offers caching-mode shadowing besides nesting (VT-d CAP.CM)
    bool accelerated;         ///< offers a hardware-accelerated guest queue (AMD hardware vIOMMU)
    host::vm::Vm::ViommuBuilder build;
};

const std::vector<ViommuType>& viommu_types();
/// The row for a physical IOMMU type, or nullptr when that family has no virtual IOMMU yet.
const ViommuType* find_viommu_type(const std::string& iommu_type);

} // namespace iommusim::sim
