// SPDX-License-Identifier: Apache-2.0
#pragma once
// System-wide PASID allocator with PASID sets (shared/reference/threads 000,
// 002: "IOASID sets", VFIO_IOMMU_PASID_REQUEST). One 20-bit PASID space per
// system (VT-d scalable mode shares it across VMs); each set belongs to one
// owner token (a VM or a process: the VFIO series keys its vfio_mm on the
// mm) and has a quota; only the owner may allocate, bind or free PASIDs of
// its set. A set-private ID (a guest's PASID, the IOASID series' SPID) maps
// to a distinct host PASID, so guest PASID 101 in two VMs is two host
// PASIDs. PASID 0 is reserved for requests without PASID (RID_PASID).
//
// Modelled: one set per owner (a second create_set for an owner is busy),
// created explicitly or on the owner's first allocation with the host's
// default quota (VFIO creates the vfio_mm on the first container open);
// allocation of the lowest free PASID or of one requested value (the
// series' range allocation with min = max); hidden PASIDs (an SVA bind's
// PASID the user never sees) charged to the caller's set like any other.
// Not modelled: cgroup-style limits, PASID-space partitioning per IOMMU.
//
// Deterministic: the lowest free host PASID is allocated first.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "models/host/host_error.hpp"

namespace iommusim::host {

struct PasidParams {
    // PASIDs per owner when a set is created without a quota: the VFIO
    // series' VFIO_DEFAULT_PASID_QUOTA (shared/reference/threads 002: "a
    // default quota of 1000 ... could be tuned by administrator").
    static constexpr uint32_t kDefaultQuota = 1000;
    uint32_t default_quota = kDefaultQuota;
};

class PasidAllocator {
public:
    static constexpr uint32_t kPasidBits = 20;
    static constexpr uint32_t kPasidLimit = 1u << kPasidBits; ///< exclusive
    using SetId = uint32_t;

    /// `max_pasid_bits` narrows the space (IOMMU ECAP.PSS, device PASID width).
    explicit PasidAllocator(uint32_t max_pasid_bits = kPasidBits, const PasidParams& params = {});

    /// The set of `owner`, with `quota` PASIDs (default: params' default_quota).
    /// Errors: busy (the owner already has a set), invalid (empty owner, quota 0).
    SetId create_set(const std::string& owner, std::optional<uint32_t> quota = std::nullopt);
    /// The owner's set, created with the default quota if it has none yet.
    SetId set_for(const std::string& owner);
    /// The owner's set, if it has one.
    std::optional<SetId> find_set(const std::string& owner) const;
    /// Frees every PASID of the set and the set itself (owner only).
    void destroy_set(SetId set, const std::string& caller);

    /// Allocates a host PASID in `set`: the lowest free one, or exactly `host_value`.
    /// With `private_id`, records the set-private (guest) ID that maps to it. Errors:
    /// not_owner, quota_exceeded, busy (private ID already mapped, or host_value taken),
    /// invalid (host_value 0 or beyond the PASID width).
    uint32_t alloc(SetId set, const std::string& caller, std::optional<uint32_t> private_id = std::nullopt,
                   std::optional<uint32_t> host_value = std::nullopt);
    /// Errors: not_owner, not_found (unknown or already freed PASID).
    void free(SetId set, const std::string& caller, uint32_t host_pasid);

    /// Host PASID of a set-private ID; not_found if unmapped.
    uint32_t host_pasid(SetId set, uint32_t private_id) const;
    /// Checks that `caller` owns `host_pasid` (for bind/unbind/free); throws not_found for a
    /// PASID nobody allocated, not_owner for another owner's.
    void check_owner(uint32_t host_pasid, const std::string& caller) const;
    std::optional<SetId> set_of(uint32_t host_pasid) const;
    const std::string& owner_of(SetId set) const { return get(set).owner; }
    uint32_t used(SetId set) const;
    uint32_t quota(SetId set) const { return get(set).quota; }
    uint32_t allocated() const { return static_cast<uint32_t>(owner_set_.size()); }
    const PasidParams& params() const { return params_; }

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
    PasidParams params_;
    uint32_t next_hint_ = 1;
    std::map<SetId, Set> sets_;
    std::map<std::string, SetId> by_owner_;
    std::map<uint32_t, SetId> owner_set_; ///< allocated host PASID -> set
    SetId next_set_ = 1;
};

} // namespace iommusim::host
