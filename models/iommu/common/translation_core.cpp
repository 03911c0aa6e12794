// SPDX-License-Identifier: Apache-2.0
#include "models/iommu/common/translation_core.hpp"

namespace iommusim::iommu {

TranslationCore::TranslationCore(WalkMemPort& port, const TranslationCoreParams& p, stats::Group* parent)
    : group_("translation", parent), iotlb_("iotlb", p.iotlb.geometry, &group_), walker_(port, p.walker, &group_) {}

TranslateResult TranslationCore::translate(const TranslationContext& ctx, const AccessRequest& req) {
    TranslateResult r;
    if (ctx.pass_through) {
        r.t.output = req.iova;
        r.t.page_shift = 12;
        r.t.set_rights(perm::all, req.privileged);
        return r;
    }
    const TranslationKind kind = kind_of(ctx);
    IotlbHit h = iotlb_.lookup(ctx.domain_tag, ctx.as_tag, req.iova, kind);
    if (h.hit) {
        const uint8_t need = perm::needed(req.write, req.execute, req.privileged);
        const uint8_t perms = h.entry.s1_perms & h.entry.s2_perms;
        if ((perms & need) == need && !(req.write && h.entry.dirty_pending)) {
            r.iotlb_hit = true;
            uint64_t mask = (uint64_t{1} << h.page_shift) - 1;
            r.t.output = h.entry.output | (req.iova & mask);
            r.t.page_shift = h.page_shift;
            r.t.global = h.global;
            r.t.snoop = h.entry.snoop;
            r.t.set_rights(perms, req.privileged);
            return r;
        }
    }
    WalkOutcome w = walker_.walk(ctx, req);
    r.t = w.t;
    r.reads = w.reads;
    r.writes = w.writes;
    r.latency = w.latency;
    if (w.t.ok()) {
        const unsigned shift = w.t.page_shift;
        const uint64_t mask = (uint64_t{1} << shift) - 1;
        IotlbEntry e;
        e.output = w.t.output & ~mask;
        e.ipa = w.ipa & ~mask;
        e.s1_perms = w.s1_perms;
        e.s2_perms = w.s2_perms;
        e.snoop = w.t.snoop;
        e.dirty_pending = w.dirty_pending;
        iotlb_.insert(ctx.domain_tag, ctx.as_tag, req.iova, kind, shift, w.t.global, e);
    }
    return r;
}

uint64_t TranslationCore::invalidate(const InvalidationScope& s) { return iotlb_.invalidate(s) + walker_.invalidate(s); }

} // namespace iommusim::iommu
