// SPDX-License-Identifier: Apache-2.0
#pragma once
// The CMD_SYNC Linux's arm-smmu-v3 issues when it polls memory for completion
// (arm_smmu_cmdq_build_sync_cmd with an MSI address: CS = SIG_IRQ, MSH inner
// shareable, MSIAttr write-back cacheable), writing `token` to `addr`.
#include <cstdint>

#include "models/iommu/smmuv3/smmuv3_commands.hpp"

namespace iommusim::iommu::test {

inline smmuv3::Command msi_sync(uint32_t token, uint64_t addr) {
    smmuv3::Command s;
    s.opcode = smmuv3::op::kSync;
    s.cs = smmuv3::SyncSignal::irq;
    s.msh = 3;
    s.msi_attr = 0xF;
    s.msi_data = token;
    s.msi_addr = addr;
    return s;
}

} // namespace iommusim::iommu::test
