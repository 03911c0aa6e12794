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

TEST_CASE("table builder maps and unmaps ranges of more pages than it remembers between check and apply",
          "[unit][table_builder]") {
    // map() and unmap() remember the walks of their first TableBuilder::kRemembered pages
    // between checking and applying; longer ranges walk again. Both give the same tables.
    Env env;
    auto b = env.build(x86_cfg(4));
    const uint64_t pages = 40; // > kRemembered, and crossing a 2 MiB leaf-table boundary
    const uint64_t va = 0x1F'0000;
    REQUIRE(b->map(va, 0x80'0000, pages * 0x1000, 12) == MapError::none);
    for (uint64_t i = 0; i < pages; ++i) {
        const auto da = b->descriptor_address(va + i * 0x1000, 1);
        REQUIRE(da);
        CHECK((env.mem.read_u64(*da) & 0x000F'FFFF'FFFF'F000) == 0x80'0000 + i * 0x1000);
    }
    CHECK(b->map(va + (pages - 1) * 0x1000, 0x9000, 0x1000, 12) == MapError::overlap);
    // A short unmap (remembered leaves) and a long one (walked again) clear exactly their pages.
    REQUIRE(b->unmap(va, 2 * 0x1000) == MapError::none);
    REQUIRE(b->unmap(va + 4 * 0x1000, (pages - 4) * 0x1000) == MapError::none);
    for (uint64_t i = 0; i < pages; ++i)
        CHECK((env.mem.read_u64(*b->descriptor_address(va + i * 0x1000, 1)) != 0) == (i == 2 || i == 3));
    CHECK(b->unmap(va, 4 * 0x1000) == MapError::not_mapped); // the first two are gone: nothing cleared
    CHECK(env.mem.read_u64(*b->descriptor_address(va + 2 * 0x1000, 1)) != 0);
}
