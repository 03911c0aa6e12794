// SPDX-License-Identifier: Apache-2.0
// The scenario's bulk form: "repeat": N with {i...} templates, so a million
// PASIDs is two steps; checked at parse time at both ends of the range.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "sim/scenario.hpp"
#include "test/support/cli.hpp"

using namespace iommusim::test;
using nlohmann::ordered_json;

namespace {
/// One VT-d unit and a PASID-capable traffic device with 4 functions (PF + 3 VFs).
ordered_json platform(const ordered_json& steps) {
    auto p = ordered_json::parse(R"({
      "name": "repeat", "seed": 1, "duration_us": 20000,
      "iommus": [ { "name": "dmar0", "type": "vtd" } ],
      "topology": { "root_complex": { "name": "rc0", "iommu": "dmar0", "root_ports": [ { "name": "rp0" } ] } },
      "devices": [ { "name": "acc", "type": "traffic", "port": "rp0", "pasid": { "max_width": 20 },
                     "functions": [ { "function": 0, "bars": [ { "size_bytes": "1MiB" } ],
                                      "sriov": { "num_vfs": 3, "vf_bar_bytes": "16KiB" } } ],
                     "workloads": [] } ]
    })");
    p["scenario"] = steps;
    return p;
}
CliResult run(const std::string& tag, const ordered_json& steps, const std::string& cmd = "run --quiet") {
    auto dir = scratch_dir(tag);
    write_file(dir / "p.json", platform(steps).dump());
    const bool runs = cmd.rfind("run", 0) == 0;
    return run_cli(cmd + " '" + (dir / "p.json").string() + "'" + (runs ? " --out '" + (dir / "o").string() + "'" : ""), tag);
}
} // namespace

TEST_CASE("a repeated step's templates give the iteration number, modulo, quotient, sum and product", "[unit][scenario]") {
    using iommusim::sim::instantiate;
    CHECK(instantiate("p{i}", 7) == "p7");
    CHECK(instantiate("plain", 7) == "plain");
    CHECK(instantiate("{i/256+1}", 1000) == "4");
    CHECK(instantiate("f{i%3}-{i*2}", 10) == "f1-20");
    CHECK_THROWS_AS(instantiate("{j}", 1), std::invalid_argument);
    CHECK_THROWS_AS(instantiate("{i%0}", 1), std::invalid_argument);
    CHECK_THROWS_AS(instantiate("{i-1}", 1), std::invalid_argument);
    CHECK_THROWS_AS(instantiate("p{i", 1), std::invalid_argument);
}

TEST_CASE("repeated alloc and attach steps attach every PASID to the function its template names", "[cli][scenario]") {
    // 300 PASIDs, 75 per function; then attaching them again is refused as busy
    // every time, and detaching each from its own function succeeds.
    const auto steps = ordered_json::parse(R"([
        {"op": "create_ioas", "name": "io"},
        {"op": "alloc_domain", "name": "d", "ioas": "io"},
        {"op": "create_pasid_set", "name": "s", "owner": "app", "quota": 300},
        {"op": "alloc_pasid", "repeat": 300, "name": "p{i}", "set": "s", "owner": "app"},
        {"op": "attach", "repeat": 300, "device": "acc", "function": "{i/75}", "pasid": "p{i}", "domain": "d", "owner": "app"},
        {"op": "attach", "repeat": 300, "device": "acc", "function": "{i/75}", "pasid": "p{i}", "domain": "d", "owner": "app", "expect_error": "busy"},
        {"op": "detach", "repeat": 300, "device": "acc", "function": "{i/75}", "pasid": "p{i}", "owner": "app"},
        {"op": "alloc_pasid", "name": "extra", "set": "s", "owner": "app", "expect_error": "quota_exceeded"},
        {"op": "map", "repeat": 16, "ioas": "io", "name": "m{i}", "iova": "{i*65536+1048576}", "size_bytes": "{i%2*4096+4096}"},
        {"op": "unmap", "repeat": 16, "ioas": "io", "mapping": "m{i}"},
        {"op": "expect", "stat": "scenario.failures", "eq": 0},
        {"op": "expect", "stat": "os.iommufd.maps", "eq": 16},
        {"op": "expect", "stat": "os.iommufd.mapped_bytes", "eq": 98304}
    ])");
    const auto r = run("repeat-ok", steps);
    INFO("stderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    const auto s = ordered_json::parse(slurp(scratch_dir("repeat-ok") / "o" / "stats.json"));
    CHECK(s["scenario"]["steps"]["value"] == 3 + 300 * 4 + 1 + 16 * 2 + 3);
}

TEST_CASE("a failing repeated step counts every failing iteration and names the first", "[cli][scenario]") {
    // (function 1, PASID p) is attached first; attaching p to functions 0..3
    // collides only at iteration 1: each (function, PASID) is its own attachment.
    // (The PASID is allocated to its owner first: a never-allocated pasid_value is
    // refused, issue 18.)
    const auto steps = ordered_json::parse(R"([
        {"op": "create_ioas", "name": "io"},
        {"op": "alloc_domain", "name": "d", "ioas": "io"},
        {"op": "create_pasid_set", "name": "s", "owner": "app", "quota": 4},
        {"op": "alloc_pasid", "name": "p", "set": "s", "owner": "app"},
        {"op": "attach", "device": "acc", "function": 1, "pasid": "p", "domain": "d", "owner": "app"},
        {"op": "attach", "repeat": 4, "device": "acc", "function": "{i}", "pasid": "p", "domain": "d", "owner": "app"}
    ])");
    const auto r = run("repeat-fail", steps);
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("/scenario/5 (attach): busy") != std::string::npos);
    CHECK(r.err.find("(iteration 1)") != std::string::npos);
    const auto s = ordered_json::parse(slurp(scratch_dir("repeat-fail") / "o" / "stats.json"));
    CHECK(s["scenario"]["failures"]["value"] == 1);
}

TEST_CASE("repeated steps are validated at both ends: names, templates, references and ops", "[cli][config][scenario]") {
    auto bad = [](const std::string& tag, const char* steps, const std::string& path, const std::string& what) {
        const auto r = run(tag, ordered_json::parse(steps), "validate");
        INFO("stderr: " << r.err);
        CHECK(r.exit_code == 2);
        CHECK(r.err.find(path + ": ") != std::string::npos);
        CHECK(r.err.find(what) != std::string::npos);
    };
    bad("rep-name", R"([{"op": "create_ioas", "name": "io", "repeat": 2}])", "/scenario/0/name", "expected a name with one {i}");
    bad("rep-norepeat", R"([{"op": "create_ioas", "name": "io{i}"}])", "/scenario/0/name", "expected no {i} template without \"repeat\"");
    bad("rep-expect", R"([{"op": "expect", "stat": "scenario.steps", "eq": 1, "repeat": 2}])", "/scenario/0/repeat",
        "expected no repeat on expect");
    bad("rep-syntax", R"([{"op": "create_ioas", "name": "io"}, {"op": "map", "ioas": "io", "size_bytes": "{i-1}", "repeat": 2}])",
        "/scenario/1/size_bytes", "expected one of % / + * after i");
    // p{i+1} at the last iteration names p3, beyond the family p0..p2.
    bad("rep-range",
        R"([{"op": "create_ioas", "name": "io"}, {"op": "map", "ioas": "io", "size_bytes": 4096, "name": "m{i}", "repeat": 3},
            {"op": "unmap", "ioas": "io", "mapping": "m{i+1}", "repeat": 3}])",
        "/scenario/2/mapping", "no mapping named \"m3\"");
    bad("rep-device", R"([{"op": "create_ioas", "name": "io"}, {"op": "alloc_domain", "name": "d", "ioas": "io"},
            {"op": "attach", "device": "acc{i}", "domain": "d", "repeat": 2}])",
        "/scenario/2/device", "no device named \"acc0\"");
    bad("rep-function", R"([{"op": "create_ioas", "name": "io"}, {"op": "alloc_domain", "name": "d", "ioas": "io"},
            {"op": "attach", "device": "acc", "function": "{i*300}", "domain": "d", "repeat": 2}])",
        "/scenario/2/function", "expected an integer in [0, 255]");
}

TEST_CASE("dump-config keeps a repeated step's count and templates", "[cli][config][scenario]") {
    const auto steps = ordered_json::parse(R"([{"op": "create_ioas", "name": "io"},
        {"op": "map", "ioas": "io", "size_bytes": "{i%2*4096+4096}", "name": "m{i}", "repeat": 5}])");
    const auto r = run("rep-dump", steps, "dump-config");
    INFO("stderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    const auto j = ordered_json::parse(r.out);
    CHECK(j["scenario"][1]["repeat"] == 5);
    CHECK(j["scenario"][1]["name"] == "m{i}");
    CHECK(j["scenario"][1]["size_bytes"] == "{i%2*4096+4096}");
}

TEST_CASE("the scale platforms are valid and the 4,096-endpoint one runs its scenario", "[cli][scale]") {
    // platforms/scale/pasids-1m.json (a million PASIDs over 256 functions) takes
    // minutes: checked here only as input; test/bench/README.md has its figures.
    const auto big = run_cli("validate '" + source_path("platforms/scale/pasids-1m.json") + "'", "scale-1m");
    INFO("stderr: " << big.err);
    CHECK(big.exit_code == 0);
    auto dir = scratch_dir("scale-4096");
    const auto r = run_cli("run --quiet --out '" + dir.string() + "' '" + source_path("platforms/scale/endpoints-4096.json") + "'",
                           "scale-4096");
    INFO("stderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    const auto s = ordered_json::parse(slurp(dir / "stats.json"));
    CHECK(s["scenario"]["failures"]["value"] == 0);
}
