// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "test/models/iommu/common/fixture.hpp"

using namespace iommusim;
using namespace iommusim::iommu;
using namespace iommusim::iommu::test;

TEST_CASE("table builder refuses overlapping maps without writing anything", "[unit]") {
    Env env;
    auto b = env.build(x86_cfg(4));
    REQUIRE(b->map(0x20'0000, 0x40'0000, 0x20'0000, 21) == MapError::none);
    uint64_t tables = b->tables();
    CHECK(b->map(0x20'1000, 0x9000, 0x1000, 12) == MapError::overlap);       // inside a 2 MiB leaf
    CHECK(b->map(0x0, 0x0, 0x40'0000, 21) == MapError::overlap);             // second page collides
    CHECK(b->tables() == tables);
    CHECK(b->map(0x0, 0x0, 0x20'0000, 21) == MapError::none);                // first page was not written
    REQUIRE(b->map(0x4000'0000, 0x9000, 0x1000, 12) == MapError::none);
    CHECK(b->map(0x4000'0000, 0x4000'0000, 0x4000'0000, 30) == MapError::overlap); // a table is there
}

TEST_CASE("table builder validates alignment, page size and ranges", "[unit]") {
    Env env;
    auto b = env.build(x86_cfg(4));
    CHECK(b->map(0x1800, 0x2000, 0x1000, 12) == MapError::misaligned);
    CHECK(b->map(0x20'0000, 0x1000, 0x20'0000, 21) == MapError::misaligned);
    CHECK(b->map(0x0, 0x0, 0x2000, 13) == MapError::bad_page_size); // x86 has no 8 KiB pages
    CHECK(b->map(0x0, 0x0, uint64_t{1} << 39, 39) == MapError::bad_page_size);
    CHECK(b->map(0x0000'8000'0000'0000, 0x0, 0x1000, 12) == MapError::out_of_range);
    CHECK(b->map(0x1000, uint64_t{1} << 46, 0x1000, 12) == MapError::out_of_range);
}

TEST_CASE("table builder unmap clears whole leaves and reports unmapped or split ranges", "[unit]") {
    Env env;
    auto b = env.build(amd_v1_cfg(3));
    REQUIRE(b->map(0x1'0000, 0x3'0000, 0x1'0000, 16) == MapError::none); // 16 replicated entries
    REQUIRE(b->map(0x20'0000, 0x40'0000, 0x20'0000, 21) == MapError::none);
    CHECK(b->unmap(0x1'0000, 0x1000) == MapError::splits_leaf);
    CHECK(b->unmap(0x21'0000, 0x1000) == MapError::splits_leaf);
    CHECK(b->unmap(0x1'0000, 0x2'0000) == MapError::not_mapped); // second half empty: nothing cleared
    REQUIRE(b->unmap(0x1'0000, 0x1'0000) == MapError::none);
    for (uint64_t va = 0x1'0000; va < 0x2'0000; va += 0x1000)
        CHECK(env.mem.read_u64(*b->descriptor_address(va, 1)) == 0);
    CHECK(b->map(0x1'0000, 0x5'0000, 0x1000, 12) == MapError::none); // reusable
    CHECK(b->unmap(0x20'0000, 0x20'0000) == MapError::none);
}

TEST_CASE("table builder reports allocator exhaustion", "[unit]") {
    Env env;
    BumpAllocator tiny(0x10'0000, 0x2000); // room for the root and one more table
    auto b = TableBuilder::create(env.mem, x86_cfg(4), std::ref(tiny));
    REQUIRE(b);
    CHECK(b->map(0x1000, 0x1000, 0x1000, 12) == MapError::no_memory);
    MapError e;
    BumpAllocator none(0x10'0000, 0);
    CHECK_FALSE(TableBuilder::create(env.mem, x86_cfg(4), std::ref(none), &e));
    CHECK(e == MapError::no_memory);
    StageConfig bad = x86_cfg(4);
    bad.levels = 3;
    CHECK_FALSE(TableBuilder::create(env.mem, bad, std::ref(env.host_tables), &e));
    CHECK(e == MapError::bad_config);
}
