// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>
#include <algorithm>
#include <vector>

#include "models/common/busy_pool.hpp"

using namespace iommusim;

TEST_CASE("a pool of resources gives each use the slot a scan for the earliest-free one picks", "[unit][time]") {
    // Reference: the scan BusyPool replaces (std::min_element: the first slot with the least busy-until).
    for (uint32_t n : {1u, 2u, 3u, 4u, 5u, 16u, 64u}) {
        iommusim::BusyPool pool(n);
        std::vector<BusyUntil> ref(n);
        uint64_t x = 7;
        for (int i = 0; i < 2000; ++i) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            // Mostly advancing arrivals, some out of order (temporal decoupling), some zero holds.
            const Duration arrival = Duration::ns(static_cast<double>(i * 3 + static_cast<int>((x >> 33) % 40) - 20 + 20));
            const Duration hold = Duration::ns(static_cast<double>((x >> 20) % 5 == 0 ? 0 : (x >> 40) % 50));
            auto it = std::min_element(ref.begin(), ref.end(), [](const BusyUntil& a, const BusyUntil& b) {
                return a.busy_until() < b.busy_until();
            });
            const Duration want = it->reserve(arrival, hold);
            const auto use = pool.reserve(arrival, hold);
            REQUIRE(use.slot == static_cast<uint32_t>(it - ref.begin()));
            REQUIRE(use.start == want);
        }
    }
}
