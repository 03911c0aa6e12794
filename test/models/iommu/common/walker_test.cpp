// SPDX-License-Identifier: Apache-2.0
// Single-stage walker behaviour that the walk caches must not change.
#include <catch2/catch.hpp>

#include "models/iommu/common/walker.hpp"
#include "test/models/iommu/common/fixture.hpp"

using namespace iommusim;
using namespace iommusim::iommu;
using namespace iommusim::iommu::test;

TEST_CASE("AMD v1 level skipping faults on non-zero skipped index bits, with warm walk caches too",
          "[unit][iommu][walker][regression]") {
    // 3-level AMD v1 table whose root PDE skips level 2: the PDE at level 3
    // points straight at a level-1 table (AMD IOMMU spec 2.2.3: the skipped
    // levels' address bits, here bits 29:21, must be zero).
    Env env;
    const StageConfig c = amd_v1_cfg(3);
    const PageTableFormat& f = format_of(PtFormat::amd_v1);
    const uint64_t root = 0x10'0000, l1 = 0x10'1000;
    env.mem.write_u64(root + 0 * 8, f.make_table(l1, 3, 1, c));
    env.mem.write_u64(l1 + 1 * 8, f.make_leaf(0x5000, 1, 12, LeafAttrs{}, c));
    TranslationContext ctx;
    ctx.domain_tag = 1;
    ctx.s1 = c;
    ctx.s1.root = root;

    Walker cold(env.port, no_caches(), &env.root);
    REQUIRE(cold.walk(ctx, rd(0x1000)).t.ok());
    CHECK(cold.walk(ctx, rd(0x1000)).t.output == 0x5000);
    CHECK(cold.walk(ctx, rd(0x201000)).t.fault == FaultKind::address_size);

    stats::Group warm_root("warm");
    Walker warm(env.port, WalkerParams{}, &warm_root);
    REQUIRE(warm.walk(ctx, rd(0x1000)).t.ok()); // fills the walk cache with the skipping PDE
    const auto w = warm.walk(ctx, rd(0x201000));
    CHECK(w.t.fault == FaultKind::address_size);
    CHECK(w.t.fault_level == cold.walk(ctx, rd(0x201000)).t.fault_level);
}
