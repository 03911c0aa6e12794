// SPDX-License-Identifier: Apache-2.0
#pragma once
// The guest kernel's side of a hardware-accelerated SMMUv3 guest queue: what
// Linux's tegra241-cmdqv.c does in a guest that sees a (virtual) CMDQV with
// one VINTF. At its first batch it brings up the CMDQV as
// tegra241_cmdqv_hw_reset and tegra241_vintf_hw_init do for VINTF0 (CMDQV_EN,
// CMDQ_ALLOC, VINTF0 CONFIG read back for HYP_OWN, LVCMDQ 0's BASE, then
// its CONFIG.EN polled in STATUS); from then on every batch whose commands
// the queue supports (tegra241_guest_vcmdq_supports_cmd: TLBI_NH_ASID,
// TLBI_NH_VA, ATC_INV) is written into its ring, PROD published and CONS
// polled until it passed the batch's CMD_SYNC (CS = SIG_NONE: Linux's
// CMDQ_QUIRK_SYNC_CS_NONE_ONLY, arm_smmu_cmdq_poll_until_consumed). A
// CONS.ERR is recovered as arm_smmu_cmdq_skip_err does (the command at CONS
// replaced by a CMD_SYNC, GERRORN = GERROR) and the batch fails.
// Registers are reached through the guest CPU's MMIO port at `base` (the
// virtual CMDQV in the vIOMMU's register space); every access costs what the
// guest CPU's MMIO costs, and traps or not as the VMM maps the page.
// Not modelled: LVCMDQs beyond the first, per-CPU queue choice, a ring
// larger than one 4 KiB page (256 commands; Linux sizes it from IDR1.CMDQS).
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "models/common/stats.hpp"
#include "models/host/host_cpu.hpp"
#include "models/host/iommu_driver.hpp"
#include "models/iommu/smmuv3/smmuv3_commands.hpp"

namespace iommusim::host::vm {

class GuestVcmdq {
public:
    GuestVcmdq(MmioPort mmio, uint32_t base, std::function<uint64_t()> alloc_page, const std::string& name,
               stats::Group* parent);
    /// Linux's secondary-queue choice and issue: nullopt when a command is not supported (the
    /// batch goes to the SMMU's CMDQ). SC_THREAD only.
    std::optional<FlushTiming> submit(const std::vector<iommu::smmuv3::Command>& cmds);
    static bool supports(uint8_t opcode);

private:
    bool init();

    MmioPort mmio_;
    uint32_t base_;
    std::function<uint64_t()> alloc_page_;
    std::optional<bool> up_;   ///< init() ran: whether the queue is usable
    bool hyp_own_ = false;
    uint64_t ring_ = 0;
    uint32_t prod_ = 0;        ///< PROD: index and wrap bit
    stats::Group stats_;
    stats::Counter& batches_;
    stats::Counter& commands_;
    stats::Counter& polls_;
    stats::Counter& errors_;
};

} // namespace iommusim::host::vm
