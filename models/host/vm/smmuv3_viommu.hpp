// SPDX-License-Identifier: Apache-2.0
#pragma once
// The virtual SMMUv3 a VMM presents over iommufd nesting (QEMU's
// arm-smmuv3 with accel / cloud-hypervisor's vSMMUv3: every CMDQ_PROD write
// traps), emulated on the host.
//
// Fidelity: the guest-visible register file is the real one
// (iommu::smmuv3::Smmuv3Regs over the guest's Smmuv3Params: stage 1 only,
// no EL2 (IDR0.HYP = 0), no PRI, as a vSMMU offers); every access traps. On
// a CMDQ_PROD write the VMM fetches each 128-bit command between CONS and
// PROD from guest memory, decodes it with the unit's own decoder (an illegal
// one: CMDQ_CONS.ERR = CERROR_ILL, GERROR.CMDQ_ERR and its MSI, the queue
// stops until GERRORN acknowledges) and acts:
//   CFGI_STE / CFGI_STE_RANGE / CFGI_ALL: re-reads the guest's STE of each
//     vSID named from the guest's stream table (guest memory). A valid
//     stage-1 STE is a nested domain: one per CD-table pointer
//     (IOMMU_HWPT_ALLOC on the vIOMMU with the vSTE's dwords 0-1,
//     IOMMU_HWPT_DATA_ARM_SMMUV3), to which the physical device behind the
//     vSID (vDEVICE table) is attached; the VMID is the nesting parent's.
//     Any other STE detaches the device. A nested domain no device is attached
//     to any more is destroyed (IOMMU_DESTROY: flushed, nothing of its VMID freed).
//   TLBI_NH_* / TLBI_NSNH_ALL, CFGI_CD / CFGI_CD_ALL and ATC_INV (a known
//     vSID: the guest's ATC invalidation, forwarded, threads/003) are
//     collected, raw, into one invalidation array for the vIOMMU
//     (IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3): the kernel forces the VMID
//     and translates vSID -> pSID (E.3).
//   CMD_SYNC: sends the array first, then signals as the guest asked (its
//     MSI write of MSIData, Linux's completion of the CMD_SYNC).
//   PREFETCH_*: accepted, nothing to do. PRI_RESP / RESUME / STALL_TERM: refused.
// An unknown vSID is refused (counted, not forwarded).
// Not modelled: guest PASIDs (SubstreamIDs) beyond the CD table the guest
// owns, the guest's event and PRI queues (no vEVENTQ), the hardware VCMDQ.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "models/host/vm/viommu.hpp"
#include "models/iommu/smmuv3/smmuv3_params.hpp"
#include "models/iommu/smmuv3/smmuv3_regs.hpp"

namespace iommusim::host::vm {

class Smmuv3Viommu final : public VirtualIommu {
public:
    /// A vSMMU's capabilities: stage 1 only, no EL2, no PRI (the rest as the unit's defaults).
    static iommu::smmuv3::Smmuv3Params default_caps();
    Smmuv3Viommu(sc_core::sc_module_name name, VmmContext& vmm, stats::Group* parent,
                 const iommu::smmuv3::Smmuv3Params& guest_caps = default_caps());
    std::unique_ptr<IommuDriver> guest_driver(const DriverEnv& env) override;

    /// The nested HWPT serving the guest CD table at `cd_table_ipa`, if any.
    std::optional<uint32_t> nested_domain(uint64_t cd_table_ipa) const;
    const iommu::smmuv3::Smmuv3Regs& regs() const { return regs_; }

protected:
    uint64_t reg_read(uint32_t offset, unsigned size) override { return regs_.read(offset, size); }
    void reg_write(uint32_t offset, unsigned size, uint64_t value) override;

private:
    void run_queue();
    void sync_device(uint32_t vsid);
    void flush_pending();
    /// Destroys the nested domains no device is attached to (replaced or dropped guest tables).
    void destroy_unused();

    iommu::smmuv3::Smmuv3Params p_;
    iommu::smmuv3::Smmuv3Regs regs_;
    uint64_t seq_ = 0;
    struct Nested {
        uint32_t hwpt;
        std::array<uint64_t, 2> vste;
    };
    std::map<uint64_t, Nested> nested_; ///< guest CD table (IPA) -> nested HWPT
    std::vector<uint32_t> replaced_;    ///< nested HWPTs a changed vSTE replaced, to destroy once unused
    stats::Counter& dropped_atc_;
};

} // namespace iommusim::host::vm
