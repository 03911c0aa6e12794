// SPDX-License-Identifier: Apache-2.0
#include "models/common/trace.hpp"

#include <catch2/catch.hpp>

using namespace iommusim;

TEST_CASE("the trace recorder keeps at most max_events and counts the rest", "[trace]") {
    trace::Recorder r({.max_events = 3, .dma_sample_every = 1, .counter_interval = Duration::zero()});
    const uint32_t t = r.track("dmar0", "walker 0");
    for (int i = 0; i < 5; ++i) r.slice(t, "walk", "walk", Duration::ns(i), Duration::ns(i + 1));
    CHECK(r.events().size() == 3);
    CHECK(r.dropped() == 2);
}

TEST_CASE("the trace recorder names each track once and samples every Nth request per track", "[trace]") {
    trace::Recorder r({.max_events = 100, .dma_sample_every = 4, .counter_interval = Duration::zero()});
    const uint32_t a = r.track("dmar0", "requests from 00:01.0");
    const uint32_t b = r.track("dmar0", "requests from 00:02.0");
    CHECK(r.track("dmar0", "requests from 00:01.0") == a);
    CHECK(a != b);
    CHECK(r.tracks().size() == 2);
    int sampled_a = 0, sampled_b = 0;
    for (int i = 0; i < 10; ++i) sampled_a += r.sample_dma(a);
    for (int i = 0; i < 3; ++i) sampled_b += r.sample_dma(b);
    CHECK(sampled_a == 3); // requests 0, 4, 8
    CHECK(sampled_b == 1); // each track counts its own requests
}

TEST_CASE("a trace counter is sampled on change, at most once per interval", "[trace]") {
    trace::Recorder r({.max_events = 100, .dma_sample_every = 1, .counter_interval = Duration::ns(100)});
    const uint32_t t = r.track("dmar0", "queue engine");
    r.counter(t, "queue occupancy", Duration::ns(0), 1);   // first sample
    r.counter(t, "queue occupancy", Duration::ns(50), 2);  // too soon
    r.counter(t, "queue occupancy", Duration::ns(200), 2); // changed since the last sample, interval passed
    r.counter(t, "queue occupancy", Duration::ns(400), 2); // unchanged
    r.counter(t, "iotlb fills", Duration::ns(10), 7);      // another counter has its own interval
    REQUIRE(r.events().size() == 3);
    CHECK(r.events()[0].args[0].value == 1);
    CHECK(r.events()[1].from == Duration::ns(200));
    CHECK(r.events()[2].name == std::string("iotlb fills"));
}
