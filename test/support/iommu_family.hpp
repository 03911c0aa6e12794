// SPDX-License-Identifier: Apache-2.0
#pragma once
// The IOMMU families a test rig builds a unit of, and the host driver backend
// Host::add_iommu gets for each (as the platform's type registry builds it,
// sim/iommu_types.cpp): one builder for every rig instead of one per rig.
#include <memory>

#include "models/host/amd_driver.hpp"
#include "models/host/host.hpp"
#include "models/host/smmuv3_driver.hpp"
#include "models/host/vtd_driver.hpp"

namespace iommusim::test {

enum class Family { vtd, amd, smmuv3 };

inline const char* name_of(Family f) { return f == Family::vtd ? "VT-d" : f == Family::amd ? "AMD-Vi" : "SMMUv3"; }

/// A family as a type, for TEMPLATE_TEST_CASE (each instance its own test case, so its own process).
template <Family F>
struct FamilyTag {
    static constexpr Family value = F;
};
using Vtd = FamilyTag<Family::vtd>;
using Amd = FamilyTag<Family::amd>;
using Smmuv3 = FamilyTag<Family::smmuv3>;

/// The builder of `f`'s driver backend for Host::add_iommu.
inline host::DriverBuilder driver_builder(Family f) {
    return [f](const host::DriverEnv& env) -> std::unique_ptr<host::IommuDriver> {
        switch (f) {
        case Family::vtd:
            return std::make_unique<host::VtdDriver>(env.name, env.mmio, env.params, env.alloc_page, env.stats, env.msi);
        case Family::amd:
            return std::make_unique<host::AmdDriver>(env.name, env.mmio, env.params, env.alloc_page, env.stats, env.msi);
        case Family::smmuv3: break;
        }
        return std::make_unique<host::Smmuv3Driver>(env.name, env.mmio, env.params, env.alloc_page, env.stats, env.msi);
    };
}

} // namespace iommusim::test
