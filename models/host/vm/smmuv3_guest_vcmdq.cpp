// SPDX-License-Identifier: Apache-2.0
#include "models/host/vm/smmuv3_guest_vcmdq.hpp"

#include "models/iommu/smmuv3/smmuv3_cmdqv.hpp"

namespace iommusim::host::vm {

namespace sm = iommu::smmuv3;
namespace cq = iommu::smmuv3::cmdqv;

namespace {
constexpr unsigned kLog2 = 8;                      // 256 commands: one 4 KiB page
constexpr uint32_t kPosMask = (2u << kLog2) - 1;   // index and wrap bit
constexpr uint32_t kConsErr = 0x7Fu << 24;         // VCMDQ_CONS_ERR
} // namespace

GuestVcmdq::GuestVcmdq(MmioPort mmio, uint32_t base, std::function<uint64_t()> alloc_page, const std::string& name,
               stats::Group* parent)
    : mmio_(mmio), base_(base), alloc_page_(std::move(alloc_page)), stats_(name, parent),
      batches_(stats_.counter("batches", "batches", "batches issued on the vCMDQ (no exit)")),
      commands_(stats_.counter("commands", "commands", "commands written into the vCMDQ (CMD_SYNC included)")),
      polls_(stats_.counter("polls", "reads", "CONS reads while waiting")),
      errors_(stats_.counter("errors", "batches", "batches the vCMDQ refused (CONS.ERR), recovered as arm_smmu_cmdq_skip_err")) {}

bool GuestVcmdq::supports(uint8_t opcode) {
    return opcode == sm::op::kTlbiNhAsid || opcode == sm::op::kTlbiNhVa || opcode == sm::op::kAtcInv;
}

bool GuestVcmdq::init() {
    // tegra241_cmdqv_hw_reset + tegra241_vintf_hw_init(VINTF0) + tegra241_vcmdq_hw_init(LVCMDQ 0).
    mmio_.write32(base_ + cq::kConfig, cq::kEn);
    if (!(mmio_.read32(base_ + cq::kStatus) & 1)) return false;
    mmio_.write32(base_ + cq::cmdq_alloc(0), cq::alloc_value(0, 0, true));
    mmio_.write32(base_ + cq::vintf(0) + cq::kVintfConfig, cq::vintf_config(0, true, true));
    hyp_own_ = mmio_.read32(base_ + cq::vintf(0) + cq::kVintfConfig) & cq::kHypOwn; // wired to 0 in a guest
    if (!(mmio_.read32(base_ + cq::vintf(0) + cq::kVintfStatus) & 1)) return false;
    ring_ = alloc_page_();
    const uint32_t page0 = base_ + cq::vintf_page0(0);
    mmio_.write32(page0 + cq::kQConfig, 0);
    mmio_.write32(page0 + cq::kProd, 0);
    mmio_.write32(page0 + cq::kCons, 0);
    mmio_.write64(base_ + cq::vintf_page1(0) + cq::kBase, cq::base_value(ring_, kLog2));
    mmio_.write32(page0 + cq::kQConfig, cq::kEn);
    HostCpu& cpu = mmio_.cpu();
    for (unsigned k = 0; !(mmio_.read32(page0 + cq::kQStatus) & 1); ++k) {
        if (k > 1000) return false; // ARM_SMMU_POLL_TIMEOUT_US: the guest falls back to its CMDQ
        cpu.spend(cpu.params().poll_interval);
    }
    prod_ = 0;
    return true;
}

std::optional<FlushTiming> GuestVcmdq::submit(const std::vector<sm::Command>& cmds) {
    if (cmds.empty() || cmds.size() >= (1u << kLog2)) return std::nullopt;
    if (!up_) up_ = init();
    if (!*up_) return std::nullopt;
    if (!hyp_own_)
        for (const sm::Command& c : cmds)
            if (!supports(c.opcode)) return std::nullopt;
    HostCpu& cpu = mmio_.cpu();
    const uint32_t page0 = base_ + cq::vintf_page0(0);
    FlushTiming t;
    t.submitted = cpu.now();
    std::vector<sm::Command> batch = cmds;
    batch.push_back(sm::Command{.opcode = sm::op::kSync}); // CS = SIG_NONE
    // The previous batch was waited for: the ring is empty, everything fits.
    for (const sm::Command& c : batch) {
        const std::array<uint64_t, 2> e = c.encode();
        cpu.mem_write(ring_ + uint64_t{prod_ & ((1u << kLog2) - 1)} * 16, e.data(), 16);
        prod_ = (prod_ + 1) & kPosMask;
    }
    mmio_.write32(page0 + cq::kProd, prod_);
    batches_.inc();
    commands_.inc(batch.size());
    for (;;) {
        const uint32_t cons = mmio_.read32(page0 + cq::kCons);
        polls_.inc();
        if (cons & kConsErr) {
            // arm_smmu_cmdq_skip_err: the refused command becomes a CMD_SYNC, the error is acknowledged.
            const std::array<uint64_t, 2> sync = sm::Command{.opcode = sm::op::kSync}.encode();
            cpu.mem_write(ring_ + uint64_t{cons & ((1u << kLog2) - 1)} * 16, sync.data(), 16);
            mmio_.write32(page0 + cq::kGerrorN, mmio_.read32(page0 + cq::kGerror));
            t.error = true;
            errors_.inc();
            continue;
        }
        if ((cons & kPosMask) == prod_) break;
        cpu.spend(cpu.params().poll_interval);
    }
    t.observed = cpu.now();
    t.wait_done = t.observed;
    t.descriptors = static_cast<unsigned>(batch.size());
    return t;
}

} // namespace iommusim::host::vm
