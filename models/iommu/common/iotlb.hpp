// SPDX-License-Identifier: Apache-2.0
#pragma once
// Fidelity: a generic IOTLB on SetAssocCache. Key = (domain tag, address-space
// tag, IOVA page, page size, translation kind), packed into two uint64. Mixed
// page sizes share one structure: a lookup probes only the sizes currently
// cached (ascending), and global entries (x86 G=1, Arm nG=0) are stored once per
// domain and match every address-space tag. Entries keep stage-1 and stage-2
// rights separately (so a denial is attributed to a stage), the stage-1 output
// page (so a stage-2 IPA-range invalidation finds nested entries), and whether
// the leaf still needs a hardware dirty update (a write then walks again, as
// x86 and Arm hardware do). Invalidation applies a generic InvalidationScope
// (DESIGN.md "The seam"). Not modelled: lookup latency (the shell charges it),
// per-size partitioned TLBs of specific products, negative (fault) caching.
#include <array>
#include <cstdint>
#include <string>

#include "models/iommu/common/iotlb_params.hpp"
#include "models/iommu/common/set_assoc_cache.hpp"
#include "models/iommu/common/translation.hpp"

namespace iommusim::iommu {

/// What a cached translation was produced by.
enum class TranslationKind : uint8_t {
    s1 = 1,      ///< stage 1 only (input IOVA / VA)
    s2 = 2,      ///< stage 2 only (input IOVA = IPA/GPA)
    nested = 3,  ///< stage 1 over stage 2, combined
    s2_ipa = 4,  ///< stage-2 cache entry used by nested walks (domain-tagged, not per address space)
};

TranslationKind kind_of(const TranslationContext& ctx);

struct IotlbEntry {
    uint64_t output = 0;     ///< output page base (physical)
    uint64_t ipa = 0;        ///< nested: stage-1 output page base (IPA/GPA)
    uint8_t s1_perms = perm::all;
    uint8_t s2_perms = perm::all;
    bool snoop = false;
    bool dirty_pending = false; ///< a write must walk again to set the dirty state
};

struct IotlbHit {
    const IotlbEntry* entry = nullptr;
    uint8_t page_shift = 0;
    bool global = false;
};

class Iotlb {
public:
    static constexpr unsigned kTagBits = 24; ///< domain and address-space tags are stored in 24 bits

    Iotlb(std::string name, const CacheGeometry& g, stats::Group* parent);

    IotlbHit lookup(uint32_t domain, uint32_t as, uint64_t iova, TranslationKind kind);
    void insert(uint32_t domain, uint32_t as, uint64_t iova, TranslationKind kind, unsigned page_shift, bool global,
                const IotlbEntry& e);
    /// Applies a generic scope; returns the number of entries removed.
    uint64_t invalidate(const InvalidationScope& s);

    uint32_t size() const { return cache_.size(); }
    uint32_t capacity() const { return cache_.capacity(); }
    bool enabled() const { return cache_.enabled(); }
    const SetAssocCache<IotlbEntry>& cache() const { return cache_; }

    static CacheKey make_key(uint32_t domain, uint32_t as, uint64_t iova, TranslationKind kind, unsigned page_shift,
                             bool global) {
        return {iova >> page_shift, (uint64_t{domain & kTagMask} << 40) | (uint64_t{global ? 0 : (as & kTagMask)} << 16) |
                                        (uint64_t{global} << 15) | (uint64_t(kind) << 12) | page_shift};
    }

private:
    static constexpr uint32_t kTagMask = (1u << kTagBits) - 1;
    void account(const CacheKey& k, int delta);
    SetAssocCache<IotlbEntry> cache_;
    std::array<uint32_t, 64> per_shift_{}; ///< valid entries per page size
    uint64_t shift_mask_ = 0;              ///< sizes with at least one entry
    uint32_t globals_ = 0;
};

/// Whether a scope removes a cached translation of `kind` covering
/// [va, va + 2^shift) (va in the kind's input space; ipa for nested entries).
bool scope_matches(const InvalidationScope& s, uint32_t domain, uint32_t as, bool global, TranslationKind kind,
                   uint64_t va, unsigned shift, uint64_t ipa);

} // namespace iommusim::iommu
