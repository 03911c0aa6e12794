// SPDX-License-Identifier: Apache-2.0
// Behaviour under load on whole shipped platforms (issue 14): the same platform at two
// loads, everything else equal. Invalidation latency grows when more CPUs submit through
// the one invalidation queue (its lock is contended: a tail appears), and memory latency
// grows with the memory controller's utilisation (loaded-latency curve).
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "test/support/cli.hpp"
#include "test/support/platform_run.hpp"

using nlohmann::ordered_json;
using iommusim::test::run_platform;
using iommusim::test::source_path;

namespace {
ordered_json shipped(const std::string& name) {
    std::ifstream f(source_path("platforms/" + name + ".json"));
    return ordered_json::parse(f);
}
} // namespace

TEST_CASE("on a whole platform, invalidation latency rises when more CPUs submit through one queue",
          "[sim][host][load][latency]") {
    // vtd-nvme-strict: each NVMe job is a host thread on its own CPU unmapping strictly.
    auto one = shipped("vtd-nvme-strict"), four = one;
    one["devices"][0]["jobs"] = 1;
    four["devices"][0]["jobs"] = 4;
    const auto a = run_platform(one, "load_inv_1job"), b = run_platform(four, "load_inv_4jobs");
    const auto& la = a["os"]["invalidation"]["latency"];
    const auto& lb = b["os"]["invalidation"]["latency"];
    INFO("1 job p50 " << la["p50"] << " p99 " << la["p99"] << "; 4 jobs p50 " << lb["p50"] << " p99 " << lb["p99"]);
    REQUIRE(la["count"].get<double>() > 100);
    REQUIRE(lb["count"].get<double>() > 100);
    CHECK(lb["p50"].get<double>() >= la["p50"].get<double>());
    CHECK(lb["p99"].get<double>() > la["p99"].get<double>());
    // The tail is the queue lock's: nobody waited for it alone.
    CHECK(a["os"]["dmar0"]["queue_lock"]["contended"]["value"].get<double>() == 0);
    CHECK(b["os"]["dmar0"]["queue_lock"]["contended"]["value"].get<double>() > 0);
}

TEST_CASE("on a whole platform, memory latency rises with the traffic the memory serves", "[sim][mem][load][latency]") {
    // vtd-nic-strict: the NIC's line rate sets how much DMA reaches memory.
    auto slow = shipped("vtd-nic-strict"), fast = slow;
    slow["devices"][0]["line_rate_gbps"] = 10;
    fast["devices"][0]["line_rate_gbps"] = 100;
    const auto a = run_platform(slow, "load_mem_10g"), b = run_platform(fast, "load_mem_100g");
    const auto& ma = a["memory"]["load_delay"];
    const auto& mb = b["memory"]["load_delay"];
    INFO("10 Gb/s load delay mean " << ma["mean"] << ", 100 Gb/s " << mb["mean"]);
    CHECK(mb["mean"].get<double>() > ma["mean"].get<double>());
    CHECK(b["memory"]["queue_delay"]["mean"].get<double>() > a["memory"]["queue_delay"]["mean"].get<double>());
}
