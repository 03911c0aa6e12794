// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>

#include "models/common/set_assoc_cache.hpp"

using namespace iommusim;
using namespace iommusim::iommu;

namespace {
CacheKey k(uint64_t v) { return CacheKey{v, 1}; }
uint64_t stat(const stats::Group& g, const char* name) {
    return static_cast<uint64_t>(stats::numeric_value(*g.find(name)));
}
} // namespace

TEST_CASE("LRU replacement evicts the least recently used way", "[unit]") {
    stats::Group root("t");
    SetAssocCache<int> c("c", CacheGeometry{4, 4, Replacement::lru, 1}, &root);
    for (int i = 0; i < 4; ++i) c.insert(k(i), i);
    REQUIRE(c.lookup(k(0)));
    CacheKey ek;
    int ev = -1;
    CHECK(c.insert(k(9), 9, &ek, &ev));
    CHECK(ek == k(1));
    CHECK(ev == 1);
    CHECK(c.lookup(k(0)));
    CHECK_FALSE(c.lookup(k(1)));
}

TEST_CASE("tree pseudo-LRU evicts by the tree bits, not exact recency", "[unit]") {
    stats::Group root("t");
    SetAssocCache<int> c("c", CacheGeometry{4, 4, Replacement::tree_plru, 1}, &root);
    for (int i = 0; i < 4; ++i) c.insert(k(i), i); // ways 0..3 touched in order
    REQUIRE(c.lookup(k(0)));
    // Root points away from way 0's half (right); the right node points away
    // from way 3 (last touched there): victim is way 2, where exact LRU picks way 1.
    CacheKey ek;
    c.insert(k(9), 9, &ek);
    CHECK(ek == k(2));
}

TEST_CASE("random replacement is reproducible from its seed", "[unit]") {
    auto run = [](uint64_t seed) {
        stats::Group root("t");
        SetAssocCache<int> c("c", CacheGeometry{8, 8, Replacement::random, seed}, &root);
        std::vector<uint64_t> victims;
        for (int i = 0; i < 200; ++i) {
            CacheKey ek;
            if (c.insert(k(i), i, &ek)) victims.push_back(ek.a);
        }
        return victims;
    };
    CHECK(run(5) == run(5));
    CHECK(run(5) != run(6));
    CHECK(run(5).size() == 192);
}

TEST_CASE("cache stats count lookups, hits, misses, evictions and invalidated entries", "[unit]") {
    stats::Group root("t");
    SetAssocCache<int> c("c", CacheGeometry{2, 2, Replacement::lru, 1}, &root);
    c.insert(k(1), 1);
    c.insert(k(2), 2);
    c.insert(k(3), 3); // evicts 1
    c.lookup(k(1));
    c.lookup(k(2));
    CHECK(c.invalidate_if([](const CacheKey& key, int) { return key.a == 3; }) == 1);
    CHECK(stat(root, "c.lookups") == 2);
    CHECK(stat(root, "c.hits") == 1);
    CHECK(stat(root, "c.misses") == 1);
    CHECK(stat(root, "c.evictions") == 1);
    CHECK(stat(root, "c.invalidated") == 1);
    CHECK(c.size() == 1);
}

TEST_CASE("a cache never holds more than its configured entries whatever the stream", "[unit]") {
    stats::Group root("t");
    SetAssocCache<int> c("c", CacheGeometry{64, 8, Replacement::lru, 1}, &root);
    for (uint64_t i = 0; i < 100000; ++i) c.insert(CacheKey{i * 0x1000, 1 + (i % 7)}, 0);
    CHECK(c.size() == 64);
    CHECK(c.capacity() == 64);
}

TEST_CASE("fully associative caches are one set, non power-of-two set counts work", "[unit]") {
    stats::Group root("t");
    SetAssocCache<int> fa("fa", CacheGeometry{16, 16, Replacement::lru, 1}, &root);
    for (int i = 0; i < 16; ++i) fa.insert(k(static_cast<uint64_t>(i) << 20), i);
    CHECK(fa.size() == 16); // no conflict misses in one set
    SetAssocCache<int> odd("odd", CacheGeometry{48, 4, Replacement::lru, 1}, &root);
    for (int i = 0; i < 48; ++i) odd.insert(k(static_cast<uint64_t>(i)), i);
    for (int i = 0; i < 48; ++i) odd.lookup(k(static_cast<uint64_t>(i)));
    CHECK(odd.size() <= 48);
    CHECK_THROWS_AS(SetAssocCache<int>("bad", CacheGeometry{12, 8, Replacement::lru, 1}, &root), std::invalid_argument);
    CHECK_THROWS_AS(SetAssocCache<int>("bad2", CacheGeometry{12, 3, Replacement::tree_plru, 1}, &root),
                    std::invalid_argument);
}

TEST_CASE("every key bit reaches the set index, including the high bits of the second word", "[unit][index]") {
    // A direct-mapped cache of 256 sets keeps two keys only if they index
    // different sets. Keys that differ in a single high bit (where the IOTLB
    // puts the domain tag) or a single address bit must mostly survive.
    stats::Group root("t");
    SetAssocCache<int> hi("hi", CacheGeometry{256, 1, Replacement::lru, 1}, &root);
    for (unsigned bit = 16; bit < 64; ++bit) hi.insert(CacheKey{0x12345, 1 | (uint64_t{1} << bit)}, 0);
    CHECK(hi.size() >= 40); // 48 keys; a uniform hash over 256 sets collides ~4 of them
    SetAssocCache<int> lo("lo", CacheGeometry{256, 1, Replacement::lru, 1}, &root);
    for (unsigned bit = 0; bit < 48; ++bit) lo.insert(CacheKey{uint64_t{1} << bit, 1}, 0);
    CHECK(lo.size() >= 40);
}

TEST_CASE("an insert of a key noted absent stores it once, like any insert", "[unit]") {
    // The insert skips the set search for a key noted absent after a missed lookup; any insert
    // in between voids the note, so inserting the same key twice overwrites instead of duplicating.
    stats::Group root("t");
    SetAssocCache<int> c("c", CacheGeometry{8, 4, Replacement::lru, 1}, &root);
    REQUIRE_FALSE(c.lookup(k(1)));
    c.note_absent(k(1));
    c.insert(k(1), 10);
    c.insert(k(1), 11);
    CHECK(c.size() == 1);
    REQUIRE(c.lookup(k(1)));
    CHECK(*c.lookup(k(1)) == 11);
    REQUIRE_FALSE(c.lookup(k(2)));
    c.note_absent(k(2));
    c.insert(k(3), 30); // another key first: the note no longer describes the cache
    c.insert(k(2), 20);
    c.insert(k(2), 21);
    CHECK(c.size() == 3);
    CHECK(*c.lookup(k(2)) == 21);
    CHECK(*c.lookup(k(3)) == 30);
    // A note, then an invalidation, then the insert: still one entry per key.
    REQUIRE_FALSE(c.lookup(k(4)));
    c.note_absent(k(4));
    c.invalidate_if([](const CacheKey& key, const int&) { return key == k(1); });
    c.insert(k(4), 40);
    CHECK(c.size() == 3);
    CHECK(*c.lookup(k(4)) == 40);
    CHECK_FALSE(c.lookup(k(1)));
}

TEST_CASE("invalidate_if visits every valid entry, the last line included, and no empty line", "[unit]") {
    stats::Group root("t");
    SetAssocCache<int> c("c", CacheGeometry{64, 8, Replacement::lru, 1}, &root);
    int calls = 0;
    CHECK(c.invalidate_if([&](const CacheKey&, int) { return ++calls, true; }) == 0);
    CHECK(calls == 0); // empty: nothing to visit
    std::set<uint64_t> in;
    for (uint64_t i = 0; i < 200; ++i) {
        c.insert(k(i * 0x9E37), static_cast<int>(i));
    }
    c.for_each([&](const CacheKey& key, int) { in.insert(key.a); });
    REQUIRE(in.size() == c.size());
    std::set<uint64_t> seen;
    CHECK(c.invalidate_if([&](const CacheKey& key, int v) {
        seen.insert(key.a);
        return v % 3 == 0;
    }) == static_cast<uint64_t>(std::count_if(in.begin(), in.end(), [](uint64_t a) { return (a / 0x9E37) % 3 == 0; })));
    CHECK(seen == in);
    seen.clear();
    c.invalidate_if([&](const CacheKey& key, int) { return seen.insert(key.a), false; });
    CHECK(seen.size() == c.size()); // the survivors, every one visited once
    CHECK(c.clear() == seen.size());
    CHECK(c.size() == 0);
}
