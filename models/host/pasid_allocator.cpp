// SPDX-License-Identifier: Apache-2.0
#include "models/host/pasid_allocator.hpp"

#include <algorithm>

namespace iommusim::host {

using K = HostError::Kind;

PasidAllocator::PasidAllocator(uint32_t bits, const PasidParams& params) : params_(params) {
    if (bits < 1 || bits > kPasidBits)
        throw HostError(K::invalid, "PASID width must be 1..20 bits, got " + std::to_string(bits));
    if (params.default_quota == 0) throw HostError(K::invalid, "the default PASID quota must be at least 1");
    limit_ = 1u << bits;
}

PasidAllocator::SetId PasidAllocator::create_set(const std::string& owner, std::optional<uint32_t> quota) {
    if (owner.empty()) throw HostError(K::invalid, "a PASID set needs an owner");
    const uint32_t q = quota.value_or(params_.default_quota);
    if (q == 0) throw HostError(K::invalid, "a PASID set quota must be at least 1");
    // One set per owner token: the quota is the owner's (VFIO: one vfio_mm per mm).
    if (auto it = by_owner_.find(owner); it != by_owner_.end())
        throw HostError(K::busy, "\"" + owner + "\" already has PASID set " + std::to_string(it->second) +
                                     " (one set per owner)");
    SetId id = next_set_++;
    sets_[id] = Set{owner, q, {}, {}};
    by_owner_[owner] = id;
    return id;
}

PasidAllocator::SetId PasidAllocator::set_for(const std::string& owner) {
    if (auto s = find_set(owner)) return *s;
    return create_set(owner);
}

std::optional<PasidAllocator::SetId> PasidAllocator::find_set(const std::string& owner) const {
    auto it = by_owner_.find(owner);
    if (it == by_owner_.end()) return std::nullopt;
    return it->second;
}

PasidAllocator::Set& PasidAllocator::get(SetId id, const std::string& caller) {
    auto it = sets_.find(id);
    if (it == sets_.end()) throw HostError(K::not_found, "no PASID set " + std::to_string(id));
    if (it->second.owner != caller)
        throw HostError(K::not_owner, "PASID set " + std::to_string(id) + " belongs to \"" + it->second.owner +
                                          "\", not \"" + caller + "\"");
    return it->second;
}

const PasidAllocator::Set& PasidAllocator::get(SetId id) const {
    auto it = sets_.find(id);
    if (it == sets_.end()) throw HostError(K::not_found, "no PASID set " + std::to_string(id));
    return it->second;
}

void PasidAllocator::destroy_set(SetId id, const std::string& caller) {
    Set& s = get(id, caller);
    for (uint32_t p : s.members) {
        owner_set_.erase(p);
        next_hint_ = std::min(next_hint_, p);
    }
    by_owner_.erase(s.owner);
    sets_.erase(id);
}

uint32_t PasidAllocator::alloc(SetId id, const std::string& caller, std::optional<uint32_t> private_id,
                               std::optional<uint32_t> host_value) {
    Set& s = get(id, caller);
    if (host_value && (*host_value == 0 || *host_value >= limit_))
        throw HostError(K::invalid, "host PASID " + std::to_string(*host_value) + " is outside 1.." +
                                        std::to_string(limit_ - 1) + " (PASID 0 is RID_PASID)");
    if (s.members.size() >= s.quota)
        throw HostError(K::quota_exceeded, "PASID set " + std::to_string(id) + " of \"" + s.owner +
                                               "\" is at its quota of " + std::to_string(s.quota));
    if (private_id && s.private_to_host.count(*private_id))
        throw HostError(K::busy, "set-private PASID " + std::to_string(*private_id) + " is already allocated in set " +
                                     std::to_string(id));
    uint32_t p = 0;
    if (host_value) {
        // A range allocation with min = max (VFIO_IOMMU_PASID_REQUEST, iommufd's IOMMU_ALLOC_PASID range).
        p = *host_value;
        if (owner_set_.count(p)) throw HostError(K::busy, "host PASID " + std::to_string(p) + " is already allocated");
    } else {
        p = next_hint_;
        while (p < limit_ && owner_set_.count(p)) ++p;
        if (p >= limit_) throw HostError(K::quota_exceeded, "the system PASID space is exhausted");
        next_hint_ = p + 1;
    }
    owner_set_[p] = id;
    s.members.push_back(p);
    if (private_id) s.private_to_host[*private_id] = p;
    return p;
}

void PasidAllocator::free(SetId id, const std::string& caller, uint32_t host_pasid) {
    Set& s = get(id, caller);
    auto it = std::find(s.members.begin(), s.members.end(), host_pasid);
    if (it == s.members.end())
        throw HostError(K::not_found, "PASID " + std::to_string(host_pasid) + " is not allocated in set " +
                                          std::to_string(id) + " (unknown or already freed)");
    s.members.erase(it);
    std::erase_if(s.private_to_host, [&](const auto& kv) { return kv.second == host_pasid; });
    owner_set_.erase(host_pasid);
    next_hint_ = std::min(next_hint_, host_pasid);
}

uint32_t PasidAllocator::host_pasid(SetId id, uint32_t private_id) const {
    const Set& s = get(id);
    auto it = s.private_to_host.find(private_id);
    if (it == s.private_to_host.end())
        throw HostError(K::not_found, "set " + std::to_string(id) + " has no PASID " + std::to_string(private_id));
    return it->second;
}

void PasidAllocator::check_owner(uint32_t host_pasid, const std::string& caller) const {
    auto it = owner_set_.find(host_pasid);
    if (it == owner_set_.end()) throw HostError(K::not_found, "PASID " + std::to_string(host_pasid) + " is not allocated");
    const Set& s = get(it->second);
    if (s.owner != caller)
        throw HostError(K::not_owner, "PASID " + std::to_string(host_pasid) + " belongs to \"" + s.owner + "\", not \"" +
                                          caller + "\"");
}

std::optional<PasidAllocator::SetId> PasidAllocator::set_of(uint32_t host_pasid) const {
    auto it = owner_set_.find(host_pasid);
    if (it == owner_set_.end()) return std::nullopt;
    return it->second;
}

uint32_t PasidAllocator::used(SetId id) const { return static_cast<uint32_t>(get(id).members.size()); }

} // namespace iommusim::host
