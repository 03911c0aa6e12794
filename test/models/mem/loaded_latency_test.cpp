// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "models/mem/loaded_latency.hpp"

using namespace iommusim;

TEST_CASE("the load factor follows calibration.md's loaded-latency points and rises monotonically", "[unit][mem]") {
    CHECK(mem::load_factor(0.0) == Approx(1.0));
    CHECK(mem::load_factor(0.25) == Approx(1.10));
    CHECK(mem::load_factor(0.5) == Approx(1.20));
    CHECK(mem::load_factor(0.8) == Approx(1.40));
    CHECK(mem::load_factor(1.0) == Approx(2.35)); // midpoint of the saturation range 1.8-2.9
    CHECK(mem::load_factor(3.0) == Approx(2.35));
    double last = 0;
    for (double u = 0; u <= 1.2; u += 0.01) {
        CHECK(mem::load_factor(u) >= last);
        last = mem::load_factor(u);
    }
}

TEST_CASE("the load meter measures bytes over a sliding window against the peak", "[unit][mem]") {
    mem::LoadMeter m(Duration::ns(1000), 10.0); // 10 B/ns: 10,000 B fill a window
    CHECK(m.utilisation(Duration::ns(0)) == 0);
    for (int i = 0; i < 50; ++i) m.record(Duration::ns(i * 20), 100); // 5,000 B in the first window
    CHECK(m.utilisation(Duration::ns(999)) == Approx(0.5));
    // Half a window later half of it still counts; two windows later none.
    CHECK(m.utilisation(Duration::ns(1500)) == Approx(0.25));
    CHECK(m.utilisation(Duration::ns(2500)) == 0);
    mem::LoadMeter off(Duration::zero(), 10.0);
    off.record(Duration::ns(1), 1 << 20);
    CHECK(off.utilisation(Duration::ns(2)) == 0);
}
