// SPDX-License-Identifier: Apache-2.0
#include "models/iommu/common/walker.hpp"

#include <algorithm>

#include "models/iommu/common/pt_formats.hpp"

namespace iommusim::iommu {

namespace {
constexpr uint64_t low_mask(unsigned shift) { return shift >= 64 ? ~uint64_t{0} : (uint64_t{1} << shift) - 1; }
constexpr uint8_t kTableRead = perm::needed(false, false, true);
constexpr uint8_t kTableWrite = perm::needed(true, false, true);
} // namespace

Walker::Walker(WalkMemPort& port, const WalkerParams& p, stats::Group* parent)
    : port_(port), group_("walker", parent), s1_pwc_("s1_walk_cache", p.s1_walk_cache, &group_),
      s2_pwc_("s2_walk_cache", p.s2_walk_cache, &group_), s2_tlb_("s2_cache", p.s2_cache.geometry, &group_),
      walks_(group_.counter("walks", "count", "page-table walks started (IOTLB misses)")),
      faults_(group_.counter("faults", "count", "walks that ended in a fault")),
      reads_(group_.counter("descriptor_reads", "count", "descriptor reads from memory, all stages")),
      writes_(group_.counter("descriptor_writes", "count", "hardware A/D descriptor updates")),
      s2_translations_(group_.counter("s2_translations", "count",
                                      "stage-2 translations of stage-1 table addresses and outputs")) {}

bool Walker::validate(const StageConfig& c, StageConfig& last_valid, bool& have_last) {
    if (format_of(c.format).check_config(c)) return false;
    last_valid = c;
    have_last = true;
    return true;
}

uint64_t Walker::invalidate(const InvalidationScope& s) {
    return s1_pwc_.invalidate(s) + s2_pwc_.invalidate(s) + s2_tlb_.invalidate(s);
}

bool Walker::update(const TranslationContext& ctx, bool nested, uint64_t desc_ipa, uint64_t desc_pa, uint64_t old_v,
                    uint64_t new_v, StageOut& fault) {
    if (nested) { // the stage-1 table page must be writable at stage 2
        StageOut s2 = translate_s2(ctx, desc_ipa, kTableWrite, true, true);
        if (s2.fault != FaultKind::none) {
            fault = s2;
            return false;
        }
        desc_pa = s2.out;
    }
    if (!port_.compare_exchange_u64(desc_pa, old_v, new_v)) {
        fault.fault = FaultKind::memory_error;
        return false;
    }
    return true;
}

Walker::StageOut Walker::translate_s2(const TranslationContext& ctx, uint64_t ipa, uint8_t need, bool write,
                                      bool s1ptw) {
    s2_translations_.inc();
    if (s2_tlb_.enabled()) {
        IotlbHit h = s2_tlb_.lookup(ctx.domain_tag, 0, ipa, TranslationKind::s2_ipa);
        if (h.hit && (h.entry.s2_perms & need) == need && !(write && h.entry.dirty_pending)) {
            StageOut o;
            o.stage = 2;
            o.cached = true;
            o.out = h.entry.output | (ipa & low_mask(h.page_shift));
            o.page_shift = h.page_shift;
            o.perms = h.entry.s2_perms;
            o.snoop = h.entry.snoop;
            o.untranslated_only = h.entry.untranslated_only;
            return o;
        }
    }
    StageOut r = walk_stage(ctx, ctx.s2, true, ipa, need, write, false);
    if (r.fault != FaultKind::none) {
        r.s1ptw = s1ptw;
        return r;
    }
    IotlbEntry e;
    e.output = r.out & ~low_mask(r.page_shift);
    e.ipa = ipa & ~low_mask(r.page_shift);
    e.s2_perms = r.perms;
    e.snoop = r.snoop;
    e.untranslated_only = r.untranslated_only;
    e.dirty_pending = r.dirty_pending;
    s2_tlb_.insert(ctx.domain_tag, 0, ipa, TranslationKind::s2_ipa, r.page_shift, false, e);
    return r;
}

Walker::StageOut Walker::walk_stage(const TranslationContext& ctx, const StageConfig& c, bool stage2, uint64_t va,
                                    uint8_t need, bool write, bool nested) {
    switch (c.format) {
    case PtFormat::x86_64: break;
    case PtFormat::vtd_ss: return walk_levels(formats::kVtdSs, ctx, c, stage2, va, need, write, nested);
    case PtFormat::amd_v1: return walk_levels(formats::kAmdV1, ctx, c, stage2, va, need, write, nested);
    case PtFormat::arm_s1: return walk_levels(formats::kArmS1, ctx, c, stage2, va, need, write, nested);
    case PtFormat::arm_s2: return walk_levels(formats::kArmS2, ctx, c, stage2, va, need, write, nested);
    }
    return walk_levels(formats::kX86, ctx, c, stage2, va, need, write, nested); // x86_64 (and, like format_of(), anything else)
}

template <class Format>
Walker::StageOut Walker::walk_levels(const Format& f, const TranslationContext& ctx, const StageConfig& cfg,
                                     bool stage2, uint64_t va, uint8_t need, bool write, bool nested) {
    // A local copy: its fields stay in registers across the port's virtual read.
    const StageConfig c = cfg;
    StageOut o;
    o.stage = stage2 ? 2 : 1;
    o.fault_addr = va;
    auto fail = [&](FaultKind k, unsigned level) {
        o.fault = k;
        o.level = static_cast<uint8_t>(level);
        return o;
    };
    // The stage configs were validated once in walk().
    if (FaultKind k = f.check_input(va, c); k != FaultKind::none) return fail(k, 0);

    WalkCache& pwc = stage2 ? s2_pwc_ : s1_pwc_;
    const WalkKind wk = stage2 ? WalkKind::s2 : (nested ? WalkKind::s1_nested : WalkKind::s1);
    const uint32_t as = stage2 ? 0 : ctx.as_tag;
    const Regime regime = stage2 ? Regime::el1 : ctx.regime;
    unsigned level = c.levels;
    uint64_t table = c.root, table_hpa = c.root;
    bool have_hpa = !nested;
    uint8_t limit = perm::all;
    const bool use_pwc = pwc.enabled();
    if (auto h = use_pwc ? pwc.lookup(ctx.domain_tag, as, wk, va, c, regime) : std::nullopt) {
        // The cached descriptor covers its whole level-h region, but an AMD
        // level skip below it constrains va further: the check a cold walk
        // makes at that descriptor (skipped index bits zero) is made here too.
        if (h->entry.next_level + 1u < h->level) {
            const unsigned lo = PageTableFormat::level_shift(c, h->entry.next_level + 1u);
            const unsigned hi = PageTableFormat::level_shift(c, h->level);
            if ((va >> lo) & low_mask(hi - lo)) return fail(FaultKind::address_size, h->level);
        }
        level = h->entry.next_level;
        table = h->entry.table;
        limit = h->entry.perms;
        table_hpa = nested ? h->entry.table_hpa : table;
        have_hpa = !nested || h->entry.hpa_valid;
    }
    // Under nesting a table's host address is known only once its descriptor
    // address has been through stage 2, so its walk-cache entry is filled then.
    bool pending = false;
    unsigned pending_level = 0;
    WalkCacheEntry pend;

    // PageTableFormat::index() with the stage's geometry hoisted out of the level loop.
    const unsigned stride = PageTableFormat::stride(c);
    const uint64_t top_mask = low_mask(PageTableFormat::index_bits(c, c.levels)), index_mask = low_mask(stride);
    for (;;) {
        const unsigned shift = c.granule_shift + (level - 1u) * stride; // PageTableFormat::level_shift
        const uint64_t idx = (va >> shift) & (level == c.levels ? top_mask : index_mask);
        const uint64_t desc_ipa = table + idx * 8;
        uint64_t desc_pa = desc_ipa;
        if (nested) {
            bool hpa_ok = have_hpa;
            if (have_hpa) {
                desc_pa = table_hpa + idx * 8;
            } else {
                StageOut s2 = translate_s2(ctx, desc_ipa, kTableRead, false, true);
                if (s2.fault != FaultKind::none) return s2;
                desc_pa = s2.out;
                uint64_t last = table + PageTableFormat::table_bytes(c, level) - 1;
                hpa_ok = s2.page_shift >= 64 || (table >> s2.page_shift) == (last >> s2.page_shift);
                table_hpa = desc_pa - idx * 8;
            }
            if (pending) {
                pend.table_hpa = table_hpa;
                pend.hpa_valid = hpa_ok;
                pwc.insert(ctx.domain_tag, as, wk, va, pending_level, c, pend, regime);
                pending = false;
            }
        }
        std::optional<uint64_t> v = port_.read_u64(desc_pa);
        if (!v) return fail(FaultKind::memory_error, level);
        const Descriptor d = f.decode(*v, level, c);
        switch (d.kind) {
        case Descriptor::Kind::invalid: return fail(FaultKind::not_present, level);
        case Descriptor::Kind::fault: return fail(d.fault, level);
        case Descriptor::Kind::table: {
            if (c.hw_access_dirty && !d.accessed &&
                !update(ctx, nested, desc_ipa, desc_pa, *v, f.with_accessed(*v), o)) {
                if (!o.s1ptw) o.level = static_cast<uint8_t>(level);
                return o;
            }
            limit &= d.perms;
            if (d.next_level + 1u < level) { // AMD level skipping: the skipped index bits must be zero
                unsigned lo = PageTableFormat::level_shift(c, d.next_level + 1u);
                unsigned hi = PageTableFormat::level_shift(c, level);
                if ((va >> lo) & low_mask(hi - lo)) return fail(FaultKind::address_size, level);
            }
            if (use_pwc) {
                WalkCacheEntry e;
                e.table = d.addr;
                e.next_level = d.next_level;
                e.perms = limit;
                if (nested) {
                    pending = true;
                    pending_level = level;
                    pend = e;
                } else {
                    pwc.insert(ctx.domain_tag, as, wk, va, level, c, e, regime);
                }
            }
            level = d.next_level;
            table = table_hpa = d.addr;
            have_hpa = !nested;
            continue;
        }
        case Descriptor::Kind::leaf: break;
        }
        // Leaf.
        uint8_t perms = limit & d.perms;
        const uint8_t dperms = limit & d.dirty_perms;
        uint64_t nv = *v;
        if (!d.accessed) {
            if (c.hw_access_dirty) nv = f.with_accessed(nv);
            else if (d.af_fault) return fail(FaultKind::access_flag, level);
        }
        bool set_dirty = false;
        if (c.hw_access_dirty && write && !d.dirty && (dperms & need) == need) {
            set_dirty = true;
            perms = dperms;
            nv = f.with_dirty(nv);
        }
        if ((perms & need) != need) return fail(FaultKind::permission, level);
        if (nv != *v && !update(ctx, nested, desc_ipa, desc_pa, *v, nv, o)) {
            if (!o.s1ptw) o.level = static_cast<uint8_t>(level);
            return o;
        }
        o.dirty_pending = c.hw_access_dirty && !d.dirty && !set_dirty;
        o.perms = perms;
        o.page_shift = d.page_shift;
        o.out = d.addr | (va & low_mask(d.page_shift));
        o.global = d.global;
        o.snoop = d.snoop;
        o.untranslated_only = d.untranslated_only;
        return o;
    }
}

const StageConfig* Walker::select_range(const TranslationContext& ctx, uint64_t& va, StageOut& fault) {
    va = ctx.va.effective(va);
    const bool upper = (va >> 55) & 1;
    const StageConfig& c = upper ? ctx.s1_upper : ctx.s1;
    fault.stage = 1;
    fault.fault_addr = va;
    if (!(upper ? ctx.va.walk_upper : ctx.va.walk_lower)) { // EPDx = 1: a miss is a translation fault
        fault.fault = FaultKind::not_present;
        return nullptr;
    }
    if (c.upper != upper || !(upper ? config_ok(c, valid_s1u_, have_valid_s1u_) : config_ok(c, valid_s1_, have_valid_s1_))) {
        fault.fault = FaultKind::invalid_config;
        return nullptr;
    }
    if (((upper ? ~va : va) >> c.input_bits) != 0) { // in the gap between the two ranges
        fault.fault = FaultKind::not_present;
        return nullptr;
    }
    return &c;
}

WalkOutcome Walker::walk(const TranslationContext& ctx, const AccessRequest& req, WalkStages stages) {
    const uint64_t r0 = port_.reads(), w0 = port_.writes();
    const Duration l0 = port_.latency();
    WalkOutcome o;
    const uint8_t need = perm::needed(req.write, req.execute, req.privileged);
    StageOut res;
    const StageConfig* c1 = &ctx.s1;
    uint64_t va = req.iova;
    if (stages != WalkStages::s2_only) walks_.inc();
    if (stages == WalkStages::s2_only) {
        if (!ctx.s2.enabled || !config_ok(ctx.s2, valid_s2_, have_valid_s2_)) {
            res.fault = FaultKind::invalid_config;
            res.stage = 2;
        } else {
            res = translate_s2(ctx, req.iova, need, req.write, false);
            o.s2_perms = res.perms;
            o.s2_cache_hit = res.cached;
        }
        if (!o.s2_cache_hit) walks_.inc();
    } else if (ctx.s1.enabled && ctx.va.split && !(c1 = select_range(ctx, va, res))) {
        // Arm TTB0/TTB1 selection failed: res holds the fault.
    } else if (ctx.s1.enabled && !ctx.va.split && !config_ok(ctx.s1, valid_s1_, have_valid_s1_)) {
        res.fault = FaultKind::invalid_config;
        res.stage = 1;
    } else if (ctx.s2.enabled && (ctx.s1.enabled || stages == WalkStages::all) &&
               !config_ok(ctx.s2, valid_s2_, have_valid_s2_)) {
        res.fault = FaultKind::invalid_config;
        res.stage = 2;
    } else if (ctx.s1.enabled) {
        const bool nested = ctx.s2.enabled;
        res = walk_stage(ctx, *c1, false, va, need, req.write, nested);
        o.s1_perms = res.perms;
        if (res.fault == FaultKind::none && nested) {
            o.ipa = res.out;
            if (stages == WalkStages::all) { // split-stage ATS stops at the IPA
                StageOut s2 = translate_s2(ctx, res.out, need, req.write, false);
                if (s2.fault != FaultKind::none) {
                    res = s2;
                } else {
                    res.out = s2.out;
                    res.page_shift = std::min(res.page_shift, s2.page_shift);
                    res.snoop = res.snoop || s2.snoop;
                    res.untranslated_only = res.untranslated_only || s2.untranslated_only;
                    res.dirty_pending = res.dirty_pending || s2.dirty_pending;
                    o.s2_perms = s2.perms;
                }
            }
        }
    } else if (ctx.s2.enabled && stages == WalkStages::all) {
        res = walk_stage(ctx, ctx.s2, true, req.iova, need, req.write, false);
        o.s2_perms = res.perms;
    } else {
        res.fault = FaultKind::invalid_config;
    }

    Translation& t = o.t;
    if (res.fault != FaultKind::none) {
        t.fault = res.fault;
        t.fault_stage = res.stage;
        t.fault_level = res.level;
        t.fault_addr = res.fault_addr;
        t.s1ptw = res.s1ptw;
        faults_.inc();
    } else {
        t.output = res.out;
        t.page_shift = res.page_shift;
        t.global = res.global;
        t.snoop = res.snoop;
        t.untranslated_only = res.untranslated_only;
        t.set_rights(static_cast<uint8_t>(o.s1_perms & o.s2_perms), req.privileged);
        o.dirty_pending = res.dirty_pending;
    }
    o.reads = port_.reads() - r0;
    o.writes = port_.writes() - w0;
    o.latency = port_.latency() - l0;
    reads_.inc(o.reads);
    writes_.inc(o.writes);
    return o;
}

} // namespace iommusim::iommu
