// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include <random>
#include <stdexcept>

#include "models/pcie/routing.hpp"

using namespace iommusim::pcie;

TEST_CASE("address routing finds the port whose window holds the address among thousands of windows", "[unit][pcie][routing]") {
    // 64 ports with 128 windows each, interleaved across the address space
    // with holes between them; every lookup must agree with a scan of all windows.
    std::vector<PortMap> ports(64);
    std::mt19937_64 rng(5);
    uint64_t at = 0x40'0000'0000;
    for (int w = 0; w < 64 * 128; ++w) {
        const uint64_t size = uint64_t{4096} << (rng() % 8);
        at = (at + size - 1) & ~(size - 1);
        if (rng() % 3 == 0) at += size; // a hole
        ports[rng() % 64].windows.push_back(AddrRange{at, size});
        at += size;
    }
    ports[7].windows.push_back(AddrRange{0x1000, 0}); // an empty window holds nothing
    for (size_t i = 0; i < ports.size(); ++i) ports[i].name = std::to_string(i);
    const Router r(ports);
    auto scan = [&](uint64_t a) {
        for (size_t i = 0; i < ports.size(); ++i)
            for (const AddrRange& w : ports[i].windows)
                if (w.contains(a)) return static_cast<int>(i);
        return -1;
    };
    for (int k = 0; k < 20000; ++k) {
        const uint64_t a = 0x40'0000'0000 - 0x10000 + rng() % (at - 0x40'0000'0000 + 0x20000);
        REQUIRE(r.port_for_addr(a) == scan(a));
    }
    CHECK(r.port_for_addr(0x1000) == -1);
    CHECK(r.port_for_addr(ports[3].windows.at(0).base) == 3);
    CHECK(r.port_for_addr(ports[3].windows.at(0).base + ports[3].windows.at(0).size - 1) == 3);
}

TEST_CASE("a router refuses overlapping windows", "[unit][pcie][routing]") {
    std::vector<PortMap> ports{PortMap{"a", 1, 1, {AddrRange{0x10000, 0x10000}}, {}},
                               PortMap{"b", 2, 2, {AddrRange{0x18000, 0x1000}}, {}}};
    CHECK_THROWS_AS(Router(ports), std::invalid_argument);
    ports[1].windows = {AddrRange{0x20000, 0x1000}};
    CHECK(Router(ports).port_for_addr(0x20fff) == 1);
}
