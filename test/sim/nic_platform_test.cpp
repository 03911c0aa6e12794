// SPDX-License-Identifier: Apache-2.0
// The NIC driven through memory, end to end: the host driver's descriptor
// rings in simulated memory, tail doorbells in the NIC's BAR, descriptor
// fetches, packet writes and write-backs as DMAs through VT-d that the
// oracle checks, and RSS over several queues.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "test/support/cli.hpp"

using namespace iommusim::test;
using nlohmann::json;

namespace {
json run_platform(const std::string& tag, const std::string& platform, const std::string& extra) {
    auto dir = scratch_dir(tag);
    auto r = run_cli("run --quiet --out '" + dir.string() + "' '" + source_path(platform) + "' " + extra, tag);
    INFO("stderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    return json::parse(slurp(dir / "stats.json"));
}
double v(const json& j) { return j.contains("value") ? j["value"].get<double>() : j["count"].get<double>(); }
} // namespace

TEST_CASE("the NIC's descriptor fetches, packet writes and write-backs are DMAs through the IOMMU the oracle checks",
          "[cli][host][nic]") {
    const json s = run_platform("nic-dma", "platforms/default.json", "--set duration_us=2000");
    const json& nic = s["nic0"];
    const double packets = v(nic["rx_packets"]), fetches = v(nic["descriptor_fetches"]);
    REQUIRE(packets > 100);
    // With prefetch 1: per packet one fetch and its packet write (issued
    // together), then one write-back; the last few write-backs may still be
    // pending at the end.
    const double checked = v(s["os"]["oracle"]["checked"]);
    CHECK(checked >= 3 * packets);
    CHECK(checked == 2 * fetches + v(nic["descriptor_writebacks"]));
    CHECK(fetches - v(nic["descriptor_writebacks"]) < 64);
    CHECK(v(s["os"]["oracle"]["correct"]) == checked); // every DMA used the translation the host set up
    CHECK(v(s["os"]["oracle"]["violations"]) == 0);
    // All of them went through the IOMMU as ATS-translated requests.
    CHECK(v(s["dmar0"]["translated_requests"]) == checked);
    CHECK(v(nic["dma_errors"]) == 0);
    // The driver wrote every posted descriptor into memory and rang the tail in the BAR.
    const json& drv = s["os"]["nic0_driver"];
    CHECK(v(s["os"]["cpu"]["mem_writes"]) >= v(drv["refilled"]));
    CHECK(v(drv["doorbells"]) > 0);
    // One tail write after the initial fill of 255, then one per at most 32
    // refills (a poll cut off by the end of the run may hold up to 31 more).
    CHECK(v(drv["refilled"]) - 255 <= 32 * (v(drv["doorbells"]) - 1) + 31);
    CHECK(v(s["os"]["cpu"]["mmio_errors"]) == 0);
}

TEST_CASE("without ATS the NIC's ring and packet DMAs are translated by the IOMMU and checked", "[cli][host][nic]") {
    const json s = run_platform("nic-noats", "platforms/default.json", "--set duration_us=1000 --set devices/0/ats=false");
    const double checked = v(s["os"]["oracle"]["checked"]);
    CHECK(checked >= 3 * v(s["nic0"]["rx_packets"]));
    CHECK(v(s["nic0"]["fn0"]["untranslated_requests"]) == checked);
    CHECK(v(s["os"]["oracle"]["correct"]) == checked);
    CHECK(v(s["dmar0"]["translation"]["iotlb"]["misses"]) > 0);
}

TEST_CASE("RSS spreads many flows over the queues and keeps one flow on one queue", "[cli][host][nic][rss]") {
    const json many = run_platform("nic-rss", "platforms/vtd-nic-lazy.json",
                                   "--set duration_us=1000 --set devices/0/queues=4 --set devices/0/flows=64");
    const double total = v(many["nic0"]["rx_packets"]);
    REQUIRE(total > 100);
    for (int q = 0; q < 4; ++q) {
        INFO("queue " << q);
        CHECK(v(many["nic0"]["rx_packets_q" + std::to_string(q)]) > total / 8); // each queue gets a real share
    }
    CHECK(v(many["os"]["nic0_driver"]["interrupts"]) >= 4);
    const json one = run_platform("nic-rss1", "platforms/vtd-nic-lazy.json",
                                  "--set duration_us=1000 --set devices/0/queues=4 --set devices/0/flows=1");
    int used = 0;
    for (int q = 0; q < 4; ++q) used += v(one["nic0"]["rx_packets_q" + std::to_string(q)]) > 0 ? 1 : 0;
    CHECK(used == 1);
}

TEST_CASE("more flows over recycled buffers and a smaller IOTLB raise walk reads per 4 KiB and lower throughput",
          "[cli][host][nic][iotlb]") {
    // Recycled (page_pool-style) buffers stay mapped: each active queue's 255
    // buffer pages are the IOTLB's working set. One flow keeps one queue busy
    // (255 pages fit a 512-entry IOTLB); 64 flows spread over 8 queues (2040
    // pages) and a 64-entry IOTLB misses on nearly every packet. ATS is off,
    // so every DMA is translated by the IOMMU, and walks are serialized (one
    // walker, calibration.md "walker concurrency"): the root port holds each
    // posted write's credit while it waits for its walk, the NIC's buffer
    // fills and it drops.
    auto run = [](const std::string& tag, int flows, int iotlb) {
        return run_platform(tag, "platforms/vtd-nic-lazy.json",
                            "--set duration_us=1000 --set devices/0/ats=false --set devices/0/buffers=recycle "
                            "--set iommus/0/walkers=1 --set devices/0/queues=8 --set devices/0/flows=" +
                                std::to_string(flows) + " --set iommus/0/iotlb/entries=" + std::to_string(iotlb));
    };
    auto per_4k = [](const json& s, double count) { return count / (v(s["nic0"]["rx_bytes"]) / 4096.0); };
    const json few = run("nic-flows1", 1, 512);
    const json many = run("nic-flows64", 64, 64);
    const double walks_few = per_4k(few, v(few["dmar0"]["table_reads"]));
    const double walks_many = per_4k(many, v(many["dmar0"]["table_reads"]));
    INFO("walk reads per 4 KiB: 1 flow " << walks_few << ", 64 flows " << walks_many);
    INFO("GB/s: 1 flow " << v(few["nic0"]["rx_throughput"]) << ", 64 flows " << v(many["nic0"]["rx_throughput"]));
    CHECK(walks_many > 4 * walks_few);
    CHECK(per_4k(many, v(many["dmar0"]["translation"]["iotlb"]["misses"])) >
          4 * per_4k(few, v(few["dmar0"]["translation"]["iotlb"]["misses"])));
    CHECK(v(many["nic0"]["rx_throughput"]) < 0.8 * v(few["nic0"]["rx_throughput"]));
    CHECK(v(many["nic0"]["rx_dropped"]) > 0);
    CHECK(v(few["nic0"]["rx_dropped"]) == 0);
    CHECK(v(many["rc0"]["rp0"]["up_posted_credit_stalls"]) > v(few["rc0"]["rp0"]["up_posted_credit_stalls"]));
    CHECK(v(many["os"]["oracle"]["violations"]) == 0);
}
