// SPDX-License-Identifier: Apache-2.0
// The engine a family shell drives: IOTLB hits, walk on miss, invalidation
// of every cache by one scope.
#include <catch2/catch.hpp>

#include "models/iommu/common/translation_core.hpp"
#include "test/models/iommu/common/fixture.hpp"

using namespace iommusim;
using namespace iommusim::iommu;
using namespace iommusim::iommu::test;
using K = InvalidationScope::Kind;

namespace {
struct Core {
    Env env;
    TranslationCore core{env.port, TranslationCoreParams{}, &env.root};
    std::unique_ptr<TableBuilder> b = env.build(x86_cfg(4));
    TranslationContext ctx;
    Core() {
        ctx.domain_tag = 3;
        ctx.as_tag = 10;
        ctx.s1 = b->config();
    }
};
} // namespace

TEST_CASE("a repeated translation hits the IOTLB with no memory reads", "[unit]") {
    Core c;
    REQUIRE(c.b->map(0x1000, 0xA000, 0x1000, 12) == MapError::none);
    auto a = c.core.translate(c.ctx, rd(0x1010));
    REQUIRE(a.t.ok());
    CHECK_FALSE(a.iotlb_hit);
    CHECK(a.reads == 4);
    auto b = c.core.translate(c.ctx, rd(0x1020));
    REQUIRE(b.t.ok());
    CHECK(b.iotlb_hit);
    CHECK(b.reads == 0);
    CHECK(b.t.output == 0xA020);
}

TEST_CASE("leaf-only invalidation keeps the walk caches, a full range invalidation drops them", "[unit]") {
    Core c;
    REQUIRE(c.b->map(0x1000, 0xA000, 0x1000, 12) == MapError::none);
    REQUIRE(c.core.translate(c.ctx, rd(0x1000)).reads == 4);
    InvalidationScope s;
    s.kind = K::range;
    s.domain_tag = 3;
    s.as_tag = 10;
    s.has_as = true;
    s.addr = 0x1000;
    s.size = 0x1000;
    s.leaf_only = true;
    c.core.invalidate(s);
    auto r = c.core.translate(c.ctx, rd(0x1000));
    CHECK_FALSE(r.iotlb_hit);
    CHECK(r.reads == 1); // PDE cache hit
    s.leaf_only = false;
    c.core.invalidate(s);
    CHECK(c.core.translate(c.ctx, rd(0x1000)).reads == 4);
}

TEST_CASE("PASID-scoped invalidation through the core keeps other PASIDs' translations", "[unit]") {
    Core c;
    REQUIRE(c.b->map(0x1000, 0xA000, 0x1000, 12) == MapError::none);
    TranslationContext other = c.ctx;
    other.as_tag = 11;
    c.core.translate(c.ctx, rd(0x1000));
    c.core.translate(other, rd(0x1000));
    InvalidationScope s;
    s.kind = K::domain_as;
    s.domain_tag = 3;
    s.as_tag = 10;
    s.has_as = true;
    c.core.invalidate(s);
    CHECK(c.core.translate(other, rd(0x1000)).iotlb_hit);
    auto again = c.core.translate(c.ctx, rd(0x1000));
    CHECK_FALSE(again.iotlb_hit);
    CHECK(again.reads == 4); // its walk-cache entries went too
}

TEST_CASE("a write to an IOTLB entry whose leaf is clean walks again and sets D", "[unit]") {
    Env env;
    TranslationCore core{env.port, TranslationCoreParams{}, &env.root};
    StageConfig cfg = x86_cfg(4);
    cfg.hw_access_dirty = true;
    auto b = env.build(cfg);
    LeafAttrs clean;
    clean.dirty = false;
    REQUIRE(b->map(0x1000, 0xA000, 0x1000, 12, clean) == MapError::none);
    TranslationContext ctx;
    ctx.s1 = b->config();
    core.translate(ctx, rd(0x1000));
    CHECK(core.translate(ctx, rd(0x1000)).iotlb_hit);
    auto w = core.translate(ctx, wr(0x1000));
    CHECK_FALSE(w.iotlb_hit);
    CHECK(w.writes == 1);
    CHECK((env.mem.read_u64(*b->descriptor_address(0x1000, 1)) & (1u << 6)));
    CHECK(core.translate(ctx, wr(0x1000)).iotlb_hit);
}

TEST_CASE("an IOTLB hit that denies the access walks and reports the architected fault", "[unit]") {
    Core c;
    REQUIRE(c.b->map(0x1000, 0xA000, 0x1000, 12, LeafAttrs{perm::user_read | perm::priv_read}) == MapError::none);
    REQUIRE(c.core.translate(c.ctx, rd(0x1000)).t.ok());
    auto w = c.core.translate(c.ctx, wr(0x1000));
    CHECK(w.t.fault == FaultKind::permission);
    CHECK(w.t.fault_level == 1);
    CHECK(w.t.fault_stage == 1);
}

TEST_CASE("pass-through contexts translate 1:1 without memory reads", "[unit]") {
    Core c;
    TranslationContext pt;
    pt.pass_through = true;
    auto r = c.core.translate(pt, wr(0x1234'5678));
    REQUIRE(r.t.ok());
    CHECK(r.t.output == 0x1234'5678);
    CHECK(r.reads == 0);
}

TEST_CASE("nested translations are cached combined and dropped by a stage-2 range invalidation", "[unit]") {
    Env env;
    TranslationCore core{env.port, TranslationCoreParams{}, &env.root};
    auto s2 = env.build(vtd_ss_cfg(4));
    // Stage-1 tables live in guest memory at GPA 1 MiB, identity-mapped at stage 2.
    BumpAllocator gtables(0x10'0000, 0x10'0000);
    auto s1 = TableBuilder::create(env.mem, x86_cfg(4), std::ref(gtables));
    REQUIRE(s2->map(0x10'0000, 0x10'0000, 0x10'0000, 12) == MapError::none);
    REQUIRE(s1->map(0x5000, 0x4000'0000, 0x1000, 12) == MapError::none);
    REQUIRE(s2->map(0x4000'0000, 0x7000'0000, 0x20'0000, 21) == MapError::none);
    TranslationContext ctx;
    ctx.domain_tag = 9;
    ctx.as_tag = 1;
    ctx.s1 = s1->config();
    ctx.s2 = s2->config();
    auto a = core.translate(ctx, rd(0x5123));
    REQUIRE(a.t.ok());
    CHECK(a.t.output == 0x7000'0123);
    CHECK(a.t.page_shift == 12); // min(4 KiB stage 1, 2 MiB stage 2)
    CHECK(core.translate(ctx, rd(0x5123)).iotlb_hit);
    InvalidationScope s;
    s.kind = K::range;
    s.stage = InvalidationScope::Stage::s2;
    s.domain_tag = 9;
    s.addr = 0x4000'0000;
    s.size = 0x20'0000;
    CHECK(core.invalidate(s) >= 2); // the combined entry and the stage-2 cache entry
    CHECK_FALSE(core.translate(ctx, rd(0x5123)).iotlb_hit);
}

TEST_CASE("IOTLB and walk caches stay within their configured sizes whatever the address stream", "[unit]") {
    Env env;
    TranslationCoreParams p;
    p.iotlb.geometry = CacheGeometry{64, 4, Replacement::lru, 1};
    p.walker.s1_walk_cache.per_level = CacheGeometry{16, 4, Replacement::tree_plru, 1};
    TranslationCore core{env.port, p, &env.root};
    auto b = env.build(x86_cfg(4));
    TranslationContext ctx;
    ctx.s1 = b->config();
    for (uint64_t i = 0; i < 2000; ++i) {
        uint64_t va = (i * 0x2'0000'1000) & ((uint64_t{1} << 47) - 0x1000);
        REQUIRE(b->map(va, 0x1000 * i, 0x1000, 12) == MapError::none);
        REQUIRE(core.translate(ctx, rd(va)).t.ok());
    }
    CHECK(core.iotlb().size() <= 64);
    CHECK(core.walker().s1_walk_cache().size() <= core.walker().s1_walk_cache().capacity());
    CHECK(core.walker().s1_walk_cache().capacity() == 16 * 4); // levels 2..5
}

TEST_CASE("the shell's split path (lookup, then miss) counts one IOTLB lookup per request and fills once", "[unit]") {
    Core c;
    REQUIRE(c.b->map(0x1000, 0xA000, 0x1000, 12, LeafAttrs{perm::user_read | perm::priv_read}) == MapError::none);
    const auto& g = c.core.iotlb().cache().stats();
    auto stat = [&](const char* n) { return stats::numeric_value(*g.find(n)); };
    IotlbHit h;
    const AccessRequest r = rd(0x1010);
    REQUIRE_FALSE(c.core.lookup(c.ctx, r, TranslationCore::input_of(c.ctx, r.iova), h));
    const TranslateResult m = c.core.miss(c.ctx, r, TranslationCore::input_of(c.ctx, r.iova));
    REQUIRE(m.t.ok());
    CHECK(m.reads == 4);
    CHECK(stat("misses") == 1);
    CHECK(stat("hits") == 0);
    CHECK(c.core.iotlb().size() == 1);
    // The next request hits inline: the entry's page, one hit counted, no walk.
    REQUIRE(c.core.lookup(c.ctx, rd(0x1020), 0x1020, h));
    CHECK(h.entry.output == 0xA000);
    CHECK(h.page_shift == 12);
    CHECK(stat("hits") == 1);
    // A hit that does not grant the access is not a hit for the shell: miss() walks and
    // reports the fault, without a second lookup.
    REQUIRE_FALSE(c.core.lookup(c.ctx, wr(0x1020), 0x1020, h));
    CHECK(h.hit);
    const TranslateResult f = c.core.miss(c.ctx, wr(0x1020), 0x1020);
    CHECK_FALSE(f.iotlb_hit);
    CHECK(f.reads == 1); // the leaf again (the walk caches hold the upper levels)
    CHECK(f.t.fault == FaultKind::permission);
    CHECK(stat("hits") + stat("misses") == 3);
    CHECK(c.core.iotlb().size() == 1);
}
