// SPDX-License-Identifier: Apache-2.0
// The host lock core: hand-off costs by the CPUs' distance, waiting for the
// holder, first-come first-served order, and its counters.
#include <catch2/catch.hpp>

#include "models/host/cpu_lock.hpp"

using namespace iommusim;
using namespace iommusim::host;

namespace {
Duration ns(double v) { return Duration::ns(v); }
} // namespace

TEST_CASE("a cache-line hand-off costs by distance: none on the same CPU, socket, CCD, cross-socket", "[unit][host][lock]") {
    CpuTopology t;
    t.cpus = 32;
    t.cpus_per_ccd = 8;
    t.cpus_per_socket = 16;
    CHECK(t.handoff(3, 3) == Duration::zero());
    CHECK(t.handoff(1, 6) == t.handoff_same_socket);   // same CCD
    CHECK(t.handoff(1, 9) == t.handoff_cross_ccd);     // CCD 0 -> 1, socket 0
    CHECK(t.handoff(1, 17) == t.handoff_cross_socket); // socket 0 -> 1
    CpuTopology intel;
    intel.cpus = 8; // one socket, one LLC
    CHECK(intel.handoff(0, 7) == Duration::ns(CpuTopology::kDefaultHandoffSameSocketNs));
}

TEST_CASE("taking a lock another CPU released costs one hand-off, the same CPU again costs nothing", "[unit][host][lock]") {
    CpuTopology t;
    t.cpus = 2;
    CpuLock l(t);
    auto g = l.try_acquire(0, ns(100));
    REQUIRE(g);
    CHECK(*g == ns(100)); // never held before: no line to move
    l.release(ns(200));
    g = l.try_acquire(0, ns(300));
    REQUIRE(g);
    CHECK(*g == ns(300));
    l.release(ns(400));
    g = l.try_acquire(1, ns(500));
    REQUIRE(g);
    CHECK(*g == ns(500) + t.handoff_same_socket);
    l.release(ns(600));
    CHECK(l.stats().acquisitions == 3);
    CHECK(l.stats().handoffs == 1);
    CHECK(l.stats().contended == 0);
    CHECK(l.stats().handoff_time == t.handoff_same_socket);
}

TEST_CASE("a CPU that finds the lock held waits until the release, and waiters are served in arrival order",
          "[unit][host][lock]") {
    CpuTopology t;
    t.cpus = 3;
    CpuLock l(t);
    REQUIRE(l.try_acquire(0, ns(0)));
    uint64_t b = 0, c = 0;
    CHECK_FALSE(l.try_acquire(1, ns(10), &b));
    CHECK_FALSE(l.try_acquire(2, ns(20), &c));
    CHECK(l.waiting() == 2);
    l.release(ns(1000));
    CHECK_FALSE(l.take(c)); // second in line
    auto gb = l.take(b);
    REQUIRE(gb);
    CHECK(*gb == ns(1000) + t.handoff_same_socket);
    l.release(*gb + ns(100));
    auto gc = l.take(c);
    REQUIRE(gc);
    CHECK(*gc == *gb + ns(100) + t.handoff_same_socket);
    CHECK(l.stats().contended == 2);
    CHECK(l.stats().wait == (ns(1000) - ns(10)) + (*gb + ns(100) - ns(20)));
    CHECK(l.stats().max_wait == *gb + ns(100) - ns(20));
    CHECK(l.stats().handoffs == 2);
}

TEST_CASE("releasing a lock nobody holds is a model error", "[unit][host][lock]") {
    CpuLock l(CpuTopology{});
    CHECK_THROWS_AS(l.release(ns(1)), std::logic_error);
}
