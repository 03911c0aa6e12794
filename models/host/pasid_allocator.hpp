// SPDX-License-Identifier: Apache-2.0
#pragma once
// System-wide PASID allocator with PASID sets (shared/reference/threads: "PASID
// sets and quotas"). One 20-bit PASID space per system; each set belongs to an
// owner (a VM or a process group) and has a quota; only the owner may
// allocate, bind or free PASIDs of its set. A set-private ID (a guest's PASID)
// maps to a distinct host PASID, so guest PASID 101 in two VMs is two host
// PASIDs. PASID 0 is reserved for requests without PASID (RID_PASID).
//
// Deterministic: the lowest free host PASID is allocated first.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "models/host/host_error.hpp"

namespace iommusim::host {

class PasidAllocator {
public:
    static constexpr uint32_t kPasidBits = 20;
    static constexpr uint32_t kPasidLimit = 1u << kPasidBits; ///< exclusive
    using SetId = uint32_t;

    /// `max_pasid_bits` narrows the space (IOMMU ECAP.PSS, device PASID width).
    explicit PasidAllocator(uint32_t max_pasid_bits = kPasidBits);

    SetId create_set(const std::string& owner, uint32_t quota);
    /// Frees every PASID of the set and the set itself (owner only).
    void destroy_set(SetId set, const std::string& caller);

    /// Allocates a host PASID in `set`; with `private_id`, records the
    /// set-private (guest) ID that maps to it. Errors: not_owner,
    /// quota_exceeded, busy (private ID already mapped).
    uint32_t alloc(SetId set, const std::string& caller, std::optional<uint32_t> private_id = std::nullopt);
    /// Errors: not_owner, not_found (unknown or already freed PASID).
    void free(SetId set, const std::string& caller, uint32_t host_pasid);

    /// Host PASID of a set-private ID; not_found if unmapped.
    uint32_t host_pasid(SetId set, uint32_t private_id) const;
    /// Checks that `caller` owns `host_pasid` (for bind/unbind); throws otherwise.
    void check_owner(uint32_t host_pasid, const std::string& caller) const;
    std::optional<SetId> set_of(uint32_t host_pasid) const;
    uint32_t used(SetId set) const;
    uint32_t allocated() const { return static_cast<uint32_t>(owner_set_.size()); }

private:
    struct Set {
        std::string owner;
        uint32_t quota;
        std::map<uint32_t, uint32_t> private_to_host;
        std::vector<uint32_t> members;
    };
    Set& get(SetId id, const std::string& caller);
    const Set& get(SetId id) const;

    uint32_t limit_;
    uint32_t next_hint_ = 1;
    std::map<SetId, Set> sets_;
    std::map<uint32_t, SetId> owner_set_; ///< allocated host PASID -> set
    SetId next_set_ = 1;
};

} // namespace iommusim::host
