// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <sstream>

#include "models/pcie/workload.hpp"

using namespace iommusim::pcie;

namespace {
std::vector<DmaOp> take(Workload& w, size_t n) {
    std::vector<DmaOp> v;
    while (v.size() < n) {
        auto op = w.next();
        if (!op) break;
        v.push_back(*op);
    }
    return v;
}
} // namespace

TEST_CASE("sequential stream walks consecutive blocks and wraps at the region end", "[unit][pcie][workload]") {
    WorkloadParams p;
    p.region_bytes = 4096;
    p.request_bytes = 256;
    auto w = make_workload(p);
    auto ops = take(*w, 40);
    for (size_t i = 0; i < ops.size(); ++i) CHECK(ops[i].addr == p.base + (i % 16) * 256);
    p.requests = 5;
    CHECK(take(*make_workload(p), 100).size() == 5);
}

TEST_CASE("random uniform stream covers the working set evenly with the requested read share", "[unit][pcie][workload]") {
    WorkloadParams p;
    p.kind = WorkloadKind::random_uniform;
    p.region_bytes = 1 << 20;
    p.read_percent = 30;
    auto ops = take(*make_workload(p), 64000);
    std::vector<int> bins(16);
    int reads = 0;
    for (const auto& o : ops) {
        REQUIRE(o.addr >= p.base);
        REQUIRE(o.addr + o.size <= p.base + p.region_bytes);
        CHECK(o.addr % p.request_bytes == 0);
        ++bins[(o.addr - p.base) / (p.region_bytes / 16)];
        reads += !o.write;
    }
    for (int b : bins) CHECK(b == Approx(4000).epsilon(0.08));
    CHECK(reads / 64000.0 == Approx(0.30).margin(0.01));
}

TEST_CASE("zipf stream has rank-frequency skew 1/k^s", "[unit][pcie][workload]") {
    WorkloadParams p;
    p.kind = WorkloadKind::zipf;
    p.zipf_s = 1.0;
    p.region_bytes = 1024 * 4096;
    p.item_bytes = 4096;
    const int n = 200000;
    auto ops = take(*make_workload(p), n);
    std::map<uint64_t, int> count;
    for (const auto& o : ops) ++count[(o.addr - p.base) / 4096];
    double h = 0;
    for (int k = 1; k <= 1024; ++k) h += 1.0 / k;
    // P(rank 1) = 1/H_N; P(rank k) = P(1)/k.
    CHECK(count[0] / double(n) == Approx(1.0 / h).epsilon(0.03));
    CHECK(count[0] / double(count[1]) == Approx(2.0).epsilon(0.05));
    CHECK(count[0] / double(count[9]) == Approx(10.0).epsilon(0.12));
    // s = 0 degenerates to uniform.
    p.zipf_s = 0;
    std::map<uint64_t, int> flat;
    for (const auto& o : take(*make_workload(p), n)) ++flat[(o.addr - p.base) / 4096];
    CHECK(flat[0] / double(n) == Approx(1.0 / 1024).epsilon(0.25));
}

TEST_CASE("strided stream advances by the stride modulo the region", "[unit][pcie][workload]") {
    WorkloadParams p;
    p.kind = WorkloadKind::strided;
    p.stride_bytes = 8192;
    p.region_bytes = 64 * 1024;
    p.request_bytes = 64;
    auto ops = take(*make_workload(p), 20);
    for (size_t i = 0; i < ops.size(); ++i) CHECK(ops[i].addr == p.base + (i % 8) * 8192);
}

TEST_CASE("NIC ring reuses each descriptor slot every ring_entries packets, strict remap widens buffer reuse", "[unit][pcie][workload]") {
    WorkloadParams p;
    p.kind = WorkloadKind::nic_ring;
    p.ring_entries = 64;
    p.remap_window_packets = 1024;
    p.pasid.pasids = {7};
    auto reuse = [](const std::vector<DmaOp>& ops, bool buffers) {
        // Reuse distance in packets (3 ops per packet: desc read, buffer, desc write-back).
        std::map<uint64_t, size_t> last;
        std::map<size_t, int> hist;
        for (size_t i = 0; i < ops.size(); i += 3) {
            uint64_t a = ops[i + (buffers ? 1 : 0)].addr;
            if (auto it = last.find(a); it != last.end()) ++hist[(i - it->second) / 3];
            last[a] = i;
        }
        return hist;
    };
    auto rx = take(*make_workload(p), 3 * 4096);
    REQUIRE(rx.size() == 3 * 4096);
    CHECK_FALSE(rx[0].write);
    CHECK(rx[1].write);        // RX: device writes the packet
    CHECK(rx[2].write);        // descriptor write-back
    CHECK(rx[1].size == p.packet_bytes);
    CHECK(rx[0].addr == rx[2].addr);
    CHECK(rx[1].pasid_present);
    CHECK(rx[1].pasid == 7);
    auto d = reuse(rx, false);
    REQUIRE(d.size() == 1);
    CHECK(d.begin()->first == 64);
    auto b = reuse(rx, true);
    REQUIRE(b.size() == 1);
    CHECK(b.begin()->first == 64);
    p.remap_per_packet = true;
    auto strict = reuse(take(*make_workload(p), 3 * 4096), true);
    REQUIRE(strict.size() == 1);
    CHECK(strict.begin()->first == 1024);
    p.tx = true;
    CHECK_FALSE(take(*make_workload(p), 3)[1].write); // TX: device reads the packet
}

TEST_CASE("accelerator work queue tags every access of a job with that job's PASID", "[unit][pcie][workload][pasid]") {
    WorkloadParams p;
    p.kind = WorkloadKind::accel_queue;
    p.pasid.pasids = {10, 11, 12};
    p.job_bytes = 4096;
    p.requests = 6;
    auto ops = take(*make_workload(p), 1000);
    REQUIRE(ops.size() == 18);
    for (size_t j = 0; j < 6; ++j) {
        for (size_t k = 0; k < 3; ++k) {
            CHECK(ops[3 * j + k].pasid_present);
            CHECK(ops[3 * j + k].pasid == 10 + j % 3);
        }
        CHECK(ops[3 * j + 1].size == 4096);
        CHECK_FALSE(ops[3 * j + 1].write);
        CHECK(ops[3 * j + 2].write);
    }
}

TEST_CASE("PASID mix weights set the share of each PASID, seeds make streams reproducible", "[unit][pcie][workload][pasid]") {
    WorkloadParams p;
    p.kind = WorkloadKind::random_uniform;
    p.pasid.pasids = {1, 2};
    p.pasid.weights = {3, 1};
    auto ops = take(*make_workload(p), 40000);
    int ones = 0;
    for (const auto& o : ops) ones += o.pasid == 1;
    CHECK(ones / 40000.0 == Approx(0.75).margin(0.01));
    auto again = take(*make_workload(p), 100);
    for (size_t i = 0; i < 100; ++i) CHECK(again[i].addr == ops[i].addr);
    p.seed = 2;
    auto other = take(*make_workload(p), 100);
    int same = 0;
    for (size_t i = 0; i < 100; ++i) same += other[i].addr == ops[i].addr;
    CHECK(same < 10);
    p.pasid.weights = {1};
    CHECK_THROWS_WITH(make_workload(p), Catch::Contains("weights"));
}

TEST_CASE("trace CSV parses records and reports malformed lines with their line number", "[unit][pcie][workload][trace]") {
    std::istringstream ok("time_ns,device,pasid,addr,size,rw\n"
                          "# comment\n"
                          "100,nic0,-,0x1000,64,r\n"
                          "\n"
                          "150,nic0,0x12,4096,128,w\n"
                          "120,gpu0,,0x2000,4096,read\n");
    auto recs = parse_trace_csv(ok, "t.csv");
    REQUIRE(recs.size() == 3);
    CHECK(recs[0].time_ns == 100);
    CHECK_FALSE(recs[0].pasid_present);
    CHECK(recs[0].addr == 0x1000);
    CHECK(recs[1].pasid_present);
    CHECK(recs[1].pasid == 0x12);
    CHECK(recs[1].write);
    CHECK(recs[1].line == 5);
    CHECK(trace_for_device(recs, "nic0").size() == 2);

    WorkloadParams p;
    p.kind = WorkloadKind::trace;
    p.trace = trace_for_device(recs, "nic0");
    auto ops = take(*make_workload(p), 10);
    REQUIRE(ops.size() == 2);
    CHECK(ops[1].not_before.as_ns() == 150);

    auto err = [](const std::string& text) {
        std::istringstream in(text);
        try {
            parse_trace_csv(in, "bad.csv");
        } catch (const TraceError& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    CHECK_THAT(err("1,a,-,0x10,64,r\n2,a,-,0x10,64\n"), Catch::StartsWith("bad.csv:2: expected 6 fields"));
    CHECK_THAT(err("x,a,-,0x10,64,r\n"), Catch::StartsWith("bad.csv:1: time_ns"));
    CHECK_THAT(err("1,a,0x100000,0x10,64,r\n"), Catch::StartsWith("bad.csv:1: pasid"));
    CHECK_THAT(err("1,a,-,0xzz,64,r\n"), Catch::StartsWith("bad.csv:1: addr"));
    CHECK_THAT(err("1,a,-,16,0,r\n"), Catch::StartsWith("bad.csv:1: size"));
    CHECK_THAT(err("1,a,-,16,4,x\n"), Catch::StartsWith("bad.csv:1: rw"));
    CHECK_THAT(err("5,a,-,16,4,r\n3,a,-,16,4,r\n"), Catch::StartsWith("bad.csv:2: time_ns 3 goes backwards"));
    CHECK_THAT(err("time_ns,dev,pasid,addr,size,rw\n"), Catch::StartsWith("bad.csv:1: header"));
    CHECK_THROWS_AS(load_trace_csv("/nonexistent/trace.csv"), TraceError);
}

TEST_CASE("workload kinds resolve by name and reject unknown names", "[unit][pcie][workload]") {
    CHECK(workload_kind_from_name("zipf") == WorkloadKind::zipf);
    CHECK_THROWS_WITH(workload_kind_from_name("bogus"), Catch::Contains("nic_ring"));
}
