// SPDX-License-Identifier: Apache-2.0
#include "models/iommu/common/iotlb.hpp"

#include <bit>

namespace iommusim::iommu {

namespace {
bool overlaps(uint64_t base, unsigned shift, uint64_t addr, uint64_t size) {
    uint64_t end = shift >= 64 ? ~uint64_t{0} : base + ((uint64_t{1} << shift) - 1);
    uint64_t last = size == 0 ? addr : addr + (size - 1);
    if (last < addr) last = ~uint64_t{0};
    return base <= last && addr <= end;
}
} // namespace

bool scope_matches(const InvalidationScope& s, uint32_t domain, uint32_t as, bool global, TranslationKind kind,
                   uint64_t va, unsigned shift, uint64_t ipa, Regime regime) {
    using K = InvalidationScope::Kind;
    using St = InvalidationScope::Stage;
    if (regime != s.regime) return false;
    const bool s2_entry = kind == TranslationKind::s2 || kind == TranslationKind::s2_ipa;
    if (kind == TranslationKind::s1 && s.stage == St::s2) return false;
    if (s2_entry && s.stage == St::s1) return false;
    constexpr uint32_t m = (1u << Iotlb::kTagBits) - 1;
    const bool dom = (domain & m) == (s.domain_tag & m);
    const bool as_eq = (as & m) == (s.as_tag & m);
    switch (s.kind) {
    case K::all: return true;
    case K::domain: return dom;
    // Address-space scopes never touch stage-2 caches and keep global entries
    // (VT-d "non-globals within PASID", SMMU TLBI_NH_ASID).
    case K::domain_as: return kind != TranslationKind::s2_ipa && dom && !global && as_eq;
    case K::as_only: return kind != TranslationKind::s2_ipa && !global && as_eq;
    case K::range: {
        if (!dom) return false;
        if (global ? !s.include_global : (s.has_as && !as_eq)) return false;
        if (kind == TranslationKind::s2_ipa && s.has_as) return false;
        uint64_t base = (kind == TranslationKind::nested && s.stage == St::s2) ? ipa : va;
        return overlaps(base, shift, s.addr, s.size);
    }
    }
    return false;
}

Iotlb::Iotlb(std::string name, const CacheGeometry& g, stats::Group* parent) : cache_(std::move(name), g, parent) {}

void Iotlb::insert(uint32_t domain, uint32_t as, uint64_t iova, TranslationKind kind, unsigned page_shift, bool global,
                   const IotlbEntry& e, Regime regime) {
    if (!cache_.enabled()) return;
    const CacheKey k = make_key(domain, as, iova, kind, page_shift, global, regime);
    const uint32_t before = cache_.size();
    CacheKey ek;
    const bool evicted = cache_.insert(k, pack(e), &ek);
    // A victim counted exactly as the new key (same size, kind, global flag, domain bucket and
    // address space) leaves every count as it was: the common case of a full IOTLB.
    if (evicted && ((ek.b ^ k.b) & kAccountedBits) == 0) return;
    if (evicted) account(ek, -1);
    // A new key either filled an empty way (size grew) or replaced a victim;
    // overwriting k itself changes neither. One set search, not two.
    if (evicted || cache_.size() != before) account(k, +1);
}

uint64_t Iotlb::invalidate(const InvalidationScope& s) {
    // Small ranges within one address space (PASID/ASID page invalidations,
    // the common case under strict unmapping) probe the few keys that can
    // match instead of scanning every entry. Same result as the scan.
    // So do stage-2 ranges without address space (AMD-Vi host page invalidations, GN = 0)
    // while every entry they could match is a stage-2-only entry of address space 0.
    using St = InvalidationScope::Stage;
    if (cache_.size() == 0) return 0; // nothing to remove (also when disabled)
    const bool probe_as = s.has_as && s.stage != St::s2;
    const bool probe_s2 = !s.has_as && s.stage == St::s2 && irregular_s2_ == 0;
    if (s.kind == InvalidationScope::Kind::range && (probe_as || probe_s2) && s.size != 0 && cache_.enabled()) {
        const uint64_t last = s.addr + (s.size - 1) < s.addr ? ~uint64_t{0} : s.addr + (s.size - 1);
        uint64_t probes = 0;
        for (uint64_t m = shift_mask_; m; m &= m - 1) {
            auto sh = static_cast<unsigned>(std::countr_zero(m));
            probes += (last >> sh) - (s.addr >> sh) + 1;
        }
        if (probes * 6 <= cache_.capacity() / 4) return invalidate_range_by_probe(s, last);
    }
    return cache_.invalidate_if([&](const CacheKey& k, const Packed& e) {
        unsigned shift = static_cast<unsigned>(k.b & 0xFF);
        bool global = (k.b >> 15) & 1;
        auto kind = static_cast<TranslationKind>((k.b >> 12) & 7);
        auto domain = static_cast<uint32_t>(k.b >> 40);
        auto as = static_cast<uint32_t>((k.b >> 16) & kTagMask);
        auto regime = static_cast<Regime>((k.b >> kRegimeShift) & 3);
        bool hit = scope_matches(s, domain, as, global, kind, k.a << shift, shift, e.ipa & ~uint64_t{0xFFF}, regime);
        if (hit) account(k, -1);
        return hit;
    });
}

uint64_t Iotlb::invalidate_range_by_probe(const InvalidationScope& s, uint64_t last) {
    // The kinds the scope's stage can match, less those the IOTLB holds no entry of in the
    // scope's domain bucket (such keys cannot be present: probing them would find nothing;
    // for example an SMMUv3 TLBI of one VMID skips the nested entries of other VMIDs).
    // A stage-2 scope probes stage-2 entries only (nested ones are found by their IPA, which
    // a key probe cannot do: invalidate() scans when there are any), a stage-1 scope stage-1
    // and nested entries.
    using St = InvalidationScope::Stage;
    const std::array<uint32_t, 8>& present = per_kind_[domain_bucket(s.domain_tag & kTagMask)];
    TranslationKind kinds[3];
    unsigned nk = 0;
    auto keep = [&](TranslationKind k) {
        if (present[static_cast<unsigned>(k)] != 0) kinds[nk++] = k;
    };
    if (s.stage != St::s2) keep(TranslationKind::s1);
    if (s.stage != St::s1) keep(TranslationKind::s2);
    if (s.stage != St::s2) keep(TranslationKind::nested);
    const int gs = s.include_global && globals_ != 0 ? 2 : 1;
    uint64_t n = 0;
    for (uint64_t m = nk ? shift_mask_ : 0; m; m &= m - 1) {
        auto sh = static_cast<unsigned>(std::countr_zero(m));
        for (uint64_t vpn = s.addr >> sh;; ++vpn) {
            for (unsigned i = 0; i < nk; ++i) {
                const TranslationKind kind = kinds[i];
                for (int g = 0; g < gs; ++g) {
                    CacheKey k = make_key(s.domain_tag, s.has_as ? s.as_tag : 0, vpn << sh, kind, sh, g == 1, s.regime);
                    if (cache_.erase(k)) {
                        account(k, -1);
                        ++n;
                    }
                }
            }
            if (vpn == (last >> sh)) break;
        }
    }
    return n;
}

} // namespace iommusim::iommu
