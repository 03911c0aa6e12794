// SPDX-License-Identifier: Apache-2.0
// The researcher's workflow through the CLI: expect fields and validation,
// self-describing results folders, diff, sweeps (selectors, units, --jobs,
// manifests and collect).
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "test/support/cli.hpp"

using namespace iommusim::test;
using nlohmann::ordered_json;

namespace {

/// A small VT-d platform with one NIC under strict flushing.
ordered_json nic_platform() {
    return ordered_json::parse(R"({
      "name": "rs", "seed": 4, "duration_us": 200,
      "iommus": [ { "name": "dmar0", "type": "vtd" } ],
      "topology": { "root_complex": { "name": "rc0", "iommu": "dmar0", "root_ports": [ { "name": "rp0" } ] } },
      "devices": [ { "name": "nic0", "type": "nic", "port": "rp0", "ring_entries": 8, "napi_batch": 1 } ],
      "host": { "driver": { "flush": "strict" } }
    })");
}

struct Run {
    CliResult r;
    std::filesystem::path dir;
};

Run run_platform(const ordered_json& p, const std::string& tag, const std::string& extra = "") {
    auto dir = scratch_dir(tag);
    write_file(dir / "p.json", p.dump(2));
    auto r = run_cli("run '" + (dir / "p.json").string() + "' --out '" + (dir / "out").string() + "' " + extra, tag);
    return Run{r, dir};
}

} // namespace

TEST_CASE("an expect on a histogram compares the named field", "[cli][scenario]") {
    auto p = nic_platform();
    p["scenario"] = ordered_json::parse(R"([
        {"op": "expect", "at_us": 190, "stat": "os.invalidation.latency", "field": "p99", "lt": 1},
        {"op": "expect", "stat": "os.invalidation.latency", "field": "count", "gt": 10}
    ])");
    auto x = run_platform(p, "expect-field", "--quiet");
    INFO(x.r.err);
    CHECK(x.r.exit_code == 1);
    // The p99 in ns is what failed, with its unit; the count held.
    CHECK(x.r.err.find("/scenario/0 (expect): os.invalidation.latency.p99 = ") != std::string::npos);
    CHECK(x.r.err.find(" ns, expected lt 1 at 190") != std::string::npos);
    CHECK(x.r.err.find("/scenario/1") == std::string::npos);
}

TEST_CASE("an expect naming an unknown stat or histogram field is bad input with suggestions", "[cli][scenario][config]") {
    auto p = nic_platform();
    p["scenario"] = ordered_json::parse(R"([{"op": "expect", "stat": "os.invalidation.latncy", "field": "p99", "lt": 1}])");
    auto x = run_platform(p, "expect-unknown", "--quiet");
    INFO(x.r.err);
    CHECK(x.r.exit_code == 2);
    CHECK(x.r.err.find("/scenario/0/stat: no stat named \"os.invalidation.latncy\" (did you mean os.invalidation.latency") !=
          std::string::npos);

    p["scenario"] = ordered_json::parse(R"([{"op": "expect", "stat": "os.invalidation.latency", "lt": 50}])");
    x = run_platform(p, "expect-nofield", "--quiet");
    CHECK(x.r.exit_code == 2);
    CHECK(x.r.err.find("is a histogram: name a field (count, min, mean, p50, p90, p99, max)") != std::string::npos);

    p["scenario"] = ordered_json::parse(R"([{"op": "expect", "stat": "os.invalidation.latency", "field": "p95", "lt": 50}])");
    x = run_platform(p, "expect-badfield", "--quiet");
    CHECK(x.r.exit_code == 2);
    CHECK(x.r.err.find("/scenario/0/field: expected one of count, min, mean, p50, p90, p99, max, got \"p95\"") != std::string::npos);

    p["scenario"] = ordered_json::parse(R"([{"op": "expect", "stat": "nic0.rx_packets", "field": "p99", "gt": 0}])");
    x = run_platform(p, "expect-scalarfield", "--quiet");
    CHECK(x.r.exit_code == 2);
    CHECK(x.r.err.find("is a single value, it has no field \"p99\"") != std::string::npos);
}

TEST_CASE("an expect scheduled after the end of the run is bad input", "[cli][scenario][config]") {
    auto p = nic_platform();
    p["scenario"] = ordered_json::parse(R"([{"op": "expect", "at_us": 500, "stat": "nic0.rx_packets", "gt": 0}])");
    auto x = run_platform(p, "expect-late", "--quiet");
    INFO(x.r.err);
    CHECK(x.r.exit_code == 2);
    CHECK(x.r.err.find("/scenario/0/at_us: this expect runs at 500 us or later, after the end of the run (duration_us 200") !=
          std::string::npos);
    // Waits on the same thread count too.
    p["scenario"] = ordered_json::parse(R"([{"op": "wait", "at_us": 150, "us": 100}, {"op": "expect", "stat": "nic0.rx_packets", "gt": 0}])");
    x = run_platform(p, "expect-late-wait", "--quiet");
    CHECK(x.r.exit_code == 2);
    CHECK(x.r.err.find("/scenario/1: this expect runs at 250 us or later") != std::string::npos);
}

TEST_CASE("the summary prints integers as integers and always shows the oracle verdict", "[cli][summary]") {
    auto x = run_platform(nic_platform(), "summary");
    INFO(x.r.out);
    REQUIRE(x.r.exit_code == 0);
    CHECK(x.r.out.find("os.oracle.violations") != std::string::npos); // zero, and still shown
    CHECK(x.r.out.find("simulated_time_ns                            200000 ") != std::string::npos);
    CHECK(x.r.out.find("e+") == std::string::npos); // no exponents
}

TEST_CASE("the summary warns when most packets are dropped", "[cli][summary]") {
    // At 100 Gb/s a packet arrives every 120 ns while a strict unmap costs the
    // host microseconds: most packets find no buffer.
    auto x = run_platform(nic_platform(), "summary-warn");
    INFO(x.r.out);
    REQUIRE(x.r.exit_code == 0);
    CHECK(x.r.out.find("warning: nic0: ") != std::string::npos);
    CHECK(x.r.out.find("% of packets dropped") != std::string::npos);
    auto slow = nic_platform();
    slow["devices"][0]["line_rate_gbps"] = 0.5; // a packet every 24 us: the host keeps up
    auto quiet = run_platform(slow, "summary-nowarn");
    INFO(quiet.r.out);
    CHECK(quiet.r.out.find("warning:") == std::string::npos);
}

TEST_CASE("a results folder holds the resolved platform, the command line and the tool version", "[cli][results]") {
    auto x = run_platform(nic_platform(), "selfdesc", "--quiet --set seed=9");
    REQUIRE(x.r.exit_code == 0);
    const auto out = x.dir / "out";
    auto run = ordered_json::parse(slurp(out / "run.json"));
    CHECK(run["exit_code"] == 0);
    CHECK(run["schema_version"] == 2);
    CHECK(run["seed"] == 9);
    CHECK(run["iommusim_version"].get<std::string>().starts_with("0."));
    const auto cmd = run["command_line"].dump();
    CHECK(cmd.find("\"--set\",\"seed=9\"") != std::string::npos);
    auto stats = ordered_json::parse(slurp(out / "stats.json"));
    CHECK(stats["schema_version"] == 2);
    CHECK(stats["host"]["iommusim_version"] == run["iommusim_version"]);
    // config.json runs as is and gives the same results.
    auto again = run_cli("run '" + (out / "config.json").string() + "' --quiet --out '" + (x.dir / "again").string() + "'");
    REQUIRE(again.exit_code == 0);
    auto s2 = ordered_json::parse(slurp(x.dir / "again" / "stats.json"));
    stats.erase("host");
    s2.erase("host");
    CHECK(stats == s2);
    auto version = run_cli("--version");
    CHECK(version.exit_code == 0);
    CHECK(version.out.find(run["iommusim_version"].get<std::string>()) != std::string::npos);
}

TEST_CASE("a run into a used folder leaves no stale file of an earlier run and keeps other files", "[cli][results]") {
    auto p = nic_platform();
    p["outputs"] = {{"trace", true}};
    auto x = run_platform(p, "stale", "--quiet");
    REQUIRE(x.r.exit_code == 0);
    REQUIRE(std::filesystem::exists(x.dir / "out" / "trace.json"));
    write_file(x.dir / "out" / "notes.txt", "keep me");
    // The same folder again without a trace: the earlier trace.json goes, the notes stay.
    auto again = run_cli("run '" + (x.dir / "p.json").string() + "' --quiet --set outputs.trace=false --out '" +
                         (x.dir / "out").string() + "'");
    REQUIRE(again.exit_code == 0);
    CHECK(!std::filesystem::exists(x.dir / "out" / "trace.json"));
    CHECK(std::filesystem::exists(x.dir / "out" / "stats.json"));
    CHECK(slurp(x.dir / "out" / "notes.txt") == "keep me");
    // A file where the folder should be is an error, not an overwrite.
    write_file(x.dir / "afile", "x");
    auto bad = run_cli("run '" + (x.dir / "p.json").string() + "' --quiet --out '" + (x.dir / "afile").string() + "'");
    CHECK(bad.exit_code == 2);
    CHECK(bad.err.find("exists and is not a folder") != std::string::npos);
}

TEST_CASE("diff lists changed stats with absolute and relative change, by threshold and name", "[cli][diff]") {
    auto a = run_platform(nic_platform(), "diff-a", "--quiet");
    auto b = run_platform(nic_platform(), "diff-b", "--quiet --set host.driver.flush=lazy");
    REQUIRE(a.r.exit_code == 0);
    REQUIRE(b.r.exit_code == 0);
    auto same = run_cli("diff '" + (a.dir / "out").string() + "' '" + (a.dir / "out").string() + "'");
    CHECK(same.exit_code == 0);
    CHECK(same.out.find("(no stat differs)") != std::string::npos);
    auto d = run_cli("diff '" + (a.dir / "out").string() + "' '" + (b.dir / "out" / "stats.json").string() +
                     "' --filter '^nic0\\.rx_(packets|bytes)$'");
    INFO(d.out << d.err);
    CHECK(d.exit_code == 1);
    CHECK(d.out.find("nic0.rx_packets") != std::string::npos);
    CHECK(d.out.find("nic0.rx_bytes") != std::string::npos);
    CHECK(d.out.find("os.") == std::string::npos);
    CHECK(d.out.find(" %") != std::string::npos);
    auto big = run_cli("diff '" + (a.dir / "out").string() + "' '" + (b.dir / "out").string() + "' --filter '^nic0\\.rx_packets$' --threshold 1e9");
    CHECK(big.exit_code == 0);
    auto bad = run_cli("diff '" + (a.dir / "out").string() + "' /nonexistent");
    CHECK(bad.exit_code == 2);
}

TEST_CASE("reset_stats zeroes the stats after a warm-up and rates count from the reset", "[cli][scenario]") {
    auto p = nic_platform();
    p["devices"][0]["line_rate_gbps"] = 10;
    auto whole = run_platform(p, "reset-whole", "--quiet");
    p["scenario"] = ordered_json::parse(R"([{"op": "reset_stats", "at_us": 100}])");
    auto warm = run_platform(p, "reset-warm", "--quiet");
    REQUIRE(whole.r.exit_code == 0);
    REQUIRE(warm.r.exit_code == 0);
    auto a = ordered_json::parse(slurp(whole.dir / "out" / "stats.json"));
    auto b = ordered_json::parse(slurp(warm.dir / "out" / "stats.json"));
    const double pa = a["nic0"]["rx_packets"]["value"].get<double>(), pb = b["nic0"]["rx_packets"]["value"].get<double>();
    INFO("whole run " << pa << " packets, after the reset " << pb);
    CHECK(pb > 0);
    CHECK(pb < pa * 0.75); // only the second half counted
    CHECK(b["scenario"]["stats_reset_at_ns"]["value"] == 100000);
    // The rate is over the 100 us since the reset, not over the whole run.
    const double ra = a["nic0"]["rx_throughput"]["value"].get<double>(), rb = b["nic0"]["rx_throughput"]["value"].get<double>();
    CHECK(rb == Approx(ra).epsilon(0.35));
    CHECK(b["os"]["invalidation"]["latency"]["count"].get<uint64_t>() < a["os"]["invalidation"]["latency"]["count"].get<uint64_t>());
}

TEST_CASE("a strict and a lazy NIC on one VT-d unit each unmap by their own domain's policy", "[cli][host]") {
    auto p = nic_platform();
    p["topology"]["root_complex"]["root_ports"].push_back({{"name", "rp1"}});
    p["devices"].push_back({{"name", "nic1"}, {"type", "nic"}, {"port", "rp1"}, {"ring_entries", 8}, {"napi_batch", 1}});
    p["devices"][0]["flush"] = "strict";
    p["devices"][1]["flush"] = "lazy";
    p["duration_us"] = 400;
    p["host"]["driver"]["flush_queue_entries"] = 16; // drains within the short run
    auto x = run_platform(p, "mixed-flush", "--quiet");
    INFO(x.r.err);
    REQUIRE(x.r.exit_code == 0);
    auto s = ordered_json::parse(slurp(x.dir / "out" / "stats.json"));
    CHECK(s["os"]["iommufd"]["lazy_flushes"]["value"].get<uint64_t>() > 0); // nic1's flush queue drained
    const std::string csv = slurp(x.dir / "out" / "invalidations.csv");
    CHECK(csv.find(",unmap,") != std::string::npos);      // nic0's strict per-unmap flushes
    CHECK(csv.find(",lazy_flush,") != std::string::npos); // nic1's queued ones
    CHECK(s["os"]["oracle"]["violations"]["value"] == 0);
    // Lazy flushing frees nic1's host thread: more packets.
    CHECK(s["nic1"]["rx_packets"]["value"].get<uint64_t>() > s["nic0"]["rx_packets"]["value"].get<uint64_t>());
    // Both default to host.driver.flush: no queued flush at all under strict.
    p["devices"][0].erase("flush");
    p["devices"][1].erase("flush");
    auto y = run_platform(p, "mixed-flush-default", "--quiet");
    REQUIRE(y.r.exit_code == 0);
    CHECK(slurp(y.dir / "out" / "invalidations.csv").find(",lazy_flush,") == std::string::npos);
}

namespace {
/// A sweep over flush policy and ACS lists (an array value), two stats.
std::string sweep_args(const std::filesystem::path& p, const std::filesystem::path& out) {
    return "sweep '" + p.string() + "' --out '" + out.string() +
           "' --vary host.driver.flush=strict,lazy --vary 'topology.root_complex.root_ports.0.acs=[\"SV\",\"RR\"],[]'"
           " --stat nic0.rx_packets --stat os.invalidation.latency.p99 --stat dmar0.wait_latency.count";
}
} // namespace

TEST_CASE("a sweep collects histogram fields under unit-suffixed headers, one row per point with its folder",
          "[cli][sweep]") {
    auto dir = scratch_dir("sweep-serial");
    auto p = nic_platform();
    p["duration_us"] = 100;
    write_file(dir / "p.json", p.dump(2));
    auto r = run_cli(sweep_args(dir / "p.json", dir / "s"));
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const std::string csv = slurp(dir / "s" / "sweep.csv");
    INFO(csv);
    std::istringstream in(csv);
    std::string header, line;
    std::getline(in, header);
    CHECK(header == "host.driver.flush,topology.root_complex.root_ports.0.acs,nic0.rx_packets [packets],"
                    "os.invalidation.latency.p99 [ns],dmar0.wait_latency.count [samples],exit_code,point");
    std::vector<std::string> rows;
    while (std::getline(in, line)) rows.push_back(line);
    REQUIRE(rows.size() == 4);
    CHECK(rows[0].starts_with("strict,\"[\"\"SV\"\",\"\"RR\"\"]\","));
    CHECK(rows[1].starts_with("strict,[],"));
    CHECK(rows[3].starts_with("lazy,[],"));
    CHECK(rows[3].ends_with(",0,point-3"));
    // Every point's folder describes itself.
    auto cfg = ordered_json::parse(slurp(dir / "s" / "point-1" / "config.json"));
    CHECK(cfg["topology"]["root_complex"]["root_ports"][0]["acs"].empty());

    // --jobs: the same bytes.
    auto par = run_cli(sweep_args(dir / "p.json", dir / "par") + " --jobs 3");
    REQUIRE(par.exit_code == 0);
    CHECK(slurp(dir / "par" / "sweep.csv") == csv);

    // A manifest for SLURM (or GNU parallel): each index run on its own, then collected.
    auto emit = run_cli(sweep_args(dir / "p.json", dir / "m") + " --emit slurm");
    INFO(emit.out << emit.err);
    REQUIRE(emit.exit_code == 0);
    const std::string sbatch = slurp(dir / "m" / "sweep.sbatch");
    CHECK(sbatch.find("#SBATCH --array=0-3") != std::string::npos);
    CHECK(sbatch.find("run --manifest '") != std::string::npos);
    CHECK(sbatch.find("--index \"$SLURM_ARRAY_TASK_ID\"") != std::string::npos);
    for (int i = 3; i >= 0; --i) // any order
        REQUIRE(run_cli("run --manifest '" + (dir / "m" / "manifest.json").string() + "' --index " + std::to_string(i)).exit_code == 0);
    auto col = run_cli("sweep collect '" + (dir / "m").string() + "'");
    REQUIRE(col.exit_code == 0);
    CHECK(slurp(dir / "m" / "sweep.csv") == csv);
    auto out_of_range = run_cli("run --manifest '" + (dir / "m" / "manifest.json").string() + "' --index 4");
    CHECK(out_of_range.exit_code == 2);
    CHECK(out_of_range.err.find("out of range: the manifest has 4 points") != std::string::npos);
}

TEST_CASE("a sweep --stat naming an unknown stat or field is bad input before anything runs", "[cli][sweep][config]") {
    auto dir = scratch_dir("sweep-bad");
    write_file(dir / "p.json", nic_platform().dump(2));
    auto r = run_cli("sweep '" + (dir / "p.json").string() + "' --out '" + (dir / "s").string() +
                     "' --vary host.driver.flush=strict,lazy --stat nic0.rx_packts");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("--stat: no stat named \"nic0.rx_packts\" (did you mean nic0.rx_packets") != std::string::npos);
    CHECK(!std::filesystem::exists(dir / "s" / "point-0"));
    r = run_cli("sweep '" + (dir / "p.json").string() + "' --out '" + (dir / "s").string() +
                "' --vary host.driver.flush=strict,lazy --stat os.invalidation.latency");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("is a histogram: name a field") != std::string::npos);
}

TEST_CASE("platforms/STATS.md lists exactly what list-stats prints", "[cli][docs]") {
    auto r = run_cli("list-stats");
    REQUIRE(r.exit_code == 0);
    const std::string doc = slurp(source_path("platforms/STATS.md"));
    const auto table = doc.find("| stat | unit |");
    REQUIRE(table != std::string::npos);
    INFO("regenerate with scripts/gen-stats-doc");
    CHECK(doc.substr(table) == r.out);
    // Every stat has a unit and a description.
    std::istringstream in(r.out);
    std::string line;
    int rows = 0;
    while (std::getline(in, line)) {
        if (!line.starts_with("| `")) continue;
        ++rows;
        INFO(line);
        CHECK(line.find("|  |") == std::string::npos);
    }
    CHECK(rows > 50);
}

TEST_CASE("a workload's trace_file is relative to the platform file, and config.json runs from anywhere", "[cli][config]") {
    auto dir = scratch_dir("tracefile");
    std::filesystem::create_directories(dir / "plat");
    write_file(dir / "plat" / "dma.csv", "time_ns,device,pasid,addr,size,rw\n0,dma0,,0x1000,64,r\n100,dma0,,0x2000,64,w\n");
    auto p = ordered_json::parse(R"({
      "name": "tf", "seed": 1, "duration_us": 5,
      "topology": { "root_complex": { "name": "rc0", "root_ports": [ { "name": "rp0" } ] } },
      "devices": [ { "name": "dma0", "type": "traffic", "port": "rp0",
                     "workloads": [ { "type": "trace", "trace_file": "dma.csv" } ] } ]
    })");
    write_file(dir / "plat" / "p.json", p.dump(2));
    // The CLI runs in the test's working directory, not next to the platform.
    auto r = run_cli("run '" + (dir / "plat" / "p.json").string() + "' --quiet --out '" + (dir / "out").string() + "'");
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    auto s = ordered_json::parse(slurp(dir / "out" / "stats.json"));
    CHECK(s["dma0"]["reads"]["value"] == 1);
    CHECK(s["dma0"]["writes"]["value"] == 1);
    auto cfg = ordered_json::parse(slurp(dir / "out" / "config.json"));
    CHECK(cfg["devices"][0]["workloads"][0]["trace_file"] == (dir / "plat" / "dma.csv").lexically_normal().string());
    auto again = run_cli("run '" + (dir / "out" / "config.json").string() + "' --quiet --out '" + (dir / "again").string() + "'");
    CHECK(again.exit_code == 0);
}

TEST_CASE("validate reports an expect naming an unknown stat", "[cli][config]") {
    auto dir = scratch_dir("validate-expect");
    auto p = nic_platform();
    p["scenario"] = ordered_json::parse(R"([{"op": "expect", "stat": "nic0.rx_pakets", "gt": 0}])");
    write_file(dir / "p.json", p.dump(2));
    auto r = run_cli("validate '" + (dir / "p.json").string() + "'");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("/scenario/0/stat: no stat named \"nic0.rx_pakets\" (did you mean nic0.rx_packets") != std::string::npos);
}
