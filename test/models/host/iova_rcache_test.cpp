// SPDX-License-Identifier: Apache-2.0
// Linux's per-CPU IOVA magazines: steady-state reuse on one CPU, misses that
// fall back to the tree, the depot between CPUs, and its limit.
#include <catch2/catch.hpp>

#include "models/host/iova_rcache.hpp"
#include "test/models/host/vtd_host_rig.hpp"

using namespace iommusim::host;

TEST_CASE("IOVA cache orders: 1 to 32 pages round up to a power of two, larger ranges are not cached",
          "[unit][host][iova]") {
    CHECK(IovaRcache::order_of(1) == 0u);
    CHECK(IovaRcache::order_of(3) == 2u);
    CHECK(IovaRcache::order_of(32) == 5u);
    CHECK_FALSE(IovaRcache::order_of(33));
    CHECK_FALSE(IovaRcache::order_of(0));
}

TEST_CASE("an empty IOVA cache misses so the tree allocates, and a range freed on a CPU is reused there",
          "[unit][host][iova]") {
    IovaRcache c(2);
    std::vector<uint64_t> evicted;
    CHECK_FALSE(c.get(0, 1));
    CHECK(c.stats().misses == 1);
    REQUIRE(c.put(0, 0x1000, 1, evicted));
    CHECK_FALSE(c.get(1, 1)); // another CPU's magazine is not shared
    CHECK(c.get(0, 1) == 0x1000u);
    CHECK(c.stats().hits == 1);
    CHECK(evicted.empty());
}

TEST_CASE("in steady state map/unmap on one CPU hits its magazine every time", "[unit][host][iova]") {
    IovaRcache c(1);
    std::vector<uint64_t> evicted;
    // A ring of 256 buffers: after the first round every allocation is served by the cache.
    for (uint64_t i = 0; i < 256; ++i) REQUIRE(c.put(0, 0x100000 + i * 0x1000, 1, evicted));
    for (int round = 0; round < 10; ++round)
        for (uint64_t i = 0; i < 256; ++i) {
            auto v = c.get(0, 1);
            REQUIRE(v);
            REQUIRE(c.put(0, *v, 1, evicted));
        }
    CHECK(c.stats().hits == 2560);
    CHECK(c.stats().misses == 0);
    CHECK(evicted.empty());
}

TEST_CASE("full magazines move through the depot to another CPU, and go back to the tree when the depot is full",
          "[unit][host][iova]") {
    IovaRcache c(2, /*max_depot=*/1);
    std::vector<uint64_t> evicted;
    const unsigned m = IovaRcache::kMagazine;
    // CPU 0 frees 3 magazines' worth + 1: loaded, prev, one to the depot, then one back to the tree.
    for (uint64_t i = 0; i < 3 * m + 1; ++i) REQUIRE(c.put(0, i * 0x1000, 1, evicted));
    CHECK(c.cached_on(0, 0) == m + 1);
    CHECK(evicted.size() == m); // the depot held one already
    CHECK(c.stats().depot_moves == 1);
    // CPU 1 has nothing of its own: it takes the depot's magazine.
    for (unsigned i = 0; i < m; ++i) REQUIRE(c.get(1, 1));
    CHECK(c.stats().depot_moves == 2);
    CHECK_FALSE(c.get(1, 1));
}

TEST_CASE("IommuFd's DMA-API maps take IOVAs from the tree once, then from the unmapping CPU's cache",
          "[sc][host][iova]") {
    using namespace iommusim;
    hosttest::VtdHostRig rig;
    bool done = false;
    rig.os->add_thread("test", [&] {
        auto& fd = rig.os->iommufd();
        const uint32_t ioas = fd.ioas_alloc();
        fd.hwpt_alloc(ioas, 0, host::DomainDesc::Kind::paging_s1);
        uint64_t first = 0;
        for (int i = 0; i < 50; ++i) { // strict map / unmap of one page, as a NIC buffer
            const uint64_t iova = fd.map(ioas, 4096);
            if (i == 0) first = iova;
            CHECK(iova == first); // the range freed last is handed out again (LIFO magazine)
            fd.unmap(ioas, iova, 4096);
        }
        // Three pages take a 4-page range from the tree (cacheable sizes are powers of two).
        const uint64_t three = fd.map(ioas, 3 * 4096);
        fd.unmap(ioas, three, 3 * 4096);
        CHECK(fd.map(ioas, 4 * 4096) == three); // the cached 4-page range serves a 4-page request
        done = true;
        sc_core::sc_stop();
    });
    sc_core::sc_start(sc_core::sc_time(10, sc_core::SC_MS));
    REQUIRE(done);
    auto stat = [&](const char* s) { return stats::numeric_value(*rig.root.find(s)); };
    CHECK(stat("os.iommufd.iova_tree_allocs") == 2);  // the first page, the first 4-page range
    CHECK(stat("os.iommufd.iova_cache_hits") == 50);  // 49 pages + the 4-page range
    CHECK(stat("os.iommufd.iova_tree_frees") == 0);   // everything went back into the cache
}
