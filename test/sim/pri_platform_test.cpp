// SPDX-License-Identifier: Apache-2.0
// PRI end to end, as a user runs it: platforms/vtd-pri-sva.json puts a NIC
// (PASID, ATS, PRI) on an SVA binding whose buffer pages are never populated
// in advance, so every packet's first touch is an I/O page fault: the device
// sends a Page Request, VT-d writes it to the PRQ, the host's handler faults
// the page into the process and answers with a page group response, and the
// device retries its DMA.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "test/support/cli.hpp"

using namespace iommusim::test;
using nlohmann::json;

namespace {
/// Runs the platform; `scenario_holds` = false expects its PRI expectations to fail (exit 1).
json run_pri(const std::string& tag, const std::string& extra = "", bool scenario_holds = true) {
    auto dir = scratch_dir(tag);
    auto r = run_cli("run --quiet --out '" + dir.string() + "' '" + source_path("platforms/vtd-pri-sva.json") + "' " + extra, tag);
    INFO("stderr: " << r.err);
    if (scenario_holds) REQUIRE(r.exit_code == 0);
    else REQUIRE((r.exit_code == 1 && r.err.find("os.prq.successes") != std::string::npos));
    return json::parse(slurp(dir / "stats.json"));
}
double v(const json& j) { return j.contains("value") ? j["value"].get<double>() : j["count"].get<double>(); }
} // namespace

TEST_CASE("platforms/vtd-pri-sva.json: every first touch is served through PRI and the retried DMA succeeds",
          "[cli][host][vtd][pri]") {
    const json s = run_pri("pri-sva");
    const json& prq = s["os"]["prq"];
    const json& fn = s["nic0"]["fn0"];
    // The device's page requests all reached the PRQ, and each got one Success response.
    CHECK(v(prq["requests"]) > 100);
    CHECK(v(fn["page_requests"]) == v(s["dmar0"]["page_requests"]));
    CHECK(v(prq["requests"]) >= v(s["dmar0"]["page_requests"]) - 1); // one may still be in the queue at the end
    CHECK(v(prq["successes"]) == v(prq["requests"]));
    CHECK(v(prq["invalid"]) == 0);
    CHECK(v(prq["overflows"]) == 0);
    CHECK(v(s["dmar0"]["prg_responses"]) == v(prq["responses"]));
    CHECK(v(s["os"]["iommufd"]["demand_faults"]) == v(prq["successes"]));
    // The retried DMAs succeed: every packet is delivered, none fails, the oracle agrees.
    CHECK(v(s["nic0"]["dma_errors"]) == 0);
    CHECK(v(s["nic0"]["rx_packets"]) >= v(prq["successes"]));
    CHECK(v(s["os"]["oracle"]["violations"]) == 0);
    CHECK(v(s["os"]["oracle"]["correct"]) == v(s["os"]["oracle"]["checked"]));
    // Service time (Linux DMAR_LATENCY_PRQ definition) inside calibration.md's 1-10 us band.
    const json& lat = prq["service_latency"];
    CHECK(lat["p50"].get<double>() > 1000);
    CHECK(lat["p99"].get<double>() < 10000);
    // A device's fault costs it more than the host's service: detection by polling and the message trip.
    CHECK(s["nic0"]["packet_dma_latency"]["p50"].get<double>() > lat["p50"].get<double>());
    CHECK(v(s["scenario"]["failures"]) == 0);
}

TEST_CASE("without PRI the same SVA NIC faults on every unpopulated buffer", "[cli][host][vtd][pri]") {
    const json s = run_pri("pri-off", "--set devices/0/pri=false", false);
    CHECK(v(s["os"]["prq"]["requests"]) == 0);
    CHECK(v(s["nic0"]["fn0"]["page_requests"]) == 0);
    CHECK(v(s["nic0"]["dma_errors"]) > 100);
    CHECK(v(s["nic0"]["rx_packets"]) == 0);
    CHECK(v(s["os"]["oracle"]["violations"]) == 0);
}
