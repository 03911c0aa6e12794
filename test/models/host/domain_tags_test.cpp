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

TEST_CASE("a claimed tag is the one asked for, refused while another domain holds it, and its owner is known",
          "[unit][host][tags]") {
    DomainTagAllocator a(1, 8, "ASID");
    CHECK(a.get(10) == 1);
    CHECK(a.claim(20, 5));
    CHECK(a.claim(20, 5)); // the holder asking again
    CHECK_FALSE(a.claim(21, 5));
    CHECK_FALSE(a.claim(21, 9)); // out of range
    CHECK(a.owner(5) == 20u);
    CHECK(a.owner(1) == 10u);
    CHECK_FALSE(a.owner(2));
    CHECK(a.get(11) == 2); // lowest free skips nothing but claimed tags
    a.release(20);
    CHECK(a.claim(21, 5));
}
