// SPDX-License-Identifier: Apache-2.0
#include "models/iommu/common/translation_core.hpp"

namespace iommusim::iommu {

TranslationCore::TranslationCore(WalkMemPort& port, const TranslationCoreParams& p, stats::Group* parent)
    : group_("translation", parent), iotlb_("iotlb", p.iotlb.geometry, &group_), walker_(port, p.walker, &group_) {}

namespace {
void take_walk(TranslateResult& r, const WalkOutcome& w) {
    r.t = w.t;
    r.reads = w.reads;
    r.writes = w.writes;
    r.latency = w.latency;
}
} // namespace

TranslateResult TranslationCore::translate(const TranslationContext& ctx, const AccessRequest& req) {
    TranslateResult r;
    if (ctx.pass_through) {
        r.t.output = req.iova;
        r.t.page_shift = 12;
        r.t.set_rights(perm::all, req.privileged);
        return r;
    }
    const uint64_t va = input_of(ctx, req.iova);
    IotlbHit h;
    if (!lookup(ctx, req, va, h)) return miss(ctx, req, va);
    r.iotlb_hit = true;
    const uint64_t mask = (uint64_t{1} << h.page_shift) - 1;
    r.t.output = h.entry.output | (va & mask);
    r.t.page_shift = h.page_shift;
    r.t.global = h.global;
    r.t.snoop = h.entry.snoop;
    r.t.untranslated_only = h.entry.untranslated_only;
    r.t.set_rights(static_cast<uint8_t>(h.entry.s1_perms & h.entry.s2_perms), req.privileged);
    return r;
}

TranslateResult TranslationCore::miss(const TranslationContext& ctx, const AccessRequest& req, uint64_t va) {
    TranslateResult r;
    WalkOutcome w = walker_.walk(ctx, req);
    take_walk(r, w);
    if (w.t.ok()) {
        const unsigned shift = w.t.page_shift;
        const uint64_t mask = (uint64_t{1} << shift) - 1;
        IotlbEntry e;
        e.output = w.t.output & ~mask;
        e.ipa = w.ipa & ~mask;
        e.s1_perms = w.s1_perms;
        e.s2_perms = w.s2_perms;
        e.snoop = w.t.snoop;
        e.untranslated_only = w.t.untranslated_only;
        e.dirty_pending = w.dirty_pending;
        iotlb_.insert(ctx.domain_tag, ctx.as_tag, va, kind_of(ctx), shift, w.t.global, e, ctx.regime);
    }
    return r;
}

TranslateResult TranslationCore::translate_s1(const TranslationContext& ctx, const AccessRequest& req) {
    if (!ctx.s2.enabled || ctx.pass_through) return translate(ctx, req); // stage 1 is the whole translation
    TranslateResult r;
    const uint64_t va = input_of(ctx, req.iova);
    IotlbHit h = iotlb_.lookup(ctx.domain_tag, ctx.as_tag, va, TranslationKind::nested, ctx.regime);
    const uint8_t need = perm::needed(req.write, req.execute, req.privileged);
    if (h.hit && (h.entry.s1_perms & need) == need && !(req.write && h.entry.dirty_pending)) {
        r.iotlb_hit = true;
        r.t.output = h.entry.ipa | (va & ((uint64_t{1} << h.page_shift) - 1));
        r.t.page_shift = h.page_shift;
        r.t.global = h.global;
        r.t.set_rights(h.entry.s1_perms, req.privileged);
        return r;
    }
    WalkOutcome w = walker_.walk(ctx, req, WalkStages::s1_only);
    take_walk(r, w);
    return r;
}

TranslateResult TranslationCore::check_s2(const TranslationContext& ctx, const AccessRequest& req) {
    TranslateResult r;
    WalkOutcome w = walker_.walk(ctx, req, WalkStages::s2_only);
    take_walk(r, w);
    r.iotlb_hit = w.s2_cache_hit;
    return r;
}

uint64_t TranslationCore::invalidate(const InvalidationScope& s) { return iotlb_.invalidate(s) + walker_.invalidate(s); }

} // namespace iommusim::iommu
