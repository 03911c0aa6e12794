// SPDX-License-Identifier: Apache-2.0
// Several IOMMUs per platform: each root complex has its own IOMMU and PCIe
// segment; devices translate through the IOMMU that owns their path; scenario
// steps address a unit with "iommu". Runs the CLI as a user would.
#include <catch2/catch.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "test/support/cli.hpp"
#include "test/support/stats.hpp"

using namespace iommusim::test;
using nlohmann::ordered_json;

namespace {

/// Two root complexes (rc0 -> dmar0, rc1 -> dmar1), one traffic device below each.
ordered_json two_rc_platform(unsigned seg1 = 0) {
    ordered_json p = ordered_json::parse(R"({
      "name": "two-rc-test", "seed": 3, "duration_us": 150,
      "iommus": [ { "name": "dmar0", "type": "vtd" }, { "name": "dmar1", "type": "vtd" } ],
      "topology": { "root_complexes": [
        { "name": "rc0", "iommu": "dmar0", "root_ports": [ { "name": "rp0" } ] },
        { "name": "rc1", "iommu": "dmar1", "root_ports": [ { "name": "rp1" } ] } ] },
      "devices": [
        { "name": "dev0", "type": "traffic", "port": "rp0", "start_on_request": true,
          "workloads": [ { "type": "sequential", "read_percent": 100, "request_bytes": 4096, "region_bytes": "64KiB" } ] },
        { "name": "dev1", "type": "traffic", "port": "rp1", "start_on_request": true,
          "workloads": [ { "type": "sequential", "read_percent": 100, "request_bytes": 4096, "region_bytes": "64KiB" } ] } ],
      "scenario": [
        { "op": "create_ioas", "name": "io" },
        { "op": "alloc_domain", "name": "d1", "ioas": "io", "iommu": "dmar1" },
        { "op": "map", "ioas": "io", "iova": "0x100000000", "size_bytes": "64KiB" },
        { "op": "attach", "device": "dev1", "domain": "d1" },
        { "op": "start", "device": "dev1" },
        { "op": "expect", "at_us": 140, "stat": "os.oracle.violations", "eq": 0 } ]
    })");
    p["topology"]["root_complexes"][1]["segment"] = seg1;
    return p;
}

struct Run {
    int exit_code;
    std::string err, out;
    ordered_json stats;
};

Run run(const ordered_json& platform, const std::string& tag, const std::string& cmd = "run") {
    auto dir = scratch_dir(tag);
    write_file(dir / "p.json", platform.dump(2));
    auto r = run_cli(cmd + " '" + (dir / "p.json").string() + "'" +
                         (cmd == "run" ? " --quiet --out '" + (dir / "out").string() + "'" : ""),
                     tag);
    Run out{r.exit_code, r.err, r.out, {}};
    if (cmd == "run" && r.exit_code == 0) out.stats = ordered_json::parse(slurp(dir / "out" / "stats.json"));
    return out;
}

uint64_t value(const ordered_json& s, std::initializer_list<const char*> path) { return stat_value(s, path); }

} // namespace

TEST_CASE("each IOMMU translates only the devices below its own root complex", "[sim][host][multi_iommu]") {
    auto r = run(two_rc_platform(), "two-rc");
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    // Only dev1 (below rc1) was started: every request reached dmar1, none dmar0.
    CHECK(value(r.stats, {"dmar1", "requests"}) > 10);
    CHECK(value(r.stats, {"dmar0", "requests"}) == 0);
    CHECK(value(r.stats, {"rc1", "up_requests"}) == value(r.stats, {"dmar1", "requests"}));
    CHECK(value(r.stats, {"os", "oracle", "checked"}) > 10);
    CHECK(value(r.stats, {"os", "oracle", "violations"}) == 0);
    // The second root complex continues the bus numbering of segment 0.
    auto t = run(two_rc_platform(), "two-rc-topo", "topology");
    CHECK(t.out.find("rc1 root complex [bus 02-03]") != std::string::npos);
    CHECK(t.out.find("dev1 03:00.0") != std::string::npos);
}

TEST_CASE("the same RID in two PCIe segments is two devices, each behind its segment's IOMMU", "[sim][host][multi_iommu]") {
    auto p = two_rc_platform(1);
    // dev0 gets the same RID (01:00.0) in segment 0; attach and run it too, on dmar0.
    auto& sc = p["scenario"];
    sc.insert(sc.begin() + 4, ordered_json::parse(R"({ "op": "alloc_domain", "name": "d0", "ioas": "io", "iommu": "dmar0" })"));
    sc.insert(sc.begin() + 5, ordered_json::parse(R"({ "op": "attach", "device": "dev0", "domain": "d0" })"));
    sc.insert(sc.begin() + 6, ordered_json::parse(R"({ "op": "start", "device": "dev0" })"));
    auto t = run(p, "seg-topo", "topology");
    CHECK(t.out.find("segment 0001, root complex rc1") != std::string::npos);
    CHECK(t.out.find("dev0 01:00.0") != std::string::npos);
    CHECK(t.out.find("dev1 01:00.0") != std::string::npos);
    auto r = run(p, "seg");
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(value(r.stats, {"dmar0", "requests"}) > 10);
    CHECK(value(r.stats, {"dmar1", "requests"}) > 10);
    CHECK(value(r.stats, {"dmar0", "faults"}) == 0);
    CHECK(value(r.stats, {"dmar1", "faults"}) == 0);
    CHECK(value(r.stats, {"os", "oracle", "violations"}) == 0);
}

TEST_CASE("an attach that addresses the wrong IOMMU is a clear error", "[sim][host][multi_iommu][scenario]") {
    auto p = two_rc_platform();
    auto& sc = p["scenario"];
    // dev0 sits below rc0 (dmar0): a domain on dmar1, or "iommu": "dmar1", is refused.
    sc.push_back(ordered_json::parse(R"({ "op": "attach", "device": "dev0", "domain": "d1" })"));
    sc.push_back(ordered_json::parse(R"({ "op": "attach", "device": "dev0", "domain": "d1", "iommu": "dmar1" })"));
    auto r = run(p, "wrong-iommu");
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("domain d1 is on IOMMU dmar1, device dev0 is behind dmar0") != std::string::npos);
    CHECK(r.err.find("device dev0 is behind IOMMU dmar0, not dmar1") != std::string::npos);
    // As expectations they hold.
    sc[sc.size() - 2]["expect_error"] = "invalid";
    sc[sc.size() - 1]["expect_error"] = "invalid";
    CHECK(run(p, "wrong-iommu-expected").exit_code == 0);
}

TEST_CASE("with several IOMMUs a domain must name its IOMMU, and root complexes may not share one", "[cli][config][multi_iommu]") {
    auto p = two_rc_platform();
    p["scenario"][1].erase("iommu");
    auto r = run(p, "ambiguous", "validate");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("/scenario/1") != std::string::npos);
    CHECK(r.err.find("say which one the domain is for with \"iommu\"") != std::string::npos);
    auto q = two_rc_platform();
    q["scenario"][1]["iommu"] = "dmar7";
    r = run(q, "unknown-iommu", "validate");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("no IOMMU named \"dmar7\"") != std::string::npos);
    auto s = two_rc_platform();
    s["topology"]["root_complexes"][1]["iommu"] = "dmar0";
    r = run(s, "shared-iommu", "validate");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("one root complex per IOMMU") != std::string::npos);
    auto b = two_rc_platform();
    b["topology"]["root_complexes"][1]["bus"] = 1;
    r = run(b, "bus-clash", "validate");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("/topology/root_complexes/1/bus") != std::string::npos);
}

TEST_CASE("PCIe segments describe thousands of endpoints", "[cli][config][multi_iommu]") {
    // One bus space (256 buses) holds only so many endpoints; 16 segments of 14 root
    // ports, each with a 16-port switch (18 buses per root port), hold 3584.
    ordered_json p = ordered_json::parse(R"({ "name": "many", "duration_us": 1, "topology": { "root_complexes": [], "switches": [] },
                                              "devices": [] })");
    for (int s = 0; s < 16; ++s) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "rc%d", s);
        ordered_json rc = {{"name", buf}, {"segment", s}, {"root_ports", ordered_json::array()}};
        for (int r = 0; r < 14; ++r) {
            std::snprintf(buf, sizeof buf, "s%drp%d", s, r); // (GCC 12 -Wrestrict misfires on "s" + to_string)
            const std::string rp = buf;
            rc["root_ports"].push_back({{"name", rp}});
            ordered_json sw = {{"name", rp + "sw"}, {"port", rp}, {"downstream_ports", ordered_json::array()}};
            for (int d = 0; d < 16; ++d) {
                const std::string dp = rp + "dp" + std::to_string(d);
                sw["downstream_ports"].push_back({{"name", dp}});
                p["devices"].push_back({{"name", dp + "ep"}, {"type", "traffic"}, {"port", dp}});
            }
            p["topology"]["switches"].push_back(sw);
        }
        p["topology"]["root_complexes"].push_back(rc);
    }
    REQUIRE(p["devices"].size() == 3584);
    auto r = run(p, "many", "topology");
    INFO(r.err.substr(0, 400));
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.find("segment 000f, root complex rc15") != std::string::npos);
    CHECK(r.out.find("s15rp13dp15ep") != std::string::npos);
    // The same platform in one segment runs out of bus numbers.
    for (auto& rc : p["topology"]["root_complexes"]) rc["segment"] = 0;
    r = run(p, "many-one-seg", "validate");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("bus") != std::string::npos);
}

namespace {
/// One root complex, two root ports: rp0 translated by the root complex's dmar0 (the rest),
/// rp1 by dmar1 (a DRHD unit of its own); one traffic device below each.
ordered_json root_port_platform() {
    return ordered_json::parse(R"({
      "name": "rp-units-test", "seed": 5, "duration_us": 150,
      "iommus": [ { "name": "dmar0", "type": "vtd" }, { "name": "dmar1", "type": "vtd" } ],
      "topology": { "root_complex": { "name": "rc0", "iommu": "dmar0",
        "root_ports": [ { "name": "rp0" }, { "name": "rp1", "iommu": "dmar1" } ] } },
      "devices": [
        { "name": "dev0", "type": "traffic", "port": "rp0", "start_on_request": true,
          "workloads": [ { "type": "sequential", "read_percent": 100, "request_bytes": 4096, "region_bytes": "64KiB" } ] },
        { "name": "dev1", "type": "traffic", "port": "rp1", "start_on_request": true,
          "workloads": [ { "type": "sequential", "read_percent": 100, "request_bytes": 4096, "region_bytes": "64KiB" } ] } ],
      "scenario": [
        { "op": "create_ioas", "name": "io" },
        { "op": "alloc_domain", "name": "d0", "ioas": "io", "iommu": "dmar0" },
        { "op": "alloc_domain", "name": "d1", "ioas": "io", "iommu": "dmar1" },
        { "op": "map", "ioas": "io", "iova": "0x100000000", "size_bytes": "64KiB" },
        { "op": "attach", "device": "dev1", "domain": "d0", "expect_error": "invalid" },
        { "op": "attach", "device": "dev1", "domain": "d1" },
        { "op": "start", "device": "dev1" },
        { "op": "expect", "at_us": 140, "stat": "os.oracle.violations", "eq": 0 } ]
    })");
}
} // namespace

TEST_CASE("an IOMMU that owns one root port of a root complex translates only the devices below it",
          "[sim][host][multi_iommu]") {
    auto r = run(root_port_platform(), "rp-units");
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    // Only dev1 (below rp1) was started: all of rc0's upstream requests went to dmar1.
    CHECK(value(r.stats, {"dmar1", "requests"}) > 10);
    CHECK(value(r.stats, {"dmar0", "requests"}) == 0);
    CHECK(value(r.stats, {"rc0", "up_requests"}) == value(r.stats, {"dmar1", "requests"}));
    CHECK(value(r.stats, {"os", "oracle", "checked"}) > 10);
    CHECK(value(r.stats, {"os", "oracle", "violations"}) == 0);
    CHECK(value(r.stats, {"scenario", "failures"}) == 0);
    // The other device, started on dmar0's domain, reaches dmar0 only.
    auto p = root_port_platform();
    p["scenario"] = ordered_json::parse(R"([
        { "op": "create_ioas", "name": "io" },
        { "op": "alloc_domain", "name": "d0", "ioas": "io", "iommu": "dmar0" },
        { "op": "map", "ioas": "io", "iova": "0x100000000", "size_bytes": "64KiB" },
        { "op": "attach", "device": "dev0", "domain": "d0" },
        { "op": "start", "device": "dev0" } ])");
    auto r0 = run(p, "rp-units-0");
    INFO(r0.err);
    REQUIRE(r0.exit_code == 0);
    CHECK(value(r0.stats, {"dmar0", "requests"}) > 10);
    CHECK(value(r0.stats, {"dmar1", "requests"}) == 0);
}

TEST_CASE("root-port IOMMUs: every root port needs a unit once one has its own and a unit serves one root complex",
          "[sim][config][multi_iommu]") {
    auto p = root_port_platform();
    p["topology"]["root_complex"].erase("iommu");
    auto r = run(p, "rp-units-bad1", "validate");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("/topology/root_complex/root_ports/0") != std::string::npos);
    p = root_port_platform();
    p["topology"]["root_complex"]["root_ports"][1]["iommu"] = "dmar9";
    r = run(p, "rp-units-bad2", "validate");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("/topology/root_complex/root_ports/1/iommu") != std::string::npos);
    CHECK(r.err.find("dmar9") != std::string::npos);
    p = two_rc_platform();
    p["topology"]["root_complexes"][0]["root_ports"].push_back({{"name", "rpx"}, {"iommu", "dmar1"}});
    r = run(p, "rp-units-bad3", "validate");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("one root complex per IOMMU") != std::string::npos);
}
