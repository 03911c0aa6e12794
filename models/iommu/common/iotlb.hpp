// SPDX-License-Identifier: Apache-2.0
#pragma once
// Fidelity: a generic IOTLB on SetAssocCache. Key = (domain tag, address-space
// tag, IOVA page, page size, translation kind, regime), packed into two uint64. Mixed
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
#include <bit>
#include <cstdint>
#include <string>

#include "models/iommu/common/iotlb_params.hpp"
#include "models/common/set_assoc_cache.hpp"
#include "models/iommu/common/translation.hpp"

namespace iommusim::iommu {

/// What a cached translation was produced by.
enum class TranslationKind : uint8_t {
    s1 = 1,      ///< stage 1 only (input IOVA / VA)
    s2 = 2,      ///< stage 2 only (input IOVA = IPA/GPA)
    nested = 3,  ///< stage 1 over stage 2, combined
    s2_ipa = 4,  ///< stage-2 cache entry used by nested walks (domain-tagged, not per address space)
};

inline TranslationKind kind_of(const TranslationContext& ctx) {
    if (ctx.s1.enabled && ctx.s2.enabled) return TranslationKind::nested;
    return ctx.s1.enabled ? TranslationKind::s1 : TranslationKind::s2;
}

struct IotlbEntry {
    uint64_t output = 0;     ///< output page base (physical)
    uint64_t ipa = 0;        ///< nested: stage-1 output page base (IPA/GPA)
    uint8_t s1_perms = perm::all;
    uint8_t s2_perms = perm::all;
    bool snoop = false;
    bool dirty_pending = false; ///< a write must walk again to set the dirty state
    bool untranslated_only = false; ///< leaf U (AMD v1): ATS completions say U = 1
};

struct IotlbHit {
    bool hit = false;
    uint8_t page_shift = 0;
    bool global = false;
    IotlbEntry entry; ///< valid when hit
};

class Iotlb {
public:
    static constexpr unsigned kTagBits = 24; ///< domain and address-space tags are stored in 24 bits

    Iotlb(std::string name, const CacheGeometry& g, stats::Group* parent);

    IotlbHit lookup(uint32_t domain, uint32_t as, uint64_t iova, TranslationKind kind, Regime regime = Regime::el1);
    void insert(uint32_t domain, uint32_t as, uint64_t iova, TranslationKind kind, unsigned page_shift, bool global,
                const IotlbEntry& e, Regime regime = Regime::el1);
    /// Applies a generic scope; returns the number of entries removed.
    uint64_t invalidate(const InvalidationScope& s);

    uint32_t size() const { return cache_.size(); }
    uint32_t capacity() const { return cache_.capacity(); }
    bool enabled() const { return cache_.enabled(); }

    /// Stored form: 16 bytes, page-aligned addresses with the rights and flags
    /// in their low 12 bits, so a line (key + entry) is 32 bytes.
    struct Packed {
        uint64_t out = 0; ///< output page | s1_perms | s2_perms << 6
        uint64_t ipa = 0; ///< stage-1 output page | snoop | dirty_pending << 1 | untranslated_only << 2
    };
    static Packed pack(const IotlbEntry& e) {
        constexpr uint64_t page = ~uint64_t{0xFFF};
        return {(e.output & page) | (e.s1_perms & 0x3Fu) | (uint64_t{e.s2_perms & 0x3Fu} << 6),
                (e.ipa & page) | (e.snoop ? 1u : 0u) | (e.dirty_pending ? 2u : 0u) | (e.untranslated_only ? 4u : 0u)};
    }
    static IotlbEntry unpack(const Packed& p) {
        IotlbEntry e;
        e.output = p.out & ~uint64_t{0xFFF};
        e.s1_perms = static_cast<uint8_t>(p.out & 0x3F);
        e.s2_perms = static_cast<uint8_t>((p.out >> 6) & 0x3F);
        e.ipa = p.ipa & ~uint64_t{0xFFF};
        e.snoop = p.ipa & 1;
        e.dirty_pending = p.ipa & 2;
        e.untranslated_only = p.ipa & 4;
        return e;
    }
    const SetAssocCache<Packed>& cache() const { return cache_; }

    /// b = domain 63:40 | as 39:16 | global 15 | kind 14:12 | regime 9:8 | page_shift 7:0.
    static CacheKey make_key(uint32_t domain, uint32_t as, uint64_t iova, TranslationKind kind, unsigned page_shift,
                             bool global, Regime regime = Regime::el1) {
        return {iova >> page_shift, (uint64_t{domain & kTagMask} << 40) | (uint64_t{global ? 0 : (as & kTagMask)} << 16) |
                                        (uint64_t{global} << 15) | (uint64_t(kind) << 12) |
                                        (uint64_t(regime) << kRegimeShift) | page_shift};
    }
    static constexpr unsigned kRegimeShift = 8;

private:
    static constexpr uint32_t kTagMask = (1u << kTagBits) - 1;
    /// Keeps the per-size and global counts that steer lookups (delta = +1 / -1).
    void account(const CacheKey& k, int delta) {
        const auto shift = static_cast<unsigned>(k.b & 0xFF);
        per_shift_[shift] = static_cast<uint32_t>(static_cast<int>(per_shift_[shift]) + delta);
        if (per_shift_[shift]) shift_mask_ |= uint64_t{1} << shift;
        else shift_mask_ &= ~(uint64_t{1} << shift);
        if ((k.b >> 15) & 1) globals_ = static_cast<uint32_t>(static_cast<int>(globals_) + delta);
        const auto kind = static_cast<TranslationKind>((k.b >> 12) & 7);
        uint32_t& n = per_kind_[domain_bucket(static_cast<uint32_t>(k.b >> 40))][static_cast<unsigned>(kind)];
        n = static_cast<uint32_t>(static_cast<int>(n) + delta);
        // Entries a stage-2 range without address space finds other than by (domain, as 0, IOVA):
        // nested ones (matched by their IPA), stage-2 cache entries, stage-2 entries of an address space.
        if (kind == TranslationKind::nested || kind == TranslationKind::s2_ipa ||
            (kind == TranslationKind::s2 && ((k.b >> 16) & kTagMask) != 0))
            irregular_s2_ = static_cast<uint32_t>(static_cast<int>(irregular_s2_) + delta);
    }
    uint64_t invalidate_range_by_probe(const InvalidationScope& s, uint64_t last);
    SetAssocCache<Packed> cache_;
    std::array<uint32_t, 64> per_shift_{}; ///< valid entries per page size
    uint64_t shift_mask_ = 0;              ///< sizes with at least one entry
    uint32_t globals_ = 0;
    /// Domain tags are counted in kDomainBuckets buckets (tag modulo the count).
    static constexpr uint32_t kDomainBuckets = 32;
    static unsigned domain_bucket(uint32_t domain) { return domain % kDomainBuckets; }
    /// The key bits account() reads: domain bucket, address space (stage-2 entries of an
    /// address space are counted apart), global flag, kind and page size.
    static constexpr uint64_t kAccountedBits = (uint64_t{kDomainBuckets - 1} << 40) | (uint64_t{kTagMask} << 16) |
                                               (uint64_t{1} << 15) | (uint64_t{7} << 12) | 0xFF;
    /// Valid entries per domain bucket and TranslationKind: a range invalidation skips the kinds
    /// of which the scope's domain bucket holds no entry (their keys cannot be present).
    std::array<std::array<uint32_t, 8>, kDomainBuckets> per_kind_{};
    uint32_t irregular_s2_ = 0;            ///< see account()
};

// Always inlined: it is the whole of an IOTLB hit, and callers with more than one
// call site (translate, translate_s1) would otherwise get an out-of-line call.
[[gnu::always_inline]] inline IotlbHit Iotlb::lookup(uint32_t domain, uint32_t as, uint64_t iova,
                                                     TranslationKind kind, Regime regime) {
    IotlbHit h;
    for (uint64_t m = shift_mask_; m; m &= m - 1) {
        auto shift = static_cast<unsigned>(std::countr_zero(m));
        const Packed* e = cache_.probe(make_key(domain, as, iova, kind, shift, false, regime));
        if (!e && globals_) {
            e = cache_.probe(make_key(domain, as, iova, kind, shift, true, regime));
            h.global = e != nullptr;
        }
        if (e) {
            h.hit = true;
            h.page_shift = static_cast<uint8_t>(shift);
            h.entry = unpack(*e);
            break;
        }
    }
    cache_.count_lookup(h.hit);
    // The walk that follows a miss usually fills the smallest size's key, which was probed first.
    if (!h.hit && shift_mask_)
        cache_.note_absent(make_key(domain, as, iova, kind, static_cast<unsigned>(std::countr_zero(shift_mask_)), false,
                                    regime));
    return h;
}

/// Whether a scope removes a cached translation of `kind` and `regime` covering
/// [va, va + 2^shift) (va in the kind's input space; ipa for nested entries).
bool scope_matches(const InvalidationScope& s, uint32_t domain, uint32_t as, bool global, TranslationKind kind,
                   uint64_t va, unsigned shift, uint64_t ipa, Regime regime = Regime::el1);

} // namespace iommusim::iommu
