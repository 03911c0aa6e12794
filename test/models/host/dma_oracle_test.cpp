// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "models/host/dma_oracle.hpp"

using namespace iommusim;
using namespace iommusim::host;
using V = DmaOracle::Verdict;
using S = DmaOracle::Source;

TEST_CASE("the oracle classifies DMAs as correct, stale in the window, or violations", "[unit][host][oracle]") {
    stats::Group root("root");
    DmaOracle o(&root);
    const pcie::Bdf dev(1, 0, 0);
    o.bind(dev, 5, 7);
    o.map(7, 0x10000, 0xA000000, 0x2000, Duration::ns(100));
    CHECK(o.check(dev, 5, 0x10010, 0xA000010, Duration::ns(150), S::iotlb) == V::correct);
    CHECK(o.check(dev, 5, 0x11000, 0xA001000, Duration::ns(150), S::atc) == V::correct);
    o.unmap(7, 0x10000, 0x2000, Duration::ns(200));
    // Between unmap and invalidation completion: inside the window.
    CHECK(o.check(dev, 5, 0x10000, 0xA000000, Duration::ns(250), S::atc) == V::stale_in_window);
    o.invalidation_complete(7, 0x10000, 0x1000, Duration::ns(300), Duration::ns(250));
    // Uses before completion (by local time) are still in the window, even if checked later.
    CHECK(o.check(dev, 5, 0x10000, 0xA000000, Duration::ns(299), S::atc) == V::stale_in_window);
    CHECK(o.check(dev, 5, 0x10000, 0xA000000, Duration::ns(301), S::atc) == V::violation);
    // The second page's invalidation has not completed.
    CHECK(o.check(dev, 5, 0x11000, 0xA001000, Duration::ns(400), S::iotlb) == V::stale_in_window);
    REQUIRE(o.violations().size() == 1);
    CHECK(o.violations()[0].served_by == S::atc);
    CHECK(o.violations()[0].iova == 0x10000);
    CHECK(stats::numeric_value(*root.find("oracle.violations")) == 1);
    CHECK(stats::numeric_value(*root.find("oracle.stale_in_window")) == 3);
}

TEST_CASE("the oracle accepts a remapped IOVA and flags a wrong physical address", "[unit][host][oracle]") {
    stats::Group root("root");
    DmaOracle o(&root);
    const pcie::Bdf dev(2, 0, 0);
    o.bind(dev, std::nullopt, 1);
    o.map(1, 0x5000, 0x100000, 0x1000, Duration::ns(0));
    o.unmap(1, 0x5000, 0x1000, Duration::ns(10));
    o.invalidation_complete_all(1, Duration::ns(20), Duration::ns(15));
    o.map(1, 0x5000, 0x200000, 0x1000, Duration::ns(30));
    CHECK(o.check(dev, std::nullopt, 0x5000, 0x200000, Duration::ns(40), S::walk) == V::correct);
    CHECK(o.check(dev, std::nullopt, 0x5000, 0x100000, Duration::ns(40), S::iotlb) == V::violation);
    CHECK(o.check(dev, std::nullopt, 0x5000, 0x300000, Duration::ns(40), S::iotlb) == V::violation);
    CHECK(o.check(dev, 3, 0x5000, 0x200000, Duration::ns(40), S::iotlb) == V::violation); // unbound PASID
    CHECK(o.violation_count() == 3);
}

TEST_CASE("a flush covers only the unmaps made before it was submitted", "[unit][host][oracle]") {
    stats::Group root("root");
    DmaOracle o(&root);
    const pcie::Bdf dev(3, 0, 0);
    o.bind(dev, std::nullopt, 2);
    o.map(2, 0x1000, 0x10000, 0x2000, Duration::ns(0));
    o.unmap(2, 0x1000, 0x1000, Duration::ns(10));
    o.unmap(2, 0x2000, 0x1000, Duration::ns(30)); // after the flush below was submitted
    o.invalidation_complete_all(2, Duration::ns(50), Duration::ns(20));
    CHECK(o.check(dev, std::nullopt, 0x1000, 0x10000, Duration::ns(60), S::iotlb) == V::violation);
    CHECK(o.check(dev, std::nullopt, 0x2000, 0x11000, Duration::ns(60), S::iotlb) == V::stale_in_window);
    o.invalidation_complete_all(2, Duration::ns(80), Duration::ns(70));
    CHECK(o.check(dev, std::nullopt, 0x2000, 0x11000, Duration::ns(90), S::iotlb) == V::violation);
}

TEST_CASE("the oracle keeps address spaces apart whatever their ids and bounds each page's history", "[unit][host][oracle]") {
    stats::Group root("root");
    DmaOracle o(&root);
    const pcie::Bdf a(1, 0, 0), b(2, 0, 0);
    o.bind(a, std::nullopt, 5);
    o.bind(b, std::nullopt, 5 + 4096); // aliased under a 12-bit space field
    o.map(5, 0x7000, 0x100000, 0x1000, Duration::ns(0));
    CHECK(o.check(b, std::nullopt, 0x7000, 0x100000, Duration::ns(1), S::walk) == V::violation);
    for (int i = 0; i < 100; ++i) { // remap churn on one page
        o.unmap(5, 0x7000, 0x1000, Duration::ns(10 + 10.0 * i));
        o.invalidation_complete_all(5, Duration::ns(12 + 10.0 * i), Duration::ns(11 + 10.0 * i));
        o.map(5, 0x7000, 0x200000 + 0x1000 * i, 0x1000, Duration::ns(15 + 10.0 * i));
    }
    CHECK(o.check(a, std::nullopt, 0x7000, 0x200000 + 0x1000 * 99, Duration::ns(2000), S::walk) == V::correct);
}
