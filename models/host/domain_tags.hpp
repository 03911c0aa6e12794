// SPDX-License-Identifier: Apache-2.0
#pragma once
// Domain-tag allocation for driver backends: the values a unit's caches are
// tagged with per domain (VT-d Domain-ID, AMD-Vi DomainID, SMMUv3 VMID or
// ASID). A backend owns one allocator per tag space, sized from the unit's
// capabilities, with its architecture's reserved values kept out of the
// range (VT-d DID 0 under caching mode and Linux's FLPT_DEFAULT_DID 1, AMD
// DomainID 0, SMMUv3 VMID 0 / ASID 0). The lowest free tag is handed out
// (Linux ida_alloc_range), so a run allocates the same tags every time.
// Kernel-free.
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "models/host/host_error.hpp"

namespace iommusim::host {

class DomainTagAllocator {
public:
    /// Tags [first, last]; `what` names the tag in errors ("Domain-ID").
    DomainTagAllocator(uint32_t first, uint32_t last, std::string what)
        : first_(first), last_(last), what_(std::move(what)) {}
    /// Narrows or widens the range once the unit's capabilities are known (before any allocation).
    void set_range(uint32_t first, uint32_t last) {
        first_ = first;
        last_ = last;
    }
    /// The tag of host domain `domain`, allocated (lowest free) on first use.
    uint32_t get(uint32_t domain) {
        if (auto it = by_domain_.find(domain); it != by_domain_.end()) return it->second;
        uint32_t tag = first_;
        for (uint32_t used : used_) { // sorted: the first gap at or above first_
            if (used < tag) continue;
            if (used != tag) break;
            ++tag;
        }
        if (tag > last_ || tag < first_)
            throw HostError(HostError::Kind::no_space, "out of " + what_ + "s (" + std::to_string(last_ - first_ + 1) +
                                                           " usable, " + std::to_string(first_) + "-" +
                                                           std::to_string(last_) + ")");
        used_.insert(tag);
        by_domain_.emplace(domain, tag);
        return tag;
    }
    /// Takes a specific tag for `domain` (a tag another agent chose, e.g. a CPU ASID
    /// an SVA context shares). False when another domain holds it (see owner()).
    bool claim(uint32_t domain, uint32_t tag) {
        if (auto it = by_domain_.find(domain); it != by_domain_.end()) return it->second == tag;
        if (tag < first_ || tag > last_ || used_.count(tag)) return false;
        used_.insert(tag);
        by_domain_.emplace(domain, tag);
        return true;
    }
    /// The domain holding `tag`, if any.
    std::optional<uint32_t> owner(uint32_t tag) const {
        for (const auto& [d, t] : by_domain_)
            if (t == tag) return d;
        return std::nullopt;
    }
    std::optional<uint32_t> find(uint32_t domain) const {
        auto it = by_domain_.find(domain);
        return it == by_domain_.end() ? std::nullopt : std::optional<uint32_t>(it->second);
    }
    /// Returns a domain's tag for reuse (after its caches were flushed). not_found if it has none.
    void release(uint32_t domain) {
        auto it = by_domain_.find(domain);
        if (it == by_domain_.end())
            throw HostError(HostError::Kind::not_found, "domain " + std::to_string(domain) + " holds no " + what_);
        used_.erase(it->second);
        by_domain_.erase(it);
    }
    size_t in_use() const { return used_.size(); }

private:
    uint32_t first_, last_;
    std::string what_;
    std::set<uint32_t> used_;
    std::map<uint32_t, uint32_t> by_domain_;
};

} // namespace iommusim::host
