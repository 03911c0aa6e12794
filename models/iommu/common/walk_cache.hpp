// SPDX-License-Identifier: Apache-2.0
#pragma once
// Fidelity: paging-structure (walk) caches, one SetAssocCache per non-leaf
// level, like Intel's PML4/PDPT/PDE caches and Arm's walk caches. An entry at
// level L caches the table descriptor selected by IOVA bits above that level
// and yields the next table's address plus the rights accumulated so far, so
// a hit at level 2 leaves one descriptor read. Under nesting, stage-1 entries
// also hold the host-physical address of the next stage-1 table, so a hit skips
// its stage-2 translation too. Keys are compatible with the IOTLB's (domain
// tag, address-space tag, kind) and the same InvalidationScopes apply; a
// leaf-only range invalidation (VT-d IH, SMMU Leaf) keeps every entry, and a
// stage-2 scope drops the nested stage-1 entries of its domain (their table
// addresses went through stage 2). Not modelled: caching of A/D state beyond
// "set when the entry was filled", lookup latency.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "models/iommu/common/iotlb.hpp"
#include "models/iommu/common/pt_format.hpp"
#include "models/common/set_assoc_cache.hpp"
#include "models/iommu/common/walk_cache_params.hpp"

namespace iommusim::iommu {

/// Which walk a paging-structure entry belongs to.
enum class WalkKind : uint8_t {
    s1 = 1,        ///< single-stage stage-1 walk (table addresses are physical)
    s1_nested = 2, ///< stage-1 walk under nesting (table addresses are IPAs)
    s2 = 3,        ///< stage-2 walk (domain-tagged only)
};

struct WalkCacheEntry {
    uint64_t table = 0;     ///< next table base in the walk's table address space
    uint64_t table_hpa = 0; ///< nested stage 1: host-physical base of the next table
    bool hpa_valid = false;
    uint8_t next_level = 0;
    uint8_t perms = perm::all; ///< rights limit accumulated down to this descriptor
    uint8_t region_shift = 0;  ///< log2 of the input region the entry covers
};

class WalkCache {
public:
    static constexpr unsigned kMaxLevel = 6;

    WalkCache(std::string name, const WalkCacheParams& p, stats::Group* parent);

    struct Hit {
        WalkCacheEntry entry;
        unsigned level = 0; ///< level of the cached descriptor
    };
    /// Deepest cached descriptor on va's path (probes level 2 upwards).
    std::optional<Hit> lookup(uint32_t domain, uint32_t as, WalkKind kind, uint64_t va, const StageConfig& c);
    void insert(uint32_t domain, uint32_t as, WalkKind kind, uint64_t va, unsigned level, const StageConfig& c,
                const WalkCacheEntry& e);
    uint64_t invalidate(const InvalidationScope& s);

    bool enabled() const { return enabled_; }
    uint32_t size() const;
    uint32_t capacity() const;
    const SetAssocCache<WalkCacheEntry>* level_cache(unsigned level) const {
        return level >= 2 && level <= kMaxLevel ? levels_[level - 2].get() : nullptr;
    }

private:
    static CacheKey key(uint32_t domain, uint32_t as, WalkKind kind, uint64_t va, unsigned level, const StageConfig& c) {
        constexpr uint32_t m = (1u << Iotlb::kTagBits) - 1;
        return {va >> PageTableFormat::level_shift(c, level),
                (uint64_t{domain & m} << 40) | (uint64_t{as & m} << 16) | (uint64_t(kind) << 12) |
                    (uint64_t{c.granule_shift} << 4) | level};
    }
    stats::Group group_;
    std::vector<std::unique_ptr<SetAssocCache<WalkCacheEntry>>> levels_; ///< index = level - 2
    unsigned top_ = 0;
    bool enabled_ = false;
};

} // namespace iommusim::iommu
