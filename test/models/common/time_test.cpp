// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>
#include <algorithm>
#include <random>
#include <stdexcept>
#include <vector>

#include "models/common/time.hpp"

using iommusim::BusyUntil;
using iommusim::Duration;

TEST_CASE("a busy resource queues in-order arrivals behind each other", "[unit][time]") {
    BusyUntil r;
    CHECK(r.reserve(Duration::ns(0), Duration::ns(10)) == Duration::ns(0));
    CHECK(r.reserve(Duration::ns(5), Duration::ns(10)) == Duration::ns(10));
    CHECK(r.reserve(Duration::ns(5), Duration::ns(10)) == Duration::ns(20));
    CHECK(r.reserve(Duration::ns(100), Duration::ns(10)) == Duration::ns(100));
    CHECK(r.busy_until() == Duration::ns(110));
}

TEST_CASE("an early arrival uses a free gap before a later reservation", "[unit][time]") {
    BusyUntil r;
    CHECK(r.reserve(Duration::ns(1000), Duration::ns(100)) == Duration::ns(1000)); // reserved ahead in time
    // A request arriving earlier fits before it instead of queueing behind it.
    CHECK(r.reserve(Duration::ns(100), Duration::ns(50)) == Duration::ns(100));
    // One that does not fit in the gap goes after the reservation it would overlap.
    CHECK(r.reserve(Duration::ns(960), Duration::ns(50)) == Duration::ns(1100));
    // Gaps fill exactly: [150, 1000) is free.
    CHECK(r.reserve(Duration::ns(150), Duration::ns(850)) == Duration::ns(150));
    CHECK(r.reserve(Duration::ns(0), Duration::ns(100)) == Duration::ns(0));
    CHECK(r.reserve(Duration::ns(0), Duration::ns(1)) == Duration::ns(1150));
}

TEST_CASE("a resource keeps bounded state whatever the arrival pattern", "[unit][time]") {
    BusyUntil r;
    for (int i = 0; i < 100000; ++i) r.reserve(Duration::ns(10.0 * (i % 2 ? i : 100000 - i)), Duration::ns(1));
    CHECK(r.busy_until() >= Duration::ns(999990));
}

TEST_CASE("subtracting a later time from an earlier one throws instead of wrapping to 2^64 ps", "[unit][time]") {
    const Duration early = Duration::ns(10), late = Duration::ns(25);
    CHECK((late - early).as_ns() == 15.0);
    CHECK_THROWS_AS(early - late, std::logic_error);
    Duration d = early;
    CHECK_THROWS_AS(d -= late, std::logic_error);
    CHECK(saturating_sub(early, late) == Duration::zero());
    CHECK(saturating_sub(late, early) == Duration::ns(15));
}

TEST_CASE("free_at answers what a zero-length reservation would, without reserving", "[unit][time]") {
    // Random gap-filling histories (in and out of time order, touching and trimmed
    // reservations); at every step free_at(t) must equal reserve(t, 0) on a copy, at the
    // edges of each reservation too, and leave the resource unchanged.
    std::mt19937_64 rng(7);
    for (int round = 0; round < 20; ++round) {
        BusyUntil r;
        uint64_t clock = 0;
        for (int i = 0; i < 400; ++i) {
            const uint64_t back = rng() % 4 == 0 ? rng() % 5000 : 0;
            const uint64_t at = clock > back ? clock - back : 0;
            const Duration hold = Duration::ps(rng() % 3 == 0 ? 0 : 1 + rng() % 300);
            const Duration start = r.reserve(Duration::ps(at), hold);
            clock = std::max(clock, at + rng() % 200);
            std::vector<uint64_t> probes{at, start.as_ps(), (start + hold).as_ps(), start.as_ps() + 1,
                                         (start + hold).as_ps() - (hold.as_ps() ? 1 : 0), rng() % (clock + 1),
                                         r.busy_until().as_ps(), r.busy_until().as_ps() + 1};
            for (uint64_t p : probes) {
                BusyUntil copy = r;
                const Duration before = r.busy_until();
                CHECK(r.free_at(Duration::ps(p)) == copy.reserve(Duration::ps(p), Duration::zero()));
                CHECK(r.busy_until() == before);
            }
        }
    }
}
