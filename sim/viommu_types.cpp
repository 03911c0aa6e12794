// SPDX-License-Identifier: Apache-2.0
#include "sim/viommu_types.hpp"

#include "models/host/vm/amd_viommu.hpp"
#include "models/host/vm/smmuv3_viommu.hpp"
#include "models/host/vm/vtd_viommu.hpp"

namespace iommusim::sim {

const std::vector<ViommuType>& viommu_types() {
    static const std::vector<ViommuType> table = {
        {"vtd", "QEMU-style virtual VT-d (CAP.CM=1): nested over iommufd, or caching-mode shadowing", true, false,
         [](const std::string& name, host::vm::VmmContext& vmm, stats::Group* parent) -> std::unique_ptr<host::vm::VirtualIommu> {
             return std::make_unique<host::vm::VtdViommu>(name.c_str(), vmm, parent);
         }},
        {"amd", "virtual AMD-Vi over iommufd nesting: guest GCR3 tables (v2) over the host v1 stage, trapped command buffer "
                "or (accelerated) the unit's hardware vIOMMU executing it", false, true,
         [](const std::string& name, host::vm::VmmContext& vmm, stats::Group* parent) -> std::unique_ptr<host::vm::VirtualIommu> {
             return std::make_unique<host::vm::AmdViommu>(name.c_str(), vmm, parent);
         }},
        {"smmuv3", "virtual SMMUv3 over iommufd nesting: the guest's CD table (stage 1) over the host stage 2 of the "
                   "parent's VMID, trapped CMDQ or (accelerated) a vCMDQ of the unit's CMDQV for the guest's TLBIs",
         false, true,
         [](const std::string& name, host::vm::VmmContext& vmm, stats::Group* parent) -> std::unique_ptr<host::vm::VirtualIommu> {
             return std::make_unique<host::vm::Smmuv3Viommu>(name.c_str(), vmm, parent);
         }},
    };
    return table;
}

const ViommuType* find_viommu_type(const std::string& iommu_type) {
    for (const auto& t : viommu_types())
        if (t.iommu_type == iommu_type) return &t;
    return nullptr;
}

} // namespace iommusim::sim
