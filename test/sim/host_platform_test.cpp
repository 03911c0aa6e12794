// SPDX-License-Identifier: Apache-2.0
// End-to-end host driver scenarios: a NIC on ATS behind VT-d, its host
// driver mapping and unmapping a buffer per packet, the DMA safety oracle
// checking every DMA. Runs the CLI as a user would.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <sstream>

#include "test/support/cli.hpp"
#include "test/support/stats.hpp"

using namespace iommusim::test;
using nlohmann::ordered_json;

namespace {

ordered_json nic_platform(const std::string& flush, int nics = 1) {
    ordered_json p = ordered_json::parse(R"({
      "name": "nic-test", "seed": 5, "duration_us": 600,
      "iommus": [ { "name": "dmar0", "type": "vtd" } ],
      "topology": { "root_complex": { "name": "rc0", "iommu": "dmar0", "root_ports": [] } },
      "devices": [],
      "host": { "driver": { "flush": "strict" } }
    })");
    p["host"]["driver"]["flush"] = flush;
    for (int i = 0; i < nics; ++i) {
        const std::string n = std::to_string(i);
        p["topology"]["root_complex"]["root_ports"].push_back({{"name", "rp" + n}});
        p["devices"].push_back({{"name", "nic" + n}, {"type", "nic"}, {"port", "rp" + n}, {"ring_entries", 8}, {"napi_batch", 1}});
    }
    return p;
}

/// Runs the platform; returns stats.json and leaves invalidations.csv in `dir`.
ordered_json run(const ordered_json& platform, const std::string& tag, std::filesystem::path* dir_out = nullptr,
                 const std::string& extra = "") {
    auto dir = scratch_dir(tag);
    write_file(dir / "p.json", platform.dump(2));
    auto r = run_cli("run '" + (dir / "p.json").string() + "' --quiet --out '" + (dir / "out").string() + "' " + extra, tag);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    if (dir_out) *dir_out = dir / "out";
    return ordered_json::parse(slurp(dir / "out" / "stats.json"));
}

uint64_t value(const ordered_json& s, std::initializer_list<const char*> path) { return stat_value(s, path); }

} // namespace

TEST_CASE("a correct strict driver under per-packet map/unmap churn has zero safety violations", "[sim][host][oracle]") {
    auto s = run(nic_platform("strict"), "strict");
    CHECK(value(s, {"os", "oracle", "checked"}) > 500);
    CHECK(value(s, {"os", "oracle", "violations"}) == 0);
    CHECK(value(s, {"os", "invalidation", "count"}) > 100);
    CHECK(value(s, {"nic0", "fn0", "invalidations_completed"}) > 100);
}

TEST_CASE("a correct lazy driver has zero safety violations", "[sim][host][oracle]") {
    auto s = run(nic_platform("lazy"), "lazy", nullptr, "--set host.driver.flush_queue_entries=32");
    CHECK(value(s, {"os", "oracle", "checked"}) > 1000);
    CHECK(value(s, {"os", "oracle", "violations"}) == 0);
    CHECK(value(s, {"os", "iommufd", "lazy_flushes"}) > 0);
}

TEST_CASE("a driver that skips device-TLB invalidation produces violations served by the ATC", "[sim][host][oracle]") {
    std::filesystem::path out;
    auto s = run(nic_platform("strict"), "broken", &out, "--set host.driver.skip_devtlb_invalidation=true");
    CHECK(value(s, {"os", "oracle", "violations"}) > 0);
    CHECK(value(s, {"os", "dmar0", "devtlb_invalidations"}) == 0);
    // Each violation is listed with time, device, PASID, IOVA and the cache that served it.
    std::istringstream csv(slurp(out / "violations.csv"));
    std::string line;
    std::getline(csv, line);
    CHECK(line == "time_ns,device,pasid,iova,pa,served_by,reason");
    REQUIRE(std::getline(csv, line));
    CHECK(line.find(",atc,translation used after its invalidation completed") != std::string::npos);
    CHECK(line.find("01:00.0") != std::string::npos);
}

TEST_CASE("invalidation phase timestamps are ordered and add up to the end-to-end latency", "[sim][host][latency]") {
    std::filesystem::path out;
    auto s = run(nic_platform("strict"), "phases", &out);
    std::istringstream csv(slurp(out / "invalidations.csv"));
    std::string line;
    std::getline(csv, line);
    CHECK(line.rfind("id,cause,iommu,domain,iova,size,descriptors,devtlb_requests,ranged,error,submitted_ns", 0) == 0);
    int rows = 0;
    while (std::getline(csv, line)) {
        std::vector<std::string> f;
        std::stringstream ls(line);
        for (std::string x; std::getline(ls, x, ',');) f.push_back(x);
        REQUIRE(f.size() == 18);
        if (f[1] != "unmap") continue;
        std::vector<double> t;
        for (int i = 10; i <= 16; ++i) {
            INFO("row " << line << " column " << i);
            REQUIRE(!f[i].empty()); // every phase present for an ATS device's flush
            t.push_back(std::stod(f[i]));
        }
        for (size_t i = 1; i < t.size(); ++i) CHECK(t[i] >= t[i - 1]);
        double sum = 0;
        for (size_t i = 1; i < t.size(); ++i) sum += t[i] - t[i - 1];
        CHECK(sum == Approx(std::stod(f[17])).margin(0.01));
        ++rows;
    }
    CHECK(rows > 100);
    CHECK(s["os"]["invalidation"]["phase_devtlb_round_trip"]["count"].get<uint64_t>() > 100);
}

TEST_CASE("two host threads contending on one invalidation queue see higher latency than one", "[sim][host][latency]") {
    // Slow device-TLB invalidation makes each thread spend most of its time
    // waiting, so their submissions overlap on the one queue.
    auto slow = [](ordered_json p) {
        for (auto& d : p["devices"]) d["invalidation_processing_ns"] = 5000;
        return p;
    };
    auto one = run(slow(nic_platform("strict", 1)), "one");
    auto two = run(slow(nic_platform("strict", 2)), "two");
    const double l1 = one["os"]["invalidation"]["latency"]["mean"].get<double>();
    const double l2 = two["os"]["invalidation"]["latency"]["mean"].get<double>();
    INFO("one thread " << l1 << " ns, two threads " << l2 << " ns");
    CHECK(l2 > l1 * 1.1);
    CHECK(value(two, {"os", "oracle", "violations"}) == 0);
}

TEST_CASE("lazy flushing delivers more NIC throughput than strict", "[sim][host]") {
    auto strict = run(nic_platform("strict"), "tp-strict", nullptr, "--set devices.0.ring_entries=256 --set devices.0.napi_batch=64");
    auto lazy = run(nic_platform("lazy"), "tp-lazy", nullptr, "--set devices.0.ring_entries=256 --set devices.0.napi_batch=64");
    const uint64_t bs = value(strict, {"nic0", "rx_bytes"}), bl = value(lazy, {"nic0", "rx_bytes"});
    INFO("strict " << bs << " B, lazy " << bl << " B");
    CHECK(bl > bs * 3 / 2);
}

namespace {
ordered_json scenario_platform(ordered_json steps) {
    ordered_json p = ordered_json::parse(R"({
      "name": "scn", "seed": 2, "duration_us": 200,
      "iommus": [ { "name": "dmar0", "type": "vtd" } ],
      "topology": { "root_complex": { "name": "rc0", "iommu": "dmar0", "root_ports": [ { "name": "rp0" } ] } },
      "devices": [ { "name": "acc0", "type": "traffic", "port": "rp0", "start_at_us": 30,
                     "workloads": [
                       { "type": "random_uniform", "base": "0x40000000", "region_bytes": "64KiB", "request_bytes": 64,
                         "pasids": [ 7 ], "rate_gbps": 1 },
                       { "type": "random_uniform", "base": "0x40000000", "region_bytes": "64KiB", "request_bytes": 64,
                         "pasids": [ 9 ], "rate_gbps": 1 } ] } ]
    })");
    p["scenario"] = std::move(steps);
    return p;
}
} // namespace

TEST_CASE("an explicitly placed mapping unmaps and its IOVA is reusable, strict and lazy", "[sim][host][scenario]") {
    const auto steps = ordered_json::parse(R"([
        {"op": "create_ioas", "name": "io"},
        {"op": "alloc_domain", "name": "d", "ioas": "io"},
        {"op": "map", "ioas": "io", "name": "m1", "iova": "0x200000000", "size_bytes": "64KiB"},
        {"op": "map", "ioas": "io", "iova": "0x200008000", "size_bytes": "4KiB", "expect_error": "busy"},
        {"op": "unmap", "ioas": "io", "mapping": "m1"},
        {"op": "flush_queue"},
        {"op": "map", "ioas": "io", "name": "m2", "iova": "0x200000000", "size_bytes": "64KiB"},
        {"op": "unmap", "ioas": "io", "mapping": "m2"},
        {"op": "map", "ioas": "io", "size_bytes": "2MiB", "page_bytes": "2MiB"},
        {"op": "expect", "stat": "os.iommufd.unmaps", "eq": 2}
    ])");
    for (const char* flush : {"strict", "lazy"}) {
        auto p = scenario_platform(steps);
        p["devices"] = ordered_json::array();
        p["host"]["driver"]["flush"] = flush;
        auto s = run(p, std::string("explicit-") + flush);
        CHECK(value(s, {"scenario", "failures"}) == 0);
        CHECK(value(s, {"os", "iommufd", "maps"}) == 3);
    }
}

TEST_CASE("two threads attaching PASIDs of one device at the same time both translate", "[sim][host][scenario]") {
    auto s = run(scenario_platform(ordered_json::parse(R"([
        {"op": "create_ioas", "name": "io"},
        {"op": "alloc_domain", "name": "d", "ioas": "io"},
        {"op": "map", "ioas": "io", "iova": "0x40000000", "size_bytes": "64KiB"},
        {"op": "attach", "thread": "a", "at_us": 10, "device": "acc0", "pasid_value": 7, "domain": "d"},
        {"op": "attach", "thread": "b", "at_us": 10, "device": "acc0", "pasid_value": 9, "domain": "d"},
        {"op": "expect", "at_us": 190, "stat": "acc0.errors", "eq": 0}
    ])")), "attach-race");
    CHECK(value(s, {"scenario", "failures"}) == 0);
    CHECK(value(s, {"acc0", "reads"}) > 100);
    CHECK(value(s, {"os", "oracle", "violations"}) == 0);
}

TEST_CASE("a device that never answers invalidations fails the flush without hanging and its ranges are quarantined", "[sim][host][oracle]") {
    auto p = nic_platform("strict");
    p["devices"][0]["drop_invalidations"] = true;
    p["iommus"][0]["ite_timeout_us"] = 20;
    auto s = run(p, "ite");
    CHECK(value(s, {"os", "iommufd", "failed_flushes"}) > 0);
    CHECK(value(s, {"os", "iommufd", "quarantined"}) > 0);
    CHECK(value(s, {"os", "dmar0", "queue_errors"}) > 0);
    CHECK(value(s, {"os", "oracle", "violations"}) == 0); // no quarantined range was reused
}

TEST_CASE("an interrupt-waiting driver sleeps until the completion MSI and pays the interrupt latency", "[sim][host][latency]") {
    auto s = run(nic_platform("strict"), "irq", nullptr, "--set host.driver.wait=interrupt");
    CHECK(value(s, {"os", "oracle", "violations"}) == 0);
    CHECK(value(s, {"os", "dmar0_msi", "msis"}) > 100);
    CHECK(s["os"]["invalidation"]["phase_wait_to_observed"]["p50"].get<double>() >= 1500.0); // interrupt_ns
    CHECK(value(s, {"os", "dmar0", "status_polls"}) < 3 * value(s, {"os", "dmar0", "flushes"}));
    // A device that never answers: the fault-event MSI wakes the waiter, no hang.
    auto p = nic_platform("strict");
    p["devices"][0]["drop_invalidations"] = true;
    p["iommus"][0]["ite_timeout_us"] = 20;
    auto t = run(p, "irq-ite", nullptr, "--set host.driver.wait=interrupt");
    CHECK(value(t, {"os", "iommufd", "failed_flushes"}) > 0);
}

TEST_CASE("scenario start and stop steps bracket a device's traffic", "[sim][host][scenario]") {
    auto p = scenario_platform(ordered_json::parse(R"([
        {"op": "create_ioas", "name": "io"},
        {"op": "alloc_domain", "name": "d", "ioas": "io"},
        {"op": "map", "ioas": "io", "iova": "0x40000000", "size_bytes": "64KiB"},
        {"op": "attach", "device": "acc0", "pasid_value": 7, "domain": "d"},
        {"op": "attach", "device": "acc0", "pasid_value": 9, "domain": "d"},
        {"op": "start", "at_us": 40, "device": "acc0"},
        {"op": "stop", "at_us": 100, "device": "acc0"},
        {"op": "expect", "at_us": 190, "stat": "acc0.first_issue_ns", "ge": 40000},
        {"op": "expect", "stat": "acc0.last_done_ns", "lt": 102000},
        {"op": "expect", "stat": "acc0.errors", "eq": 0}
    ])"));
    p["devices"][0].erase("start_at_us");
    p["devices"][0]["start_on_request"] = true;
    auto s = run(p, "start-stop");
    CHECK(value(s, {"scenario", "failures"}) == 0);
    CHECK(value(s, {"acc0", "reads"}) > 10);
}

TEST_CASE("the trace output holds every invalidation with its phases nested inside it", "[sim][host][trace]") {
    std::filesystem::path out;
    auto s = run(nic_platform("strict"), "trace", &out, "--set outputs.trace=true");
    const auto trace = ordered_json::parse(slurp(out / "trace.json"));
    const auto& ev = trace["traceEvents"];
    uint64_t parents = 0;
    double start = 0, end = 0;
    for (const auto& e : ev) {
        if (e["ph"] != "X") continue;
        const double ts = e["ts"].get<double>(), dur = e["dur"].get<double>();
        if (e["name"] == e["cat"]) { // an invalidation
            ++parents;
            start = ts, end = ts + dur;
        } else { // one of its phases
            CHECK(ts >= start - 2e-6);
            CHECK(ts + dur <= end + 2e-6);
        }
    }
    CHECK(parents == value(s, {"os", "invalidation", "count"}));
}
