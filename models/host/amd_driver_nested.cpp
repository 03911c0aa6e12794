// SPDX-License-Identifier: Apache-2.0
// AmdDriver's nested (v2-over-v1) domains and vIOMMU invalidation: what Linux's
// drivers/iommu/amd/nested.c does with a guest DTE, and the software path of
// threads/003 for the guest's invalidations (vDomainID -> pDomainID, vDeviceID
// -> pDeviceID). The family-neutral objects are IommuFd's (vIOMMU, vDEVICE,
// nested HWPT); models/host/vm/amd_viommu is the VMM side.
#include <variant>

#include "models/host/amd_driver.hpp"
#include "models/host/host_error.hpp"

namespace iommusim::host {

namespace amd = iommu::amd;

namespace {
constexpr uint64_t bits(unsigned hi, unsigned lo) { return ((~uint64_t{0}) >> (63 - hi)) & ~((uint64_t{1} << lo) - 1); }
} // namespace

uint32_t AmdDriver::domain_tag(const DomainDesc& d) {
    if (d.kind != DomainDesc::Kind::nested) return domids_.get(d.id);
    // amd_iommu_alloc_domain_nested: one hDomID per (vIOMMU, gDomID), shared by every nested
    // domain (GCR3 table) the guest tags with that DomainID.
    const uint32_t key = gdom_key(d.viommu, guest_domain_id(d));
    gdom_users_[key].insert(d.id);
    return domids_.get(key);
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
        if (domids_.find(key)) domids_.release(key);
    }
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
