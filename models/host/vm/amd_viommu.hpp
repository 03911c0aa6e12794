// SPDX-License-Identifier: Apache-2.0
#pragma once
// The virtual AMD-Vi unit a VMM presents over iommufd nesting (the software
// path of shared/reference/threads/003: every command-buffer tail write
// traps), emulated on the host.
//
// Fidelity: the guest-visible register file is the real one
// (iommu::amd::AmdRegs: EFR from the guest's AmdParams, Control, Device Table
// Base, command buffer and event log base/head/tail, Status); every access
// traps. On a Command Buffer Tail write the VMM fetches each 128-bit command
// from guest memory between head and tail, decodes it with the unit's own
// decoder and acts:
//   INVALIDATE_DEVTAB_ENTRY: re-reads the guest's DTE of that vDeviceID from
//     the guest's device table (guest memory). A DTE with GV is a nested
//     domain: one per GCR3 table pointer (IOMMU_HWPT_ALLOC on the vIOMMU
//     with the guest DTE, IOMMU_HWPT_DATA_AMD_GUEST); the physical device
//     behind the vDeviceID (vDEVICE table) is attached to it. Nested domains
//     with the same guest DomainID share one host DomainID (the kernel's
//     gDomID -> hDomID map). Any other DTE detaches the device (blocked).
//     A nested domain no device is attached to any more (its DTE changed or
//     went) is destroyed (IOMMU_DESTROY: flushed, its tag released).
//   INVALIDATE_IOMMU_PAGES (a vDomainID some nested domain carries) and
//   INVALIDATE_IOTLB_PAGES (a known vDeviceID: the guest's ATC invalidation,
//     forwarded, threads/003) are collected, raw, into one invalidation array
//     for the vIOMMU; the kernel translates vDomainID -> pDomainID and
//     vDeviceID -> pDeviceID and waits for its COMPLETION_WAIT.
//   INVALIDATE_IOMMU_ALL: one INVALIDATE_IOMMU_PAGES (all pages, PDE) per
//     guest DomainID of the VM's nested domains.
//   COMPLETION_WAIT: sends the collected array first (it completes only when
//     everything before it has), then stores StoreData at the guest's
//     StoreAddr (S) and sets Status.ComWaitInt (I; the guest's MSI if
//     Control.ComWaitIntEn and an MSI address are programmed).
// An unknown vDomainID / vDeviceID is refused (counted, not forwarded); an
// illegal command stops the emulated buffer with ILLEGAL_COMMAND_ERROR in the
// guest's event log, as the unit does. INVALIDATE_INTERRUPT_TABLE is
// accepted (no interrupt remapping is modelled); PREFETCH is refused.
// Page requests (VmParams::page_requests; Linux iommufd fault queue, QEMU's
// event thread): the guest sees EFR.PPRSup and its devices' PRI; the
// guest's PPR log is the unit's own (AmdRegs PPR Log Base / Head / Tail,
// Control PPREn / PPRLogEn / PPRIntEn, Status PPRInt / PPROverflow /
// PPRLogRun, on AmdLog). Each request the VMM reads from the fault queue
// becomes a bit-exact PPR log entry (B.6: the vDeviceID, the guest's PASID
// with GN, PRG index with bit 9 = last of group, R/W/X, US = not privileged,
// address) written at the guest's tail; the tail advances and, with PPRIntEn,
// Status.PPRInt is set and the guest's MSI sent. A full (or stopped) guest log
// drops the request as the unit does: PPROverflow set, the log stopped until
// the guest restarts it, the overflow MSI with PPRIntEn; the VMM answers the
// group INVALID (the only failing code iommufd takes from user space). The
// guest's COMPLETE_PPR_REQUEST traps: a vDeviceID with no vDEVICE cannot be
// translated and is refused (counted; the command is legal, as on the unit and
// in QEMU's amdvi_complete_ppr, which only checks reserved bits: those fail
// decode with ILLEGAL_COMMAND_ERROR); a known one becomes the iommufd page
// response of the group (vDeviceID, GN + PASID, PRG index) the VMM
// delivered, which the host sends as its own COMPLETE_PPR_REQUEST with the
// physical DeviceID (AmdDriver::page_response). Status Success -> SUCCESS,
// Invalid or Failure -> INVALID.
// Hardware-accelerated (ViommuMode::accelerated, the unit's hardware vIOMMU,
// iommu/amd/amd_hw_viommu.hpp): the vIOMMU is allocated with a GuestID
// (iommufd viommu_alloc_hw), its vDEVICEs and nested domains fill the unit's
// DeviceID / DomainID maps; the guest's Command Buffer Base write (trapped)
// becomes IOMMU_HW_QUEUE_ALLOC of the buffer and its Control.CmdBufEn the
// queue's enable; the guest's command-buffer head and tail (its vIOMMU's
// third 4 KiB page, 0x2000 / 0x2008) go straight to the unit's VF page
// without an exit. The unit executes INVALIDATE_IOMMU_PAGES and
// COMPLETION_WAIT itself and hands every other command back to this VMM
// (guest buffer trap mode), which handles it as above; the unit looks a
// COMPLETE_PPR_REQUEST's guest DeviceID up in its DeviceID map first (an
// unmapped one is refused without a trap), as for the device commands.
// Guest PASIDs: the nested domain is the guest's whole GCR3 table, so a
// request with PASID p walks the guest's GCR3[p] (the guest's own PASID
// space, threads/003: no PASID translation); the guest's GCR3 changes and
// their INVALIDATE_IOMMU_PAGES (GN, PASID) are forwarded as the rest.
// Not modelled: a guest using PASIDs with GIoV clear (no RID domain: the
// VMM detaches the device), event-log overflow, the hardware vIOMMU's own
// guest PPR log (VFCTRL 0x30: requests reach the accelerated guest through
// the VMM as in the trapped mode).
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "models/host/vm/viommu.hpp"
#include "models/iommu/amd/amd_params.hpp"
#include "models/iommu/amd/amd_hw_viommu.hpp"
#include "models/iommu/amd/amd_logs.hpp"
#include "models/iommu/amd/amd_regs.hpp"

namespace iommusim::host::vm {

class AmdViommu final : public VirtualIommu {
public:
    AmdViommu(sc_core::sc_module_name name, VmmContext& vmm, stats::Group* parent,
              const iommu::amd::AmdParams& guest_caps = {});
    std::unique_ptr<IommuDriver> guest_driver(const DriverEnv& env) override;

    /// The nested HWPT serving the guest GCR3 table at `gcr3_gpa`, if any.
    std::optional<uint32_t> nested_domain(uint64_t gcr3_gpa) const;
    /// How many nested domains carry guest DomainID `gdomid`.
    size_t nested_domains_of(uint16_t gdomid) const;
    const iommu::amd::AmdRegs& regs() const { return regs_; }

protected:
    uint64_t reg_read(uint32_t offset, unsigned size) override { return regs_.read(offset, size); }
    void reg_write(uint32_t offset, unsigned size, uint64_t value) override;

protected:
    bool direct(tlm::tlm_generic_payload& t, sc_core::sc_time& delay) override;
    bool guest_pasid_tables() const override { return true; }
    bool offers_pri() const override { return fault_delivery(); }
    std::optional<uint64_t> inject_page_request(const GuestFault& f) override;

private:
    /// The guest's key of a page request group: vDeviceID, GN + PASID, PRG index.
    static uint64_t ppr_key(uint16_t vdev, bool gn, uint32_t pasid, uint16_t prg_index);
    /// The guest's MSI, when it programmed one.
    void guest_msi();
    void run_queue();
    /// One guest command as the VMM handles it; false when it is illegal (the buffer stops).
    bool emulate(const std::array<uint64_t, 2>& q);
    /// Accelerated mode: the unit's hardware vIOMMU and this VM's GuestID on it, once allocated.
    void setup_hw_queue();
    /// Re-reads the guest DTE of `vdev` and (re)attaches the physical device.
    void sync_device(uint16_t vdev);
    void flush_pending();
    void stop(uint64_t command_gpa);
    /// Destroys the nested domains no device is attached to (replaced or dropped guest tables).
    void destroy_unused();

    iommu::amd::AmdParams p_;
    iommu::amd::AmdRegs regs_;
    iommu::amd::AmdLog ppr_log_{iommu::amd::AmdLog::Which::ppr}; ///< the guest's PPR log (page requests)
    uint64_t seq_ = 0; ///< commands fetched (the guest driver's sequence for the observer)

    struct Nested {
        uint32_t hwpt;
        uint16_t gdomid;
        std::array<uint64_t, 4> dte; ///< the guest DTE it was made from
    };
    std::map<uint64_t, Nested> nested_; ///< guest GCR3 table root (GPA) -> nested HWPT
    std::vector<uint32_t> replaced_;    ///< nested HWPTs a changed guest DTE replaced, to destroy once unused
    stats::Counter& dropped_atc_;
    iommu::amd::AmdHwViommu* hw_ = nullptr;          ///< accelerated mode: the unit's hardware vIOMMU
    std::optional<uint16_t> gid_;                    ///< accelerated mode: this VM's GuestID
    tlm_utils::simple_initiator_socket_optional<AmdViommu> vf_port_{"vf_port"}; ///< to the unit's VF page (no exit; accelerated only)
};

} // namespace iommusim::host::vm
