// SPDX-License-Identifier: Apache-2.0
// SMMUv3 stream tables, STEs, CD tables and CDs in simulated memory:
// bit layouts against spec-layouts.md C.1/C.2, every STE.Config, linear and
// 2-level tables, S1DSS, TTB0/TTB1, every granule, nesting, EATS, and the
// configuration events.
#include <catch2/catch.hpp>

#include "models/iommu/common/translation_core.hpp"
#include "models/iommu/common/walker.hpp"
#include "models/iommu/smmuv3/smmuv3_tables.hpp"
#include "test/models/iommu/smmuv3/smmuv3_fixture.hpp"

using namespace iommusim;
using namespace iommusim::iommu;
using namespace iommusim::iommu::smmuv3;
using namespace iommusim::iommu::test;
using namespace iommusim::iommu::smmuv3::test;


// ------------------------------------------------------------------ layouts

TEST_CASE("an STE puts every field at its architected bit position", "[unit]") {
    Ste s;
    s.valid = true;
    s.config = ste_cfg::kNested;
    s.s1fmt = 2;
    s.s1_context_ptr = 0x000F'1234'5678'9AC0;
    s.s1cdmax = 20;
    s.s1dss = s1dss::kSsid0;
    s.s1cir = 1, s.s1cor = 1, s.s1csh = 3;
    s.s1stalld = true;
    s.eats = 2;
    s.strw = strw::kEl2;
    s.shcfg = 1;
    s.s2vmid = 0xBEEF;
    s.s2t0sz = 24, s.s2sl0 = 1, s.s2ir0 = 1, s.s2or0 = 1, s.s2sh0 = 3, s.s2tg = 2, s.s2ps = 5;
    s.s2aa64 = s.s2affd = s.s2ptw = s.s2ha = s.s2r = true;
    s.s2ttb = 0x000F'0000'1234'5670;
    const auto d = s.encode();
    // V 0, Config 3:1, S1Fmt 5:4, S1ContextPtr 51:6, S1CDMax 63:59.
    CHECK(d[0] == 0xA00F'1234'5678'9AEFull);
    // S1DSS 1:0, S1CIR 3:2, S1COR 5:4, S1CSH 7:6, S1STALLD 27, EATS 29:28, STRW 31:30, SHCFG 45:44.
    CHECK(d[1] == 0x0000'1000'A800'00D6ull);
    // S2VMID 15:0, S2T0SZ 37:32, S2SL0 39:38, S2IR0/OR0/SH0, S2TG 47:46, S2PS 50:48, S2AA64 51,
    // S2AFFD 53, S2PTW 54, S2HA 56, S2R 58.
    CHECK(d[2] == 0x056D'B558'0000'BEEFull);
    CHECK(d[3] == 0x000F'0000'1234'5670ull); // S2TTB 51:4
    for (int i = 4; i < 8; ++i) CHECK(d[i] == 0);
    CHECK(Ste::decode(d) == s);
    Ste t = s;
    t.s2endi = t.s2hd = t.s2s = true;
    CHECK(t.encode()[2] == (d[2] | 1ull << 52 | 1ull << 55 | 1ull << 57));
    t.ppar = true; // PPAR: bit 82 (IHI 0070 5.2; Linux never sets it)
    CHECK(t.encode()[1] == (d[1] | 1ull << 18));
    CHECK(Ste::decode(t.encode()).ppar);
}

TEST_CASE("a CD puts every field at its architected bit position", "[unit]") {
    Cd c;
    c.t0sz = 16, c.tg0 = 2, c.ir0 = 1, c.or0 = 1, c.sh0 = 3;
    c.t1sz = 25, c.tg1 = 2, c.ir1 = 1, c.or1 = 1, c.sh1 = 3, c.epd1 = true;
    c.valid = true;
    c.ips = 5;
    c.affd = true;
    c.tbi = 3;
    c.aa64 = c.hd = c.ha = c.s = c.r = c.a = c.aset = true;
    c.asid = 0xABCD;
    c.ttb0 = 0x0000'1234'5678'9000;
    c.had0 = true;
    c.ttb1 = 0x000F'FFFF'FFFF'F000;
    c.nscfg1 = true;
    c.mair = 0xFF04'4400;
    c.amair = 0x1122;
    const auto d = c.encode();
    CHECK(d[0] == 0xABCD'FECD'F599'3590ull);
    CHECK(d[1] == 0x0000'1234'5678'9002ull); // TTB0 51:4, HAD0 1
    CHECK(d[2] == 0x000F'FFFF'FFFF'F001ull); // TTB1 51:4, NSCFG1 0
    CHECK(d[3] == 0xFF04'4400);
    CHECK(d[4] == 0x1122);
    CHECK(Cd::decode(d) == c);
    Cd e;
    e.epd0 = e.endi = e.wxn = e.uwxn = e.pan = true;
    CHECK(e.encode()[0] == (1ull << 14 | 1ull << 15 | 1ull << 36 | 1ull << 37 | 1ull << 40));
}

TEST_CASE("level-1 stream table and CD descriptors have the architected layout", "[unit]") {
    CHECK(L1Std{9, 0x1234'5640}.encode() == 0x1234'5649);     // Span 4:0, L2Ptr 51:6
    CHECK(L1Std::decode(0xFFF0'0000'1234'5649).l2ptr == 0x1234'5640);
    CHECK(L1Cd{true, 0x5432'1000}.encode() == 0x5432'1001);   // V 0, L2Ptr 51:12
    CHECK_FALSE(L1Cd::decode(0x5432'1000).valid);
    CHECK(tg0_shift(0) == 12);
    CHECK(tg0_shift(1) == 16);
    CHECK(tg0_shift(2) == 14);
    CHECK(tg0_shift(3) == 0);
    CHECK(tg1_shift(0) == 0);
    CHECK(tg1_shift(1) == 14);
    CHECK(tg1_shift(2) == 12);
    CHECK(tg1_shift(3) == 16);
}

// ------------------------------------------------------------------ Config

TEST_CASE("every STE.Config: abort, bypass, stage 1, stage 2, nested, reserved values are C_BAD_STE", "[unit]") {
    Smmu u;
    auto s1 = u.env.build(arm_cfg(false));
    auto s2 = u.env.build(arm_cfg(true));
    SECTION("abort: terminated without an event") {
        REQUIRE(u.st.write_ste(1, ste(ste_cfg::kAbort)));
        auto r = u.resolve(1);
        CHECK_FALSE(r.event);
        CHECK(r.sc.abort);
    }
    SECTION("bypass: both stages off, 1:1") {
        REQUIRE(u.st.write_ste(1, ste(ste_cfg::kBypass)));
        auto r = u.resolve(1);
        REQUIRE_FALSE(r.event);
        CHECK(r.sc.bypass);
        CHECK(r.sc.ctx.pass_through);
        CHECK(u.core.translate(r.sc.ctx, rd(0x1234'5678)).t.output == 0x1234'5678);
    }
    SECTION("stage 1 only") {
        REQUIRE(s1->map(0x1000, 0xA000, 0x1000, 12) == MapError::none);
        u.s1_stream(1, s1->config(), 0, 0, 0, 42);
        auto r = u.resolve(1);
        REQUIRE_FALSE(r.event);
        CHECK((r.sc.s1 && !r.sc.s2));
        CHECK(r.sc.ctx.as_tag == 42);
        CHECK(r.sc.record_s1);
        CHECK(r.reads == 2); // STE + CD
        CHECK(u.core.translate(r.sc.ctx, rd(0x1008)).t.output == 0xA008);
    }
    SECTION("stage 2 only") {
        REQUIRE(s2->map(0x1000, 0xB000, 0x1000, 12) == MapError::none);
        Ste s = ste(ste_cfg::kS2);
        set_s2(s, s2->config(), 9);
        REQUIRE(u.st.write_ste(1, s));
        auto r = u.resolve(1);
        REQUIRE_FALSE(r.event);
        CHECK((!r.sc.s1 && r.sc.s2));
        CHECK(r.sc.ctx.domain_tag == 9);
        CHECK(r.sc.record_s2);
        CHECK(r.reads == 1);
        CHECK(u.core.translate(r.sc.ctx, rd(0x1010)).t.output == 0xB010);
    }
    SECTION("reserved 1..3") {
        for (uint8_t cfg : {1, 2, 3}) {
            REQUIRE(u.st.write_ste(1, ste(cfg)));
            auto r = u.resolve(1);
            REQUIRE(r.event);
            CHECK(r.event->id == evt::kBadSte);
            CHECK(r.event->sid == 1);
            CHECK(std::string(u.reader.check_ste(ste(cfg))) == "STE.Config reserved");
        }
    }
    SECTION("an invalid STE (V = 0) is C_BAD_STE") {
        Ste s = ste(ste_cfg::kBypass);
        s.valid = false;
        REQUIRE(u.st.write_ste(1, s));
        CHECK(u.resolve(1).event->id == evt::kBadSte);
    }
}

TEST_CASE("nested: the CD table is fetched through stage 2 and a cold 4+4 walk reads 24 descriptors", "[unit]") {
    Smmu u;
    NestedTables t(u.env, arm_cfg(false), arm_cfg(true));
    // The CD lives in guest memory: a linear table of one CD at a guest-physical address.
    BumpAllocator guest_cfg{0x30'0000, 0x1000}; // outside the guest's table pages
    REQUIRE(t.s2->map(0x30'0000, 0x30'0000 + NestedTables::kGuestBase, 0x1000, 12) == MapError::none);
    CdTableWriter cds(t.guest, [&](uint64_t b, uint64_t a) { return guest_cfg(b, a); }, 0, 0);
    REQUIRE(cds.write_cd(0, linux_cd(t.s1->config(), 3)));
    Ste s = ste(ste_cfg::kNested);
    s.s1_context_ptr = cds.context_ptr(); // an IPA
    set_s2(s, t.s2->config(), 7);
    REQUIRE(u.st.write_ste(5, s));
    REQUIRE(t.s1->map(0x1234'5000, 0x4000'0000, 0x1000, 12) == MapError::none);
    REQUIRE(t.s2->map(0x4000'0000, 0x9000'0000, 0x1000, 12) == MapError::none);
    auto r = u.resolve(5);
    REQUIRE_FALSE(r.event);
    CHECK((r.sc.s1 && r.sc.s2));
    CHECK(r.sc.ctx.domain_tag == 7);
    CHECK(r.sc.ctx.as_tag == 3);
    Walker w(u.env.port, no_caches(), &u.env.root);
    auto o = w.walk(r.sc.ctx, rd(0x1234'5678));
    REQUIRE(o.t.ok());
    CHECK(o.t.output == 0x9000'0678);
    CHECK(o.reads == 24);

    SECTION("a stage-2 fault on the CD's IPA is an event with S2 = 1 and CLASS = CD") {
        REQUIRE(t.s2->unmap(0x30'0000, 0x1000) == MapError::none);
        u.core.invalidate(InvalidationScope{}); // drop the cached stage-2 translation
        auto f = u.resolve(5);
        REQUIRE(f.event);
        CHECK(f.event->id == evt::kTranslation);
        CHECK(f.event->s2);
        CHECK(f.event->cls == EventClass::cd);
        CHECK(f.event->ipa == cds.context_ptr());
    }
}

// ------------------------------------------------------------------ stream tables

TEST_CASE("a linear stream table: StreamIDs beyond LOG2SIZE are C_BAD_STREAMID", "[unit]") {
    Smmu u;
    REQUIRE(u.st.write_ste(255, ste(ste_cfg::kBypass)));
    CHECK_FALSE(u.st.write_ste(256, ste(ste_cfg::kBypass)));
    CHECK(u.st.strtab_base_cfg_reg() == 8); // LOG2SIZE 8, SPLIT 0, FMT linear
    CHECK(*u.st.ste_address(255) == u.st.config().base + 255 * 64);
    CHECK_FALSE(u.resolve(255).event);
    auto r = u.resolve(256);
    REQUIRE(r.event);
    CHECK(r.event->id == evt::kBadStreamId);
    CHECK(r.event->sid == 256);
    CHECK(r.reads == 0);
}

TEST_CASE("a 2-level stream table: L1 Span and L2Ptr select the STE, sparse StreamIDs need no L2 table", "[unit]") {
    Smmu u;
    StreamTableWriter st(u.env.mem, u.alloc, 20, true, 8); // Linux: SPLIT 8, 256 STEs per L2 table
    CHECK(st.strtab_base_cfg_reg() == (1u << 16 | 8u << 6 | 20u));
    REQUIRE(st.write_ste(0x0'0003, ste(ste_cfg::kBypass)));
    REQUIRE(st.write_ste(0xA'BC12, ste(ste_cfg::kBypass)));
    const uint64_t l1 = u.env.mem.read_u64(st.config().base + 0xABC * 8);
    CHECK(L1Std::decode(l1).span == 9);
    CHECK(*st.ste_address(0xA'BC12) == L1Std::decode(l1).l2ptr + 0x12 * 64);
    auto resolve = [&](uint32_t sid) { return u.reader.resolve(u.env.mem, st.config(), sid, false, 0); };
    auto a = resolve(0xA'BC12);
    REQUIRE_FALSE(a.event);
    CHECK(a.sc.bypass);
    CHECK(a.reads == 2); // L1 descriptor + STE
    // No L2 table behind this L1 descriptor: Span = 0.
    auto b = resolve(0x5'0000);
    REQUIRE(b.event);
    CHECK(b.event->id == evt::kBadStreamId);
    CHECK(b.reads == 1);
    // An L2 table smaller than SPLIT: Span = 3 covers 4 STEs, index 4 is outside.
    u.env.mem.write_u64(st.config().base + 0x7 * 8, L1Std{3, 0x3000'0000}.encode());
    u.env.mem.write(0x3000'0000 + 2 * 64, ste(ste_cfg::kBypass).encode().data(), 64);
    CHECK_FALSE(resolve(0x702).event);
    CHECK(resolve(0x704).event->id == evt::kBadStreamId);
    // An STE (or L1 descriptor) outside memory is F_STE_FETCH with the fetch address.
    u.env.mem.write_u64(st.config().base + 0x8 * 8, L1Std{9, uint64_t{1} << 45}.encode());
    auto f = resolve(0x801);
    REQUIRE(f.event);
    CHECK(f.event->id == evt::kSteFetch);
    CHECK(f.event->fetch_addr == (uint64_t{1} << 45) + 64);
}

// ------------------------------------------------------------------ CD tables, S1DSS

TEST_CASE("linear and 2-level CD tables (4 KiB and 64 KiB leaves) select the CD of each SubstreamID", "[unit]") {
    Smmu u;
    auto t1 = u.env.build(arm_cfg(false));
    auto t2 = u.env.build(arm_cfg(false));
    REQUIRE(t1->map(0x1000, 0xA000, 0x1000, 12) == MapError::none);
    REQUIRE(t2->map(0x1000, 0xB000, 0x1000, 12) == MapError::none);
    for (uint8_t fmt : {0, 1, 2}) {
        INFO("S1Fmt " << int(fmt));
        CdTableWriter cds = u.s1_stream(3, t1->config(), 12, fmt, 0, 10);
        REQUIRE(cds.write_cd(0xABC, linux_cd(t2->config(), 11)));
        auto r0 = u.resolve(3, false);
        REQUIRE_FALSE(r0.event);
        CHECK(r0.sc.ctx.as_tag == 10);
        auto r1 = u.resolve(3, true, 0xABC);
        REQUIRE_FALSE(r1.event);
        CHECK(r1.sc.ctx.as_tag == 11);
        CHECK(r1.reads == (fmt == 0 ? 2u : 3u)); // STE, (L1CD,) CD
        CHECK(u.core.translate(r1.sc.ctx, rd(0x1000)).t.output == 0xB000);
        if (fmt != 0) {
            // An SSID whose L1 descriptor has no leaf table: C_BAD_SUBSTREAMID.
            const uint32_t other = fmt == 1 ? 0x40 : 0x400;
            auto r = u.resolve(3, true, other);
            REQUIRE(r.event);
            CHECK(r.event->id == evt::kBadSubstreamId);
            CHECK(r.event->ssv);
            CHECK(r.event->ssid == other);
            const unsigned split = cd_split(fmt);
            CHECK(*cds.cd_address(0xABC) ==
                  L1Cd::decode(u.env.mem.read_u64(cds.context_ptr() + (0xABC >> split) * 8)).l2ptr +
                      (0xABC & ((1u << split) - 1)) * 64);
        }
        // An SSID beyond S1CDMax.
        CHECK(u.resolve(3, true, 0x1000).event->id == evt::kBadSubstreamId);
    }
}

TEST_CASE("S1DSS decides what a transaction without a SubstreamID does when substreams are on", "[unit]") {
    Smmu u;
    auto t = u.env.build(arm_cfg(false));
    u.s1_stream(2, t->config(), 4, 0, 0, 8);
    Ste s = Ste::decode([&] {
        std::array<uint64_t, 8> w{};
        u.env.mem.read(*u.st.ste_address(2), w.data(), 64);
        return w;
    }());
    SECTION("SSID0: CD 0") {
        auto r = u.resolve(2);
        REQUIRE_FALSE(r.event);
        CHECK(r.sc.s1);
        CHECK(r.sc.ctx.as_tag == 8);
    }
    SECTION("bypass: stage 1 off for it (and no stage 2 here: 1:1)") {
        s.s1dss = s1dss::kBypass;
        REQUIRE(u.st.write_ste(2, s));
        auto r = u.resolve(2);
        REQUIRE_FALSE(r.event);
        CHECK_FALSE(r.sc.s1);
        CHECK(r.sc.bypass);
        CHECK(r.reads == 1); // no CD fetched
    }
    SECTION("terminate: F_STREAM_DISABLED") {
        s.s1dss = s1dss::kTerminate;
        REQUIRE(u.st.write_ste(2, s));
        auto r = u.resolve(2);
        REQUIRE(r.event);
        CHECK(r.event->id == evt::kStreamDisabled);
        CHECK_FALSE(r.event->ssv);
        CHECK(u.resolve(2, true, 1).event->id == evt::kBadCd); // SSID 1: its CD is not valid
    }
    SECTION("without substreams (S1CDMax = 0) a SubstreamID is C_BAD_SUBSTREAMID and S1DSS is ignored") {
        s.s1cdmax = 0;
        s.s1dss = s1dss::kTerminate;
        REQUIRE(u.st.write_ste(2, s));
        CHECK_FALSE(u.resolve(2).event);
        CHECK(u.resolve(2, true, 0).event->id == evt::kBadSubstreamId);
    }
    SECTION("a SubstreamID on a stream without stage 1 is C_BAD_SUBSTREAMID") {
        REQUIRE(u.st.write_ste(2, ste(ste_cfg::kBypass)));
        CHECK(u.resolve(2, true, 1).event->id == evt::kBadSubstreamId);
    }
}

// ------------------------------------------------------------------ TTB0 / TTB1, granules

TEST_CASE("a CD with TTB0 and TTB1 translates both VA ranges, with TBI per range", "[unit]") {
    Smmu u;
    auto lo = u.env.build(arm_cfg(false, 12, 48, 4));
    StageConfig uc = arm_cfg(false, 16, 42, 2); // T1SZ 22, 64 KiB granule
    uc.upper = true;
    auto hi = u.env.build(uc);
    REQUIRE(lo->map(0x1000, 0xA000, 0x1000, 12) == MapError::none);
    REQUIRE(hi->map(0xFFFF'FC00'0001'0000, 0x20'0000, 0x1'0000, 16) == MapError::none);
    CdTableWriter cds = u.s1_stream(4, lo->config());
    Cd c = linux_cd(lo->config(), 1);
    c.epd1 = false;
    c.t1sz = 22;
    c.tg1 = tg1_code(16);
    c.ttb1 = hi->root();
    c.tbi = 2; // top byte ignored in the TTB1 range only
    REQUIRE(cds.write_cd(0, c));
    auto r = u.resolve(4);
    REQUIRE_FALSE(r.event);
    CHECK(r.sc.ctx.va.split);
    CHECK(r.sc.ctx.s1_upper.granule_shift == 16);
    CHECK(r.sc.ctx.s1_upper.levels == 2);
    CHECK(u.core.translate(r.sc.ctx, rd(0x1234)).t.output == 0xA234);
    CHECK(u.core.translate(r.sc.ctx, rd(0xFFFF'FC00'0001'2345)).t.output == 0x20'2345);
    CHECK(u.core.translate(r.sc.ctx, rd(0x5AFF'FC00'0001'0010)).t.output == 0x20'0010); // tagged, TBI1
    CHECK(u.core.translate(r.sc.ctx, rd(0x5A00'0000'0000'1000)).t.fault == FaultKind::not_present); // no TBI0
    c.epd1 = true; // Linux's CD: the upper range faults
    REQUIRE(cds.write_cd(0, c));
    auto e = u.resolve(4);
    u.core.invalidate(InvalidationScope{});
    CHECK(u.core.translate(e.sc.ctx, rd(0xFFFF'FC00'0001'2345)).t.fault == FaultKind::not_present);
}

TEST_CASE("every granule: TG0 and S2TG of 4, 16 and 64 KiB resolve to walkable stages", "[unit]") {
    for (unsigned g : {12u, 14u, 16u}) {
        INFO("granule shift " << g);
        Smmu u;
        const unsigned s1_levels = g == 16 ? 3 : 4; // 48-bit input
        auto s1 = u.env.build(arm_cfg(false, g, 48, s1_levels));
        REQUIRE(s1->map(uint64_t{1} << g, uint64_t{5} << g, uint64_t{1} << g, g) == MapError::none);
        u.s1_stream(1, s1->config());
        auto r = u.resolve(1);
        REQUIRE_FALSE(r.event);
        CHECK(r.sc.ctx.s1.granule_shift == g);
        CHECK(r.sc.ctx.s1.levels == s1_levels);
        CHECK(u.core.translate(r.sc.ctx, rd((uint64_t{1} << g) + 8)).t.output == (uint64_t{5} << g) + 8);
        // Stage 2, 40-bit IPA: 4 KiB starts at level 1 with 2 concatenated tables, 16 KiB at
        // level 2 with 16, 64 KiB at level 2 with one.
        const unsigned s2_levels = g == 12 ? 3 : 2;
        const unsigned top = 40 - (g + (s2_levels - 1) * (g - 3));
        const unsigned concat = top > g - 3 ? 1u << (top - (g - 3)) : 1u;
        auto s2 = u.env.build(arm_cfg(true, g, 40, s2_levels, concat));
        REQUIRE(s2->map(uint64_t{1} << g, uint64_t{7} << g, uint64_t{1} << g, g) == MapError::none);
        Ste s = ste(ste_cfg::kS2);
        set_s2(s, s2->config(), 2);
        REQUIRE(u.st.write_ste(2, s));
        auto r2 = u.resolve(2);
        REQUIRE_FALSE(r2.event);
        CHECK(r2.sc.ctx.s2.concat_tables == concat);
        CHECK(u.core.translate(r2.sc.ctx, rd(uint64_t{1} << g)).t.output == uint64_t{7} << g);
    }
}

// ------------------------------------------------------------------ EATS, STRW

TEST_CASE("EATS: 0 no ATS, 1 full ATS, 2 split-stage with stage 2 checking translated requests", "[unit]") {
    Smmu u;
    NestedTables t(u.env, arm_cfg(false), arm_cfg(true));
    BumpAllocator guest_cfg{0x30'0000, 0x1000}; // outside the guest's table pages
    REQUIRE(t.s2->map(0x30'0000, 0x30'0000 + NestedTables::kGuestBase, 0x1000, 12) == MapError::none);
    CdTableWriter cds(t.guest, [&](uint64_t b, uint64_t a) { return guest_cfg(b, a); }, 0, 0);
    REQUIRE(cds.write_cd(0, linux_cd(t.s1->config(), 3)));
    REQUIRE(t.s1->map(0x7000, 0x4000'0000, 0x1000, 12) == MapError::none);
    REQUIRE(t.s2->map(0x4000'0000, 0x9000'0000, 0x1000, 12) == MapError::none);
    Ste s = ste(ste_cfg::kNested);
    s.s1_context_ptr = cds.context_ptr();
    set_s2(s, t.s2->config(), 7);
    for (uint8_t eats : {0, 1, 2}) {
        s.eats = eats;
        REQUIRE(u.st.write_ste(1, s));
        auto r = u.resolve(1);
        REQUIRE_FALSE(r.event);
        CHECK(r.sc.eats == eats);
        CHECK(r.sc.ctx.ats_allowed == (eats != 0));
    }
    // Split stage: the Translation Request gets the IPA; the translated request is checked by stage 2.
    auto r = u.resolve(1);
    CHECK(u.core.translate_s1(r.sc.ctx, rd(0x7010)).t.output == 0x4000'0010);
    CHECK(u.core.check_s2(r.sc.ctx, rd(0x4000'0010)).t.output == 0x9000'0010);
    CHECK(u.core.translate(r.sc.ctx, rd(0x7010)).t.output == 0x9000'0010); // full ATS answers the PA
    SECTION("split-stage ATS needs stage 2; EATS needs IDR0.ATS; 3 is reserved") {
        Ste bad = ste(ste_cfg::kS1);
        bad.eats = 2;
        CHECK(std::string(u.reader.check_ste(bad)) == "split-stage ATS without stage 2");
        s.eats = 3;
        CHECK(std::string(u.reader.check_ste(s)) == "STE.EATS reserved");
        s.eats = 1;
        u.p.ats = false;
        CHECK(u.reader.check_ste(s) != nullptr);
    }
}

TEST_CASE("STRW = EL2 tags stage 1 with the EL2 regime and no VMID, it excludes stage 2", "[unit]") {
    Smmu u;
    auto t = u.env.build(arm_cfg(false));
    u.s1_stream(1, t->config(), 0, 0, 0, 77);
    std::array<uint64_t, 8> w{};
    u.env.mem.read(*u.st.ste_address(1), w.data(), 64);
    Ste s = Ste::decode(w);
    s.strw = strw::kEl2;
    s.s2vmid = 12;
    REQUIRE(u.st.write_ste(1, s));
    auto r = u.resolve(1);
    REQUIRE_FALSE(r.event);
    CHECK(r.sc.ctx.regime == Regime::el2);
    CHECK(r.sc.ctx.domain_tag == 0);
    CHECK(r.sc.ctx.as_tag == 77);
    s.config = ste_cfg::kNested;
    CHECK(u.reader.check_ste(s) != nullptr);
    s.config = ste_cfg::kS1;
    s.strw = 1; // EL2 without E2H: not modelled
    CHECK(u.reader.check_ste(s) != nullptr);
    u.p.hyp = false;
    s.strw = strw::kEl2;
    CHECK(u.reader.check_ste(s) != nullptr);
}

// ------------------------------------------------------------------ bad entries

TEST_CASE("STEs the unit cannot use are C_BAD_STE, each for its reason", "[unit]") {
    Smmu u;
    auto s2t = u.env.build(arm_cfg(true));
    Ste good = ste(ste_cfg::kS2);
    set_s2(good, s2t->config(), 1);
    REQUIRE(u.reader.check_ste(good) == nullptr);
    auto reason = [&](auto change) {
        Ste s = good;
        change(s);
        const char* why = u.reader.check_ste(s);
        return std::string(why ? why : "usable");
    };
    CHECK(reason([](Ste& s) { s.s2aa64 = false; }) == "STE.S2AA64 = 0 (AArch32 tables not supported by this SMMU)");
    CHECK(reason([](Ste& s) { s.s2endi = true; }) == "big-endian stage-2 tables not supported by this SMMU (IDR0/IDR5)");
    CHECK(reason([](Ste& s) { s.s2tg = 3; }) == "STE.S2TG reserved or granule not supported by this SMMU (IDR0/IDR5)");
    CHECK(reason([](Ste& s) { s.s2t0sz = 40; }) == "STE.S2T0SZ out of range");
    CHECK(reason([](Ste& s) { s.s2sl0 = 3; }) == "STE.S2SL0 reserved");
    CHECK(reason([](Ste& s) { s.s2sl0 = 0; }) == "STE.S2T0SZ / S2SL0 / S2TTB inconsistent"); // 48 bits from level 2
    CHECK(reason([](Ste& s) { s.s2ttb |= 0x800; }) == "STE.S2T0SZ / S2SL0 / S2TTB inconsistent");
    CHECK(reason([](Ste& s) { s.s2ps = 7; }) == "STE.S2PS reserved");
    CHECK(reason([](Ste& s) { s.config = ste_cfg::kS1, s.s1fmt = 3; }) == "STE.S1Fmt reserved");
    CHECK(reason([](Ste& s) { s.config = ste_cfg::kS1, s.s1cdmax = 21; }) == "STE.S1CDMax beyond IDR1.SSIDSIZE");
    CHECK(reason([](Ste& s) { s.config = ste_cfg::kS1, s.s1dss = 3; }) == "STE.S1DSS reserved");
    u.p.stall_model = StallModel::terminate_only;
    CHECK(reason([](Ste& s) { s.s2s = true; }) == "STE.S2S without stall support");
    CHECK(reason([](Ste& s) { s.config = ste_cfg::kS1, s.s1stalld = true; }) ==
          "STE.S1STALLD with STALL_MODEL != 0");
    u.p = {};
    u.p.gran64k = false;
    CHECK(reason([](Ste& s) { s.s2tg = 1; }) == "STE.S2TG reserved or granule not supported by this SMMU (IDR0/IDR5)");
    u.p = {};
    u.p.s2p = false;
    CHECK(reason([](Ste&) {}) == "stage 2 not supported by this SMMU (IDR0/IDR5)");
    u.p = {};
    u.p.cd2l = false;
    CHECK(reason([](Ste& s) { s.config = ste_cfg::kS1, s.s1fmt = 2; }) == "2-level CD table without IDR0.CD2L");
}

TEST_CASE("CDs the unit cannot use are C_BAD_CD, each for its reason", "[unit]") {
    Smmu u;
    auto t = u.env.build(arm_cfg(false));
    const Cd good = linux_cd(t->config(), 1);
    REQUIRE(u.reader.check_cd(good) == nullptr);
    auto reason = [&](auto change) {
        Cd c = good;
        change(c);
        const char* why = u.reader.check_cd(c);
        return std::string(why ? why : "usable");
    };
    CHECK(reason([](Cd& c) { c.valid = false; }) == "CD.V = 0");
    CHECK(reason([](Cd& c) { c.aa64 = false; }) == "CD.AA64 = 0 (AArch32 tables not supported by this SMMU)");
    CHECK(reason([](Cd& c) { c.endi = true; }) == "big-endian tables not supported by this SMMU (IDR0/IDR5)");
    CHECK(reason([](Cd& c) { c.ips = 7; }) == "CD.IPS reserved");
    CHECK(reason([](Cd& c) { c.tg0 = 3; }) == "CD.TG0 reserved or not supported by this SMMU (IDR0/IDR5)");
    CHECK(reason([](Cd& c) { c.t0sz = 15; }) == "CD.T0SZ out of range");
    CHECK(reason([](Cd& c) { c.t0sz = 40; }) == "CD.T0SZ out of range");
    CHECK(reason([](Cd& c) { c.epd1 = false; }) == "CD.TG1 reserved or not supported by this SMMU (IDR0/IDR5)"); // TG1 = 0 is reserved
    CHECK(reason([](Cd& c) { c.epd1 = false, c.tg1 = 2, c.t1sz = 50; }) == "CD.T1SZ out of range");
    CHECK(reason([](Cd& c) { c.ttb0 |= 0x10; }) == "CD table base misaligned");
    CHECK(reason([](Cd& c) { c.epd0 = true, c.t0sz = 0, c.tg0 = 3; }) == "usable"); // walks off: not checked
    u.p.stall_model = StallModel::forced;
    CHECK(reason([](Cd&) {}) == "CD.S = 0 with forced stall");
    u.p = {};
    u.p.asid16 = false;
    CHECK(reason([](Cd& c) { c.asid = 0x100; }) == "CD.ASID[15:8] without ASID16");
    // Through memory: the event names the stream and substream.
    CdTableWriter cds = u.s1_stream(6, t->config(), 2, 0, 0, 1);
    Cd bad = good;
    bad.aa64 = false;
    REQUIRE(cds.write_cd(1, bad));
    auto r = u.resolve(6, true, 1);
    REQUIRE(r.event);
    CHECK(r.event->id == evt::kBadCd);
    CHECK(r.event->sid == 6);
    CHECK(r.event->ssv);
    CHECK(r.event->ssid == 1);
}

TEST_CASE("a CD table outside memory is F_CD_FETCH with the fetch address", "[unit]") {
    Smmu u;
    Ste s = ste(ste_cfg::kS1);
    s.s1_context_ptr = uint64_t{1} << 44;
    REQUIRE(u.st.write_ste(1, s));
    auto r = u.resolve(1);
    REQUIRE(r.event);
    CHECK(r.event->id == evt::kCdFetch);
    CHECK(r.event->fetch_addr == uint64_t{1} << 44);
}

TEST_CASE("the context takes IPS and S2PS capped by the unit's OAS, and HA/HD, AFFD from the CD", "[unit]") {
    Smmu u;
    u.p.oas_bits = 44;
    auto t = u.env.build(arm_cfg(false));
    CdTableWriter cds = u.s1_stream(1, t->config());
    Cd c = linux_cd(t->config(), 1);
    c.ips = 6; // 52 bits
    c.ha = c.hd = true;
    c.affd = true;
    REQUIRE(cds.write_cd(0, c));
    auto r = u.resolve(1);
    REQUIRE_FALSE(r.event);
    CHECK(r.sc.ctx.s1.output_bits == 44);
    CHECK(r.sc.ctx.s1.hw_access_dirty);
    CHECK(r.sc.ctx.s1.af_fault_disable);
    c.hd = false; // HA alone is not modelled: neither
    REQUIRE(cds.write_cd(0, c));
    CHECK_FALSE(u.resolve(1).sc.ctx.s1.hw_access_dirty);
}
