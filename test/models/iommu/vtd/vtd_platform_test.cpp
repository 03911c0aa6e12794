// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "test/support/cli.hpp"

using namespace iommusim::test;
using nlohmann::json;

namespace {
json run_platform(const std::string& tag) {
    auto dir = scratch_dir(tag);
    auto r = run_cli("run --quiet --out '" + dir.string() + "' '" + source_path("platforms/vtd-ats.json") + "'", tag);
    INFO("stderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    return json::parse(slurp(dir / "stats.json"));
}
double v(const json& j) { return j.contains("value") ? j["value"].get<double>() : j["count"].get<double>(); }
} // namespace

TEST_CASE("platforms/vtd-ats.json runs a PASID ATS NIC through VT-d with device-TLB invalidations",
          "[cli][vtd][regression]") {
    const json a = run_platform("vtd-ats-a");
    const json& u = a["dmar0"];
    const json& fn = a["nic0"]["fn0"];
    // The NIC's DMA uses ATS: translation requests on ATC misses, translated requests on hits.
    CHECK(v(u["translation_requests"]) == v(fn["translation_requests"]));
    CHECK(v(fn["atc"]["hits"]) > 0);
    CHECK(v(u["translated_requests"]) == v(fn["translated_requests"]));
    CHECK(v(u["translated_blocked"]) == 0);
    CHECK(v(u["faults"]) == 0);
    // Strict unmaps: every ATS Invalidate Request is answered (one may be in flight at the end),
    // and every wait the driver queued completed.
    CHECK(v(u["ats_invalidations_sent"]) == v(fn["invalidations_received"]));
    CHECK(v(fn["invalidations_completed"]) >= v(fn["invalidations_received"]) - 1);
    CHECK(v(u["waits"]) > 0);
    CHECK(v(u["ite"]) == 0);
    CHECK(v(u["iqe"]) == 0);
    // Same platform + seed => identical model statistics.
    const json b = run_platform("vtd-ats-b");
    CHECK(a["dmar0"] == b["dmar0"]);
    CHECK(a["nic0"] == b["nic0"]);
}
