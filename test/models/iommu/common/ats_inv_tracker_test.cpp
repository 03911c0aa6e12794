// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>
#include <vector>

#include "models/iommu/common/ats_inv_tracker.hpp"

using namespace iommusim;
using namespace iommusim::iommu;

TEST_CASE("ATS tracker: ITags are allocated lowest-free per requester and bounded by the queue depth", "[unit]") {
    AtsInvalidationTracker t(Duration::us(10));
    CHECK(t.issue(0x100, Duration::ns(0), 1) == 0);
    CHECK(t.issue(0x100, Duration::ns(1), 2) == 1);
    CHECK(t.issue(0x200, Duration::ns(2), 3) == 0); // ITags are per requester
    CHECK(t.outstanding() == 3);
    CHECK(t.outstanding(0x100) == 2);
    CHECK_FALSE(t.can_issue(0x100, 2));
    CHECK(t.can_issue(0x100, 3));
    CHECK(t.can_issue(0x100, 0)); // 0 means 32
    t.complete(0x100, 1u << 0, [](const auto&) {});
    CHECK(t.issue(0x100, Duration::ns(3), 4) == 0); // the freed ITag is reused first
}

TEST_CASE("ATS tracker: 32 invalidations in flight use every ITag and block a 33rd", "[unit]") {
    AtsInvalidationTracker t(Duration::us(10));
    for (unsigned i = 0; i < 32; ++i) REQUIRE(t.issue(7, Duration::ns(i), i) == i);
    CHECK_FALSE(t.can_issue(7, 32));
    CHECK_FALSE(t.can_issue(7, 0));
}

TEST_CASE("ATS tracker: a completion retires its ITags and returns when and by whom each was sent", "[unit]") {
    AtsInvalidationTracker t(Duration::us(10));
    t.issue(0x100, Duration::ns(100), 11);
    t.issue(0x100, Duration::ns(200), 12);
    t.issue(0x100, Duration::ns(300), 13);
    std::vector<AtsInvalidationTracker::Done> done;
    auto r = t.complete(0x100, 0b101, [&](const AtsInvalidationTracker::Done& d) { done.push_back(d); });
    CHECK_FALSE(r.unknown);
    CHECK(r.completed == 0b101);
    REQUIRE(done.size() == 2);
    CHECK(done[0].itag == 0);
    CHECK(done[0].sent == Duration::ns(100));
    CHECK(done[0].cookie == 11);
    CHECK(done[1].cookie == 13);
    CHECK(t.outstanding() == 1);
}

TEST_CASE("ATS tracker: completions for ITags or requesters not in flight are reported unknown", "[unit]") {
    AtsInvalidationTracker t(Duration::us(10));
    t.issue(0x100, Duration::ns(0), 1);
    CHECK(t.unknown_itags(0x100, 0b11) == 0b10);
    CHECK(t.unknown_itags(0x300, 0b1) == 0b1);
    CHECK(t.knows(0x100));
    CHECK_FALSE(t.knows(0x300));
    int n = 0;
    auto stranger = t.complete(0x300, 1, [&](const auto&) { ++n; });
    CHECK(stranger.unknown);
    auto mixed = t.complete(0x100, 0b11, [&](const auto&) { ++n; });
    CHECK(mixed.unknown);          // ITag 1 was never sent
    CHECK(mixed.completed == 0b1); // ITag 0 still retires
    CHECK(n == 1);
    CHECK(t.outstanding() == 0);
}

TEST_CASE("ATS tracker: the earliest deadline is the oldest send plus the time-out, ties go to the lowest requester",
          "[unit]") {
    AtsInvalidationTracker t(Duration::us(10));
    CHECK_FALSE(t.earliest().any);
    t.issue(0x300, Duration::ns(500), 1);
    t.issue(0x200, Duration::ns(500), 2);
    t.issue(0x100, Duration::ns(900), 3);
    auto d = t.earliest();
    REQUIRE(d.any);
    CHECK(d.requester == 0x200);
    CHECK(d.at == Duration::ns(10500));
    CHECK(t.earliest(0x100).at == Duration::ns(10900));
    CHECK(t.abandon(0x200) == 1);
    CHECK(t.earliest().requester == 0x300);
    t.abandon_all();
    CHECK(t.outstanding() == 0);
    CHECK_FALSE(t.earliest().any);
}

TEST_CASE("ATS tracker: two issuers share a device's ITags and queue depth, each waits for, times out and abandons its own",
          "[unit]") {
    AtsInvalidationTracker t(Duration::us(10));
    CHECK(t.issue(0x100, Duration::ns(0), 1, 0) == 0);
    CHECK(t.issue(0x100, Duration::ns(5), 2, 1) == 1); // the second issuer takes the next ITag of the device
    CHECK(t.issue(0x200, Duration::ns(9), 3, 1) == 0);
    CHECK_FALSE(t.can_issue(0x100, 2)); // the device's depth counts both
    CHECK(t.outstanding_of(0) == 1);
    CHECK(t.outstanding_of(1) == 2);
    CHECK(t.earliest_of(0).at == Duration::ns(0) + Duration::us(10));
    CHECK(t.earliest_of(1).at == Duration::ns(5) + Duration::us(10));
    std::vector<AtsInvalidationTracker::Done> done;
    t.complete(0x100, 0b11, [&](const AtsInvalidationTracker::Done& d) { done.push_back(d); });
    REQUIRE(done.size() == 2);
    CHECK(done[0].issuer == 0);
    CHECK(done[1].issuer == 1);
    CHECK(t.outstanding_of(0) == 0);
    CHECK_FALSE(t.earliest_of(0).any);
    CHECK(t.outstanding_of(1) == 1);
    t.issue(0x200, Duration::ns(20), 4, 0);
    t.abandon_all(1); // a time-out of the second issuer leaves the first's invalidation in flight
    CHECK(t.outstanding_of(1) == 0);
    CHECK(t.outstanding_of(0) == 1);
    CHECK(t.outstanding(0x200) == 1);
    CHECK(t.abandon(0x200, 1) == 0);
    CHECK(t.abandon(0x200, 0) == 1);
    CHECK(t.outstanding() == 0);
}
