// SPDX-License-Identifier: Apache-2.0
// Nested (2-stage) walks: exact descriptor-read counts, walk-cache savings,
// stage-2 faults while walking stage 1.
#include <catch2/catch.hpp>

#include "models/iommu/common/walker.hpp"
#include "test/models/iommu/common/fixture.hpp"

using namespace iommusim;
using namespace iommusim::iommu;
using namespace iommusim::iommu::test;

namespace {

/// NestedTables (fixture.hpp) with a walker.
struct Nested {
    static constexpr uint64_t kGuestBase = NestedTables::kGuestBase;
    Env env;
    NestedTables t;
    OffsetMem& guest = t.guest;
    std::unique_ptr<TableBuilder>&s2 = t.s2, &s1 = t.s1;
    TranslationContext ctx;
    Walker walker;

    Nested(const StageConfig& s1c, const StageConfig& s2c, const WalkerParams& wp)
        : t(env, s1c, s2c), ctx(t.context(7, 3)), walker(env.port, wp, &env.root) {}
    /// iova -> gpa at stage 1, gpa -> gpa + kGuestBase at stage 2, 4 KiB each.
    void map(uint64_t iova, uint64_t gpa, LeafAttrs s2attrs = {}) {
        REQUIRE(s1->map(iova, gpa, 0x1000, 12) == MapError::none);
        REQUIRE(s2->map(gpa, gpa + kGuestBase, 0x1000, 12, s2attrs) == MapError::none);
    }
};

} // namespace

TEST_CASE("single-stage 4-level cold walk reads 4 descriptors and charges 4 memory latencies", "[unit]") {
    Env env;
    Walker w(env.port, no_caches(), &env.root);
    auto b = env.build(x86_cfg(4));
    REQUIRE(b->map(0x1234'5000, 0x9000, 0x1000, 12) == MapError::none);
    TranslationContext ctx;
    ctx.s1 = b->config();
    auto o = w.walk(ctx, rd(0x1234'5000));
    REQUIRE(o.t.ok());
    CHECK(o.reads == 4);
    CHECK(o.latency == Duration::ns(WalkMemPortParams::kReadLatencyNs) * 4);
}

TEST_CASE("cold nested walk 4-level over 4-level without walk caches reads 24 descriptors", "[unit]") {
    SECTION("x86-64 first stage over VT-d second stage") {
        Nested n(x86_cfg(4), vtd_ss_cfg(4), no_caches());
        n.map(0x1234'5000, 0x4000'0000);
        auto o = n.walker.walk(n.ctx, rd(0x1234'5678));
        REQUIRE(o.t.ok());
        CHECK(o.t.output == 0x4000'0678 + Nested::kGuestBase);
        CHECK(o.ipa == 0x4000'0678);
        CHECK(o.reads == 24);
        CHECK(o.latency == Duration::ns(WalkMemPortParams::kReadLatencyNs) * 24);
    }
    SECTION("Arm stage 1 over Arm stage 2") {
        Nested n(arm_cfg(false), arm_cfg(true), no_caches());
        n.map(0x1234'5000, 0x4000'0000);
        auto o = n.walker.walk(n.ctx, rd(0x1234'5678));
        REQUIRE(o.t.ok());
        CHECK(o.reads == 24);
    }
    SECTION("AMD v2 (x86-64) guest tables over AMD v1 host tables") {
        Nested n(x86_cfg(4), amd_v1_cfg(4), no_caches());
        n.map(0x1234'5000, 0x4000'0000);
        CHECK(n.walker.walk(n.ctx, rd(0x1234'5000)).reads == 24);
    }
}

TEST_CASE("cold nested walk 5-level over 5-level without walk caches reads 35 descriptors", "[unit]") {
    Nested n(x86_cfg(5), vtd_ss_cfg(5), no_caches());
    n.map(0x00AB'0000'1234'5000, 0x4000'0000);
    auto o = n.walker.walk(n.ctx, rd(0x00AB'0000'1234'5000));
    REQUIRE(o.t.ok());
    CHECK(o.reads == 35);
}

TEST_CASE("walk caches shorten nested walks: stage-2 walk cache on a cold walk, all caches on a warm one", "[unit]") {
    Nested n(x86_cfg(4), vtd_ss_cfg(4), WalkerParams{});
    n.map(0x1234'5000, 0x4000'0000);
    n.map(0x1234'6000, 0x4000'1000);
    // Cold: stage-1 tables share one stage-2 PDE, so after the first table
    // translation (4 reads) each next one costs 1; 4 stage-1 reads; the output
    // GPA shares only the PML4E (3 reads): 4 + (4+1+1+1) + 3 = 14.
    auto cold = n.walker.walk(n.ctx, rd(0x1234'5000));
    REQUIRE(cold.t.ok());
    CHECK(cold.reads == 14);
    // Warm neighbour: stage-1 PDE cache hit with the host address of the PT
    // (1 read), output GPA through the stage-2 PDE cache (1 read).
    auto warm = n.walker.walk(n.ctx, rd(0x1234'6000));
    REQUIRE(warm.t.ok());
    CHECK(warm.t.output == 0x4000'1000 + Nested::kGuestBase);
    CHECK(warm.reads == 2);
    // Same page again: stage-2 cache hit for the output, stage-1 PDE cache hit.
    CHECK(n.walker.walk(n.ctx, rd(0x1234'5000)).reads == 1);
}

TEST_CASE("a stage-2 fault on a stage-1 table address reports stage 2 with s1ptw and the table's IPA", "[unit]") {
    Nested n(x86_cfg(4), vtd_ss_cfg(4), no_caches());
    n.map(0x1234'5000, 0x4000'0000);
    uint64_t pde_gpa = *n.s1->descriptor_address(0x1234'5000, 2);
    REQUIRE(n.s2->unmap(pde_gpa & ~uint64_t{0xFFF}, 0x1000) == MapError::none);
    auto o = n.walker.walk(n.ctx, rd(0x1234'5000));
    CHECK(o.t.fault == FaultKind::not_present);
    CHECK(o.t.fault_stage == 2);
    CHECK(o.t.s1ptw);
    CHECK(o.t.fault_addr == pde_gpa);
    CHECK(o.t.fault_level == 1);
}

TEST_CASE("a stage-2 permission fault on the final output reports stage 2 without s1ptw", "[unit]") {
    Nested n(x86_cfg(4), vtd_ss_cfg(4), no_caches());
    n.map(0x1234'5000, 0x4000'0000, LeafAttrs{perm::both(true, false, false)});
    CHECK(n.walker.walk(n.ctx, rd(0x1234'5010)).t.ok());
    auto o = n.walker.walk(n.ctx, wr(0x1234'5010));
    CHECK(o.t.fault == FaultKind::permission);
    CHECK(o.t.fault_stage == 2);
    CHECK_FALSE(o.t.s1ptw);
    CHECK(o.t.fault_addr == 0x4000'0010);
}

TEST_CASE("stage-1 permission faults under nesting are reported at stage 1", "[unit]") {
    Nested n(x86_cfg(4), vtd_ss_cfg(4), no_caches());
    REQUIRE(n.s1->map(0x5000, 0x4000'0000, 0x1000, 12, LeafAttrs{perm::user_read | perm::priv_read}) ==
            MapError::none);
    REQUIRE(n.s2->map(0x4000'0000, 0x4000'0000 + Nested::kGuestBase, 0x1000, 12) == MapError::none);
    auto o = n.walker.walk(n.ctx, wr(0x5000));
    CHECK(o.t.fault == FaultKind::permission);
    CHECK(o.t.fault_stage == 1);
    CHECK(o.t.fault_level == 1);
}

TEST_CASE("nested hardware A/D updates need stage-2 write permission on the stage-1 table page", "[unit]") {
    StageConfig s1c = x86_cfg(4);
    s1c.hw_access_dirty = true;
    Nested n(s1c, vtd_ss_cfg(4), no_caches());
    LeafAttrs clean;
    clean.accessed = false;
    REQUIRE(n.s1->map(0x5000, 0x4000'0000, 0x1000, 12, clean) == MapError::none);
    REQUIRE(n.s2->map(0x4000'0000, 0x4000'0000 + Nested::kGuestBase, 0x1000, 12) == MapError::none);
    auto ok = n.walker.walk(n.ctx, rd(0x5000));
    REQUIRE(ok.t.ok());
    CHECK(ok.writes == 4);
    // Make the stage-1 PT page read-only at stage 2 and clear A in its PTE again.
    uint64_t pte_gpa = *n.s1->descriptor_address(0x5000, 1);
    uint64_t page = pte_gpa & ~uint64_t{0xFFF};
    REQUIRE(n.s2->unmap(page, 0x1000) == MapError::none);
    REQUIRE(n.s2->map(page, page + Nested::kGuestBase, 0x1000, 12, LeafAttrs{perm::both(true, false, false)}) ==
            MapError::none);
    n.guest.write_u64(pte_gpa, n.guest.read_u64(pte_gpa) & ~uint64_t{1u << 5});
    auto o = n.walker.walk(n.ctx, rd(0x5000));
    CHECK(o.t.fault == FaultKind::permission);
    CHECK(o.t.fault_stage == 2);
    CHECK(o.t.s1ptw);
}

TEST_CASE("a table pointer outside physical memory ends the walk with a memory error, not a crash", "[unit]") {
    Env env;
    Walker w(env.port, no_caches(), &env.root);
    auto b = env.build(x86_cfg(4));
    REQUIRE(b->map(0x1000, 0xA000, 0x1000, 12) == MapError::none);
    // Point the PDE at a table beyond the 1 TiB memory (inside the 46-bit output width).
    uint64_t pde = *b->descriptor_address(0x1000, 2);
    env.mem.write_u64(pde, (uint64_t{1} << 45) | 0x7);
    TranslationContext ctx;
    ctx.s1 = b->config();
    auto o = w.walk(ctx, rd(0x1000));
    CHECK(o.t.fault == FaultKind::memory_error);
    CHECK(o.t.fault_level == 1);
    CHECK(o.reads == 4);
}

TEST_CASE("walk caches remember AMD v1 skipped levels", "[unit]") {
    Env env;
    Walker w(env.port, WalkerParams{}, &env.root);
    auto b = env.build(amd_v1_cfg(3));
    REQUIRE(b->map(0x5000, 0xA000, 0x1000, 12) == MapError::none);
    REQUIRE(b->map(0x6000, 0xB000, 0x1000, 12) == MapError::none);
    uint64_t l1_table = env.mem.read_u64(*b->descriptor_address(0x5000, 2)) & bits(51, 12);
    env.mem.write_u64(*b->descriptor_address(0x5000, 3), l1_table | 1 | (uint64_t{1} << 9) | (uint64_t{3} << 61));
    TranslationContext ctx;
    ctx.s2 = b->config();
    CHECK(w.walk(ctx, rd(0x5000)).reads == 2);
    auto o = w.walk(ctx, rd(0x6000)); // level-3 entry cached with NextLevel 1
    REQUIRE(o.t.ok());
    CHECK(o.t.output == 0xB000);
    CHECK(o.reads == 1);
}
