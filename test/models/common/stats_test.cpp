// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "models/common/stats.hpp"

using namespace iommusim::stats;

TEST_CASE("histogram percentiles of 1..1000 are within the stated relative error", "[unit][stats]") {
    Histogram h;
    for (int i = 1000; i >= 1; --i) h.record(i);
    CHECK(h.count() == 1000);
    CHECK(h.min() == 1);
    CHECK(h.max() == 1000);
    CHECK(h.mean() == Approx(500.5));
    const double err = Histogram::relative_error();
    CHECK(h.percentile(50) == Approx(500).epsilon(err));
    CHECK(h.percentile(90) == Approx(900).epsilon(err));
    CHECK(h.percentile(99) == Approx(990).epsilon(err));
    CHECK(h.percentile(100) == 1000);
    CHECK(h.percentile(0) == 1);
}

TEST_CASE("histogram percentiles match exact order statistics on skewed data", "[unit][stats]") {
    std::mt19937_64 rng(7);
    std::lognormal_distribution<double> dist(3.0, 1.5);
    std::vector<double> xs(20000);
    Histogram h;
    for (auto& x : xs) h.record(x = dist(rng));
    std::sort(xs.begin(), xs.end());
    for (double p : {50.0, 90.0, 99.0}) {
        double exact = xs[static_cast<size_t>(std::ceil(p / 100 * xs.size())) - 1];
        CHECK(h.percentile(p) == Approx(exact).epsilon(Histogram::relative_error()));
    }
}

TEST_CASE("stats groups form a tree addressed by dotted paths", "[unit][stats]") {
    Group root("root");
    Group mem("mem0", &root);
    auto& reads = mem.counter("reads", "requests", "reads served");
    reads.inc(3);
    mem.derived("twice", "requests", "2x reads", [&] { return 2.0 * reads.value(); });
    REQUIRE(root.find("mem0.reads"));
    CHECK(numeric_value(*root.find("mem0.reads")) == 3);
    CHECK(numeric_value(*root.find("mem0.twice")) == 6);
    CHECK(root.find("mem0.nope") == nullptr);
    CHECK_THROWS(mem.counter("reads", "x", "dup"));
    CHECK_THROWS(Group("mem0", &root));
    {
        Group tmp("tmp", &root);
        CHECK(root.children().size() == 2);
    }
    CHECK(root.children().size() == 1);
}

TEST_CASE("a histogram refuses negative, NaN and infinite samples instead of recording them", "[unit][stats]") {
    Histogram h;
    h.record(0.0);
    h.record(5.0);
    CHECK_THROWS_AS(h.record(-1.0), std::domain_error);
    CHECK_THROWS_AS(h.record(std::nan("")), std::domain_error);
    CHECK_THROWS_AS(h.record(std::numeric_limits<double>::infinity()), std::domain_error);
    CHECK(h.count() == 2); // nothing of the refused samples was kept
    CHECK(h.max() == 5.0);
    CHECK(h.min() == 0.0);
}

TEST_CASE("histogram buckets split each power of two into 32 equal sub-buckets", "[unit][stats]") {
    // Values on sub-bucket edges and just below them land in neighbouring buckets: a
    // percentile is that bucket's midpoint (clamped to the recorded range).
    for (int e : {-20, 0, 7, 30, 79}) {
        for (int sub : {0, 1, 15, 31}) {
            const double lo = std::ldexp(1.0 + sub / 32.0, e);
            const double hi = std::ldexp(1.0 + (sub + 1) / 32.0, e);
            Histogram h;
            h.record(0.0);
            h.record(lo);
            h.record(std::nextafter(hi, 0.0));
            h.record(hi * 4); // keeps the maximum out of the way
            CHECK(h.percentile(50) == (lo + hi) / 2); // rank 2: the sub-bucket holding lo and just below hi
        }
    }
    Histogram tiny; // below 2^-24 everything counts in bucket 0 (midpoint 0, clamped to the minimum)
    tiny.record(std::ldexp(1.0, -30));
    tiny.record(std::ldexp(1.0, -26));
    tiny.record(1.0);
    CHECK(tiny.percentile(50) == std::ldexp(1.0, -30));
}
