// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "models/iommu/common/walk_cache.hpp"
#include "test/models/iommu/common/fixture.hpp"

using namespace iommusim;
using namespace iommusim::iommu;
using namespace iommusim::iommu::test;
using K = InvalidationScope::Kind;
using St = InvalidationScope::Stage;

namespace {
struct Fix {
    stats::Group root{"t"};
    WalkCache wc{"wc", WalkCacheParams{}, &root};
    StageConfig c = x86_cfg(4);
    void fill(uint32_t d, uint32_t as, WalkKind k, uint64_t va) {
        for (unsigned l = 2; l <= 4; ++l) {
            WalkCacheEntry e;
            e.table = 0x1000 * l;
            e.next_level = static_cast<uint8_t>(l - 1);
            wc.insert(d, as, k, va, l, c, e);
        }
    }
    unsigned level_hit(uint32_t d, uint32_t as, WalkKind k, uint64_t va) {
        auto h = wc.lookup(d, as, k, va, c);
        return h ? h->level : 0;
    }
};
} // namespace

TEST_CASE("walk cache returns the deepest cached level on the path", "[unit]") {
    Fix f;
    f.fill(1, 1, WalkKind::s1, 0x1234'5000);
    CHECK(f.level_hit(1, 1, WalkKind::s1, 0x1234'5000) == 2);
    CHECK(f.level_hit(1, 1, WalkKind::s1, 0x1200'0000) == 3);  // other PDE, same PDPTE
    CHECK(f.level_hit(1, 1, WalkKind::s1, 0x80'0000'0000) == 0); // other PML4E: miss
    CHECK(f.level_hit(1, 2, WalkKind::s1, 0x1234'5000) == 0);  // other PASID
}

TEST_CASE("walk-cache range invalidation drops entries covering the range unless leaf-only", "[unit]") {
    Fix f;
    f.fill(1, 1, WalkKind::s1, 0x1234'5000);
    InvalidationScope s;
    s.kind = K::range;
    s.domain_tag = 1;
    s.as_tag = 1;
    s.has_as = true;
    s.addr = 0x1234'5000;
    s.size = 0x1000;
    s.leaf_only = true;
    CHECK(f.wc.invalidate(s) == 0);
    CHECK(f.wc.size() == 3);
    s.leaf_only = false;
    CHECK(f.wc.invalidate(s) == 3);
}

TEST_CASE("PASID-scoped invalidation keeps the stage-2 walk cache, a stage-2 scope drops nested stage-1 entries",
          "[unit]") {
    Fix f;
    f.fill(1, 5, WalkKind::s1_nested, 0x1000);
    f.fill(1, 0, WalkKind::s2, 0x4000'0000);
    f.fill(1, 6, WalkKind::s1_nested, 0x1000);
    InvalidationScope pasid;
    pasid.kind = K::domain_as;
    pasid.domain_tag = 1;
    pasid.as_tag = 5;
    pasid.has_as = true;
    CHECK(f.wc.invalidate(pasid) == 3);
    CHECK(f.level_hit(1, 0, WalkKind::s2, 0x4000'0000) == 2);
    CHECK(f.level_hit(1, 6, WalkKind::s1_nested, 0x1000) == 2);
    InvalidationScope s2;
    s2.kind = K::range;
    s2.stage = St::s2;
    s2.domain_tag = 1;
    s2.addr = 0x4000'0000;
    s2.size = 0x1000;
    CHECK(f.wc.invalidate(s2) == 3 + 3); // the stage-2 path and every nested stage-1 entry of the domain
    CHECK(f.wc.size() == 0);
}

TEST_CASE("walk-cache invalidation skips empty levels and a disabled cache without changing what it drops", "[unit]") {
    Fix f;
    // Level 3 only: levels 2 and 4 are empty.
    WalkCacheEntry e;
    e.table = 0x3000;
    f.wc.insert(1, 1, WalkKind::s1, 0x1234'5000, 3, f.c, e);
    f.wc.insert(2, 1, WalkKind::s1, 0x1234'5000, 3, f.c, e);
    InvalidationScope dom;
    dom.kind = K::domain;
    dom.domain_tag = 1;
    CHECK(f.wc.invalidate(dom) == 1);
    CHECK(f.level_hit(2, 1, WalkKind::s1, 0x1234'5000) == 3);
    CHECK(f.wc.invalidate(dom) == 0);
    InvalidationScope all;
    all.kind = K::all;
    CHECK(f.wc.invalidate(all) == 1);
    CHECK(f.wc.size() == 0);
    // Disabled (no entries per level): invalidations find nothing and the stats stay zero.
    stats::Group root("t2");
    WalkCacheParams off;
    off.per_level.entries = 0;
    WalkCache wc("off", off, &root);
    CHECK_FALSE(wc.enabled());
    wc.insert(1, 1, WalkKind::s1, 0x1000, 2, f.c, e);
    CHECK(wc.invalidate(all) == 0);
    CHECK(wc.size() == 0);
}
