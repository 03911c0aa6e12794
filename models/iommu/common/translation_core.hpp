// SPDX-License-Identifier: Apache-2.0
#pragma once
// Fidelity: the shared translation engine a family shell drives once it has a
// TranslationContext: IOTLB lookup by (domain tag, address-space tag, IOVA,
// kind), walk on a miss (walker.hpp, with walk caches and the stage-2 cache),
// fill on success, rights check on a hit. Invalidation applies one generic
// scope to every cache. A hit that does not grant the access, or a write to an
// entry whose leaf is still clean under hardware dirty tracking, walks again
// so the architected fault (stage, level) or the dirty update comes from the
// tables. Faults are not cached. Pass-through contexts translate 1:1 without
// any memory access. Arm two-range stage 1: the IOTLB is looked up with the
// effective address (top byte ignored under TBI) and entries are tagged by the
// context's regime. Split-stage ATS (SMMUv3 EATS=2): translate_s1() answers a
// Translation Request with stage 1 only (an IPA; a nested IOTLB entry serves
// it, a miss walks stage 1 without filling the IOTLB since it has no final
// output), check_s2() translates a translated request's IPA by stage 2
// through the stage-2 cache. Not modelled here: lookup latency and walk-slot
// contention (the SystemC shell charges them), request admission checks.
#include "models/common/stats.hpp"
#include "models/iommu/common/iotlb.hpp"
#include "models/iommu/common/translation.hpp"
#include "models/iommu/common/translation_core_params.hpp"
#include "models/iommu/common/walker.hpp"

namespace iommusim::iommu {

struct TranslateResult {
    Translation t;
    bool iotlb_hit = false;     ///< served from the IOTLB without a walk
    uint64_t reads = 0, writes = 0;
    Duration latency;           ///< memory latency of the walk (0 on a hit)
};

class TranslationCore {
public:
    TranslationCore(WalkMemPort& port, const TranslationCoreParams& p, stats::Group* parent);

    TranslateResult translate(const TranslationContext& ctx, const AccessRequest& req);
    /// translate() in two halves for the DMA hot path (same lookups, counts and fills):
    /// lookup() probes the IOTLB with the address the caches see (input_of); true when the entry
    /// found grants the access. Otherwise (no entry, denied, or a write to a dirty-pending entry)
    /// the caller walks with miss(), which does not look the IOTLB up again. Not for
    /// pass-through contexts.
    [[gnu::always_inline]] bool lookup(const TranslationContext& ctx, const AccessRequest& req, uint64_t va,
                                       IotlbHit& h) {
        h = iotlb_.lookup(ctx.domain_tag, ctx.as_tag, va, kind_of(ctx), ctx.regime);
        const uint8_t need = perm::needed(req.write, req.execute, req.privileged);
        return h.hit && (h.entry.s1_perms & h.entry.s2_perms & need) == need &&
               !(req.write && h.entry.dirty_pending);
    }
    TranslateResult miss(const TranslationContext& ctx, const AccessRequest& req, uint64_t va);
    /// The address the IOTLB and walk caches see for `iova` (top byte ignored under Arm TBI).
    static uint64_t input_of(const TranslationContext& ctx, uint64_t iova) {
        return ctx.va.split ? ctx.va.effective(iova) : iova;
    }
    /// Split-stage ATS: stage 1 of ctx only; t.output is the IPA, rights are stage 1's.
    TranslateResult translate_s1(const TranslationContext& ctx, const AccessRequest& req);
    /// Split-stage ATS: the stage-2 check of a translated request whose address is an IPA.
    /// iotlb_hit means the stage-2 cache served it.
    TranslateResult check_s2(const TranslationContext& ctx, const AccessRequest& req);
    /// Applies a scope to the IOTLB, walk caches and stage-2 cache; returns entries removed.
    uint64_t invalidate(const InvalidationScope& s);

    Iotlb& iotlb() { return iotlb_; }
    Walker& walker() { return walker_; }

private:
    stats::Group group_;
    Iotlb iotlb_;
    Walker walker_;
};

} // namespace iommusim::iommu
