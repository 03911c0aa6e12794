// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "models/iommu/common/config_cache.hpp"

using namespace iommusim;
using namespace iommusim::iommu;

namespace {
using Cache = ConfigCache<int>;
Cache make(stats::Group& root) { return Cache("cfg", CacheGeometry{64, 4, Replacement::lru, 1}, &root); }
uint64_t stat(const stats::Group& g, const char* name) {
    return static_cast<uint64_t>(stats::numeric_value(*g.find(name)));
}
} // namespace

TEST_CASE("config cache: a requester-keyed entry is found again and counted as a hit", "[unit]") {
    stats::Group root("t");
    Cache c = make(root);
    CHECK_FALSE(c.lookup(0x0100));
    c.insert(0x0100, 0, 7);
    auto* e = c.lookup(0x0100);
    REQUIRE(e);
    CHECK(e->value == 7);
    CHECK_FALSE(e->domain_known);
    CHECK(stat(c.stats(), "hits") == 1);
    CHECK(stat(c.stats(), "misses") == 1);
}

TEST_CASE("config cache: requester scope with a mask drops every function it covers and no other", "[unit]") {
    stats::Group root("t");
    Cache c = make(root);
    for (uint32_t fn = 0; fn < 8; ++fn) c.insert(0x0100 | fn, 0, static_cast<int>(fn));
    c.insert(0x0108, 0, 8); // next device
    // VT-d context-cache device invalidation with FM=2: functions 4..7 of 01:00.
    CHECK(c.invalidate(ConfigScope::of_requester(0x0104, 0x3)) == 4);
    CHECK(c.probe(0x0103));
    CHECK_FALSE(c.probe(0x0105));
    CHECK(c.probe(0x0108));
    CHECK(c.invalidate(ConfigScope::of_requester(0x0108)) == 1);
    CHECK(c.size() == 4);
}

TEST_CASE("config cache: requester+PASID scope keeps the requester's other PASIDs", "[unit]") {
    stats::Group root("t");
    Cache c = make(root);
    c.insert(0x10, 1, 1, 5);
    c.insert(0x10, 2, 2, 5);
    c.insert(0x11, 1, 3, 5);
    CHECK(c.invalidate(ConfigScope::of_requester_pasid(0x10, 1)) == 1);
    CHECK_FALSE(c.probe(0x10, 1));
    CHECK(c.probe(0x10, 2));
    CHECK(c.probe(0x11, 1));
}

TEST_CASE("config cache: domain scope drops the domain's entries and those whose domain is unknown", "[unit]") {
    stats::Group root("t");
    Cache c = make(root);
    c.insert(0x10, 0, 1, 5);
    c.insert(0x11, 0, 2, 6);
    c.insert(0x12, 0, 3); // domain not known yet
    CHECK(c.invalidate(ConfigScope::of_domain(5)) == 2);
    CHECK(c.probe(0x11));
    CHECK_FALSE(c.probe(0x12));
    // A domain learnt after the fill takes part in later scopes.
    c.insert(0x13, 0, 4)->set_domain(6);
    CHECK(c.invalidate(ConfigScope::of_domain(6)) == 2);
    CHECK(c.size() == 0);
}

TEST_CASE("config cache: domain+PASID scope keeps the domain's other PASIDs", "[unit]") {
    stats::Group root("t");
    Cache c = make(root);
    // (requester, PASID, domain): only (0x10, 1) is in domain 5 with PASID 1.
    const uint32_t entries[][3] = {{0x10, 1, 5}, {0x10, 2, 5}, {0x11, 1, 6}};
    for (const auto& e : entries) c.insert(e[0], e[1], 0, e[2]);
    CHECK(c.invalidate(ConfigScope::of_domain_pasid(5, 1)) == 1);
    for (const auto& e : entries) CHECK((c.probe(e[0], e[1]) != nullptr) == (e[1] != 1 || e[2] != 5));
}

TEST_CASE("config cache: the all scope empties the cache and counts the entries invalidated", "[unit]") {
    stats::Group root("t");
    Cache c = make(root);
    for (uint32_t r = 0; r < 10; ++r) c.insert(r, 0, 0);
    CHECK(c.invalidate(ConfigScope::all()) == 10);
    CHECK(c.size() == 0);
    CHECK(stat(c.stats(), "invalidated") == 10);
}
