// SPDX-License-Identifier: Apache-2.0
// A whole platform on an Arm SMMUv3 with its Linux-like driver backend: the
// DMA safety oracle finds no violation with the correct driver, strict and
// lazy, and catches a driver that skips CMD_ATC_INV or CMD_SYNC; the unit's
// and the driver's figures show the commands the driver queued.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "test/support/cli.hpp"
#include "test/support/platform_run.hpp"
#include "test/support/stats.hpp"

using namespace iommusim::test;
using nlohmann::ordered_json;

namespace {

/// Per-packet map/unmap churn on a small ring (IOVAs are reused quickly), ATS NIC, arm64 host.
ordered_json smmu_nic(const std::string& flush) {
    ordered_json p = ordered_json::parse(R"({
      "name": "smmuv3-nic-test", "seed": 5, "duration_us": 600,
      "iommus": [ { "name": "smmu0", "type": "smmuv3" } ],
      "topology": { "root_complex": { "name": "rc0", "iommu": "smmu0", "root_ports": [ { "name": "rp0" } ] } },
      "devices": [ { "name": "nic0", "type": "nic", "port": "rp0", "ring_entries": 8, "napi_batch": 1 } ],
      "host": { "cpu": { "arch": "arm64" }, "driver": { "flush": "strict" } }
    })");
    p["host"]["driver"]["flush"] = flush;
    return p;
}

} // namespace

TEST_CASE("SMMUv3 platform: the correct strict driver has zero safety violations", "[sim][host][oracle][smmuv3]") {
    auto s = run_platform(smmu_nic("strict"), "smmuv3-strict");
    CHECK(stat_value(s, {"os", "oracle", "checked"}) > 0);
    CHECK(stat_value(s, {"os", "oracle", "violations"}) == 0);
    const uint64_t flushes = stat_value(s, {"os", "smmu0", "flushes"});
    CHECK(flushes > 0);
    // Per unmap: TLBI_*_VA + CMD_SYNC, then CMD_ATC_INV + CMD_SYNC for the ATS NIC
    // (one more flush may still be waited for when the run ends).
    const uint64_t atc = stat_value(s, {"os", "smmu0", "atc_inv_commands"});
    CHECK(atc >= flushes);
    CHECK(atc <= flushes + 2); // + the ATC_INV at ATS enable
    CHECK(stat_value(s, {"os", "smmu0", "ranged_flushes"}) > 0);
    CHECK(stat_value(s, {"os", "smmu0", "cfgi_commands"}) > 0);
    CHECK(stat_value(s, {"smmu0", "ats_invalidations_sent"}) >= flushes);
    CHECK(stat_value(s, {"smmu0", "faults"}) == 0);
}

TEST_CASE("SMMUv3 platform: the correct lazy driver has zero safety violations", "[sim][host][oracle][smmuv3]") {
    auto s = run_platform(smmu_nic("lazy"), "smmuv3-lazy", nullptr, "--set host.driver.flush_queue_entries=32");
    CHECK(stat_value(s, {"os", "oracle", "checked"}) > 0);
    CHECK(stat_value(s, {"os", "oracle", "violations"}) == 0);
    CHECK(stat_value(s, {"os", "smmu0", "asid_wide_flushes"}) > 0);
}

TEST_CASE("SMMUv3 platform: a driver that skips CMD_ATC_INV is caught by the oracle", "[sim][host][oracle][smmuv3]") {
    auto s = run_platform(smmu_nic("strict"), "smmuv3-no-atc", nullptr, "--set host.driver.skip_devtlb_invalidation=true");
    CHECK(stat_value(s, {"os", "smmu0", "atc_inv_commands"}) <= 1); // only the one at ATS enable
    CHECK(stat_value(s, {"os", "oracle", "violations"}) > 0);
}

TEST_CASE("SMMUv3 platform: a driver that skips CMD_SYNC is caught by the oracle", "[sim][host][oracle][smmuv3]") {
    auto s = run_platform(smmu_nic("strict"), "smmuv3-no-sync", nullptr, "--set host.driver.skip_sync=true");
    CHECK(stat_value(s, {"os", "smmu0", "sync_polls"}) == 0);
    CHECK(stat_value(s, {"os", "oracle", "violations"}) > 0);
}

TEST_CASE("SMMUv3 platform: SVA on an x86 host is refused with the reason", "[sim][host][smmuv3]") {
    auto p = smmu_nic("strict");
    p["host"]["cpu"]["arch"] = "x86_64";
    p["devices"][0]["pasid"] = 3;
    p["devices"][0]["domain"] = "sva";
    auto dir = scratch_dir("smmuv3-sva-x86");
    write_file(dir / "p.json", p.dump(2));
    auto r = run_cli("run '" + (dir / "p.json").string() + "' --quiet --out '" + (dir / "out").string() + "'",
                     "smmuv3-sva-x86");
    CHECK(r.exit_code != 0);
    CHECK(r.err.find("cannot share the CPU's page tables") != std::string::npos);
}

TEST_CASE("SMMUv3 platform: a CMD_SYNC behind an ATC_INV completes only after the Invalidate Completion arrived",
          "[sim][host][smmuv3][regression]") {
    // Two NVMe jobs share the CMDQ; an Invalidate Completion delivered ahead in local time used to
    // count as done at delivery, so a sync could finish before it arrived (a reversed phase pair).
    auto p = ordered_json::parse(slurp(source_path("platforms/smmuv3-nvme-strict.json")));
    p["duration_us"] = 800;
    auto s = run_platform(p, "smmuv3-sync-after-completion");
    const auto& h = s["os"]["invalidation"]["phase_to_wait_done"];
    REQUIRE(h["count"].get<uint64_t>() > 0);
    CHECK(h["min"].get<double>() >= 60.0); // the sync's MSI write (record_write_ns) after the last completion
}
