// SPDX-License-Identifier: Apache-2.0
// Issue 17: no crash on any input, validate == run, nothing lost on
// interruption or write failure. Each case runs the CLI as a user would.
#include <catch2/catch.hpp>
#include <csignal>
#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include "test/support/cli.hpp"

using namespace iommusim::test;
using nlohmann::ordered_json;

namespace {

const char* kMini = R"({
  "name": "mini", "seed": 3, "duration_us": 20,
  "topology": { "root_complex": { "name": "rc0", "root_ports": [ { "name": "rp0" } ] } },
  "devices": [ { "name": "dma0", "type": "traffic", "port": "rp0",
                 "workloads": [ { "type": "sequential", "region_bytes": "64KiB" } ] } ]
})";

std::string write_platform(const std::string& text, const std::string& tag = "rel") {
    auto dir = scratch_dir(tag);
    write_file(dir / "p.json", text);
    return (dir / "p.json").string();
}

/// Exit 2, one line on stderr naming the file and the JSON path.
void require_bad_input(const CliResult& r, const std::string& path, const std::string& what) {
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("p.json: " + path + ": ") != std::string::npos);
    CHECK(r.err.find(what) != std::string::npos);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
}

} // namespace

TEST_CASE("a number overflowing a double is bad input in every subcommand", "[cli][config][regression]") {
    const std::string f = write_platform(R"({"name":"x","seed":1e400})");
    for (const char* cmd : {"validate", "run", "dump-config", "topology"})
        require_bad_input(run_cli(std::string(cmd) + " '" + f + "'"), "/seed", "number overflow");
    const std::string mini = write_platform(kMini);
    require_bad_input(run_cli("run '" + mini + "' --set duration_us=1e400"), "/duration_us", "number overflow");
    require_bad_input(run_cli("dump-config '" + mini + "' --set memory.read_latency_ns=-1e999"), "/memory/read_latency_ns",
                      "number overflow");
    require_bad_input(run_cli("sweep '" + mini + "' --vary duration_us=10,1e400 --out '" + scratch_dir("sw").string() + "'"),
                      "/duration_us", "number overflow");
}

TEST_CASE("a document nested 150,000 deep is bad input, not a stack overflow", "[cli][config][regression]") {
    const std::string f =
        write_platform("{\"name\":\"x\",\"memory\":" + std::string(150000, '[') + std::string(150000, ']') + "}");
    for (const char* cmd : {"validate", "run"}) {
        auto r = run_cli(std::string(cmd) + " '" + f + "'");
        INFO(r.err);
        CHECK(r.exit_code == 2);
        CHECK(r.err.find("p.json: /memory/0/0/0") != std::string::npos);
        CHECK(r.err.find("nested deeper than 64") != std::string::npos);
    }
    // --set cannot build one either.
    std::string deep = "memory";
    for (int i = 0; i < 70; ++i) deep += ".a";
    auto r = run_cli("validate '" + write_platform(kMini) + "' --set " + deep + "=1");
    CHECK(r.exit_code == 2);
}

TEST_CASE("duplicate keys are bad input with the path of the second one", "[cli][config][regression]") {
    ordered_json j = ordered_json::parse(kMini);
    std::string text = j.dump();
    text.insert(text.size() - 1, ",\"seed\":4");
    require_bad_input(run_cli("validate '" + write_platform(text) + "'"), "/seed", "duplicate key \"seed\"");
}

TEST_CASE("a platform file that is not a regular file is bad input", "[cli][config][regression]") {
    auto r = run_cli("validate /dev/zero");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("not a regular file") != std::string::npos);
    r = run_cli("validate '" + scratch_dir("dir").string() + "'");
    CHECK(r.exit_code == 2);
}

namespace {
ordered_json shipped(const std::string& name) { return ordered_json::parse(slurp(source_path("platforms/" + name + ".json"))); }

/// validate and run both reject the document with exit 2 and the same path.
void require_rejected_by_validate_and_run(const ordered_json& doc, const std::string& path, const std::string& what) {
    const std::string f = write_platform(doc.dump(2));
    {
        INFO("validate");
        require_bad_input(run_cli("validate '" + f + "'"), path, what);
    }
    {
        INFO("run");
        auto r = run_cli("run '" + f + "' --quiet --out '" + scratch_dir("vr").string() + "'");
        require_bad_input(r, path, what);
    }
}
} // namespace

TEST_CASE("validate rejects a workload function beyond the device's functions, as run does", "[cli][config][regression]") {
    auto j = shipped("sriov-nic-pasid");
    j["devices"][0]["workloads"][0]["function"] = 9;
    require_rejected_by_validate_and_run(j, "/devices/0", "workload function 9 but the device has 5 functions");
}

TEST_CASE("validate rejects atc_entries that are not a multiple of atc_ways", "[cli][config][regression]") {
    auto j = shipped("vtd-ats");
    j["devices"][0]["atc_entries"] = 63;
    require_rejected_by_validate_and_run(j, "/devices/0/atc_entries", "entries must be a multiple of ways");
}

TEST_CASE("validate rejects region_bytes smaller than request_bytes", "[cli][config][regression]") {
    auto j = ordered_json::parse(kMini);
    j["devices"][0]["workloads"][0]["region_bytes"] = 64;
    j["devices"][0]["workloads"][0]["request_bytes"] = 128;
    require_rejected_by_validate_and_run(j, "/devices/0/workloads/0", "region_bytes: expected >= request_bytes");
}

TEST_CASE("validate rejects a device using PASIDs on a unit without PASID support", "[cli][config][regression]") {
    auto j = shipped("vtd-ats");
    j["iommus"][0]["pasid"] = false;
    require_rejected_by_validate_and_run(j, "/devices/0/pasid", "has no PASID support");
}

TEST_CASE("validate rejects a PASID beyond the unit's pasid_bits", "[cli][config][regression]") {
    auto j = shipped("vtd-sva-scenario");
    j["iommus"][0]["pasid_bits"] = 8;
    j["scenario"].push_back({{"op", "attach"}, {"device", "acc0"}, {"domain", "sva0"}, {"pasid_value", 1000}});
    const std::string f = write_platform(j.dump(2));
    auto r = run_cli("validate '" + f + "'");
    INFO(r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("does not fit IOMMU \"dmar0\"'s pasid_bits (8)") != std::string::npos);
    auto k = shipped("vtd-ats");
    k["iommus"][0]["pasid_bits"] = 2; // the NIC's PASID 5 needs 3 bits
    require_rejected_by_validate_and_run(k, "/devices/0/pasid", "does not fit IOMMU \"dmar0\"'s pasid_bits (2)");
}

TEST_CASE("validate rejects a dangling or out-of-range target BAR", "[cli][config][regression]") {
    auto j = shipped("p2p-switch-acs-on");
    // Find the first workload with a target, then break it two ways.
    for (size_t i = 0; i < j["devices"].size(); ++i)
        for (size_t k = 0; k < j["devices"][i]["workloads"].size(); ++k)
            if (j["devices"][i]["workloads"][k].contains("target")) {
                const std::string tp = "/devices/" + std::to_string(i) + "/workloads/" + std::to_string(k) + "/target";
                auto dangling = j;
                dangling["devices"][i]["workloads"][k]["target"]["bar_of"] = "nosuch";
                require_rejected_by_validate_and_run(dangling, tp + "/bar_of", "no device named \"nosuch\"");
                auto range = j;
                range["devices"][i]["workloads"][k]["target"]["bar"] = 5;
                require_rejected_by_validate_and_run(range, tp + "/bar", "BAR(s)");
                return;
            }
    FAIL("no workload with a target in p2p-switch-acs-on");
}

TEST_CASE("a scenario check after the end of the run is rejected, one that never ran fails the run", "[cli][config][regression]") {
    auto j = shipped("vtd-sva-scenario");
    j["scenario"].push_back({{"op", "expect"}, {"at_us", 1e6}, {"stat", "acc0.reads"}, {"gt", 0}});
    require_rejected_by_validate_and_run(j, "/scenario/" + std::to_string(j["scenario"].size() - 1) + "/at_us",
                                         "after the end of the run");
    auto k = shipped("vtd-sva-scenario");
    // Waits that statically outlast the run are bad input already (researcher_test); here the
    // wait ends 0.1 ns before the end and the invalidation after it takes longer: only the run
    // can tell that the expect never runs.
    k["scenario"].push_back({{"op", "wait"}, {"us", 49.9999}});
    k["scenario"].push_back({{"op", "invalidate"}, {"domain", "sva0"}});
    k["scenario"].push_back({{"op", "expect"}, {"stat", "acc0.reads"}, {"gt", 0}});
    const std::string f = write_platform(k.dump(2));
    auto r = run_cli("run '" + f + "' --quiet --out '" + scratch_dir("never").string() + "'");
    INFO(r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("(expect): never ran") != std::string::npos);
}

namespace {
/// Starts the CLI, sends `sig` after `delay_ms`, and waits for it.
CliResult run_and_signal(const std::vector<std::string>& args, int sig, int delay_ms, const std::string& tag) {
    auto dir = scratch_dir(tag);
    const std::string out = (dir / "stdout.txt").string(), err = (dir / "stderr.txt").string();
    pid_t pid = fork();
    if (pid == 0) {
        std::freopen(out.c_str(), "w", stdout);
        std::freopen(err.c_str(), "w", stderr);
        std::vector<char*> argv;
        std::string cli = IOMMUSIM_CLI_PATH;
        argv.push_back(cli.data());
        std::vector<std::string> copy = args;
        for (auto& a : copy) argv.push_back(a.data());
        argv.push_back(nullptr);
        setenv("SYSC_DISABLE_COPYRIGHT_MESSAGE", "1", 1);
        execv(cli.c_str(), argv.data());
        _exit(127);
    }
    usleep(static_cast<useconds_t>(delay_ms) * 1000);
    kill(pid, sig);
    int st = 0;
    waitpid(pid, &st, 0);
    return CliResult{WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st), slurp(out), slurp(err)};
}

/// A long run of the strict NIC platform (minutes of wall time if not stopped).
std::string long_platform() {
    auto j = shipped("vtd-nic-strict");
    j["duration_us"] = 1e7;
    return write_platform(j.dump(2), "long");
}
} // namespace

TEST_CASE("SIGINT and SIGTERM stop a run at the simulated time reached and write everything", "[cli][regression]") {
    for (auto [sig, code] : {std::pair{SIGINT, 130}, std::pair{SIGTERM, 143}}) {
        const auto out = scratch_dir("sig" + std::to_string(sig)) / "res";
        auto r = run_and_signal({"run", long_platform(), "--quiet", "--out", out.string()}, sig, 1500,
                                "sig" + std::to_string(sig));
        INFO("signal " << sig << " stderr: " << r.err);
        CHECK(r.exit_code == code);
        CHECK(r.err.find("interrupted by signal") != std::string::npos);
        REQUIRE(std::filesystem::exists(out / "stats.json"));
        const auto stats = ordered_json::parse(slurp(out / "stats.json"));
        CHECK(stats["interrupted"] == true);
        const double t = stats["simulated_time_ns"]["value"].get<double>();
        CHECK(t < 1e10);
        CHECK(std::filesystem::exists(out / "invalidations.csv"));
        CHECK(std::filesystem::exists(out / "violations.csv"));
    }
}

TEST_CASE("SIGTERM to a sweep --jobs reaches its running points, starts no more and still writes sweep.csv",
          "[cli][sweep][regression]") {
    // kill(1) signals the sweep alone (no terminal process group): before, the points
    // went on running orphaned and no sweep.csv was written.
    const auto out = scratch_dir("sweepsig") / "s";
    auto r = run_and_signal({"sweep", long_platform(), "--out", out.string(), "--vary", "seed=1,2,3,4,5",
                             "--stat", "simulated_time_ns", "--jobs", "2"},
                            SIGTERM, 1500, "sweepsig");
    INFO(r.err);
    CHECK(r.exit_code == 143);
    CHECK(r.err.find("sweep interrupted by signal 15: 2 running point(s) write their results, 3 not started") !=
          std::string::npos);
    REQUIRE(std::filesystem::exists(out / "sweep.csv"));
    const std::string csv = slurp(out / "sweep.csv");
    // Two points were stopped by the forwarded signal (exit 143, their partial results
    // collected); three never started (empty exit code).
    size_t interrupted = 0, pos = 0;
    while ((pos = csv.find(",143,", pos)) != std::string::npos) ++interrupted, ++pos;
    CHECK(interrupted == 2);
    for (int i = 0; i < 2; ++i) {
        const auto stats = ordered_json::parse(slurp(out / ("point-" + std::to_string(i)) / "stats.json"));
        CHECK(stats["interrupted"] == true);
    }
    CHECK(!std::filesystem::exists(out / "point-4" / "stats.json"));
    // Whole numbers are written as integers, also when computed in floating point.
    CHECK(csv.find(".0,143,") == std::string::npos);
}

TEST_CASE("a write failure exits 1 naming the file", "[cli][regression]") {
    const std::string f = write_platform(slurp(source_path("platforms/vtd-ats.json")));
    const auto dir = scratch_dir("full") / "res";
    std::filesystem::create_directories(dir);
    std::filesystem::remove(dir / "stats.json");
    std::filesystem::create_symlink("/dev/full", dir / "stats.json");
    auto r = run_cli("run '" + f + "' --quiet --set duration_us=50 --out '" + dir.string() + "'", "full");
    INFO(r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("stats.json: write failed") != std::string::npos);
    // An output folder that cannot be created (its parent is a file).
    const auto file = scratch_dir("notdir") / "file";
    write_file(file, "x");
    r = run_cli("run '" + f + "' --quiet --set duration_us=50 --out '" + (file / "res").string() + "'", "notdir");
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("cannot create the output folder") != std::string::npos);
    // stdout to a full device.
    const int st = std::system(("SYSC_DISABLE_COPYRIGHT_MESSAGE=1 '" + std::string(IOMMUSIM_CLI_PATH) + "' validate '" + f +
                                "' >/dev/full 2>/dev/null").c_str());
    CHECK(WIFEXITED(st));
    CHECK(WEXITSTATUS(st) == 1);
}

TEST_CASE("a 300-character platform name runs and writes into a sanitized folder", "[cli][regression]") {
    auto j = ordered_json::parse(kMini);
    j["name"] = std::string(150, 'n') + std::string(150, ':');
    const std::string f = write_platform(j.dump(2), "longname");
    const auto cwd = scratch_dir("longname-cwd");
    const std::string cmd = "cd '" + cwd.string() + "' && SYSC_DISABLE_COPYRIGHT_MESSAGE=1 '" + IOMMUSIM_CLI_PATH +
                            "' run '" + f + "' --quiet";
    const int st = std::system(cmd.c_str());
    CHECK(WIFEXITED(st));
    CHECK(WEXITSTATUS(st) == 0);
    size_t folders = 0;
    for (const auto& e : std::filesystem::directory_iterator(cwd / "results")) {
        ++folders;
        CHECK(e.path().filename().string().size() <= 100);
        CHECK(e.path().filename().string().rfind(std::string(80, 'n'), 0) == 0);
        CHECK(std::filesystem::exists(e.path() / "stats.json"));
    }
    CHECK(folders == 1);
}

TEST_CASE("caches larger than the machine can hold are rejected before allocation", "[cli][config][regression]") {
    auto j = shipped("vtd-ats");
    const ordered_json big = {{"entries", 1 << 24}, {"ways", 16}};
    for (const char* c : {"iotlb", "context_cache", "pasid_cache", "s1_walk_cache", "s2_walk_cache"}) j["iommus"][0][c] = big;
    // 13 caches (walk caches per level 2..6) x 2^24 lines x ~96 bytes = 20 GiB.
    const double need = 13.0 * (1 << 24) * 96;
    const double budget = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGE_SIZE)) / 2;
    if (need <= budget) SUCCEED("this machine has room for 20 GiB of caches");
    else require_bad_input(run_cli("validate '" + write_platform(j.dump(2)) + "'"), "/iommus/0", "more than half of this machine's");
}

TEST_CASE("a trace_file that is a device is rejected", "[cli][config][regression]") {
    auto j = ordered_json::parse(kMini);
    j["devices"][0]["workloads"][0] = {{"type", "trace"}, {"trace_file", "/dev/zero"}};
    require_bad_input(run_cli("validate '" + write_platform(j.dump(2)) + "'"), "/devices/0/workloads/0/trace_file",
                      "not a regular file");
}

TEST_CASE("a zero-cost poll loop is rejected, every other latency at zero still completes", "[cli][config][regression]") {
    auto j = shipped("vtd-nic-strict");
    j["host"]["cpu"] = {{"mmio_write_ns", 0}, {"mmio_read_ns", 0}, {"mem_write_ns", 0}, {"mem_read_ns", 0},
                        {"poll_interval_ns", 0}, {"interrupt_ns", 0}, {"call_overhead_ns", 0}};
    require_bad_input(run_cli("validate '" + write_platform(j.dump(2)) + "'"), "/host/cpu/poll_interval_ns",
                      "expected a number in [1,");
    j["host"]["cpu"]["poll_interval_ns"] = 1; // the documented minimum
    j["duration_us"] = 50;
    j["memory"] = {{"read_latency_ns", 0}, {"write_latency_ns", 0}, {"bandwidth_gbps", 0}};
    for (const char* k : {"table_read_ns", "mmio_access_ns", "descriptor_fetch_ns", "per_descriptor_ns",
                          "per_entry_invalidate_ns", "ats_message_send_ns", "status_write_ns", "pipeline_ns"})
        j["iommus"][0][k] = 0;
    auto r = run_cli("run '" + write_platform(j.dump(2), "zero") + "' --quiet --out '" + scratch_dir("zero-out").string() + "'",
                     "zero");
    INFO(r.err);
    CHECK(r.exit_code == 0);
}

TEST_CASE("the --seed option reseeds random-replacement caches", "[cli][regression]") {
    // The workload's own seed is fixed, so only the IOTLB's victim choice can
    // depend on --seed: LRU gives the same hits for every seed, random does not.
    auto hits = [](const std::string& replacement, int seed) {
        auto j = shipped("vtd-sva-scenario");
        j["devices"][0]["workloads"][0]["seed"] = 5;
        j["iommus"][0]["iotlb"] = {{"entries", 16}, {"ways", 16}, {"replacement", replacement}};
        const auto out = scratch_dir("seed-" + replacement + std::to_string(seed)) / "out";
        auto r = run_cli("run '" + write_platform(j.dump(2), "seed") + "' --quiet --seed " + std::to_string(seed) +
                             " --out '" + out.string() + "'",
                         "seed");
        REQUIRE(r.exit_code == 0);
        return ordered_json::parse(slurp(out / "stats.json"))["dmar0"]["translation"]["iotlb"]["hits"]["value"].get<uint64_t>();
    };
    CHECK(hits("lru", 1) == hits("lru", 2));
    CHECK(hits("random", 1) != hits("random", 2));
}
