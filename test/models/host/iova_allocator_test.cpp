// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include <bit>
#include <map>
#include <optional>
#include <random>

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

namespace {

/// The allocation rule written the plain way (a walk over every allocated
/// range from the top down): the tree-based allocator must agree with it.
struct LinearIova {
    uint64_t base, limit, max_align;
    bool next_fit;
    uint64_t cursor;
    std::map<uint64_t, uint64_t> used;
    std::optional<uint64_t> fit_below(uint64_t top, uint64_t size, uint64_t align) const {
        auto try_gap = [&](uint64_t lo, uint64_t hi) -> std::optional<uint64_t> {
            if (hi < size || hi - size < lo) return std::nullopt;
            uint64_t start = (hi - size) & ~(align - 1);
            if (start < lo) return std::nullopt;
            return start;
        };
        uint64_t hi = top;
        auto it = used.lower_bound(top);
        while (it != used.begin()) {
            --it;
            if (it->first + it->second <= hi)
                if (auto s = try_gap(it->first + it->second, hi)) return s;
            hi = std::min(hi, it->first);
        }
        return try_gap(base, hi);
    }
    std::optional<uint64_t> alloc(uint64_t size, uint64_t min_align) {
        size = (size + 4095) & ~uint64_t{4095};
        const uint64_t align = std::max(std::min(std::bit_ceil(size), max_align), min_align);
        auto s = fit_below(next_fit ? cursor : limit, size, align);
        if (!s && next_fit) s = fit_below(limit, size, align);
        if (s) used[*s] = size, cursor = *s;
        return s;
    }
};

} // namespace

TEST_CASE("tree-based IOVA allocation picks exactly the range a top-down walk of all ranges picks", "[unit][host][iova]") {
    for (bool next_fit : {false, true}) {
        const uint64_t base = 0x100000, limit = 0x100000 + (uint64_t{64} << 20);
        IovaAllocator a(base, limit, uint64_t{1} << 21, next_fit);
        LinearIova ref{base, limit, uint64_t{1} << 21, next_fit, limit, {}};
        std::mt19937_64 rng(next_fit ? 7 : 3);
        std::vector<uint64_t> live;
        for (int i = 0; i < 20000; ++i) {
            const unsigned op = rng() % 10;
            if (op < 4 && !live.empty()) { // free a random live range
                const size_t k = rng() % live.size();
                a.free(live[k]);
                ref.used.erase(live[k]);
                live[k] = live.back();
                live.pop_back();
                continue;
            }
            if (op == 4 && i % 50 == 0) { // an explicit reservation where the space is free
                const uint64_t at = base + (rng() % ((limit - base) / 4096 - 16)) * 4096;
                bool clash = false;
                for (auto& [s, sz] : ref.used) clash |= s < at + 16 * 4096 && at < s + sz;
                if (clash) {
                    CHECK_THROWS_AS(a.reserve(at, 16 * 4096), HostError);
                } else {
                    a.reserve(at, 16 * 4096);
                    ref.used[at] = 16 * 4096;
                    live.push_back(at);
                }
                continue;
            }
            // Mostly single pages, some odd sizes and large-page alignments.
            const uint64_t size = op < 8 ? 4096 : (1 + rng() % 300) * 4096 - rng() % 4096;
            const uint64_t min_align = op == 9 ? (uint64_t{1} << 21) : 4096;
            const std::optional<uint64_t> want = ref.alloc(size, min_align);
            if (!want) {
                CHECK_THROWS_AS(a.alloc(size, min_align), HostError);
                continue;
            }
            REQUIRE(a.alloc(size, min_align) == *want);
            live.push_back(*want);
        }
        CHECK(a.ranges() == ref.used.size());
    }
}

TEST_CASE("IOVA allocation cost does not grow with the number of live ranges", "[unit][host][iova]") {
    // A packet ring: n single pages allocated back to back, every other one
    // freed (n/2 one-page holes), then 8 KiB requests that fit no hole and a
    // page request that takes the highest hole. Returns gap-tree nodes visited
    // per allocation.
    auto steps_per_alloc = [](uint64_t n) {
        IovaAllocator a(0, uint64_t{1} << 40);
        std::vector<uint64_t> ring;
        for (uint64_t i = 0; i < n; ++i) ring.push_back(a.alloc(4096));
        for (uint64_t i = 0; i < n; i += 2) a.free(ring[i]);
        REQUIRE(a.gaps() == n / 2 + 1);
        const uint64_t before = a.search_steps();
        for (int i = 0; i < 64; ++i) a.alloc(8192);
        for (int i = 0; i < 64; ++i) a.alloc(4096);
        return static_cast<double>(a.search_steps() - before) / 128.0;
    };
    const double small = steps_per_alloc(1024), large = steps_per_alloc(65536);
    // A walk over the ranges would visit 64x as many at 64x the ranges; a
    // balanced tree about log(65536)/log(1024) = 1.6x as many.
    CHECK(large < 3 * small);
    CHECK(large < 200);
}

TEST_CASE("freed IOVA ranges coalesce with their free neighbours", "[unit][host][iova]") {
    IovaAllocator a(0, 64 * 4096);
    const uint64_t x = a.alloc(4096), y = a.alloc(4096), z = a.alloc(4096);
    CHECK(a.gaps() == 1);
    a.free(y);
    CHECK(a.gaps() == 2);
    a.free(x);
    CHECK(a.gaps() == 2);
    a.free(z);
    CHECK(a.gaps() == 1);
    CHECK(a.alloc(64 * 4096) == 0); // the whole space is one gap again
}
