// SPDX-License-Identifier: Apache-2.0
// End-to-end host driver scenarios: a NIC on ATS behind VT-d, its host
// driver mapping and unmapping a buffer per packet, the DMA safety oracle
// checking every DMA. Runs the CLI as a user would.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <map>
#include <set>
#include <sstream>

#include "test/support/cli.hpp"
#include "test/support/platform_run.hpp"
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

uint64_t value(const ordered_json& s, std::initializer_list<const char*> path) { return stat_value(s, path); }

} // namespace

TEST_CASE("a correct strict driver under per-packet map/unmap churn has zero safety violations", "[sim][host][oracle]") {
    auto s = run_platform(nic_platform("strict"), "strict");
    CHECK(value(s, {"os", "oracle", "checked"}) > 500);
    CHECK(value(s, {"os", "oracle", "violations"}) == 0);
    CHECK(value(s, {"os", "invalidation", "count"}) > 100);
    CHECK(value(s, {"nic0", "fn0", "invalidations_completed"}) > 100);
}

TEST_CASE("a correct lazy driver has zero safety violations", "[sim][host][oracle]") {
    auto s = run_platform(nic_platform("lazy"), "lazy", nullptr, "--set host.driver.flush_queue_entries=32");
    CHECK(value(s, {"os", "oracle", "checked"}) > 1000);
    CHECK(value(s, {"os", "oracle", "violations"}) == 0);
    CHECK(value(s, {"os", "iommufd", "lazy_flushes"}) > 0);
}

TEST_CASE("a driver that skips device-TLB invalidation produces violations served by the ATC", "[sim][host][oracle]") {
    std::filesystem::path out;
    auto s = run_platform(nic_platform("strict"), "broken", &out, "--set host.driver.skip_devtlb_invalidation=true");
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
    auto s = run_platform(nic_platform("strict"), "phases", &out);
    std::istringstream csv(slurp(out / "invalidations.csv"));
    std::string line;
    std::getline(csv, line);
    CHECK(line.rfind("id,cause,iommu,domain,iova,size,descriptors,devtlb_requests,ranged,error,submitted_ns", 0) == 0);
    int rows = 0;
    while (std::getline(csv, line)) {
        std::vector<std::string> f;
        std::stringstream ls(line);
        for (std::string x; std::getline(ls, x, ',');) f.push_back(x);
        REQUIRE(f.size() == 20); // ...,latency_ns,devices,cpu
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
    auto one = run_platform(slow(nic_platform("strict", 1)), "one");
    auto two = run_platform(slow(nic_platform("strict", 2)), "two");
    const double l1 = one["os"]["invalidation"]["latency"]["mean"].get<double>();
    const double l2 = two["os"]["invalidation"]["latency"]["mean"].get<double>();
    INFO("one thread " << l1 << " ns, two threads " << l2 << " ns");
    CHECK(l2 > l1 * 1.1);
    CHECK(value(two, {"os", "oracle", "violations"}) == 0);
}

TEST_CASE("lazy flushing delivers more NIC throughput than strict", "[sim][host]") {
    // Steady state: the stats count from 1 ms on. Before that the driver brings its ring up,
    // and each of its first IOVAs comes from the tree (661 ns under the tree lock,
    // calibration.md "IOVA allocation, rbtree slow path") until the per-CPU caches fill;
    // lazy needs twice as many (its flush queue holds 256 unmapped ranges back), which at
    // 600 us was a third of the run, not the flushing policy.
    auto warmed = [](ordered_json p) {
        p["duration_us"] = 2000;
        p["scenario"] = ordered_json::parse(R"([{"op": "reset_stats", "at_us": 1000}])");
        return p;
    };
    auto strict = run_platform(warmed(nic_platform("strict")), "tp-strict", nullptr, "--set devices.0.ring_entries=256 --set devices.0.napi_batch=64");
    auto lazy = run_platform(warmed(nic_platform("lazy")), "tp-lazy", nullptr, "--set devices.0.ring_entries=256 --set devices.0.napi_batch=64");
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
        auto s = run_platform(p, std::string("explicit-") + flush);
        CHECK(value(s, {"scenario", "failures"}) == 0);
        CHECK(value(s, {"os", "iommufd", "maps"}) == 3);
    }
}

TEST_CASE("two threads attaching PASIDs of one device at the same time both translate", "[sim][host][scenario]") {
    auto s = run_platform(scenario_platform(ordered_json::parse(R"([
        {"op": "create_ioas", "name": "io"},
        {"op": "alloc_domain", "name": "d", "ioas": "io"},
        {"op": "map", "ioas": "io", "iova": "0x40000000", "size_bytes": "64KiB"},
        {"op": "alloc_pasid", "name": "p7", "owner": "kernel", "pasid_value": 7},
        {"op": "alloc_pasid", "name": "p9", "owner": "kernel", "pasid_value": 9},
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
    auto s = run_platform(p, "ite");
    CHECK(value(s, {"os", "iommufd", "failed_flushes"}) > 0);
    CHECK(value(s, {"os", "iommufd", "quarantined"}) > 0);
    CHECK(value(s, {"os", "dmar0", "queue_errors"}) > 0);
    CHECK(value(s, {"os", "oracle", "violations"}) == 0); // no quarantined range was reused
}

TEST_CASE("an interrupt-waiting driver sleeps until the completion MSI and pays the interrupt latency", "[sim][host][latency]") {
    auto s = run_platform(nic_platform("strict"), "irq", nullptr, "--set host.driver.wait=interrupt");
    CHECK(value(s, {"os", "oracle", "violations"}) == 0);
    CHECK(value(s, {"os", "dmar0_msi", "msis"}) > 100);
    CHECK(s["os"]["invalidation"]["phase_wait_to_observed"]["p50"].get<double>() >= 1500.0); // interrupt_ns
    CHECK(value(s, {"os", "dmar0", "status_polls"}) < 3 * value(s, {"os", "dmar0", "flushes"}));
    // A device that never answers: the fault-event MSI wakes the waiter, no hang.
    auto p = nic_platform("strict");
    p["devices"][0]["drop_invalidations"] = true;
    p["iommus"][0]["ite_timeout_us"] = 20;
    auto t = run_platform(p, "irq-ite", nullptr, "--set host.driver.wait=interrupt");
    CHECK(value(t, {"os", "iommufd", "failed_flushes"}) > 0);
}

TEST_CASE("scenario start and stop steps bracket a device's traffic", "[sim][host][scenario]") {
    auto p = scenario_platform(ordered_json::parse(R"([
        {"op": "create_ioas", "name": "io"},
        {"op": "alloc_domain", "name": "d", "ioas": "io"},
        {"op": "map", "ioas": "io", "iova": "0x40000000", "size_bytes": "64KiB"},
        {"op": "alloc_pasid", "name": "p7", "owner": "kernel", "pasid_value": 7},
        {"op": "alloc_pasid", "name": "p9", "owner": "kernel", "pasid_value": 9},
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
    auto s = run_platform(p, "start-stop");
    CHECK(value(s, {"scenario", "failures"}) == 0);
    CHECK(value(s, {"acc0", "reads"}) > 10);
}

TEST_CASE("trace.json slices nest on every track, with two drivers sharing one IOMMU", "[sim][host][trace]") {
    // One track per host thread and one per IOMMU queue engine: slices on a
    // track either nest or follow each other (Perfetto mis-draws overlaps).
    std::filesystem::path out;
    auto s = run_platform(nic_platform("strict", 2), "trace", &out, "--set outputs.trace=true");
    const auto trace = ordered_json::parse(slurp(out / "trace.json"));
    std::map<std::pair<int, int>, std::vector<std::pair<double, double>>> tracks;
    std::map<int, std::string> processes;
    std::map<std::pair<int, int>, std::string> threads;
    uint64_t invalidations = 0;
    for (const auto& e : trace["traceEvents"]) {
        const int pid = e["pid"].get<int>();
        if (e["ph"] == "M") {
            if (e["name"] == "process_name") processes[pid] = e["args"]["name"].get<std::string>();
            else threads[{pid, e["tid"].get<int>()}] = e["args"]["name"].get<std::string>();
            continue;
        }
        if (e["ph"] != "X") continue; // async spans, instants and counters do not nest (trace_writer_test)
        const std::pair<int, int> track{pid, e["tid"].get<int>()};
        tracks[track].push_back({e["ts"].get<double>(), e["dur"].get<double>()});
        CHECK(e["dur"].get<double>() >= 0);
        if (processes[pid] == "host" && e["name"].get<std::string>().starts_with(e["cat"].get<std::string>() + " #"))
            ++invalidations;
    }
    CHECK(invalidations == value(s, {"os", "invalidation", "count"}));
    // Both NIC drivers' threads and the IOMMU's engine have their own track.
    std::set<std::string> names;
    for (const auto& [k, n] : threads) names.insert(processes[k.first] + "/" + n);
    CHECK(names.count("host/nic0_driver_q0")); // one driver thread per RX queue
    CHECK(names.count("host/nic1_driver_q0"));
    CHECK(names.count("dmar0/queue engine"));
    size_t overlaps = 0, slices = 0;
    for (auto& [track, v] : tracks) {
        std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.first != b.first ? a.first < b.first : a.second > b.second; });
        std::vector<double> open; // end times of the enclosing slices
        for (const auto& [ts, dur] : v) {
            ++slices;
            while (!open.empty() && open.back() <= ts + 1e-9) open.pop_back();
            if (!open.empty() && ts + dur > open.back() + 1e-9) ++overlaps;
            open.push_back(ts + dur);
        }
    }
    INFO(overlaps << " of " << slices << " slices overlap a neighbour on their track");
    CHECK(overlaps == 0);
    CHECK(slices > 3 * invalidations);
}

TEST_CASE("two NIC drivers behind one switch sharing a VT-d unit under strict flushing record only possible latencies",
          "[sim][host][latency][regression]") {
    // Two drivers submit to one invalidation queue; each wait descriptor's
    // latency runs from the IQT write that submitted it, never from another
    // CPU's later write (that difference wrapped to 2^64 ps).
    ordered_json p = nic_platform("strict", 2);
    p["topology"]["root_complex"]["root_ports"] = ordered_json::parse(R"([{ "name": "rp0" }])");
    p["topology"]["switches"] = ordered_json::parse(
        R"([{ "name": "sw0", "port": "rp0", "downstream_ports": [ { "name": "sw0.dp0" }, { "name": "sw0.dp1" } ] }])");
    p["devices"][0]["port"] = "sw0.dp0";
    p["devices"][1]["port"] = "sw0.dp1";
    auto s = run_platform(p, "shared-unit");
    const double run_ns = s["simulated_time_ns"]["value"].get<double>();
    const auto& w = s["dmar0"]["wait_latency"];
    INFO(w.dump());
    CHECK(w["count"].get<uint64_t>() > 100);
    CHECK(w["max"].get<double>() < run_ns);
    CHECK(w["mean"].get<double>() <= w["max"].get<double>());
    CHECK(w["min"].get<double>() > 0);
    for (const char* d : {"nic0", "nic1"}) CHECK(value(s, {d, "rx_packets"}) > 10);
    CHECK(value(s, {"os", "oracle", "violations"}) == 0);
}

namespace {
/// 1,024 PASIDs of one device attached to one paging domain, then a strict unmap of a
/// mapping of that domain, on a unit of `family` named `unit`.
ordered_json pasids_1024_platform(const char* family, const char* unit) {
    auto steps = ordered_json::parse(R"([
        {"op": "create_ioas", "name": "io"},
        {"op": "alloc_domain", "name": "d", "ioas": "io"},
        {"op": "map", "ioas": "io", "name": "m1", "iova": "0x40000000", "size_bytes": "64KiB"}
    ])");
    steps.push_back({{"op", "create_pasid_set"}, {"name", "k"}, {"owner", "kernel"}, {"quota", 1024}});
    for (int p = 1; p <= 1024; ++p) {
        std::string name = std::to_string(p);
        name.insert(0, 1, 'p'); // (GCC 12 warns falsely about "p" + std::to_string(p))
        steps.push_back({{"op", "alloc_pasid"}, {"name", name}, {"owner", "kernel"}, {"pasid_value", p}});
        steps.push_back({{"op", "attach"}, {"device", "acc0"}, {"pasid_value", p}, {"domain", "d"}});
    }
    steps.push_back({{"op", "unmap"}, {"ioas", "io"}, {"mapping", "m1"}});
    auto p = scenario_platform(steps);
    p["iommus"] = ordered_json::array({{{"name", unit}, {"type", family}}});
    p["topology"]["root_complex"]["iommu"] = unit;
    if (std::string(family) == "smmuv3") p["host"]["cpu"]["arch"] = "arm64";
    p["devices"][0]["start_at_us"] = 100000; // no traffic: the flush is what is tested
    p["duration_us"] = 20000;
    return p;
}

/// Runs pasids_1024_platform; the scenario, the unmap and its flush succeeded.
ordered_json run_unmap_1024(const char* family, const char* unit) {
    auto s = run_platform(pasids_1024_platform(family, unit), std::string("pasids-1024-") + family);
    CHECK(value(s, {"scenario", "failures"}) == 0);
    CHECK(value(s, {"os", "iommufd", "unmaps"}) == 1);
    CHECK(value(s, {"os", "iommufd", "failed_flushes"}) == 0);
    return s;
}
} // namespace

TEST_CASE("a strict unmap on a VT-d domain with 1,024 attached PASIDs flushes in batches of 16 each with its wait", "[sim][host][scenario]") {
    // One PASID-granular IOTLB invalidation per attached PASID (Linux flushes each PASID
    // of a first-stage domain): 1,024 do not fit the 256-entry queue; Linux's qi_batch
    // submits them 16 at a time, each batch with its wait descriptor.
    auto s = run_unmap_1024("vtd", "dmar0");
    CHECK(value(s, {"os", "dmar0", "descriptors"}) == 1024 + 64);
    CHECK(value(s, {"os", "dmar0", "flushes"}) == 64);
    CHECK(value(s, {"dmar0", "descriptors"}) == 1024 + 64);
}

TEST_CASE("a strict unmap on an AMD-Vi domain with 1,024 attached PASIDs streams through the buffer with one COMPLETION_WAIT", "[sim][host][scenario][amd]") {
    // One INVALIDATE_IOMMU_PAGES per (DomainID, PASID) of a v2 domain: 1,024 do not fit the
    // 512-entry command buffer; Linux writes them as the head moves and waits once.
    auto s = run_unmap_1024("amd", "amdvi0");
    CHECK(value(s, {"os", "amdvi0", "flushes"}) == 1);
    CHECK(value(s, {"os", "amdvi0", "commands"}) >= 1024 + 1);
    CHECK(value(s, {"amdvi0", "commands"}) >= 1024 + 1);
}

TEST_CASE("a strict unmap on an SMMUv3 domain with 1,024 attached PASIDs flushes the ASID's pages once", "[sim][host][scenario][smmuv3]") {
    // Every CD of the domain carries its ASID: one TLBI_NH_VA per page covers all 1,024
    // substreams (arm_smmu_tlb_inv_range_asid), no command per PASID without ATS; the
    // attaches' CFGI_CD commands (1,024 CDs) went through the same queue.
    auto s = run_unmap_1024("smmuv3", "smmu0");
    CHECK(value(s, {"os", "smmu0", "tlbi_commands"}) == 1);
    CHECK(value(s, {"os", "smmu0", "cfgi_commands"}) >= 1024);
}
