// SPDX-License-Identifier: Apache-2.0
// A whole platform on an AMD-Vi unit with its Linux-like driver backend: the
// DMA safety oracle finds no violation with the correct driver and catches a
// driver that skips INVALIDATE_IOTLB_PAGES; the unit's figures show the
// commands the driver queued.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "test/support/cli.hpp"
#include "test/support/platform_run.hpp"
#include "test/support/stats.hpp"

using namespace iommusim::test;
using nlohmann::ordered_json;

namespace {

/// Per-packet map/unmap churn on a small ring (IOVAs are reused quickly), ATS NIC.
ordered_json amd_nic(const std::string& flush) {
    ordered_json p = ordered_json::parse(R"({
      "name": "amd-nic-test", "seed": 5, "duration_us": 600,
      "iommus": [ { "name": "amdvi0", "type": "amd" } ],
      "topology": { "root_complex": { "name": "rc0", "iommu": "amdvi0", "root_ports": [ { "name": "rp0" } ] } },
      "devices": [ { "name": "nic0", "type": "nic", "port": "rp0", "ring_entries": 8, "napi_batch": 1 } ],
      "host": { "driver": { "flush": "strict" } }
    })");
    p["host"]["driver"]["flush"] = flush;
    return p;
}

} // namespace

TEST_CASE("AMD-Vi platform: the correct strict driver has zero safety violations", "[sim][host][oracle][amd]") {
    auto s = run_platform(amd_nic("strict"), "amd-strict");
    CHECK(stat_value(s, {"os", "oracle", "checked"}) > 0);
    CHECK(stat_value(s, {"os", "oracle", "violations"}) == 0);
    const uint64_t flushes = stat_value(s, {"os", "amdvi0", "flushes"});
    CHECK(flushes > 0);
    // Per flush: INVALIDATE_IOMMU_PAGES, INVALIDATE_IOTLB_PAGES (ATS NIC), COMPLETION_WAIT
    // (one more flush may still be waited for when the run ends).
    const uint64_t iotlb = stat_value(s, {"os", "amdvi0", "iotlb_invalidations"});
    CHECK(iotlb >= flushes);
    CHECK(iotlb <= flushes + 1);
    CHECK(stat_value(s, {"amdvi0", "ats_invalidations_sent"}) >= flushes);
    CHECK(stat_value(s, {"amdvi0", "faults"}) == 0);
}

TEST_CASE("AMD-Vi platform: the correct lazy driver has zero safety violations", "[sim][host][oracle][amd]") {
    auto s = run_platform(amd_nic("lazy"), "amd-lazy", nullptr, "--set host.driver.flush_queue_entries=32");
    CHECK(stat_value(s, {"os", "oracle", "violations"}) == 0);
    CHECK(stat_value(s, {"os", "amdvi0", "domain_wide_flushes"}) > 0);
}

TEST_CASE("AMD-Vi platform: a driver that skips INVALIDATE_IOTLB_PAGES is caught by the oracle",
          "[sim][host][oracle][amd]") {
    auto s = run_platform(amd_nic("strict"), "amd-broken", nullptr, "--set host.driver.skip_devtlb_invalidation=true");
    CHECK(stat_value(s, {"os", "amdvi0", "iotlb_invalidations"}) == 0);
    CHECK(stat_value(s, {"os", "oracle", "violations"}) > 0);
}

TEST_CASE("AMD-Vi platform: interrupt-driven waits take ComWaitInt MSIs", "[sim][host][amd]") {
    auto s = run_platform(amd_nic("strict"), "amd-irq", nullptr, "--set host.driver.wait=interrupt");
    CHECK(stat_value(s, {"os", "oracle", "violations"}) == 0);
    const uint64_t flushes = stat_value(s, {"os", "amdvi0", "flushes"});
    CHECK(flushes > 0);
    CHECK(stat_value(s, {"amdvi0", "msis"}) >= flushes); // one per COMPLETION_WAIT with I = 1
}
