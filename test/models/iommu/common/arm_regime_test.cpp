// SPDX-License-Identifier: Apache-2.0
// Core extensions an Arm stage-1 regime needs (family-neutral): two VA ranges
// (TTB0/TTB1) with top-byte ignore and walk disables, a regime tag on cache
// entries (NS-EL1 vs EL2), and split-stage ATS (stage 1 alone for the
// Translation Request, stage 2 alone for the translated request).
#include <catch2/catch.hpp>

#include "models/iommu/common/translation_core.hpp"
#include "test/models/iommu/common/fixture.hpp"

using namespace iommusim;
using namespace iommusim::iommu;
using namespace iommusim::iommu::test;
using K = InvalidationScope::Kind;

namespace {

constexpr uint64_t kUpperBase = 0xFFFF'FF80'0000'0000; ///< first address of a 39-bit upper range

/// Lower range: 48-bit, 4 KiB granule. Upper range: 39-bit, 16 KiB granule (T1SZ = 25, TG1 = 16 KiB).
struct TwoRanges {
    Env env;
    TranslationCore core{env.port, TranslationCoreParams{}, &env.root};
    std::unique_ptr<TableBuilder> lo = env.build(arm_cfg(false, 12, 48, 4));
    std::unique_ptr<TableBuilder> hi;
    TranslationContext ctx;
    TwoRanges() {
        StageConfig u = arm_cfg(false, 14, 39, 3);
        u.upper = true;
        hi = env.build(u);
        ctx.domain_tag = 1;
        ctx.as_tag = 5;
        ctx.s1 = lo->config();
        ctx.s1_upper = hi->config();
        ctx.va.split = true;
        REQUIRE(lo->map(0x1000, 0xA000, 0x1000, 12) == MapError::none);
        REQUIRE(hi->map(kUpperBase + 0x4000, 0xB'0000, 0x4000, 14) == MapError::none);
    }
};

} // namespace

TEST_CASE("with two VA ranges VA[55] selects the TTB0 or the TTB1 tables, each with its own granule", "[unit]") {
    TwoRanges t;
    auto a = t.core.translate(t.ctx, rd(0x1234));
    REQUIRE(a.t.ok());
    CHECK(a.t.output == 0xA234);
    CHECK(a.reads == 4); // 48-bit, 4 KiB: levels 0..3
    auto b = t.core.translate(t.ctx, rd(kUpperBase + 0x5678));
    REQUIRE(b.t.ok());
    CHECK(b.t.output == 0xB'1678);
    CHECK(b.t.page_shift == 14);
    CHECK(b.reads == 3); // 39-bit, 16 KiB: three levels
    // Both are cached separately: the low bits alone would collide.
    CHECK(t.core.translate(t.ctx, rd(0x1000)).iotlb_hit);
    CHECK(t.core.translate(t.ctx, rd(kUpperBase + 0x4000)).iotlb_hit);
}

TEST_CASE("an address in neither VA range is a translation fault at level 0 with no memory read", "[unit]") {
    TwoRanges t;
    // Top bits neither all zeros (TTB0, 48 bits) nor all ones (TTB1, 39 bits).
    for (uint64_t va : {uint64_t{1} << 48, uint64_t{0x00FF'0000'0000'1000}, uint64_t{0xFFFF'FF00'0000'0000},
                        uint64_t{0x7F80'0000'0000'0000}}) {
        auto r = t.core.translate(t.ctx, rd(va));
        CHECK(r.t.fault == FaultKind::not_present);
        CHECK(r.t.fault_stage == 1);
        CHECK(r.t.fault_level == 0);
        CHECK(r.reads == 0);
    }
}

TEST_CASE("top-byte ignore translates a tagged address as its untagged form and shares its IOTLB entry", "[unit]") {
    TwoRanges t;
    SECTION("TBI off: a tag puts the address outside both ranges") {
        CHECK(t.core.translate(t.ctx, rd(0x5A00'0000'0000'1000)).t.fault == FaultKind::not_present);
        CHECK(t.core.translate(t.ctx, rd(0x0A00'0000'0000'1000 | kUpperBase)).t.fault == FaultKind::not_present);
    }
    SECTION("TBI0 / TBI1 on") {
        t.ctx.va.tbi_lower = true;
        t.ctx.va.tbi_upper = true;
        auto a = t.core.translate(t.ctx, rd(0x5A00'0000'0000'1010));
        REQUIRE(a.t.ok());
        CHECK(a.t.output == 0xA010);
        auto b = t.core.translate(t.ctx, rd(0x3300'0000'0000'1020)); // another tag, same page
        CHECK(b.iotlb_hit);
        CHECK(b.t.output == 0xA020);
        // Upper range: bit 55 set, top byte anything.
        auto c = t.core.translate(t.ctx, rd(0x00FF'FF80'0000'4008));
        REQUIRE(c.t.ok());
        CHECK(c.t.output == 0xB'0008);
    }
    SECTION("TBI applies per range") {
        t.ctx.va.tbi_upper = true;
        CHECK(t.core.translate(t.ctx, rd(0x5A00'0000'0000'1000)).t.fault == FaultKind::not_present);
        CHECK(t.core.translate(t.ctx, rd(0x12FF'FF80'0000'4000)).t.ok());
    }
}

TEST_CASE("a range with walks disabled (EPD) faults on a miss without reading or validating its tables", "[unit]") {
    TwoRanges t;
    t.ctx.va.walk_upper = false;
    t.ctx.s1_upper = StageConfig{}; // Linux leaves TTB1/T1SZ zero with EPD1 = 1: never looked at
    auto r = t.core.translate(t.ctx, rd(kUpperBase + 0x4000));
    CHECK(r.t.fault == FaultKind::not_present);
    CHECK(r.t.fault_level == 0);
    CHECK(r.reads == 0);
    CHECK(t.core.translate(t.ctx, rd(0x1000)).t.ok());
    t.ctx.va.walk_lower = false;
    CHECK(t.core.translate(t.ctx, rd(0x2000)).t.fault == FaultKind::not_present);
    // An entry cached before EPD was set still hits (EPD only stops walks).
    CHECK(t.core.translate(t.ctx, rd(0x1000)).iotlb_hit);
}

TEST_CASE("an upper-range config that does not say it is the upper range is refused as an invalid config", "[unit]") {
    TwoRanges t;
    t.ctx.s1_upper.upper = false;
    CHECK(t.core.translate(t.ctx, rd(kUpperBase + 0x4000)).t.fault == FaultKind::invalid_config);
}

TEST_CASE("the table builder maps only the upper range's addresses into an upper-range table", "[unit]") {
    Env env;
    StageConfig u = arm_cfg(false, 12, 39, 3);
    u.upper = true;
    auto b = env.build(u);
    CHECK(b->map(0x1000, 0xA000, 0x1000, 12) == MapError::out_of_range);
    CHECK(b->map(0xFFFF'FF7F'FFFF'F000, 0xA000, 0x1000, 12) == MapError::out_of_range);
    CHECK(b->map(0xFFFF'FFFF'FFFF'F000, 0xA000, 0x1000, 12) == MapError::none);
    CHECK(b->map(0xFFFF'FF80'0000'0000, 0xC000, 0x1000, 12) == MapError::none);
}

TEST_CASE("EL2 and NS-EL1 entries of one ASID are cached apart and invalidated only by their own regime", "[unit]") {
    Env env;
    TranslationCore core{env.port, TranslationCoreParams{}, &env.root};
    auto el1_tables = env.build(arm_cfg(false));
    auto el2_tables = env.build(arm_cfg(false));
    REQUIRE(el1_tables->map(0x1000, 0xA000, 0x1000, 12) == MapError::none);
    REQUIRE(el2_tables->map(0x1000, 0xE000, 0x1000, 12) == MapError::none);
    TranslationContext el1, el2;
    el1.domain_tag = el2.domain_tag = 0; // EL2 has no VMID; VMID 0 is a valid EL1 tag
    el1.as_tag = el2.as_tag = 9;
    el1.s1 = el1_tables->config();
    el2.s1 = el2_tables->config();
    el2.regime = Regime::el2;
    REQUIRE(core.translate(el1, rd(0x1000)).t.output == 0xA000);
    REQUIRE(core.translate(el2, rd(0x1000)).t.output == 0xE000); // not the EL1 entry
    CHECK(core.translate(el1, rd(0x1000)).iotlb_hit);
    CHECK(core.translate(el2, rd(0x1000)).iotlb_hit);

    InvalidationScope s; // SMMU CMD_TLBI_EL2_ASID
    s.kind = K::domain_as;
    s.domain_tag = 0;
    s.as_tag = 9;
    s.regime = Regime::el2;
    core.invalidate(s);
    auto a = core.translate(el1, rd(0x1000));
    CHECK(a.iotlb_hit);
    auto b = core.translate(el2, rd(0x1000));
    CHECK_FALSE(b.iotlb_hit);
    CHECK(b.reads == 4); // the ASID's EL2 walk-cache entries went too; the EL1 ones were kept
    InvalidationScope all; // SMMU CMD_TLBI_NSNH_ALL: every NS-EL1 entry, no EL2 entry
    all.kind = K::all;
    core.invalidate(all);
    CHECK_FALSE(core.translate(el1, rd(0x1000)).iotlb_hit);
    CHECK(core.translate(el2, rd(0x1000)).iotlb_hit);
}

TEST_CASE("a range invalidation reaches only its regime's entries, also by probing", "[unit]") {
    Env env;
    stats::Group g{"t"};
    Iotlb tlb("iotlb", CacheGeometry{256, 4, Replacement::lru, 1}, &g);
    tlb.insert(0, 9, 0x1000, TranslationKind::s1, 12, false, IotlbEntry{}, Regime::el1);
    tlb.insert(0, 9, 0x1000, TranslationKind::s1, 12, false, IotlbEntry{}, Regime::el2);
    CHECK(tlb.size() == 2);
    InvalidationScope s;
    s.kind = K::range;
    s.domain_tag = 0;
    s.as_tag = 9;
    s.addr = 0x1000;
    s.size = 0x1000;
    s.regime = Regime::el2;
    SECTION("probe path (with ASID)") { s.has_as = true; }
    SECTION("scan path (all ASIDs, TLBI_EL2_VAA)") { s.has_as = false; }
    CHECK(tlb.invalidate(s) == 1);
    CHECK(tlb.lookup(0, 9, 0x1000, TranslationKind::s1, Regime::el1).hit);
    CHECK_FALSE(tlb.lookup(0, 9, 0x1000, TranslationKind::s1, Regime::el2).hit);
}

TEST_CASE("walk-cache entries are tagged by regime", "[unit]") {
    stats::Group g{"t"};
    WalkCacheParams p;
    WalkCache wc("pwc", p, &g);
    const StageConfig c = arm_cfg(false);
    WalkCacheEntry e;
    e.table = 0x5000;
    e.next_level = 1;
    wc.insert(0, 9, WalkKind::s1, 0x1000, 2, c, e, Regime::el2);
    CHECK_FALSE(wc.lookup(0, 9, WalkKind::s1, 0x1000, c, Regime::el1));
    REQUIRE(wc.lookup(0, 9, WalkKind::s1, 0x1000, c, Regime::el2));
    InvalidationScope s;
    s.kind = K::all; // EL1 regime
    CHECK(wc.invalidate(s) == 0);
    s.regime = Regime::el2;
    CHECK(wc.invalidate(s) == 1);
}

namespace {
/// Nested Arm stage 1 over stage 2 (NestedTables); one read-only stage-1 page whose IPA stage 2 does not map yet.
struct SplitStage {
    Env env;
    TranslationCore core{env.port, TranslationCoreParams{}, &env.root};
    NestedTables t{env, arm_cfg(false), arm_cfg(true)};
    TranslationContext ctx = t.context(4, 2);
    std::unique_ptr<TableBuilder>& s2 = t.s2;
    SplitStage() {
        LeafAttrs ro;
        ro.perms = perm::both(true, false, false);
        REQUIRE(t.s1->map(0x7000, 0x4000'0000, 0x1000, 12, ro) == MapError::none);
    }
};
} // namespace

TEST_CASE("split-stage ATS: stage 1 alone answers with the IPA while the full translation faults at stage 2",
          "[unit]") {
    SplitStage t;
    auto full = t.core.translate(t.ctx, rd(0x7008));
    CHECK(full.t.fault == FaultKind::not_present);
    CHECK(full.t.fault_stage == 2);
    auto s1 = t.core.translate_s1(t.ctx, rd(0x7008));
    REQUIRE(s1.t.ok());
    CHECK(s1.t.output == 0x4000'0008);
    CHECK(s1.t.read);
    CHECK_FALSE(s1.t.write); // stage-1 rights only
    CHECK(t.core.translate_s1(t.ctx, wr(0x7008)).t.fault == FaultKind::permission);
    // The translated request (address = IPA) is checked by stage 2 and faults there.
    auto chk = t.core.check_s2(t.ctx, rd(0x4000'0008));
    CHECK(chk.t.fault == FaultKind::not_present);
    CHECK(chk.t.fault_stage == 2);
    CHECK(chk.t.fault_addr == 0x4000'0008);
}

TEST_CASE("split-stage ATS: the stage-2 check walks once, then the stage-2 cache serves it", "[unit]") {
    SplitStage t;
    REQUIRE(t.s2->map(0x4000'0000, 0x9000'0000, 0x1000, 12) == MapError::none);
    auto a = t.core.check_s2(t.ctx, wr(0x4000'0010));
    REQUIRE(a.t.ok());
    CHECK(a.t.output == 0x9000'0010);
    CHECK_FALSE(a.iotlb_hit);
    CHECK(a.reads == 4);
    auto b = t.core.check_s2(t.ctx, rd(0x4000'0020));
    REQUIRE(b.t.ok());
    CHECK(b.iotlb_hit);
    CHECK(b.reads == 0);
    // A stage-2 IPA invalidation drops it.
    InvalidationScope s;
    s.kind = K::range;
    s.domain_tag = 4;
    s.addr = 0x4000'0000;
    s.size = 0x1000;
    s.stage = InvalidationScope::Stage::s2;
    t.core.invalidate(s);
    CHECK_FALSE(t.core.check_s2(t.ctx, rd(0x4000'0020)).iotlb_hit);
}

TEST_CASE("split-stage ATS: a nested IOTLB entry answers the stage-1 request with its IPA", "[unit]") {
    SplitStage t;
    REQUIRE(t.s2->map(0x4000'0000, 0x9000'0000, 0x1000, 12) == MapError::none);
    REQUIRE(t.core.translate(t.ctx, rd(0x7000)).t.output == 0x9000'0000);
    auto r = t.core.translate_s1(t.ctx, rd(0x7040));
    CHECK(r.iotlb_hit);
    CHECK(r.reads == 0);
    CHECK(r.t.output == 0x4000'0040);
}

TEST_CASE("split-stage ATS without stage 2 is the ordinary translation", "[unit]") {
    Env env;
    TranslationCore core{env.port, TranslationCoreParams{}, &env.root};
    auto b = env.build(arm_cfg(false));
    REQUIRE(b->map(0x1000, 0xA000, 0x1000, 12) == MapError::none);
    TranslationContext ctx;
    ctx.s1 = b->config();
    CHECK(core.translate_s1(ctx, rd(0x1004)).t.output == 0xA004);
    CHECK(core.check_s2(ctx, rd(0x1004)).t.fault == FaultKind::invalid_config);
}

TEST_CASE("an Arm leaf with AF = 0 faults unless access-flag faults are disabled (SMMU AFFD)", "[unit]") {
    Env env;
    TranslationCore core{env.port, TranslationCoreParams{}, &env.root};
    auto b = env.build(arm_cfg(false));
    LeafAttrs no_af;
    no_af.accessed = false;
    REQUIRE(b->map(0x1000, 0xA000, 0x1000, 12, no_af) == MapError::none);
    TranslationContext ctx;
    ctx.s1 = b->config();
    auto f = core.translate(ctx, rd(0x1000));
    CHECK(f.t.fault == FaultKind::access_flag);
    CHECK(f.t.fault_level == 1);
    ctx.s1.af_fault_disable = true;
    auto r = core.translate(ctx, rd(0x1000));
    REQUIRE(r.t.ok());
    CHECK(r.t.output == 0xA000);
    CHECK((env.mem.read_u64(*b->descriptor_address(0x1000, 1)) & (1u << 10)) == 0); // AF left clear: no update
}
