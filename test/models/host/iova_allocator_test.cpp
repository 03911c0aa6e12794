// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "models/host/flush_queue.hpp"
#include "models/host/iova_allocator.hpp"

using namespace iommusim;
using namespace iommusim::host;

TEST_CASE("IOVA allocation is top-down, page-rounded and size-aligned", "[unit][host][iova]") {
    IovaAllocator a(0x100000, 0x1000000);
    uint64_t x = a.alloc(4096);
    CHECK(x == 0xFFF000);
    uint64_t y = a.alloc(5000); // 2 pages, 8 KiB aligned
    CHECK(y == 0xFFC000);
    CHECK(a.size_of(y) == 8192);
    uint64_t z = a.alloc(64 * 1024);
    CHECK(z % (64 * 1024) == 0);
    CHECK(z + 64 * 1024 <= 0xFFC000);
    a.free(x);
    CHECK(a.alloc(4096) == 0xFFF000);
    CHECK_THROWS_AS(a.free(0x123000), HostError);
}

TEST_CASE("an exhausted IOVA space reports no_space and recovers after free", "[unit][host][iova]") {
    IovaAllocator a(0, 4 * 4096);
    std::vector<uint64_t> got;
    for (int i = 0; i < 4; ++i) got.push_back(a.alloc(4096));
    try {
        a.alloc(4096);
        FAIL("expected no_space");
    } catch (const HostError& e) {
        CHECK(e.kind() == HostError::Kind::no_space);
    }
    a.free(got[2]);
    CHECK(a.alloc(4096) == got[2]);
}

TEST_CASE("the flush queue is due when full or when its oldest entry times out", "[unit][host][flush]") {
    FlushQueueParams p;
    p.max_entries = 3;
    p.timeout = Duration::us(10);
    FlushQueue q(p);
    CHECK_FALSE(q.deadline());
    CHECK_FALSE(q.push({1, 0x1000, 4096, Duration::us(1)}));
    CHECK(*q.deadline() == Duration::us(11));
    CHECK_FALSE(q.due(Duration::us(5)));
    CHECK(q.due(Duration::us(11)));
    CHECK_FALSE(q.push({1, 0x2000, 4096, Duration::us(2)}));
    CHECK(q.push({1, 0x3000, 4096, Duration::us(3)}));
    CHECK(q.due(Duration::us(3)));
    auto taken = q.take();
    CHECK(taken.size() == 3);
    CHECK(q.size() == 0);
    CHECK_FALSE(q.due(Duration::us(100)));
}

TEST_CASE("a next-fit allocator does not hand a freed range out again at once", "[unit][host][iova]") {
    IovaAllocator lifo(0, 16 * 4096);
    IovaAllocator next(0, 16 * 4096, uint64_t{1} << 21, /*next_fit=*/true);
    for (auto* a : {&lifo, &next}) {
        uint64_t x = a->alloc(4096);
        a->free(x);
        uint64_t y = a->alloc(4096);
        if (a == &lifo) CHECK(y == x);
        else CHECK(y != x);
    }
    // Next fit wraps around when it reaches the bottom.
    std::vector<uint64_t> got;
    for (int i = 0; i < 15; ++i) got.push_back(next.alloc(4096));
    CHECK_THROWS_AS(next.alloc(4096), HostError);
    next.free(got[3]);
    CHECK(next.alloc(4096) == got[3]);
}

TEST_CASE("explicit IOVA reservations exclude auto allocations and overlapping reservations", "[unit][host][iova]") {
    IovaAllocator a(0x100000, 0x200000);
    a.reserve(0x1FF000, 4096); // where top-down allocation would start
    CHECK(a.alloc(4096) == 0x1FE000);
    CHECK_THROWS_AS(a.reserve(0x1FE000, 8192), HostError);
    a.free(0x1FF000);
    a.reserve(0x1FF000, 4096);
    CHECK_THROWS_AS(a.reserve(0x200000, 4096), HostError); // beyond the limit
}

TEST_CASE("an IOVA space narrows to a domain's aperture and aligns large pages", "[unit][host][iova]") {
    IovaAllocator a(0x100000, uint64_t{1} << 47);
    a.set_limit(uint64_t{1} << 39);
    CHECK(a.alloc(4096) < (uint64_t{1} << 39));
    CHECK(a.alloc(uint64_t{2} << 20, uint64_t{1} << 30) % (uint64_t{1} << 30) == 0);
    CHECK_THROWS_AS(a.set_limit(0x200000), HostError);
}
