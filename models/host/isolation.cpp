// SPDX-License-Identifier: Apache-2.0
#include "models/host/isolation.hpp"

#include <algorithm>

namespace iommusim::host {

using K = HostError::Kind;

namespace {
std::string what(pcie::Bdf rid, std::optional<uint32_t> pasid) {
    return "device " + rid.str() + (pasid ? " PASID " + std::to_string(*pasid) : "");
}
uint64_t device_key(unsigned iommu, pcie::Bdf rid) { return uint64_t{iommu} << 16 | rid.raw; }
} // namespace

Isolation::Isolation(IommuFd& fd, PasidAllocator& pasids, stats::Group* parent)
    : fd_(fd), pasids_(pasids), stats_("isolation", parent),
      pasid_refusals_(stats_.counter("pasid_refusals", "calls",
                                     "attaches refused because the PASID was never allocated or belongs to another owner")),
      group_refusals_(stats_.counter("group_refusals", "calls",
                                     "attaches refused because the device's IOMMU group belongs to another owner or domain")),
      hidden_pasids_(stats_.counter("hidden_pasids", "PASIDs", "PASIDs allocated by SVA binds, charged to the caller's set")),
      teardowns_(stats_.counter("pasid_teardowns", "attachments",
                                "attachments torn down because their PASID was freed while still attached")),
      bar_checked_(stats_.counter("bar_accesses", "requests",
                                  "accesses that reached a device BAR (from a peer, or from the function itself with the same "
                                  "requester ID), checked against the owned regions")),
      isolation_violations_(stats_.counter("violations", "requests",
                                           "BAR accesses that reached a region owned by someone other than the requester's owner")) {}

void Isolation::set_group(unsigned iommu, pcie::Bdf rid, int group, const std::string& label) {
    const uint64_t g = uint64_t{iommu} << 32 | static_cast<uint32_t>(group);
    device_group_[device_key(iommu, rid)] = g;
    groups_[g].label = label;
}

uint64_t Isolation::group_key(unsigned iommu, pcie::Bdf rid) {
    if (auto it = device_group_.find(device_key(iommu, rid)); it != device_group_.end()) return it->second;
    // Not declared: a group of its own (bit 31 keeps it apart from topology group numbers).
    const uint64_t g = uint64_t{iommu} << 32 | uint64_t{1} << 31 | rid.raw;
    if (!groups_.count(g)) groups_[g].label = "device " + rid.str();
    return g;
}

void Isolation::attach(const std::string& pasid_owner, unsigned iommu, pcie::Bdf rid, std::optional<uint32_t> pasid,
                       uint32_t hwpt, const std::string& group_owner) {
    const std::string& owner = group_owner.empty() ? pasid_owner : group_owner;
    if (pasid) {
        try {
            pasids_.check_owner(*pasid, pasid_owner);
        } catch (const HostError& e) {
            pasid_refusals_.inc();
            if (e.kind() == K::not_found)
                throw HostError(K::not_found, what(rid, pasid) + ": PASID " + std::to_string(*pasid) +
                                                  " was never allocated; a device may use only PASIDs allocated in "
                                                  "its owner's PASID set (alloc_pasid)");
            throw HostError(e.kind(), what(rid, pasid) + ": " + e.what());
        }
    }
    const uint64_t gk = group_key(iommu, rid);
    GroupState& g = groups_[gk];
    if (!g.owner.empty() && g.owner != owner) {
        group_refusals_.inc();
        throw HostError(K::busy, what(rid, pasid) + ": IOMMU group " + g.label + " belongs to \"" + g.owner +
                                     "\", not \"" + owner +
                                     "\"; the functions of a group are not isolated from each other, so one owner "
                                     "holds them all (VFIO group viability)");
    }
    // One domain per group for a user's functions. The kernel's DMA-API drivers keep a domain each
    // (Linux would give the group one default domain they share: not modelled).
    if (!pasid && g.rid_hwpt && *g.rid_hwpt != hwpt && owner != kKernel) {
        group_refusals_.inc();
        throw HostError(K::invalid, what(rid, pasid) + ": IOMMU group " + g.label + " of \"" + g.owner +
                                        "\" is attached to domain " + std::to_string(*g.rid_hwpt) +
                                        "; every function of a group shares one DMA domain");
    }
    fd_.attach(rid, pasid, hwpt);
    g.owner = owner;
    ++g.attachments;
    if (!pasid) {
        g.rid_hwpt = hwpt;
        ++g.rid_attachments;
    }
    records_.emplace(record_key(iommu, rid, pasid), Record{iommu, rid, pasid, gk});
}

void Isolation::detach(unsigned iommu, pcie::Bdf rid, std::optional<uint32_t> pasid) {
    fd_.detach(rid, pasid, iommu);
    auto it = records_.find(record_key(iommu, rid, pasid));
    if (it == records_.end()) return; // a kernel driver's attachment: nothing claimed here
    GroupState& g = groups_[it->second.group];
    if (!pasid && --g.rid_attachments == 0) g.rid_hwpt.reset();
    if (--g.attachments == 0) g.owner.clear();
    records_.erase(it);
}

uint32_t Isolation::bind_sva(const std::string& owner, unsigned iommu, pcie::Bdf rid, uint32_t hwpt,
                             std::optional<uint32_t> host_value, const std::string& group_owner) {
    const PasidAllocator::SetId set = pasids_.set_for(owner);
    const uint32_t p = pasids_.alloc(set, owner, std::nullopt, host_value);
    try {
        attach(owner, iommu, rid, p, hwpt, group_owner);
    } catch (...) {
        pasids_.free(set, owner, p);
        throw;
    }
    hidden_pasids_.inc();
    return p;
}

void Isolation::free_pasid(const std::string& owner, uint32_t host_pasid) {
    pasids_.check_owner(host_pasid, owner);
    // Tear down every attachment of the PASID before it can be handed out again.
    std::vector<Record> attached;
    for (const auto& [key, r] : records_)
        if (r.pasid == host_pasid) attached.push_back(r);
    for (const Record& r : attached) {
        detach(r.iommu, r.rid, r.pasid);
        teardowns_.inc();
    }
    pasids_.free(*pasids_.set_of(host_pasid), owner, host_pasid);
}

uint32_t Isolation::host_pasid(const std::string& owner, uint32_t private_id) const {
    const auto set = pasids_.find_set(owner);
    if (!set) throw HostError(K::not_found, "\"" + owner + "\" has no PASID set, so no PASID " + std::to_string(private_id));
    return pasids_.host_pasid(*set, private_id);
}

void Isolation::add_owned_region(unsigned iommu, uint64_t base, uint64_t size, const std::string& owner,
                                 const std::string& label) {
    if (size == 0 || owner.empty()) throw HostError(K::invalid, "owned region " + label + ": needs a size and an owner");
    regions_.push_back(Region{iommu, base, size, owner, label});
}

void Isolation::check_bar_access(unsigned iommu, const pcie::DmaRecord& r) {
    bar_checked_.inc();
    for (const Region& g : regions_) {
        if (g.iommu != iommu || r.pa < g.base || r.pa - g.base >= g.size) continue;
        const GroupState& grp = groups_[group_key(iommu, r.requester)];
        const std::string who = grp.owner.empty() ? std::string(kKernel) : grp.owner;
        if (who == g.owner) return;
        isolation_violations_.inc();
        if (violations_.size() < kMaxViolations)
            violations_.push_back(Violation{r.at_ps, r.requester, who, r.pa, g.label, g.owner});
        return;
    }
}

std::optional<std::string> Isolation::group_owner(unsigned iommu, int group) const {
    auto it = groups_.find(uint64_t{iommu} << 32 | static_cast<uint32_t>(group));
    if (it == groups_.end() || it->second.owner.empty()) return std::nullopt;
    return it->second.owner;
}

} // namespace iommusim::host
