// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <sstream>

#include "test/support/cli.hpp"

using namespace iommusim::test;
using nlohmann::ordered_json;

namespace {

std::string minimal_platform() {
    return R"({
  "name": "mini", "seed": 3, "duration_us": 20,
  "topology": { "root_complex": { "name": "rc0", "root_ports": [ { "name": "rp0" } ] } },
  "devices": [ { "name": "dma0", "type": "traffic", "port": "rp0",
                 "workloads": [ { "type": "sequential", "region_bytes": "64KiB" } ] } ]
})";
}

/// Writes `text` as a platform file and runs `validate` on it.
CliResult validate_text(const std::string& text) {
    auto dir = scratch_dir("validate");
    write_file(dir / "p.json", text);
    return run_cli("validate '" + (dir / "p.json").string() + "'");
}

/// Parses the minimal platform, applies `edit`, and validates the result.
CliResult validate_edit(const std::function<void(ordered_json&)>& edit) {
    ordered_json j = ordered_json::parse(minimal_platform());
    edit(j);
    return validate_text(j.dump(2));
}

void require_bad_input(const CliResult& r, const std::string& path, const std::string& what) {
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("p.json: " + path + ": ") != std::string::npos);
    CHECK(r.err.find(what) != std::string::npos);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1); // one line
}

} // namespace

TEST_CASE("validate accepts the default platform", "[cli][config]") {
    auto r = run_cli("validate '" + source_path("platforms/default.json") + "'");
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("ok") != std::string::npos);
}

TEST_CASE("a JSON syntax error names the line and column", "[cli][config]") {
    auto r = validate_text("{\n  \"name\": \"x\",\n  \"seed\": ,\n}");
    require_bad_input(r, "/seed", "line 3, column 11"); // the path reached when the syntax broke
}

TEST_CASE("an unknown key is an error that suggests the closest valid key", "[cli][config]") {
    auto r = validate_edit([](ordered_json& j) { j["memory"] = {{"read_latncy_ns", 80}}; });
    require_bad_input(r, "/memory/read_latncy_ns", "did you mean \"read_latency_ns\"");
}

TEST_CASE("a value of the wrong type is an error naming what was expected", "[cli][config]") {
    auto r = validate_edit([](ordered_json& j) { j["seed"] = "one"; });
    require_bad_input(r, "/seed", "expected an integer (or a hex string like \"0x1000\"), got a string \"one\"");
}

TEST_CASE("a zero or negative size is rejected", "[cli][config]") {
    require_bad_input(validate_edit([](ordered_json& j) { j["memory"] = {{"size_bytes", 0}}; }), "/memory/size_bytes",
                      "expected a size in [4KiB");
    require_bad_input(validate_edit([](ordered_json& j) { j["memory"] = {{"size_bytes", -4096}}; }),
                      "/memory/size_bytes", "expected a size in bytes");
    require_bad_input(validate_edit([](ordered_json& j) { j["devices"][0]["workloads"][0]["request_bytes"] = 0; }),
                      "/devices/0/workloads/0/request_bytes", "expected an integer in [1, 1048576], got 0");
}

TEST_CASE("duplicate component names are rejected", "[cli][config]") {
    auto r = validate_edit([](ordered_json& j) { j["devices"].push_back(j["devices"][0]); });
    require_bad_input(r, "/devices/1/name", "duplicate component name \"dma0\"");
}

TEST_CASE("references to unknown components are rejected", "[cli][config]") {
    require_bad_input(validate_edit([](ordered_json& j) { j["devices"][0]["port"] = "rp9"; }), "/topology",
                      "rp9");
    require_bad_input(validate_edit([](ordered_json& j) { j["topology"]["root_complex"]["iommu"] = "dmar0"; }),
                      "/topology/root_complex/iommu", "no IOMMU named \"dmar0\"");
}

TEST_CASE("an unknown type is rejected with the known types", "[cli][config]") {
    auto r = validate_edit([](ordered_json& j) { j["devices"][0]["type"] = "trafic"; });
    require_bad_input(r, "/devices/0/type", "did you mean \"traffic\"");
    auto w = validate_edit([](ordered_json& j) { j["devices"][0]["workloads"][0]["type"] = "zipff"; });
    require_bad_input(w, "/devices/0/workloads/0/type", "zipf");
}

TEST_CASE("a missing platform file is a clear bad-input error", "[cli][config]") {
    auto r = run_cli("validate /nonexistent/platform.json");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("/nonexistent/platform.json") != std::string::npos);
    CHECK(r.err.find("cannot open") != std::string::npos);
}

TEST_CASE("list-params documents every parameter with unit and default", "[cli]") {
    auto r = run_cli("list-params");
    CHECK(r.exit_code == 0);
    for (const char* key : {"size_bytes", "read_latency_ns", "latency_ns", "max_outstanding_reads", "request_bytes",
                            "stats_json", "flush", "iotlb", "line_rate_gbps"})
        CHECK(r.out.find(key) != std::string::npos);
    CHECK(r.out.find("64GiB") != std::string::npos);
    auto one = run_cli("list-params memory");
    CHECK(one.exit_code == 0);
    CHECK(one.out.find("[memory]") != std::string::npos);
    CHECK(one.out.find("[outputs]") == std::string::npos);
    CHECK(run_cli("list-params nosuchthing").exit_code == 2);
}

TEST_CASE("dump-config output is accepted unchanged and resolves to itself", "[cli][config]") {
    auto dir = scratch_dir("dump");
    write_file(dir / "p.json", minimal_platform());
    auto first = run_cli("dump-config '" + (dir / "p.json").string() + "'");
    REQUIRE(first.exit_code == 0);
    auto resolved = ordered_json::parse(first.out);
    CHECK(resolved["memory"]["read_latency_ns"] == 90.0);
    CHECK(resolved["devices"][0]["max_outstanding_reads"] == 256);
    write_file(dir / "resolved.json", first.out);
    auto second = run_cli("dump-config '" + (dir / "resolved.json").string() + "'");
    REQUIRE(second.exit_code == 0);
    CHECK(second.out == first.out);
}

TEST_CASE("run writes stats.json and a summary, same seed gives byte-identical stats", "[cli][determinism]") {
    auto dir = scratch_dir("run");
    write_file(dir / "p.json", minimal_platform());
    auto a = run_cli("run '" + (dir / "p.json").string() + "' --out '" + (dir / "a").string() + "'");
    auto b = run_cli("run '" + (dir / "p.json").string() + "' --out '" + (dir / "b").string() + "'");
    REQUIRE(a.exit_code == 0);
    REQUIRE(b.exit_code == 0);
    CHECK(a.out.find("dma0.read_latency") != std::string::npos);
    auto ja = ordered_json::parse(slurp(dir / "a" / "stats.json"));
    auto jb = ordered_json::parse(slurp(dir / "b" / "stats.json"));
    CHECK(ja.contains("host"));
    ja.erase("host");
    jb.erase("host");
    CHECK(ja.dump() == jb.dump());
    CHECK(ja["simulated_time_ns"]["value"] == 20000);
    CHECK(ja["dma0"]["write_bytes"]["value"].get<uint64_t>() > 0);
    CHECK(ja["dma0"]["read_latency"]["count"].get<uint64_t>() > 0);
    // A different seed changes the read/write mix.
    auto c = run_cli("run '" + (dir / "p.json").string() + "' --seed 99 --quiet --out '" + (dir / "c").string() + "'");
    REQUIRE(c.exit_code == 0);
    CHECK(c.out.empty());
    auto jc = ordered_json::parse(slurp(dir / "c" / "stats.json"));
    CHECK(jc["dma0"]["reads"]["value"] != ja["dma0"]["reads"]["value"]);
}

TEST_CASE("a --set override changes a parameter and is validated like the file", "[cli][config]") {
    auto dir = scratch_dir("set");
    write_file(dir / "p.json", minimal_platform());
    auto r = run_cli("dump-config '" + (dir / "p.json").string() + "' --set memory.read_latency_ns=123");
    REQUIRE(r.exit_code == 0);
    CHECK(ordered_json::parse(r.out)["memory"]["read_latency_ns"] == 123.0);
    auto bad = run_cli("run '" + (dir / "p.json").string() + "' --set devices.0.max_outstanding_read=4");
    CHECK(bad.exit_code == 2);
    CHECK(bad.err.find("/devices/0/max_outstanding_read") != std::string::npos);
    CHECK(bad.err.find("did you mean \"max_outstanding_reads\"") != std::string::npos);
}

TEST_CASE("scenario steps are validated: unknown op, undefined name, missing argument", "[cli][config][scenario]") {
    auto with_scenario = [](ordered_json steps) {
        return [steps](ordered_json& j) {
            j["iommus"] = ordered_json::array({{{"name", "dmar0"}, {"type", "vtd"}}});
            j["topology"]["root_complex"]["iommu"] = "dmar0";
            j["scenario"] = steps;
        };
    };
    require_bad_input(validate_edit(with_scenario(ordered_json::parse(R"([{"op": "atach", "device": "dma0"}])"))),
                      "/scenario/0/op", "did you mean \"attach\"");
    require_bad_input(validate_edit(with_scenario(ordered_json::parse(R"([{"op": "attach", "device": "dma0", "domain": "d0"}])"))),
                      "/scenario/0/domain", "no domain named \"d0\" defined by an earlier step");
    require_bad_input(validate_edit(with_scenario(ordered_json::parse(R"([{"op": "attach", "device": "nic9", "domain": "d0"}])"))),
                      "/scenario/0/device", "no device named \"nic9\"");
    require_bad_input(validate_edit(with_scenario(ordered_json::parse(
                          R"([{"op": "create_ioas", "name": "x"}, {"op": "map", "ioas": "x"}])"))),
                      "/scenario/1", "missing key \"size_bytes\"");
    require_bad_input(validate_edit(with_scenario(ordered_json::parse(R"([{"op": "expect", "stat": "a.b"}])"))),
                      "/scenario/0", "exactly one of eq, ne, lt, le, gt, ge");
    require_bad_input(validate_edit(with_scenario(ordered_json::parse(R"([{"op": "create_ioas", "name": "a", "expect_error": "oops"}])"))),
                      "/scenario/0/expect_error", "expected one of quota_exceeded");
}

TEST_CASE("a failed scenario expectation makes the run exit 1 and is reported", "[cli][scenario]") {
    auto dir = scratch_dir("expect");
    auto p = ordered_json::parse(minimal_platform());
    p["iommus"] = ordered_json::array({{{"name", "dmar0"}, {"type", "vtd"}}});
    p["topology"]["root_complex"]["iommu"] = "dmar0";
    p["scenario"] = ordered_json::parse(R"([
        {"op": "create_pasid_set", "name": "s", "owner": "vm1", "quota": 1},
        {"op": "alloc_pasid", "name": "a", "set": "s", "owner": "vm1", "private_id": 101},
        {"op": "alloc_pasid", "name": "b", "set": "s", "owner": "vm1", "expect_error": "quota_exceeded"},
        {"op": "alloc_pasid", "name": "c", "set": "s", "owner": "vm2", "expect_error": "not_owner"},
        {"op": "expect", "stat": "scenario.steps", "eq": 999}
    ])");
    write_file(dir / "p.json", p.dump());
    auto r = run_cli("run '" + (dir / "p.json").string() + "' --quiet --out '" + (dir / "o").string() + "'");
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("/scenario/4 (expect): scenario.steps = 5 steps, expected eq 999") != std::string::npos);
    CHECK(r.err.find("/scenario/2") == std::string::npos); // the expected errors happened
    auto s = ordered_json::parse(slurp(dir / "o" / "stats.json"));
    CHECK(s["scenario"]["failures"]["value"] == 1);
    CHECK(s["scenario_failures"].size() == 1);
}

TEST_CASE("platforms/PARAMS.md lists exactly what list-params prints", "[cli][docs]") {
    auto r = run_cli("list-params");
    REQUIRE(r.exit_code == 0);
    const std::string doc = slurp(source_path("platforms/PARAMS.md"));
    const auto open = doc.find("```\n"), close = doc.rfind("```");
    REQUIRE(open != std::string::npos);
    INFO("regenerate with scripts/gen-params-doc");
    CHECK(doc.substr(open + 4, close - open - 4) == r.out);
}

TEST_CASE("host memory regions must be aligned, disjoint and inside memory", "[cli][config]") {
    auto with_host = [](ordered_json mem) {
        return [mem](ordered_json& j) {
            j["iommus"] = ordered_json::array({{{"name", "dmar0"}, {"type", "vtd"}}});
            j["topology"]["root_complex"]["iommu"] = "dmar0";
            j["memory"] = {{"size_bytes", "4GiB"}};
            j["host"] = {{"memory", mem}};
        };
    };
    require_bad_input(validate_edit(with_host({{"data_base", 4097}})), "/host/memory/data_base", "4 KiB-aligned");
    require_bad_input(validate_edit(with_host({{"table_base", 0}, {"table_bytes", "1GiB"}, {"data_base", 4096}, {"data_bytes", "1GiB"}})),
                      "/host/memory", "overlap");
    require_bad_input(validate_edit(with_host(ordered_json::object())), "/host/memory/data_base",
                      "does not fit in /memory/size_bytes");
    require_bad_input(validate_edit([](ordered_json& j) {
                          j["iommus"] = ordered_json::array({{{"name", "dmar0"}, {"type", "vtd"}}});
                          j["topology"]["root_complex"]["iommu"] = "dmar0";
                          j["scenario"] = ordered_json::parse(
                              R"([{"op": "create_ioas", "name": "i"}, {"op": "alloc_domain", "name": "d", "ioas": "i", "levels": 7}])");
                      }),
                      "/scenario/1/levels", "expected an integer in [3, 5], got 7");
}

TEST_CASE("sweep runs every combination and collects the chosen stats", "[cli][sweep]") {
    auto dir = scratch_dir("sweep");
    write_file(dir / "p.json", minimal_platform());
    auto r = run_cli("sweep '" + (dir / "p.json").string() +
                     "' --vary devices.0.workloads.0.request_bytes=64,256 --vary seed=1,2 --stat dma0.write_bytes --stat "
                     "dma0.read_latency.p50 --out '" + (dir / "sw").string() + "'");
    REQUIRE(r.exit_code == 0);
    std::istringstream csv(slurp(dir / "sw" / "sweep.csv"));
    std::string line;
    std::getline(csv, line);
    // A histogram is named by its field; every stat's header carries its unit; each row names its folder.
    CHECK(line == "devices.0.workloads.0.request_bytes,seed,dma0.write_bytes [bytes],dma0.read_latency.p50 [ns],exit_code,point");
    int rows = 0;
    while (std::getline(csv, line)) {
        CHECK(line.ends_with(",0,point-" + std::to_string(rows)));
        ++rows;
    }
    CHECK(rows == 4);
    auto bad = run_cli("sweep '" + (dir / "p.json").string() + "' --vary devices.0.workloads.0.request_bytes=64,0");
    CHECK(bad.exit_code == 2);
    CHECK(bad.err.find("/devices/0/workloads/0/request_bytes") != std::string::npos);
}
