// SPDX-License-Identifier: Apache-2.0
#include "models/iommu/common/walk_cache.hpp"

#include <algorithm>

namespace iommusim::iommu {

WalkCache::WalkCache(std::string name, const WalkCacheParams& p, stats::Group* parent)
    : group_(std::move(name), parent) {
    top_ = std::clamp<unsigned>(p.top_cached_level, 1, kMaxLevel);
    enabled_ = p.per_level.entries != 0 && top_ >= 2;
    for (unsigned l = 2; l <= kMaxLevel; ++l) {
        CacheGeometry g = p.per_level;
        if (l > top_) g.entries = 0;
        g.seed = p.per_level.seed + l;
        levels_.push_back(std::make_unique<SetAssocCache<WalkCacheEntry>>("level" + std::to_string(l), g, &group_));
    }
}

std::optional<WalkCache::Hit> WalkCache::lookup(uint32_t domain, uint32_t as, WalkKind kind, uint64_t va,
                                                const StageConfig& c, Regime regime) {
    if (!enabled_) return std::nullopt;
    unsigned hi = std::min<unsigned>(top_, c.levels);
    for (unsigned l = 2; l <= hi; ++l) {
        if (WalkCacheEntry* e = levels_[l - 2]->lookup(key(domain, as, kind, va, l, c, regime))) return Hit{*e, l};
    }
    return std::nullopt;
}

void WalkCache::insert(uint32_t domain, uint32_t as, WalkKind kind, uint64_t va, unsigned level, const StageConfig& c,
                       const WalkCacheEntry& e, Regime regime) {
    if (!enabled_ || level < 2 || level > top_) return;
    WalkCacheEntry v = e;
    v.region_shift = static_cast<uint8_t>(PageTableFormat::level_shift(c, level));
    levels_[level - 2]->insert(key(domain, as, kind, va, level, c, regime), v);
}

uint64_t WalkCache::invalidate(const InvalidationScope& s) {
    using K = InvalidationScope::Kind;
    using St = InvalidationScope::Stage;
    if (s.kind == K::range && s.leaf_only) return 0; // paging-structure entries were not modified
    constexpr uint32_t m = (1u << Iotlb::kTagBits) - 1;
    uint64_t n = 0;
    // Levels above top_cached_level (and every level of a disabled cache) have no lines; empty levels hold nothing to drop.
    for (auto& lc : levels_) {
        if (lc->size() == 0) continue;
        n += lc->invalidate_if([&](const CacheKey& k, const WalkCacheEntry& e) {
            auto kind = static_cast<WalkKind>((k.b >> 12) & 0xF);
            auto domain = static_cast<uint32_t>(k.b >> 40);
            auto as = static_cast<uint32_t>((k.b >> 16) & m);
            auto regime = static_cast<Regime>((k.b >> kRegimeShift) & 3);
            uint64_t va = k.a << e.region_shift;
            switch (kind) {
            case WalkKind::s1:
                return scope_matches(s, domain, as, false, TranslationKind::s1, va, e.region_shift, 0, regime);
            case WalkKind::s1_nested:
                // A stage-2 change may move any stage-1 table of the domain.
                if (s.stage == St::s2) {
                    if (regime != s.regime) return false;
                    if (s.kind == K::all) return true;
                    return (s.kind == K::domain || s.kind == K::range) && (domain & m) == (s.domain_tag & m);
                }
                return scope_matches(s, domain, as, false, TranslationKind::s1, va, e.region_shift, 0, regime);
            case WalkKind::s2:
                return scope_matches(s, domain, as, false, TranslationKind::s2_ipa, va, e.region_shift, va, regime);
            }
            return false;
        });
    }
    return n;
}

uint32_t WalkCache::size() const {
    uint32_t n = 0;
    for (auto& l : levels_) n += l->size();
    return n;
}
uint32_t WalkCache::capacity() const {
    uint32_t n = 0;
    for (auto& l : levels_) n += l->capacity();
    return n;
}

} // namespace iommusim::iommu
