// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "models/common/stats.hpp"
#include "models/pcie/atc.hpp"

using namespace iommusim;
using pcie::Atc;

namespace {
pcie::AtsTranslation page(uint64_t pa, bool write = true) {
    pcie::AtsTranslation t = pcie::AtsTranslation::for_range(pa, 0);
    t.read = true;
    t.write = write;
    return t;
}
} // namespace

TEST_CASE("a slot pool lets W requests be in flight and makes the next wait for the oldest", "[pcie][ats][tags]") {
    pcie::SlotPool pool(2);
    bool stalled = false;
    CHECK(pool.take(Duration::ns(0), stalled) == Duration::ns(0));
    CHECK_FALSE(stalled);
    pool.hold(Duration::ns(500));
    CHECK(pool.take(Duration::ns(10), stalled) == Duration::ns(10));
    CHECK_FALSE(stalled);
    pool.hold(Duration::ns(300));
    // Both in flight: the third may go when the one done first (300 ns) frees its slot.
    CHECK(pool.take(Duration::ns(20), stalled) == Duration::ns(300));
    CHECK(stalled);
    pool.hold(Duration::ns(900));
    // At 600 ns the 500 ns one is done: a slot is free.
    CHECK(pool.take(Duration::ns(600), stalled) == Duration::ns(600));
    CHECK_FALSE(stalled);
}

TEST_CASE("the ATC caches a completion per PASID and an invalidation drops only its range and PASID", "[pcie][ats]") {
    stats::Group g("ep");
    pcie::AtsEndpointParams p;
    Atc atc(p, g);
    CHECK(atc.fill(0x1000, 5, page(0x80000), Duration::ns(100)) == Atc::Fill::cached);
    CHECK(atc.fill(0x2000, 5, page(0x90000), Duration::ns(100)) == Atc::Fill::cached);
    CHECK(atc.fill(0x1000, 6, page(0xA0000), Duration::ns(100)) == Atc::Fill::cached);
    pcie::AtsTranslation none;
    CHECK(atc.fill(0x3000, 5, none, Duration::ns(100)) == Atc::Fill::no_access);
    pcie::AtsTranslation user = page(0xB0000);
    user.user = true;
    CHECK(atc.fill(0x4000, 5, user, Duration::ns(100)) == Atc::Fill::uncached);
    REQUIRE(atc.find(0x1234, 5));
    CHECK(atc.find(0x1234, 5)->output(0x1234) == 0x80234);
    CHECK(atc.find(0x1234, 6)->output(0x1234) == 0xA0234);
    CHECK_FALSE(atc.find(0x4000, 5)); // U=1 is never cached
    pcie::AtsInvalidateRequest r = pcie::AtsInvalidateRequest::for_range(pcie::Bdf{}, 0x1000, 0);
    r.pasid_present = true;
    r.pasid = 5;
    const Atc::Invalidated inv = atc.invalidate(r, Duration::ns(200));
    CHECK(inv.dropped == 1);
    CHECK(inv.drain_until == Duration::ns(200)); // nothing in flight through it
    CHECK_FALSE(atc.find(0x1000, 5));
    CHECK(atc.find(0x1000, 6));  // another PASID's entry for the same page stays
    CHECK(atc.find(0x2000, 5));  // the neighbour page stays
}

TEST_CASE("an invalidation's completion waits for the requests issued through a translation it dropped", "[pcie][ats]") {
    stats::Group g("ep");
    pcie::AtsEndpointParams p;
    Atc atc(p, g);
    atc.fill(0x1000, std::nullopt, page(0x80000), Duration::ns(0));
    atc.fill(0x2000, std::nullopt, page(0x90000), Duration::ns(0));
    atc.issued(0x1000, std::nullopt, Duration::ns(10), Duration::ns(900)); // through the dropped page
    atc.issued(0x2000, std::nullopt, Duration::ns(10), Duration::ns(5000)); // through another page
    const auto inv = atc.invalidate(pcie::AtsInvalidateRequest::for_range(pcie::Bdf{}, 0x1000, 0), Duration::ns(100));
    CHECK(inv.dropped == 1);
    CHECK(inv.processed_at == Duration::ns(100));
    CHECK(inv.drain_until == Duration::ns(900));
    // A translation whose completion was still in flight is counted as stale and dropped.
    atc.fill(0x5000, std::nullopt, page(0xC0000), Duration::ns(2000));
    const auto late = atc.invalidate(pcie::AtsInvalidateRequest::for_range(pcie::Bdf{}, 0x5000, 0), Duration::ns(1000));
    CHECK(late.stale == 1);
    CHECK_FALSE(atc.find(0x5000, std::nullopt));
}
