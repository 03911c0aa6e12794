// SPDX-License-Identifier: Apache-2.0
// Per-format walks: every page size, each fault reason, reserved bits, rights.
#include <catch2/catch.hpp>

#include "models/iommu/common/walker.hpp"
#include "test/models/iommu/common/fixture.hpp"

using namespace iommusim;
using namespace iommusim::iommu;
using namespace iommusim::iommu::test;

namespace {

struct Single {
    Env env;
    Walker walker{env.port, no_caches(), &env.root};
    std::unique_ptr<TableBuilder> b;
    TranslationContext ctx;
    explicit Single(const StageConfig& c, bool stage2 = false) {
        b = env.build(c);
        (stage2 ? ctx.s2 : ctx.s1) = b->config();
    }
    StageConfig& cfg() { return ctx.s1.enabled ? ctx.s1 : ctx.s2; }
    WalkOutcome walk(const AccessRequest& r) { return walker.walk(ctx, r); }
    uint64_t desc(uint64_t va, unsigned level) { return *b->descriptor_address(va, level); }
    void patch(uint64_t va, unsigned level, uint64_t set, uint64_t clear = 0) {
        uint64_t a = desc(va, level);
        env.mem.write_u64(a, (env.mem.read_u64(a) & ~clear) | set);
    }
};

void check_ok(const WalkOutcome& w, uint64_t out, unsigned shift, uint64_t reads) {
    INFO("fault " << to_string(w.t.fault) << " level " << int(w.t.fault_level));
    REQUIRE(w.t.ok());
    CHECK(w.t.output == out);
    CHECK(w.t.page_shift == shift);
    CHECK(w.reads == reads);
}
void check_fault(const WalkOutcome& w, FaultKind k, unsigned level, unsigned stage = 1) {
    INFO("got " << to_string(w.t.fault) << " level " << int(w.t.fault_level));
    CHECK(w.t.fault == k);
    CHECK(w.t.fault_level == level);
    CHECK(w.t.fault_stage == stage);
}

constexpr uint64_t KiB4 = 0x1000, MiB2 = 0x200000, GiB1 = 0x40000000;

} // namespace

TEST_CASE("x86-64 4-level tables translate 4 KiB, 2 MiB and 1 GiB pages with one read per level", "[unit]") {
    Single s(x86_cfg(4));
    REQUIRE(s.b->map(0x1234'5000, 0x8000'0000, KiB4, 12) == MapError::none);
    REQUIRE(s.b->map(0x4000'0000 + 0x20'0000, 0x9000'0000 + 0x20'0000, MiB2, 21) == MapError::none);
    REQUIRE(s.b->map(0x80'0000'0000, 0x1'0000'0000, GiB1, 30) == MapError::none);
    check_ok(s.walk(rd(0x1234'5abc)), 0x8000'0abc, 12, 4);
    check_ok(s.walk(rd(0x4023'4567)), 0x9023'4567, 21, 3);
    check_ok(s.walk(rd(0x80'1234'5678)), 0x1'1234'5678, 30, 2);
}

TEST_CASE("x86-64 5-level tables walk five levels and check 57-bit canonical form", "[unit]") {
    Single s(x86_cfg(5));
    const uint64_t va = 0x00F0'0000'0000'1000;
    REQUIRE(s.b->map(va, 0x7000'0000, KiB4, 12) == MapError::none);
    check_ok(s.walk(rd(va + 8)), 0x7000'0008, 12, 5);
    check_fault(s.walk(rd(0x0100'0000'0000'0000)), FaultKind::non_canonical, 0);
}

TEST_CASE("x86-64 rejects non-canonical input before reading memory", "[unit]") {
    Single s(x86_cfg(4));
    auto w = s.walk(rd(0x0000'8000'0000'0000));
    check_fault(w, FaultKind::non_canonical, 0);
    CHECK(w.reads == 0);
    auto w2 = s.walk(rd(0xFFFF'8000'0000'0000)); // canonical, unmapped
    check_fault(w2, FaultKind::not_present, 4);
    CHECK(w2.reads == 1);
}

TEST_CASE("x86-64 not-present faults report the level where P=0 was found", "[unit]") {
    Single s(x86_cfg(4));
    REQUIRE(s.b->map(0x20'0000, 0x5000'0000, KiB4, 12) == MapError::none);
    check_fault(s.walk(rd(0x21'0000)), FaultKind::not_present, 1);          // same PT, other entry
    check_fault(s.walk(rd(0x4000'0000)), FaultKind::not_present, 3);
    check_fault(s.walk(rd(0x80'0000'0000)), FaultKind::not_present, 4);
}

TEST_CASE("x86-64 rights: R/W, U/S, XD and write protection", "[unit]") {
    StageConfig c = x86_cfg(4);
    Single s(c);
    LeafAttrs ro_user{perm::user_read | perm::priv_read | perm::user_exec | perm::priv_exec};
    LeafAttrs sup_rw_nx{perm::priv_read | perm::priv_write};
    REQUIRE(s.b->map(0x1000, 0xA000, KiB4, 12, ro_user) == MapError::none);
    REQUIRE(s.b->map(0x2000, 0xB000, KiB4, 12, sup_rw_nx) == MapError::none);
    check_ok(s.walk(rd(0x1000)), 0xA000, 12, 4);
    check_fault(s.walk(wr(0x1000)), FaultKind::permission, 1);
    // Supervisor write to a read-only page succeeds unless WP is set (CR0.WP / VT-d WPE).
    CHECK(s.walk(AccessRequest{0x1000, true, false, true}).t.ok());
    s.ctx.s1.write_protect = true;
    check_fault(s.walk(AccessRequest{0x1000, true, false, true}), FaultKind::permission, 1);
    // User request to a supervisor page; execute from an XD page.
    check_fault(s.walk(rd(0x2000)), FaultKind::permission, 1);
    CHECK(s.walk(AccessRequest{0x2000, true, false, true}).t.ok());
    check_fault(s.walk(AccessRequest{0x2000, false, true, true}), FaultKind::permission, 1);
    auto ok = s.walk(AccessRequest{0x1000, false, true, false});
    REQUIRE(ok.t.ok());
    CHECK(ok.t.execute);
    CHECK(ok.t.user);
    CHECK_FALSE(ok.t.write);
    // A U/S=0 table entry denies user access below it.
    s.patch(0x1000, 3, 0, 1u << 2);
    check_fault(s.walk(rd(0x1000)), FaultKind::permission, 1);
}

TEST_CASE("x86-64 reserved bits fault: PS in PML4E, address above MAXPHYADDR, large-page low bits, XD without NXE",
          "[unit]") {
    Single s(x86_cfg(4));
    REQUIRE(s.b->map(0x1000, 0xA000, KiB4, 12) == MapError::none);
    REQUIRE(s.b->map(0x4000'0000, 0x8000'0000, MiB2, 21) == MapError::none);
    SECTION("PS in PML4E") {
        s.patch(0x1000, 4, 1u << 7);
        check_fault(s.walk(rd(0x1000)), FaultKind::reserved_bits, 4);
    }
    SECTION("address bit above the 46-bit output width") {
        s.patch(0x1000, 1, uint64_t{1} << 47);
        check_fault(s.walk(rd(0x1000)), FaultKind::reserved_bits, 1);
    }
    SECTION("bit 13 of a 2 MiB leaf") {
        s.patch(0x4000'0000, 2, uint64_t{1} << 13);
        check_fault(s.walk(rd(0x4000'0000)), FaultKind::reserved_bits, 2);
    }
    SECTION("XD with execute disable off") {
        s.patch(0x1000, 1, uint64_t{1} << 63);
        s.ctx.s1.execute_enable = false;
        check_fault(s.walk(rd(0x1000)), FaultKind::reserved_bits, 1);
    }
    SECTION("1 GiB leaf when 1 GiB pages are not supported") {
        REQUIRE(s.b->map(0x80'0000'0000, 0x4000'0000, GiB1, 30) == MapError::none);
        s.ctx.s1.max_leaf_level = 2;
        check_fault(s.walk(rd(0x80'0000'0000)), FaultKind::reserved_bits, 3);
    }
    SECTION("ignored bits 62:52 are not reserved") {
        s.patch(0x1000, 1, uint64_t{0x3F} << 52);
        CHECK(s.walk(rd(0x1000)).t.ok());
    }
}

TEST_CASE("x86-64 hardware A/D sets A along the walk and D on the first write", "[unit]") {
    StageConfig c = x86_cfg(4);
    c.hw_access_dirty = true;
    Single s(c);
    LeafAttrs clean;
    clean.accessed = false;
    clean.dirty = false;
    REQUIRE(s.b->map(0x1000, 0xA000, KiB4, 12, clean) == MapError::none);
    auto r = s.walk(rd(0x1000));
    REQUIRE(r.t.ok());
    CHECK(r.reads == 4);
    CHECK(r.writes == 4); // A in PML4E, PDPTE, PDE, PTE
    CHECK(r.dirty_pending);
    for (unsigned l = 1; l <= 4; ++l) CHECK((s.env.mem.read_u64(s.desc(0x1000, l)) & (1u << 5)));
    CHECK_FALSE((s.env.mem.read_u64(s.desc(0x1000, 1)) & (1u << 6)));
    auto w = s.walk(wr(0x1000));
    REQUIRE(w.t.ok());
    CHECK(w.writes == 1);
    CHECK_FALSE(w.dirty_pending);
    CHECK((s.env.mem.read_u64(s.desc(0x1000, 1)) & (1u << 6)));
}

TEST_CASE("VT-d second stage translates at 3, 4 and 5 levels with 4 KiB, 2 MiB and 1 GiB pages", "[unit]") {
    for (unsigned levels : {3u, 4u, 5u}) {
        Single s(vtd_ss_cfg(levels), true);
        REQUIRE(s.b->map(0x1000, 0xA000, KiB4, 12) == MapError::none);
        REQUIRE(s.b->map(0x20'0000, 0x40'0000, MiB2, 21) == MapError::none);
        REQUIRE(s.b->map(0x40'0000'0000, 0x1'4000'0000, GiB1, 30) == MapError::none);
        check_ok(s.walk(rd(0x1abc)), 0xAabc, 12, levels);
        check_ok(s.walk(rd(0x21'2345)), 0x41'2345, 21, levels - 1);
        check_ok(s.walk(rd(0x40'0000'0123)), 0x1'4000'0123, 30, levels - 2);
    }
}

TEST_CASE("VT-d second stage: present iff R or W, X needs SLEE, width and reserved checks", "[unit]") {
    Single s(vtd_ss_cfg(3), true);
    REQUIRE(s.b->map(0x1000, 0xA000, KiB4, 12, LeafAttrs{perm::both(true, false, false)}) == MapError::none);
    REQUIRE(s.b->map(0x2000, 0xB000, KiB4, 12) == MapError::none);
    check_fault(s.walk(wr(0x1000)), FaultKind::permission, 1, 2);
    s.ctx.s2.execute_enable = true; // SLEE: X bit honoured
    check_fault(s.walk(AccessRequest{0x1000, false, true, false}), FaultKind::permission, 1, 2);
    s.ctx.s2.execute_enable = false; // X ignored: execute follows read
    CHECK(s.walk(AccessRequest{0x1000, false, true, false}).t.ok());
    // Input beyond the 39-bit AW.
    check_fault(s.walk(rd(uint64_t{1} << 39)), FaultKind::input_size, 0, 2);
    // X alone is not present.
    s.patch(0x2000, 1, 1u << 2, 3);
    check_fault(s.walk(rd(0x2000)), FaultKind::not_present, 1, 2);
    s.patch(0x2000, 1, 3);
    SECTION("SNP in a non-leaf entry is reserved; in a leaf it forces snoop") {
        s.patch(0x2000, 2, 1u << 11);
        check_fault(s.walk(rd(0x2000)), FaultKind::reserved_bits, 2, 2);
        s.patch(0x2000, 2, 0, 1u << 11);
        s.patch(0x2000, 1, 1u << 11);
        auto w = s.walk(rd(0x2000));
        REQUIRE(w.t.ok());
        CHECK(w.t.snoop);
    }
    SECTION("low bits of a 2 MiB leaf are reserved") {
        REQUIRE(s.b->map(0x4000'0000, 0x4000'0000, MiB2, 21) == MapError::none);
        s.patch(0x4000'0000, 2, 1u << 12);
        check_fault(s.walk(rd(0x4000'0000)), FaultKind::reserved_bits, 2, 2);
    }
}

TEST_CASE("VT-d second stage: PS in a level-4 entry is reserved", "[unit]") {
    Single s(vtd_ss_cfg(4), true);
    REQUIRE(s.b->map(0x1000, 0xA000, KiB4, 12) == MapError::none);
    s.patch(0x1000, 4, 1u << 7);
    check_fault(s.walk(rd(0x1000)), FaultKind::reserved_bits, 4, 2);
}

TEST_CASE("AMD v1 translates natural and NextLevel-7 page sizes, replicated entries", "[unit]") {
    Single s(amd_v1_cfg(3), true);
    REQUIRE(s.b->map(0x1000, 0xA000, KiB4, 12) == MapError::none);
    REQUIRE(s.b->map(0x20'0000, 0x60'0000, MiB2, 21) == MapError::none);
    REQUIRE(s.b->map(0x4000'0000, 0x8000'0000, GiB1, 30) == MapError::none);
    REQUIRE(s.b->map(0x1'0000, 0x3'0000, 0x2000, 13) == MapError::none);   // 8 KiB: 2 level-1 entries
    REQUIRE(s.b->map(0x10'0000, 0x50'0000, 0x1'0000, 16) == MapError::none); // 64 KiB: 16 entries
    REQUIRE(s.b->map(0x80'0000, 0xC0'0000, 0x40'0000, 22) == MapError::none); // 4 MiB at level 2
    check_ok(s.walk(rd(0x1008)), 0xA008, 12, 3);
    check_ok(s.walk(rd(0x20'1234)), 0x60'1234, 21, 2);
    check_ok(s.walk(rd(0x4123'4567)), 0x8123'4567, 30, 1);
    check_ok(s.walk(rd(0x1'1234)), 0x3'1234, 13, 3);
    check_ok(s.walk(rd(0x10'F00F)), 0x50'F00F, 16, 3);
    check_ok(s.walk(rd(0xA1'2345)), 0xE1'2345, 22, 2);
    // The 8 KiB encoding: NextLevel 7, address bit 12 clear.
    uint64_t d = s.env.mem.read_u64(s.desc(0x1'1000, 1));
    CHECK(((d >> 9) & 7) == 7);
    CHECK(((d >> 12) & 1) == 0);
}

TEST_CASE("AMD v1 level skipping requires the skipped index bits to be zero", "[unit]") {
    Single s(amd_v1_cfg(3), true);
    REQUIRE(s.b->map(0x5000, 0xA000, KiB4, 12) == MapError::none);
    // Point the level-3 entry straight at the level-1 table (NextLevel 1).
    uint64_t l2 = s.env.mem.read_u64(s.desc(0x5000, 2));
    uint64_t l1_table = l2 & bits(51, 12);
    s.env.mem.write_u64(s.desc(0x5000, 3), l1_table | 1 | (uint64_t{1} << 9) | (uint64_t{3} << 61));
    check_ok(s.walk(rd(0x5000)), 0xA000, 12, 2);
    check_fault(s.walk(rd(0x20'5000)), FaultKind::address_size, 3, 2);
}

TEST_CASE("AMD v1: IR/IW are ANDed along the walk, bad NextLevel and bits 58:52 are reserved", "[unit]") {
    Single s(amd_v1_cfg(3), true);
    REQUIRE(s.b->map(0x5000, 0xA000, KiB4, 12) == MapError::none);
    CHECK(s.walk(wr(0x5000)).t.ok());
    s.patch(0x5000, 2, 0, uint64_t{1} << 62); // IW off in the PDE
    check_fault(s.walk(wr(0x5000)), FaultKind::permission, 1, 2);
    CHECK(s.walk(rd(0x5000)).t.ok());
    SECTION("NextLevel equal to the current level") {
        s.patch(0x5000, 2, uint64_t{2} << 9, uint64_t{7} << 9);
        check_fault(s.walk(rd(0x5000)), FaultKind::reserved_bits, 2, 2);
    }
    SECTION("bit 52") {
        s.patch(0x5000, 1, uint64_t{1} << 52);
        check_fault(s.walk(rd(0x5000)), FaultKind::reserved_bits, 1, 2);
    }
    SECTION("input beyond 12 + 9 * mode bits") {
        check_fault(s.walk(rd(uint64_t{1} << 39)), FaultKind::input_size, 0, 2);
    }
}

TEST_CASE("AMD v1: the leaf's U bit (59) is written and reported as untranslated-only", "[unit]") {
    Single s(amd_v1_cfg(3), true);
    LeafAttrs u;
    u.untranslated_only = true;
    REQUIRE(s.b->map(0x5000, 0xA000, KiB4, 12, u) == MapError::none);
    REQUIRE(s.b->map(0x6000, 0xB000, KiB4, 12) == MapError::none);
    CHECK(((s.env.mem.read_u64(s.desc(0x5000, 1)) >> 59) & 1) == 1);
    CHECK(((s.env.mem.read_u64(s.desc(0x6000, 1)) >> 59) & 1) == 0);
    WalkOutcome w = s.walk(rd(0x5008));
    check_ok(w, 0xA008, 12, 3);
    CHECK(w.t.untranslated_only);
    CHECK_FALSE(s.walk(rd(0x6008)).t.untranslated_only);
}

TEST_CASE("AMD v1 mode 6 translates a 64-bit input space", "[unit]") {
    Single s(amd_v1_cfg(6), true);
    const uint64_t va = 0xFE00'0000'0000'3000;
    REQUIRE(s.b->map(va, 0xA000, KiB4, 12) == MapError::none);
    check_ok(s.walk(rd(va)), 0xA000, 12, 6);
}

TEST_CASE("Arm stage 1 with a 4 KiB granule maps pages and 2 MiB / 1 GiB blocks", "[unit]") {
    Single s(arm_cfg(false));
    REQUIRE(s.b->map(0x1000, 0xA000, KiB4, 12) == MapError::none);
    REQUIRE(s.b->map(0x20'0000, 0x40'0000, MiB2, 21) == MapError::none);
    REQUIRE(s.b->map(0x40'0000'0000, 0x4000'0000, GiB1, 30) == MapError::none);
    check_ok(s.walk(rd(0x1abc)), 0xAabc, 12, 4);
    check_ok(s.walk(rd(0x21'2345)), 0x41'2345, 21, 3);
    check_ok(s.walk(rd(0x40'1234'5678)), 0x5234'5678, 30, 2);
    check_fault(s.walk(rd(uint64_t{1} << 48)), FaultKind::input_size, 0);
}

TEST_CASE("an input beyond the unit's input size faults before any read although the tables index it", "[unit]") {
    // A 4-level (48-bit) VT-d second stage on a unit accepting 39 bits (CAP.MGAW = 39).
    Single s(vtd_ss_cfg(4), true);
    const uint64_t high = uint64_t{1} << 40;
    REQUIRE(s.b->map(0x1000, 0xA000, KiB4, 12) == MapError::none);
    REQUIRE(s.b->map(high, 0xB000, KiB4, 12) == MapError::none);
    check_ok(s.walk(rd(high)), 0xB000, 12, 4); // no unit limit: the tables translate it
    s.ctx.s2.unit_input_bits = 39;
    const WalkOutcome w = s.walk(rd(high));
    check_fault(w, FaultKind::input_size, 0, 2);
    CHECK(w.reads == 0);
    check_fault(s.walk(rd((uint64_t{1} << 39) + 0x1000)), FaultKind::input_size, 0, 2);
    check_ok(s.walk(rd(0x1000)), 0xA000, 12, 4); // below the limit nothing changes
    // A limit wider than the tables leaves their own width in force.
    s.ctx.s2.unit_input_bits = 57;
    check_fault(s.walk(rd(uint64_t{1} << 48)), FaultKind::input_size, 0, 2);
}

TEST_CASE("Arm stage 1 with 16 KiB and 64 KiB granules uses their strides and block sizes", "[unit]") {
    {
        Single s(arm_cfg(false, 14, 48, 4)); // levels 0..3, level 0 has one index bit
        REQUIRE(s.b->map(0x8000'4000, 0xC000, 0x4000, 14) == MapError::none);
        REQUIRE(s.b->map(0x1'0000'0000, 0x2000'0000, 0x200'0000, 25) == MapError::none); // 32 MiB block
        check_ok(s.walk(rd(0x8000'4010)), 0xC010, 14, 4);
        check_ok(s.walk(rd(0x1'0123'4567)), 0x2123'4567, 25, 3);
    }
    {
        Single s(arm_cfg(false, 16, 48, 3)); // levels 1..3
        REQUIRE(s.b->map(0x1'0000, 0x3'0000, 0x1'0000, 16) == MapError::none);
        REQUIRE(s.b->map(0x4000'0000, 0x6000'0000, 0x2000'0000, 29) == MapError::none); // 512 MiB block
        check_ok(s.walk(rd(0x1'FFFF)), 0x3'FFFF, 16, 3);
        check_ok(s.walk(rd(0x4123'4567)), 0x6123'4567, 29, 2);
        CHECK(s.b->map(0x8000'0000, 0, uint64_t{1} << 42, 42) == MapError::bad_page_size); // no level-1 block
    }
}

TEST_CASE("Arm stage 1 descriptors: invalid encodings, AP, UXN/PXN, APTable, AF and address size", "[unit]") {
    Single s(arm_cfg(false));
    LeafAttrs user_rw{perm::all};
    LeafAttrs priv_ro_x{perm::priv_read | perm::priv_exec};
    REQUIRE(s.b->map(0x1000, 0xA000, KiB4, 12, user_rw) == MapError::none);
    REQUIRE(s.b->map(0x2000, 0xB000, KiB4, 12, priv_ro_x) == MapError::none);
    // AP[2:1] = 01 (EL0 RW): user-writable, hence never privileged-executable.
    auto w = s.walk(AccessRequest{0x1000, false, true, true});
    check_fault(w, FaultKind::permission, 1);
    CHECK(s.walk(wr(0x1000)).t.ok());
    // AP[2:1] = 10: privileged read-only, no EL0 access.
    check_fault(s.walk(rd(0x2000)), FaultKind::permission, 1);
    check_fault(s.walk(AccessRequest{0x2000, true, false, true}), FaultKind::permission, 1);
    CHECK(s.walk(AccessRequest{0x2000, false, true, true}).t.ok());
    SECTION("APTable[1] removes write below") {
        s.patch(0x1000, 2, uint64_t{1} << 62);
        check_fault(s.walk(wr(0x1000)), FaultKind::permission, 1);
        CHECK(s.walk(rd(0x1000)).t.ok());
    }
    SECTION("AF=0 faults without hardware update, is set with it") {
        s.patch(0x1000, 1, 0, 1u << 10);
        check_fault(s.walk(rd(0x1000)), FaultKind::access_flag, 1);
        s.ctx.s1.hw_access_dirty = true;
        auto r = s.walk(rd(0x1000));
        REQUIRE(r.t.ok());
        CHECK(r.writes == 1);
        CHECK((s.env.mem.read_u64(s.desc(0x1000, 1)) & (1u << 10)));
    }
    SECTION("a block descriptor at level 0 and 0b01 at level 3 are translation faults") {
        s.patch(0x1000, 4, 0, 2);
        check_fault(s.walk(rd(0x1000)), FaultKind::not_present, 4);
        s.patch(0x1000, 4, 2);
        s.patch(0x1000, 1, 0, 2);
        check_fault(s.walk(rd(0x1000)), FaultKind::not_present, 1);
    }
    SECTION("output above the configured PA size is an address size fault; RES0 bits are ignored") {
        s.ctx.s1.output_bits = 40;
        s.patch(0x1000, 1, uint64_t{1} << 49);
        CHECK(s.walk(rd(0x1000)).t.ok());
        s.patch(0x1000, 1, uint64_t{1} << 44);
        check_fault(s.walk(rd(0x1000)), FaultKind::address_size, 1);
    }
}

TEST_CASE("Arm hardware dirty state: a write to a DBM writable-clean page clears AP[2]", "[unit]") {
    StageConfig c = arm_cfg(false);
    c.hw_access_dirty = true;
    Single s(c);
    LeafAttrs clean{perm::all};
    clean.dbm = true;
    REQUIRE(s.b->map(0x1000, 0xA000, KiB4, 12, clean) == MapError::none);
    auto r = s.walk(rd(0x1000));
    REQUIRE(r.t.ok());
    CHECK_FALSE(r.t.write);
    CHECK(r.dirty_pending);
    auto w = s.walk(wr(0x1000));
    REQUIRE(w.t.ok());
    CHECK(w.writes == 1);
    CHECK_FALSE((s.env.mem.read_u64(s.desc(0x1000, 1)) & (1u << 7)));
    s.ctx.s1.hw_access_dirty = false; // without HD the page is read-only
    s.patch(0x1000, 1, 1u << 7);
    check_fault(s.walk(wr(0x1000)), FaultKind::permission, 1);
}

TEST_CASE("Arm stage 2 S2AP and XN rights, and concatenated first-level tables", "[unit]") {
    // 40-bit IPA starting at level 1 (3 levels): 2 concatenated tables (10 index bits).
    Single s(arm_cfg(true, 12, 40, 3, 2), true);
    CHECK(PageTableFormat::table_bytes(s.ctx.s2, 3) == 0x2000);
    REQUIRE(s.b->map(0x80'0000'1000, 0xA000, KiB4, 12, LeafAttrs{perm::both(true, false, false)}) == MapError::none);
    REQUIRE(s.b->map(0x1000, 0xB000, KiB4, 12) == MapError::none);
    check_ok(s.walk(rd(0x80'0000'1234)), 0xA234, 12, 3);
    check_ok(s.walk(rd(0x1234)), 0xB234, 12, 3);
    CHECK(*s.b->descriptor_address(0x80'0000'1000, 3) - s.b->root() == 0x1000); // second concatenated table
    check_fault(s.walk(wr(0x80'0000'1000)), FaultKind::permission, 1, 2);
    check_fault(s.walk(AccessRequest{0x80'0000'1000, false, true, false}), FaultKind::permission, 1, 2);
    CHECK(s.walk(AccessRequest{0x1000, true, true, true}).t.ok());
    // A concatenation that does not match the width is an invalid configuration.
    s.ctx.s2.concat_tables = 1;
    check_fault(s.walk(rd(0x1000)), FaultKind::invalid_config, 0, 2);
}

TEST_CASE("Arm stage 2 concatenates first-level tables with 16 KiB and 64 KiB granules too", "[unit]") {
    {
        // 64 KiB granule, 44-bit IPA, 2 levels: 15 top index bits = 4 concatenated tables.
        Single s(arm_cfg(true, 16, 44, 2, 4), true);
        CHECK(PageTableFormat::table_bytes(s.ctx.s2, 2) == 4 * 0x1'0000);
        REQUIRE(s.b->map(0xF00'0001'0000, 0x3'0000, 0x1'0000, 16) == MapError::none);
        check_ok(s.walk(rd(0xF00'0001'2345)), 0x3'2345, 16, 2);
    }
    {
        // 16 KiB granule, 40-bit IPA, 2 levels: 15 top index bits = 16 concatenated tables (the maximum).
        Single s(arm_cfg(true, 14, 40, 2, 16), true);
        REQUIRE(s.b->map(0xFF'FFFF'C000, 0x8000, 0x4000, 14) == MapError::none);
        check_ok(s.walk(rd(0xFF'FFFF'C123)), 0x8123, 14, 2);
        s.ctx.s2.input_bits = 41; // would need 32 tables
        s.ctx.s2.concat_tables = 32;
        check_fault(s.walk(rd(0x1000)), FaultKind::invalid_config, 0, 2);
    }
}

TEST_CASE("a walker checks every changed stage config, also right after a valid one", "[unit]") {
    // The walker remembers the last valid config per stage; any change must be checked again.
    Single s(x86_cfg(4));
    REQUIRE(s.b->map(0x1234'5000, 0x8000'0000, KiB4, 12) == MapError::none);
    check_ok(s.walk(rd(0x1234'5abc)), 0x8000'0abc, 12, 4);
    s.ctx.s1.levels = 3; // x86-64 paging has 4 or 5 levels
    check_fault(s.walk(rd(0x1234'5abc)), FaultKind::invalid_config, 0, 1);
    s.ctx.s1.levels = 4;
    check_ok(s.walk(rd(0x1234'5abc)), 0x8000'0abc, 12, 4);
    const uint64_t root = s.ctx.s1.root;
    s.ctx.s1.root = root + 0x800; // not aligned to the top table
    const WalkOutcome w = s.walk(rd(0x1234'5abc));
    check_fault(w, FaultKind::invalid_config, 0, 1);
    CHECK(w.reads == 0);
    s.ctx.s1.root = root;
    check_ok(s.walk(rd(0x1234'5abc)), 0x8000'0abc, 12, 4);
}
