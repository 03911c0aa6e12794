// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <vector>

#include "models/common/sc_time.hpp"

using iommusim::Duration;

TEST_CASE("to_sc gives the library's sc_time for every picosecond count, at the 2^52 edge too", "[unit][time]") {
    // The inline conversion (1 ps times a double) must equal sc_time::from_value exactly; it is
    // exact below 2^52 ps and hands larger values to the library.
    std::vector<uint64_t> values{0, 1, 2, 3, 999, 1000, 1001, 40000, 1'000'000'000'000ull};
    for (int k = 40; k <= 63; ++k) {
        const uint64_t p = uint64_t{1} << k;
        for (uint64_t v : {p - 3, p - 2, p - 1, p, p + 1, p + 2, p + 3}) values.push_back(v);
    }
    values.push_back(UINT64_MAX);
    std::mt19937_64 rng(3);
    for (int i = 0; i < 100000; ++i) values.push_back(rng() >> (rng() % 64));
    for (uint64_t v : values) {
        const sc_core::sc_time t = iommusim::to_sc(Duration::ps(v));
        INFO(v);
        REQUIRE(t == sc_core::sc_time::from_value(v));
        REQUIRE(t.value() == v);
        REQUIRE(iommusim::from_sc(t) == Duration::ps(v));
    }
}
