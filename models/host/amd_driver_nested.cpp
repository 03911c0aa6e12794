// SPDX-License-Identifier: Apache-2.0
// AmdDriver's nested (v2-over-v1) domains and vIOMMU invalidation: what Linux's
// drivers/iommu/amd/nested.c does with a guest DTE, and the software path of
// threads/003 for the guest's invalidations (vDomainID -> pDomainID, vDeviceID
// -> pDeviceID). The family-neutral objects are IommuFd's (vIOMMU, vDEVICE,
// nested HWPT); models/host/vm/amd_viommu is the VMM side.
#include <algorithm>
#include <variant>

#include "models/host/amd_driver.hpp"
#include "models/host/host_error.hpp"
#include "models/iommu/amd/amd_hw_viommu.hpp"

namespace iommusim::host {

namespace amd = iommu::amd;

namespace {
constexpr uint64_t kPage = 4096;
constexpr uint64_t bits(unsigned hi, unsigned lo) { return ((~uint64_t{0}) >> (63 - hi)) & ~((uint64_t{1} << lo) - 1); }
} // namespace

uint32_t AmdDriver::domain_tag(const DomainDesc& d) {
    if (d.kind != DomainDesc::Kind::nested) return domids_.get(d.id);
    // amd_iommu_alloc_domain_nested: one hDomID per (vIOMMU, gDomID), shared by every nested
    // domain (GCR3 table) the guest tags with that DomainID.
    const uint32_t key = gdom_key(d.viommu, guest_domain_id(d));
    const bool first = gdom_users_[key].empty();
    gdom_users_[key].insert(d.id);
    const uint32_t hdom = domids_.get(key);
    if (first) map_domain(d, static_cast<uint16_t>(hdom)); // a hardware vIOMMU's DomainID map
    return hdom;
}

void AmdDriver::release_domain_tag(const DomainDesc& d) {
    if (d.kind != DomainDesc::Kind::nested) {
        if (domids_.find(d.id)) domids_.release(d.id);
        return;
    }
    // nested_domain_free: the hDomID goes when its last nested domain does.
    const uint32_t key = gdom_key(d.viommu, guest_domain_id(d));
    auto it = gdom_users_.find(key);
    if (it == gdom_users_.end()) return;
    it->second.erase(d.id);
    if (it->second.empty()) {
        gdom_users_.erase(it);
        map_domain(d, 0); // clear_domain_mapping
        if (domids_.find(key)) domids_.release(key);
    }
}

// ---- hardware vIOMMU -------------------------------------------------------------------------------

void AmdDriver::attach_hw_viommu(MmioPort vfcntl, uint16_t guests) {
    vfcntl_.emplace(vfcntl);
    hw_guests_ = guests;
}

std::optional<uint16_t> AmdDriver::guest_id(uint32_t viommu) const {
    auto it = guest_ids_.find(viommu);
    return it == guest_ids_.end() ? std::nullopt : std::optional<uint16_t>(it->second);
}

void AmdDriver::map_domain(const DomainDesc& d, uint16_t hdom) {
    const std::optional<uint16_t> gid = guest_id(d.viommu);
    if (!gid) return;
    vfcntl_->write64(*gid * amd::hwv::kVfCntlStride + amd::hwv::kDomMapCtl, amd::hwv::map_control(guest_domain_id(d), hdom));
}

bool AmdDriver::viommu_hw_alloc(uint32_t viommu, const GuestRam& ram) {
    if (!vfcntl_ || guest_ids_.size() >= hw_guests_) return false;
    cpu_.spend(cpu_.params().call_overhead);
    if (!private_base_) {
        // amd_viommu_init / viommu_private_space_init: the unit's private space, zeroed pages
        // (one contiguous block here: see amd_hw_viommu.hpp), its base given to the unit.
        const uint64_t pages = hw_guests_ * amd::hwv::kGuestRegionBytes / kPage;
        const uint64_t first = alloc_page_();
        for (uint64_t k = 1; k < pages; ++k)
            if (alloc_page_() != first + k * kPage)
                throw std::runtime_error("AMD-Vi driver: the vIOMMU private space needs contiguous pages");
        private_base_ = first;
        vfcntl_->write64(amd::hwv::kPrivateBaseReg, private_base_);
    }
    uint16_t gid = 0; // the lowest free GuestID (Linux: an IDA)
    while (std::any_of(guest_ids_.begin(), guest_ids_.end(), [gid](const auto& e) { return e.second == gid; })) ++gid;
    guest_ids_[viommu] = gid;
    // The guest-memory window (see amd_hw_viommu.hpp), then no mapping and no queue yet.
    const uint64_t window = private_base_ + gid * amd::hwv::kGuestRegionBytes + amd::hwv::kDevMapBytes + amd::hwv::kDomMapBytes;
    const std::array<uint64_t, 3> w{ram.gpa, ram.hpa, ram.bytes};
    cpu_.spend(cpu_.params().mem_write);
    cpu_.memory().write(window, w.data(), sizeof w);
    vfcntl_->write64(gid * amd::hwv::kVfCntlStride + amd::hwv::kCmdCtl, 0);
    return true;
}

void AmdDriver::viommu_hw_vdevice(uint32_t viommu, uint64_t virt_id, const DeviceInfo& dev) {
    // _amd_viommu_vdevice_init -> set_device_mapping.
    const std::optional<uint16_t> gid = guest_id(viommu);
    if (!gid) return;
    vfcntl_->write64(*gid * amd::hwv::kVfCntlStride + amd::hwv::kDevMapCtl,
                     amd::hwv::map_control(static_cast<uint16_t>(virt_id), dev.rid.raw));
}

void AmdDriver::viommu_hw_vdevice_free(uint32_t viommu, uint64_t virt_id) {
    // clear_device_mapping: host DeviceID 0 for the guest's.
    const std::optional<uint16_t> gid = guest_id(viommu);
    if (!gid) return;
    vfcntl_->write64(*gid * amd::hwv::kVfCntlStride + amd::hwv::kDevMapCtl,
                     amd::hwv::map_control(static_cast<uint16_t>(virt_id), 0));
}

void AmdDriver::viommu_hw_free(uint32_t viommu) {
    // The guest's command buffer off and unconfigured, the GuestID free again (its DomainID map
    // entries went with its nested domains, its DeviceID map entries with its vDEVICEs).
    const std::optional<uint16_t> gid = guest_id(viommu);
    if (!gid) return;
    vfcntl_->write64(*gid * amd::hwv::kVfCntlStride + amd::hwv::kCmdCtl, 0);
    guest_ids_.erase(viommu);
}

uapi::Errno AmdDriver::hw_queue_alloc(uint32_t viommu, uint64_t base, uint64_t bytes) {
    // _amd_viommu_hw_queue_init (IOMMU_HW_QUEUE_TYPE_AMD_CMD): base and ComLen into VFCTRL 0x20.
    const std::optional<uint16_t> gid = guest_id(viommu);
    if (!gid) return uapi::Errno::eopnotsupp;
    unsigned log2 = 0;
    while ((uint64_t{16} << log2) < bytes) ++log2;
    if ((uint64_t{16} << log2) != bytes || log2 < 8 || log2 > 15 || (base & 0xFFF))
        return uapi::Errno::einval; // ComLen 8..15 (256..32768 entries), 4 KiB aligned
    vfcntl_->write64(*gid * amd::hwv::kVfCntlStride + amd::hwv::kCmdCtl, (base & 0x000FFFFFFFFFF000ull) | log2);
    return uapi::Errno::ok;
}

void AmdDriver::hw_queue_enable(uint32_t viommu, bool on) {
    // amd_viommu_guest_mmio_write (Control.CmdBufEn -> VFCTRL 0x20 bit 8): read-modify-write.
    const std::optional<uint16_t> gid = guest_id(viommu);
    if (!gid) return;
    const uint32_t reg = *gid * amd::hwv::kVfCntlStride + amd::hwv::kCmdCtl;
    const uint64_t v = vfcntl_->read64(reg);
    vfcntl_->write64(reg, on ? v | amd::hwv::kCmdEn : v & ~amd::hwv::kCmdEn);
}

std::optional<std::string> AmdDriver::check_nested(uint32_t data_type, const std::array<uint64_t, 4>& g,
                                                   bool& unsupported) const {
    unsupported = false;
    if (data_type != uapi::kHwptDataAmdGuest) {
        unsupported = true;
        return std::string("AMD-Vi nested domains take IOMMU_HWPT_DATA_AMD_GUEST");
    }
    // validate_gdte_nested.
    const amd::Dte d = amd::Dte::decode(g);
    if (d.mode != 0 || (g[0] & bits(51, 12))) return std::string("guest DTE: Mode and the host table root must be 0");
    if (d.v && d.gv && d.gcr3_root == 0) return std::string("guest DTE: GV without a GCR3 table root");
    if (((g[2] >> 54) & 3) > 1) return std::string("guest DTE: guest paging mode must be 4- or 5-level");
    if (d.glx == 3) return std::string("guest DTE: GLX 3 is reserved");
    if (d.gpm == 1 && !caps().s1.has_levels(5)) {
        unsupported = true;
        return std::string("guest DTE: 5-level guest tables without EFR.GATS support");
    }
    return std::nullopt;
}

void AmdDriver::attach_nested(const Attachment& a, const DomainDesc& domain) {
    // set_dte_nested: the parent's v1 table under the nested domain's hDomID, then the guest's
    // translation fields copied from its DTE (the GCR3 root is a GPA: the unit reads it through
    // the host table).
    const amd::Dte g = amd::Dte::decode(domain.guest_entry);
    Dev& d = dev(a.device);
    d.dte.ir = d.dte.iw = true;
    d.dte.mode = domain.s2.levels;
    d.dte.host_root = domain.s2.root;
    d.dte.domain_id = static_cast<uint16_t>(domain_tag(domain));
    d.dte.gv = true;
    d.dte.ppr = g.ppr && caps().pri;
    d.dte.glx = g.glx;
    d.dte.giov = g.giov;
    d.dte.gcr3_root = g.gcr3_root;
    d.dte.gpm = g.gpm;
    d.rid_v2 = false;
    std::vector<QueueEntry> cmds;
    write_dte(a.device.rid.raw, d, cmds); // amd_iommu_update_dte: INVALIDATE_DEVTAB_ENTRY + wait
    queue_.submit(std::move(cmds), /*counted=*/false);
}

uapi::Errno AmdDriver::viommu_invalidate(const ViommuRef& v, const std::vector<std::array<uint64_t, 2>>& cmds,
                                         uint32_t& done, FlushTiming& timing) {
    cpu_.spend(cpu_.params().call_overhead);
    done = 0;
    // Only the two invalidation opcodes are taken; their legality does not depend on the EFR.
    static const amd::AmdParams kAny;
    std::vector<QueueEntry> out;
    uapi::Errno err = uapi::Errno::ok;
    for (const auto& q : cmds) {
        amd::Decoded dec = amd::decode(q, kAny);
        if (!dec.ok()) {
            err = uapi::Errno::einval;
            break;
        }
        if (auto* p = std::get_if<amd::InvalidateIommuPages>(&dec.command)) {
            const std::optional<uint32_t> hdom = domids_.find(gdom_key(v.id, p->domain_id));
            if (!hdom) { // no nested domain of this vIOMMU carries that guest DomainID
                err = uapi::Errno::einval;
                break;
            }
            p->domain_id = static_cast<uint16_t>(*hdom);
        } else if (auto* t = std::get_if<amd::InvalidateIotlbPages>(&dec.command)) {
            const DeviceInfo* dev_info = v.vdevice ? v.vdevice(t->device_id) : nullptr;
            if (!dev_info || !dev_info->ats) {
                err = uapi::Errno::einval;
                break;
            }
            t->device_id = t->queue_id = dev_info->rid.raw; // Linux puts the DeviceID in QueueID too
            iotlb_invalidations_.inc();
        } else {
            err = uapi::Errno::eio;
            break;
        }
        out.push_back(entry(dec.command));
        ++done;
    }
    if (out.empty()) return err;
    ranged_.inc();
    timing = queue_.submit(std::move(out));
    timing.ranged = true;
    return err;
}

} // namespace iommusim::host
