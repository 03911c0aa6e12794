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
// Hardware-accelerated (ViommuMode::accelerated, the unit's CMDQV,
// iommu/smmuv3/smmuv3_cmdqv.hpp): the vIOMMU is allocated with a VINTF
// (iommufd viommu_alloc_hw: IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV), carrying the
// nesting parent's VMID, its vDEVICEs filling the VINTF's SID_MATCH /
// SID_REPLACE pairs. The guest sees a virtual CMDQV at kGuestCmdqv in the
// vIOMMU's register space with one VINTF (VINTF0, HYP_OWN reading 0): its
// config page, VINTF registers and LVCMDQ page 1 trap and are emulated; a
// guest BASE write becomes IOMMU_HW_QUEUE_ALLOC of the guest's queue (in
// order of LVCMDQ); the VINTF0 logical page 0 (PROD, CONS, CONFIG, STATUS,
// GERROR, GERRORN) goes straight to the physical VINTF's page 0, no exit
// (QEMU mmaps it: iommufd_viommu_alloc_mmap). The guest driver (Smmuv3Driver
// with GuestVcmdq as its secondary queue, as Linux's tegra241 impl_ops
// get_secondary_cmdq) sends every batch the queue supports there: written,
// PROD published, CONS polled past its CMD_SYNC (CS = SIG_NONE); a CONS.ERR
// is handled as arm_smmu_cmdq_skip_err (the command replaced by a CMD_SYNC,
// GERRORN acknowledged, the batch failed). Other batches (CFGI_*, TLBI_NH_ALL
// / VAA / NSNH_ALL) take the trapped CMDQ above.
// ATC_INV goes to the vCMDQ too (Linux's guest check), its vSID translated by
// the VINTF's SID_MATCH pairs and executed by the CMDQV without a trap.
// Guest PASIDs: the nested domain is the guest's whole CD table, so a request
// with SubstreamID p walks the guest's CD[p] (no PASID translation); the
// guest's CD writes reach the host as forwarded CFGI_CD.
// Guest faults (VmParams::page_requests, on a unit that stalls): the vSMMU keeps
// STALL_MODEL stall, the guest's stall-capable masters get CD.S; a stalled
// fault reaches the host's EVTQ, the host queues it on the nested HWPT's
// iommufd fault queue, the VMM injects it into the guest's EVTQ as
// F_TRANSLATION with Stall = 1 (the fault record carries no event type: the
// model's choice), the guest resolves it and its CMD_RESUME traps and becomes
// the iommufd page response (the host's CMD_RESUME with the pSID). Stage-1
// events without a stall come through the vEVENTQ with the vSID. The vSMMU
// offers no PRI (QEMU's does not; mainline Linux answers SMMUv3 PRI with Deny).
// Not modelled: the guest's PRI queue, the CMDQV error vEVENT (the guest sees
// its queue's error in page 0), the guest's other
// LVCMDQs (it uses LVCMDQ 0, one 4 KiB page of 256 commands).
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "models/host/vm/smmuv3_guest_vcmdq.hpp"
#include "models/host/vm/viommu.hpp"
#include "models/iommu/smmuv3/smmuv3_cmdqv.hpp"
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

    /// Where the guest's virtual CMDQV sits in the vIOMMU's register space (after the SMMU's pages).
    static constexpr uint32_t kGuestCmdqv = 0x100000;
    /// The physical VINTF behind the guest's (accelerated mode, once the vIOMMU exists).
    std::optional<uint16_t> vintf() const { return vintf_; }

protected:
    uint64_t reg_read(uint32_t offset, unsigned size) override;
    void reg_write(uint32_t offset, unsigned size, uint64_t value) override;
    bool direct(tlm::tlm_generic_payload& t, sc_core::sc_time& delay) override;
    /// The nested domain is the guest's whole CD table: its SubstreamIDs are the guest's own
    /// PASID space (threads/003), judged by the guest's binding of each PASID.
    bool guest_pasid_tables() const override { return true; }
    /// Guest fault delivery (VmParams::page_requests): a stalled transaction's fault, read from the
    /// fault queue, becomes an F_TRANSLATION record with Stall = 1 in the guest's EVTQ (vSID,
    /// SSID, STAG = the group index), answered by the guest's CMD_RESUME; other stage-1 events
    /// arrive raw through the vEVENTQ (IOMMU_VEVENTQ_TYPE_ARM_SMMUV3, vSID already in them).
    std::optional<uint64_t> inject_page_request(const GuestFault& f) override;
    std::optional<uint32_t> vevent_type() const override;
    uint32_t vevent_depth() const override { return uint32_t{1} << p_.evtqs; }
    size_t vevent_words() const override { return 4; }
    bool inject_event(const std::vector<uint64_t>& data) override;

private:
    /// The guest's virtual CMDQV registers that trap (accelerated mode).
    uint64_t cmdqv_read(uint32_t off) const;
    void cmdqv_write(uint32_t off, uint64_t value);
    void run_queue();
    void sync_device(uint32_t vsid);
    void flush_pending();
    /// Destroys the nested domains no device is attached to (replaced or dropped guest tables).
    void destroy_unused();
    /// Writes one 32-byte record into the guest's EVTQ (guest memory) and sends the guest's EVTQ
    /// MSI as the unit would (IHI 0070 7.2); false when the queue is full or disabled.
    bool push_guest_event(const std::array<uint64_t, 4>& rec);

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
    iommu::smmuv3::Smmuv3Cmdqv* hw_ = nullptr; ///< accelerated mode: the unit's CMDQV
    std::optional<uint16_t> vintf_;            ///< accelerated mode: this VM's VINTF
    struct GuestCmdqvRegs {
        uint32_t config = 0, vintf0 = 0;
        std::map<uint32_t, uint32_t> alloc; ///< CMDQ_ALLOC by queue
        std::map<uint32_t, uint64_t> base;  ///< page-1 BASE by LVCMDQ
    } gregs_;
    tlm_utils::simple_initiator_socket_optional<Smmuv3Viommu> page_port_{"page_port"}; ///< to the VINTF's page 0 (no exit)
    std::vector<std::unique_ptr<GuestVcmdq>> guest_queues_; ///< the guest driver's vCMDQ (accelerated mode)
};

} // namespace iommusim::host::vm
