// SPDX-License-Identifier: Apache-2.0
#include "models/host/pasid_allocator.hpp"

#include <algorithm>

namespace iommusim::host {

using K = HostError::Kind;

PasidAllocator::PasidAllocator(uint32_t bits) {
    if (bits < 1 || bits > kPasidBits)
        throw HostError(K::invalid, "PASID width must be 1..20 bits, got " + std::to_string(bits));
    limit_ = 1u << bits;
}

PasidAllocator::SetId PasidAllocator::create_set(const std::string& owner, uint32_t quota) {
    if (owner.empty()) throw HostError(K::invalid, "a PASID set needs an owner");
    if (quota == 0) throw HostError(K::invalid, "a PASID set quota must be at least 1");
    SetId id = next_set_++;
    sets_[id] = Set{owner, quota, {}, {}};
    return id;
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
    sets_.erase(id);
}

uint32_t PasidAllocator::alloc(SetId id, const std::string& caller, std::optional<uint32_t> private_id) {
    Set& s = get(id, caller);
    if (s.members.size() >= s.quota)
        throw HostError(K::quota_exceeded, "PASID set " + std::to_string(id) + " of \"" + s.owner +
                                               "\" is at its quota of " + std::to_string(s.quota));
    if (private_id && s.private_to_host.count(*private_id))
        throw HostError(K::busy, "set-private PASID " + std::to_string(*private_id) + " is already allocated in set " +
                                     std::to_string(id));
    uint32_t p = next_hint_;
    while (p < limit_ && owner_set_.count(p)) ++p;
    if (p >= limit_) throw HostError(K::quota_exceeded, "the system PASID space is exhausted");
    owner_set_[p] = id;
    next_hint_ = p + 1;
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
