// SPDX-License-Identifier: Apache-2.0
#pragma once
// The virtual VT-d unit a VMM presents (QEMU's intel-iommu with iommufd
// nesting, or with caching mode), emulated on the host.
//
// Fidelity: CAP.CM = 1 in both modes (QEMU requires caching-mode=on for assigned
// devices), so the guest invalidates after writing context and PASID entries.
// The guest-visible register file is the real one
// (iommu::vtd::VtdRegs: CAP/ECAP from the guest's VtdParams, GCMD/GSTS,
// RTADDR, IQA/IQH/IQT, FSTS, event registers); every access traps. On an
// IQT write the VMM fetches each 128/256-bit descriptor from guest memory
// and decodes it with the unit's own decoder (bad ones set IQE and stop the
// queue, §6.5.2.10), then acts per mode:
//   nested (ECAP.NEST; iommufd nesting): a context- or PASID-cache
//     invalidation makes the VMM re-read the guest's context and PASID
//     entries (RID_PASID) from guest memory; a first-stage PASID entry
//     becomes a nested HWPT per (vDomain-ID, PASID) (IOMMU_HWPT_DATA_VTD_S1:
//     FLPTPTR, FLPM, SRE/WPE) attached to the physical device behind the
//     virtual RID (vDEVICE table); (PASID-based) IOTLB invalidations are
//     split per (vDID, PASID) and sent as IOMMU_HWPT_INVALIDATE arrays to
//     that nested domain, the kernel flushing the domain's host DID and
//     synthesizing device-TLB invalidations; the guest's own device-TLB
//     invalidations are discarded (shared/reference/threads/003).
//   caching_mode (no nesting; QEMU's baseline): the guest uses
//     second-stage tables in guest memory and invalidates on map too; the
//     VMM walks the guest's table for each invalidated page and shadows it
//     into a host second-stage domain per vDID (IOVA -> HPA, map_user /
//     unmap, whose strict host flush covers the device TLB).
// A wait descriptor completes when the forwarded work has: the VMM writes
// the status word into guest memory (and the completion MSI with IF).
// An invalidation naming an unknown vDID, or a context for an unknown vRID,
// is refused (counted, nothing forwarded). Guest PASIDs (nested mode): a
// guest PASID is a private ID of the VM's PASID set in the host allocator
// (owner = the VM, quota = pasid_quota) and the physical device is attached
// at its host PASID; beyond the quota the bind is refused. Page requests
// (VmParams::page_requests): delivered through the iommufd fault queue into
// the guest's page request queue, answered by its page group responses (see
// inject_page_request). Not modelled: interrupt remapping,
// shadowing leaves larger than 4 KiB under caching mode, domain-selective
// shadow invalidations finding new mappings (they re-check the shadowed pages).
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "models/host/vm/viommu.hpp"
#include "models/iommu/vtd/vtd_params.hpp"
#include "models/iommu/vtd/vtd_regs.hpp"
#include "models/iommu/vtd/vtd_tables.hpp"

namespace iommusim::host::vm {

class VtdViommu final : public VirtualIommu {
public:
    /// `guest_caps`: what the guest sees (CAP.CM is always set, as QEMU requires for assigned devices).
    VtdViommu(sc_core::sc_module_name name, VmmContext& vmm, stats::Group* parent,
              const iommu::vtd::VtdParams& guest_caps = {});
    std::unique_ptr<IommuDriver> guest_driver(const DriverEnv& env) override;

    /// The nested HWPT serving (vDomain-ID, PASID), if any (nested mode).
    std::optional<uint32_t> nested_domain(uint16_t vdid, uint32_t pasid) const;
    /// The host shadow domain of a vDID (caching mode), if any.
    std::optional<uint32_t> shadow_domain(uint16_t vdid) const;
    /// The guest-visible register file (tests: where the guest's queue is).
    const iommu::vtd::VtdRegs& regs() const { return regs_; }

protected:
    uint64_t reg_read(uint32_t offset, unsigned size) override { return regs_.read(offset, size); }
    void reg_write(uint32_t offset, unsigned size, uint64_t value) override;
    /// Guest fault delivery (VmParams::page_requests, nested mode): the guest sees ECAP.PRS and its
    /// devices' PRI; each request the VMM reads from the fault queue becomes a page request
    /// descriptor (vRID, the guest's PASID: the VM's PASID set mapped back) at PQT of the guest's
    /// page request queue, PQT advanced and PRS.PPR set, the page request event sent unless PECTL
    /// masks it; a full queue sets PRS.PRO and is answered Success (§7.5.1 auto-response). The
    /// guest's page group response descriptor (type 9) traps and becomes the page response.
    bool offers_pri() const override { return fault_delivery(); }
    std::optional<uint64_t> inject_page_request(const GuestFault& f) override;
    bool unqueued_success() const override { return true; }
    std::optional<uint32_t> guest_pasid_of(std::optional<uint32_t> hw_pasid) override;

private:
    void run_queue();
    /// Guest PASID key of requests without PASID (the context entry's RID_PASID, 0 as Linux sets it).
    static constexpr uint32_t kRidPasid = kNoPasid;
    /// Re-reads the guest's PASID entry (`pasid`) of one virtual device and (re)binds its host attachment.
    void sync_device(pcie::Bdf vrid, const DeviceInfo& dev, uint32_t pasid);
    /// Re-reads RID_PASID and every PASID the device has bound.
    void sync_all(pcie::Bdf vrid, const DeviceInfo& dev);
    void invalidate(const iommu::InvalidationScope& s);
    void flush_pending();
    /// Caching mode: brings the shadow of vDID's domain in step with the guest's table.
    void shadow_sync(uint16_t vdid, const iommu::InvalidationScope& s);
    /// Walks a guest table in guest memory (VMM emulation cost per read); the GPA `va` maps to.
    std::optional<uint64_t> guest_walk(const iommu::StageConfig& c, uint64_t va);
    void send(const std::optional<iommu::vtd::Msi>& msi);
    /// The key a page group response names: vRID, PASID (present bit), PRG index.
    static uint64_t prq_key(pcie::Bdf vrid, bool pasid_present, uint32_t pasid, uint16_t prg_index);

    iommu::vtd::VtdParams p_;
    iommu::vtd::VtdRegs regs_;
    iommu::vtd::VtdTableReader reader_;
    uint64_t seq_ = 0; ///< descriptors fetched since queued invalidation was enabled

    struct Nested {
        uint32_t hwpt;
        uint64_t root;
    };
    std::map<std::pair<uint16_t, uint32_t>, Nested> nested_; ///< (vDID, PASID) -> nested HWPT
    struct Shadow {
        uint32_t ioas = 0, hwpt = 0;
        iommu::StageConfig guest_s2;        ///< the guest's second-stage table (GPA root)
        std::map<uint64_t, uint64_t> pages; ///< shadowed IOVA page -> HPA
    };
    std::map<uint16_t, Shadow> shadows_;     ///< vDID -> host shadow domain (caching mode)
    uint32_t pending_hwpt_ = 0;
    std::vector<uapi::VtdS1Invalidate> pending_; ///< the IOMMU_HWPT_INVALIDATE array being built
    stats::Counter& shadow_maps_;
    stats::Counter& shadow_unmaps_;
};

} // namespace iommusim::host::vm
