// SPDX-License-Identifier: Apache-2.0
// The "vms" section and the guest scenario steps: bad input is a config error
// with its JSON path; a guest step naming an unknown VM is refused at parse
// time; dump-config round-trips a VM. Runs the CLI as a user would.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "test/support/cli.hpp"

using namespace iommusim::test;
using nlohmann::ordered_json;

namespace {
ordered_json nested_platform() { return ordered_json::parse(slurp(source_path("platforms/vm-vtd-nested.json"))); }

/// `iommusim validate` on `p`: its exit code and error text.
CliResult validate(const ordered_json& p, const std::string& tag) {
    auto dir = scratch_dir(tag);
    write_file(dir / "p.json", p.dump(2));
    return run_cli("validate '" + (dir / "p.json").string() + "'", tag);
}
} // namespace

TEST_CASE("a VM's configuration errors name their JSON path", "[cli][config][vm]") {
    auto p = nested_platform();
    p["vms"][0]["iommu"] = "dmar9";
    auto r = validate(p, "vm-bad-iommu");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("/vms/0/iommu") != std::string::npos);

    p = nested_platform();
    p["vms"][0]["mode"] = "shadowed";
    r = validate(p, "vm-bad-mode");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("/vms/0/mode") != std::string::npos);
    CHECK(r.err.find("nested|caching_mode") != std::string::npos);

    p = nested_platform();
    p["vms"][0]["devices"].push_back(p["vms"][0]["devices"][0]);
    r = validate(p, "vm-dup-vrid");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("/vms/0/devices/1/virtual_rid") != std::string::npos);

    p = nested_platform();
    p["vms"][0]["devices"][0]["virtual_rid"] = "3.0";
    r = validate(p, "vm-bad-rid");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("BB:DD.F") != std::string::npos);

    p = nested_platform();
    p["vms"][0]["stage2_page_bytes"] = "64KiB";
    r = validate(p, "vm-bad-s2-page");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("/vms/0/stage2_page_bytes") != std::string::npos);
}

TEST_CASE("a guest step naming an unknown VM is refused before the run", "[cli][config][vm][scenario]") {
    auto p = nested_platform();
    p["scenario"][0]["vm"] = "vm7";
    auto r = validate(p, "vm-unknown-in-step");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("/scenario/0/vm") != std::string::npos);
    CHECK(r.err.find("no VM named \"vm7\"") != std::string::npos);
}

TEST_CASE("caching mode on a family other than VT-d is a config error naming the VM's mode", "[cli][config][vm]") {
    auto p = nested_platform();
    p["iommus"][0]["type"] = "amd";
    p["vms"][0]["mode"] = "caching_mode";
    auto r = validate(p, "vm-amd-caching-mode");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("/vms/0/mode") != std::string::npos);
    CHECK(r.err.find("caching_mode is VT-d's") != std::string::npos);
    p["iommus"][0]["type"] = "smmuv3";
    p["host"]["cpu"]["arch"] = "arm64";
    r = validate(p, "vm-smmuv3-caching-mode");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("/vms/0/mode") != std::string::npos);
}

TEST_CASE("dump-config writes a VM that run accepts unchanged", "[cli][config][vm]") {
    auto r = run_cli("dump-config '" + source_path("platforms/vm-vtd-caching-mode.json") + "'", "vm-dump");
    REQUIRE(r.exit_code == 0);
    const auto dumped = ordered_json::parse(r.out);
    CHECK(dumped["vms"][0]["mode"] == "caching_mode");
    CHECK(dumped["vms"][0]["devices"][0]["virtual_rid"] == "00:03.0");
    CHECK(validate(dumped, "vm-dump-validate").exit_code == 0);
}

TEST_CASE("an accelerated SMMUv3 VM without the unit's CMDQV and a CMDQV of 3 VINTFs are config errors", "[cli][config][vm]") {
    auto p = ordered_json::parse(slurp(source_path("platforms/vm-smmuv3-vcmdq.json")));
    p["iommus"][0].erase("cmdqv_vintfs");
    auto r = validate(p, "vm-vcmdq-no-cmdqv");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("/vms/0") != std::string::npos);
    CHECK(r.err.find("cmdqv_vintfs") != std::string::npos);

    p = ordered_json::parse(slurp(source_path("platforms/vm-smmuv3-vcmdq.json")));
    p["iommus"][0]["cmdqv_vintfs"] = 3;
    r = validate(p, "vm-vcmdq-3-vintfs");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("/iommus/0") != std::string::npos);
    CHECK(r.err.find("power of two") != std::string::npos);
}

TEST_CASE("the guest_wbinvd step flushes only while the VM has a non-coherent domain, and names its VM",
          "[cli][scenario][vm][coherency]") {
    auto p = ordered_json::parse(slurp(source_path("platforms/isolation/vm-coherency.json")));
    // Coherent: the guest's domain (nested over a parent that forces snooping) is attached by guest_map.
    p["scenario"] = ordered_json::array({{{"op", "guest_map"}, {"vm", "vm0"}, {"name", "buf"}, {"size_bytes", "16KiB"}},
                                         {{"op", "guest_wbinvd"}, {"vm", "vm0"}},
                                         {{"op", "expect"}, {"stat", "vm0.wbinvd_skipped"}, {"eq", 1}},
                                         {{"op", "expect"}, {"stat", "vm0.wbinvd_flushes"}, {"eq", 0}}});
    auto dir = scratch_dir("vm-wbinvd-coherent");
    write_file(dir / "p.json", p.dump(2));
    auto r = run_cli("run '" + (dir / "p.json").string() + "' --quiet --out '" + (dir / "out").string() + "'", "vm-wbinvd-coherent");
    INFO(r.err);
    CHECK(r.exit_code == 0);
    // Without snoop control the same step flushes.
    p["iommus"][0]["snoop_control"] = false;
    p["duration_us"] = 1000; // the flush (vmm.wbinvd_flush_ns, 461 us) outlasts the shipped 400 us
    p["scenario"][2]["stat"] = "vm0.wbinvd_flushes";
    p["scenario"][3]["stat"] = "vm0.wbinvd_skipped";
    dir = scratch_dir("vm-wbinvd-noncoherent");
    write_file(dir / "p.json", p.dump(2));
    r = run_cli("run '" + (dir / "p.json").string() + "' --quiet --out '" + (dir / "out").string() + "'", "vm-wbinvd-noncoherent");
    INFO(r.err);
    CHECK(r.exit_code == 0);
    // A step naming no VM of the platform is refused before the run.
    p["scenario"][1]["vm"] = "vm7";
    r = validate(p, "vm-wbinvd-unknown");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("/scenario/1/vm") != std::string::npos);
}

namespace {
ordered_json pri_platform() { return ordered_json::parse(slurp(source_path("platforms/vm-vtd-pri-sva.json"))); }
/// Runs `p` (the scenario's expects must hold); its stats.
nlohmann::json run_platform(const ordered_json& p, const std::string& tag) {
    auto dir = scratch_dir(tag);
    write_file(dir / "p.json", p.dump(2));
    auto r = run_cli("run --quiet --out '" + (dir / "out").string() + "' '" + (dir / "p.json").string() + "'", tag);
    INFO("stderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    return nlohmann::json::parse(slurp(dir / "out" / "stats.json"));
}
double stat(const nlohmann::json& j) { return j.contains("value") ? j["value"].get<double>() : j["count"].get<double>(); }
} // namespace

TEST_CASE("platforms/vm-vtd-pri-sva.json: the guest's SVA bind gets a host PASID of the VM's set and each first touch "
          "is faulted in by the guest through its page request queue",
          "[cli][vm][vtd][pri]") {
    const auto s = run_platform(pri_platform(), "vm-pri-sva");
    const auto& prq = s["vm0"]["vm0_viommu"]["page_requests"];
    // 8 pages, each touched first by the device: one Page Request each, delivered to the guest,
    // answered Success by the guest's fault handler (its process's page faulted in), retried.
    CHECK(stat(s["acc0"]["fn0"]["page_requests"]) == 8);
    CHECK(stat(s["acc0"]["fn0"]["page_request_failures"]) == 0);
    CHECK(stat(s["acc0"]["fn0"]["page_request_latency"]) == 8);
    CHECK(stat(prq["groups_delivered"]) == 8);
    CHECK(stat(prq["responses"]) == 8);
    CHECK(stat(s["vm0"]["vm0_guest"]["prq"]["successes"]) == 8);
    CHECK(stat(s["vm0"]["vm0_guest"]["iommufd"]["demand_faults"]) == 8);
    CHECK(stat(s["os"]["prq"]["responses"]) == 0); // the host answered none itself: all went to the VMM
    CHECK(stat(s["acc0"]["errors"]) == 0);
    CHECK(stat(s["acc0"]["reads"]) > 1000);
    CHECK(stat(s["os"]["oracle"]["violations"]) == 0);
    CHECK(stat(s["os"]["oracle"]["correct"]) == stat(s["os"]["oracle"]["checked"]));
    // Each fault's service passes through the VMM twice (injection, the trapped response).
    CHECK(prq["phases"]["total"]["p50"].get<double>() > s["vm0"]["vm0_viommu"]["invalidation_phases"]["exit"]["p50"].get<double>());
}

TEST_CASE("without guest fault delivery the host answers the guest's page requests Invalid and the device's reads fail",
          "[cli][vm][vtd][pri]") {
    auto p = pri_platform();
    p["vms"][0]["page_requests"] = false;
    ordered_json steps = ordered_json::array(); // the guest's fault stats do not exist without fault delivery
    for (const auto& st : p["scenario"])
        if (st["op"] != "expect") steps.push_back(st);
    p["scenario"] = steps;
    const auto s = run_platform(p, "vm-pri-off");
    CHECK(stat(s["acc0"]["fn0"]["page_requests"]) > 0);
    CHECK(stat(s["acc0"]["fn0"]["page_request_failures"]) == stat(s["acc0"]["fn0"]["page_requests"]));
    CHECK(stat(s["acc0"]["errors"]) > 0);
    CHECK(stat(s["os"]["oracle"]["violations"]) == 0);
}

TEST_CASE("guest_bind_sva and a traffic device's PRI are checked before the run, naming the JSON path",
          "[cli][config][vm][scenario][pri]") {
    const auto base = ordered_json::parse(slurp(source_path("platforms/vm-vtd-pri-sva.json")));
    auto p = base;
    p["vms"][0]["mode"] = "caching_mode";
    p["vms"][0].erase("page_requests");
    auto r = validate(p, "vm-sva-caching-mode");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("/scenario/0/vm") != std::string::npos);
    CHECK(r.err.find("caching_mode") != std::string::npos);

    p = base;
    p["devices"].push_back({{"name", "acc1"}, {"type", "traffic"}, {"port", "rp0"}});
    p["scenario"][0]["device"] = "acc1";
    r = validate(p, "vm-sva-not-passed-through");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("/scenario/0/device") != std::string::npos);
    CHECK(r.err.find("not passed through") != std::string::npos);

    p = base;
    p["scenario"][0]["guest_pasid"] = 0;
    r = validate(p, "vm-sva-pasid-0");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("/scenario/0/guest_pasid") != std::string::npos);

    p = base;
    p["devices"][0]["pasid"] = {{"supported", false}};
    p["devices"][0]["workloads"][0].erase("pasids");
    r = validate(p, "vm-pri-no-pasid");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("/devices/0/ats/pri") != std::string::npos);
}

TEST_CASE("a VM whose passed-through device sits in PCIe segment 1 has its DMAs judged through the VM's composed view",
          "[cli][vm][segments]") {
    for (const char* f : {"platforms/vm-vtd-nested.json", "platforms/vm-smmuv3-nested.json", "platforms/vm-amd-nested.json"}) {
        INFO(f);
        auto p = ordered_json::parse(slurp(source_path(f)));
        p["topology"]["root_complex"]["segment"] = 1;
        const auto s = run_platform(p, std::string("vm-segment-1-") + p["name"].get<std::string>());
        CHECK(stat(s["os"]["oracle"]["violations"]) == 0);
        CHECK(stat(s["os"]["oracle"]["checked"]) > 0);
        CHECK(stat(s["os"]["oracle"]["correct"]) == stat(s["os"]["oracle"]["checked"]));
    }
}
