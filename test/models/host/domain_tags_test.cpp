// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "models/host/domain_tags.hpp"

using iommusim::host::DomainTagAllocator;
using iommusim::host::HostError;

TEST_CASE("domain tags are the lowest free value in range, stable per domain, and reusable after release",
          "[unit][host][tags]") {
    DomainTagAllocator a(2, 4, "Domain-ID");
    CHECK(a.get(10) == 2);
    CHECK(a.get(11) == 3);
    CHECK(a.get(10) == 2); // the same domain keeps its tag
    CHECK(a.get(12) == 4);
    try {
        a.get(13);
        FAIL("a fourth domain fit three tags");
    } catch (const HostError& e) {
        CHECK(e.kind() == HostError::Kind::no_space);
        CHECK(std::string(e.what()).find("Domain-ID") != std::string::npos);
    }
    a.release(11);
    CHECK(a.get(13) == 3); // the freed tag comes back first
    CHECK(a.in_use() == 3);
    CHECK_THROWS_AS(a.release(99), HostError);
    CHECK(a.find(12) == 4u);
    CHECK_FALSE(a.find(11));
}
