// SPDX-License-Identifier: Apache-2.0
// The NIC driven through memory, end to end: the host driver's descriptor
// rings in simulated memory, tail doorbells in the NIC's BAR, descriptor
// fetches, packet writes and write-backs as DMAs through VT-d that the
// oracle checks, and RSS over several queues.
#include <catch2/catch.hpp>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

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
    // fills and it drops. The per-packet receive stack and copy are left out
    // (0): one flow's single queue would otherwise be bound by its one CPU.
    // Mapping the 8 x 255 recycled buffers at bring-up takes ~1.4 ms (each IOVA
    // from the tree under its lock, 661 ns: calibration.md "IOVA allocation,
    // rbtree slow path"), so the stats count from 2 ms on, over 1 ms of traffic.
    auto run = [](const std::string& tag, int flows, int iotlb) {
        return run_platform(tag, "platforms/vtd-nic-lazy.json",
                            "--set duration_us=3000 --set 'scenario=[{\"op\":\"reset_stats\",\"at_us\":2000}]' "
                            "--set devices/0/ats=false --set devices/0/buffers=recycle "
                            "--set host/cpu/rx_stack_ns=0 --set host/cpu/copy_bytes_per_ns=0 "
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

TEST_CASE("the NIC's TX descriptor fetches, packet reads and write-backs are DMAs through the IOMMU the oracle checks",
          "[cli][host][nic][tx]") {
    // 2 ms: the first ~0.4 ms the driver's TX maps take their IOVAs from the tree (661 ns
    // each under the tree lock, calibration.md "IOVA allocation, rbtree slow path") until
    // the per-CPU caches and the flush queue's recycled ranges serve them.
    const json s = run_platform("nic-tx", "platforms/vtd-nic-lazy.json",
                                "--set duration_us=2000 --set devices/0/rx=false --set devices/0/tx_rate_gbps=20");
    const json& tx = s["nic0"]["tx"];
    const json& drv = s["os"]["nic0_driver"];
    const double packets = v(tx["packets"]), fetches = v(tx["descriptor_fetches"]), wbs = v(tx["descriptor_writebacks"]);
    REQUIRE(packets > 100);
    CHECK(v(s["nic0"]["rx_packets"]) == 0);
    // Every DMA of the NIC is a TX descriptor fetch, a packet read or a write-back, each checked and correct.
    const double checked = v(s["os"]["oracle"]["checked"]);
    CHECK(checked == fetches + packets + wbs);
    CHECK(v(s["os"]["oracle"]["correct"]) == checked);
    CHECK(v(s["os"]["oracle"]["violations"]) == 0);
    CHECK(v(s["dmar0"]["translated_requests"]) == checked);
    CHECK(v(s["nic0"]["dma_errors"]) == 0);
    CHECK(v(tx["bad_descriptors"]) == 0);
    // Fetches carry up to 40 descriptors, write-backs up to 8 (WTHRESH), so both are fewer than packets.
    CHECK(fetches * 40 >= packets);
    CHECK(fetches < packets);
    CHECK(wbs * 8 >= packets);
    CHECK(wbs < packets);
    // The driver wrote one descriptor per packet, rang the tail, and cleaned (unmapped) only what the NIC wrote back.
    CHECK(v(drv["tx_sent"]) >= packets);
    CHECK(v(drv["tx_doorbells"]) > 0);
    CHECK(v(drv["tx_cleaned"]) <= packets);
    CHECK(v(drv["tx_cleaned"]) > 0);
    CHECK(v(drv["interrupts"]) > 0);
    // 20 Gb/s offered on a 100 Gb/s port: the NIC keeps up (averaged over the bring-up as well).
    CHECK(v(tx["throughput"]) > 15);
}

TEST_CASE("a NIC whose tag limit is 1 sends one packet per data-read latency and its TX throughput follows",
          "[cli][host][nic][tx][tags]") {
    // ATS off: every packet read is translated by the IOMMU. With one tag the
    // next read may leave only when the previous one completed, so the wire
    // idles for most of each read's latency. The stats count from 1 ms on: before,
    // the driver's first TX maps take their IOVAs from the tree (661 ns each,
    // calibration.md "IOVA allocation, rbtree slow path") and bound both runs alike.
    auto run = [](const std::string& tag, int tags) {
        return run_platform(tag, "platforms/vtd-nic-lazy.json",
                            "--set duration_us=1500 --set 'scenario=[{\"op\":\"reset_stats\",\"at_us\":1000}]' "
                            "--set devices/0/rx=false --set devices/0/tx_rate_gbps=60 "
                            "--set devices/0/ats=false --set devices/0/max_outstanding_reads=" + std::to_string(tags));
    };
    const json one = run("nic-tx-tag1", 1);
    const json many = run("nic-tx-tag256", 256);
    const double gbps_one = v(one["nic0"]["tx"]["throughput"]), gbps_many = v(many["nic0"]["tx"]["throughput"]);
    const double read_ns = one["nic0"]["tx"]["data_read_latency"]["mean"].get<double>();
    INFO("Gb/s with 1 tag " << gbps_one << ", 256 tags " << gbps_many << "; mean read " << read_ns << " ns");
    CHECK(v(one["nic0"]["tag_stalls"]) > 0);
    CHECK(v(many["nic0"]["tag_stalls"]) == 0);
    // At most one packet (1500 B) per read latency.
    CHECK(gbps_one <= 8 * 1500 / read_ns * 1.05);
    CHECK(gbps_one < 0.8 * gbps_many);
    CHECK(v(one["os"]["oracle"]["violations"]) == 0);
}

TEST_CASE("NIC transmit settings that cannot work are bad input naming the key", "[cli][config][nic][tx]") {
    auto validate = [](const std::string& tag, const std::string& extra) {
        return run_cli("validate '" + source_path("platforms/default.json") + "' " + extra, tag);
    };
    const auto neither = validate("nic-tx-bad1", "--set devices/0/rx=false");
    CHECK(neither.exit_code == 2);
    CHECK(neither.err.find("/devices/0/rx: expected true unless tx_rate_gbps > 0") != std::string::npos);
    const auto jumbo = validate("nic-tx-bad2", "--set devices/0/tx_rate_gbps=10 --set devices/0/packet_bytes=20000 "
                                               "--set devices/0/buffer_bytes=20480");
    CHECK(jumbo.exit_code == 2);
    CHECK(jumbo.err.find("/devices/0/packet_bytes: expected at most 16384") != std::string::npos);
    const auto ring = validate("nic-tx-bad3", "--set devices/0/tx_rate_gbps=10 --set devices/0/tx_ring_entries=100");
    CHECK(ring.exit_code == 2);
    CHECK(ring.err.find("/devices/0/tx_ring_entries: expected a multiple of 8") != std::string::npos);
    CHECK(validate("nic-tx-ok", "--set devices/0/tx_rate_gbps=10").exit_code == 0);
}

TEST_CASE("a wait descriptor completes only after the device's Invalidate Completion reached the IOMMU",
          "[cli][host][ats][regression]") {
    // The IOMMU used to retire an ITag when the device sent its completion,
    // not when it arrived (link delay): once device drains got short, a wait
    // status was written before the completion reached the unit.
    for (const char* platform : {"platforms/default.json", "platforms/vtd-nvme-strict.json", "platforms/amd-nvme-strict.json"}) {
        INFO(platform);
        auto dir = scratch_dir("wait-after-devtlb");
        auto r = run_cli("run --quiet --set duration_us=500 --out '" + dir.string() + "' '" + source_path(platform) + "'",
                         "wait-after-devtlb");
        INFO("stderr: " << r.err);
        REQUIRE(r.exit_code == 0);
        std::istringstream csv(slurp(dir / "invalidations.csv"));
        std::string line;
        std::getline(csv, line); // header: ...,devtlb_sent_ns,devtlb_done_ns,wait_done_ns,... (columns 13-15)
        int rows = 0;
        while (std::getline(csv, line)) {
            std::vector<std::string> f;
            std::stringstream ls(line);
            for (std::string c; std::getline(ls, c, ',');) f.push_back(c);
            REQUIRE(f.size() >= 16);
            if (f[14].empty() || f[15].empty()) continue;
            CHECK(std::stod(f[14]) <= std::stod(f[15]));
            ++rows;
        }
        CHECK(rows > 10);
    }
}

TEST_CASE("a NIC with ATS and 1 outstanding translation request stalls when translation is slow and its throughput follows",
          "[cli][host][nic][ats][tags]") {
    // Every packet lands in a buffer page its 64-entry ATC does not hold (8 queues x 255
    // recycled buffers), so each packet needs a Translation Request; one walker and a
    // 64-entry IOTLB make each round trip walk. With one request in flight the next miss
    // waits for the previous completion: at most one packet per round trip. Stats count
    // from 2 ms on (the recycled buffers are mapped at bring-up, see the test above).
    auto run = [](const std::string& tag, int slots) {
        return run_platform(tag, "platforms/vtd-nic-lazy.json",
                            "--set duration_us=3000 --set 'scenario=[{\"op\":\"reset_stats\",\"at_us\":2000}]' "
                            "--set devices/0/buffers=recycle --set host/cpu/rx_stack_ns=0 --set host/cpu/copy_bytes_per_ns=0 "
                            "--set iommus/0/walkers=1 --set iommus/0/iotlb/entries=64 --set devices/0/queues=8 "
                            "--set devices/0/flows=64 --set devices/0/max_translation_requests=" + std::to_string(slots));
    };
    const json one = run("nic-ats-tr1", 1);
    const json many = run("nic-ats-tr16", 16);
    const json& f1 = one["nic0"]["fn0"];
    const double gbps_one = v(one["nic0"]["rx_throughput"]), gbps_many = v(many["nic0"]["rx_throughput"]);
    const double tr_ns = f1["translation_latency"]["mean"].get<double>();
    INFO("Gb/s with 1 translation request in flight " << gbps_one << ", 16: " << gbps_many << "; mean round trip " << tr_ns
                                                       << " ns; stalls " << v(f1["translation_request_stalls"]));
    REQUIRE(v(f1["translation_requests"]) > 100);
    CHECK(v(f1["translation_request_stalls"]) > 0);
    CHECK(v(f1["translation_request_stalls"]) > 4 * v(many["nic0"]["fn0"]["translation_request_stalls"]));
    // Each packet's data page misses: at most one packet per round trip over the 1 ms counted.
    CHECK(v(one["nic0"]["rx_packets"]) <= 1e6 / tr_ns * 1.05);
    CHECK(gbps_one < 0.8 * gbps_many);
    CHECK(v(one["nic0"]["rx_dropped"]) > v(many["nic0"]["rx_dropped"]));
    CHECK(v(one["os"]["oracle"]["violations"]) == 0);
}

TEST_CASE("an ATS invalidation clears the NIC's ATC entry and completes before the unmap returns",
          "[cli][host][nic][ats]") {
    // Strict unmap per packet (map_per_packet buffers): each unmap invalidates the
    // IOTLB and the NIC's device TLB; the NIC drops the page from its ATC and answers.
    const json s = run_platform("nic-ats-inv", "platforms/vtd-ats.json", "--set duration_us=300");
    const json& f = s["nic0"]["fn0"];
    REQUIRE(v(f["invalidations_received"]) > 10);
    CHECK(v(f["invalidations_completed"]) == v(f["invalidations_received"]));
    CHECK(v(f["atc_entries_invalidated"]) > 0);
    CHECK(v(s["os"]["oracle"]["violations"]) == 0);
    CHECK(v(s["nic0"]["dma_errors"]) == 0);
}

TEST_CASE("interrupt throttling holds a queue's interrupts at least the EITR interval apart", "[cli][host][nic][itr]") {
    // 2 Gb/s: a packet every 6 us, so without throttling each packet's write-back
    // interrupts an idle driver (NAPI completes after every packet).
    auto run = [](const std::string& tag, int itr) {
        return run_platform(tag, "platforms/vtd-nic-lazy.json",
                            "--set duration_us=1000 --set devices/0/line_rate_gbps=2 --set devices/0/itr_us=" + std::to_string(itr));
    };
    const json off = run("nic-itr0", 0);
    const json on = run("nic-itr50", 50);
    const double irq_off = v(off["nic0"]["interrupts"]), irq_on = v(on["nic0"]["interrupts"]);
    INFO("interrupts without ITR " << irq_off << ", with 50 us " << irq_on);
    CHECK(v(off["nic0"]["interrupts_throttled"]) == 0);
    CHECK(irq_off == v(off["nic0"]["rx_packets"])); // one per packet
    CHECK(v(on["nic0"]["interrupts_throttled"]) > 0);
    CHECK(irq_on <= 1000.0 / 50 + 1); // one queue: at most one interrupt per 50 us
    CHECK(irq_on < irq_off / 4);
    // The same packets arrive; each poll takes several.
    CHECK(v(on["nic0"]["rx_packets"]) == v(off["nic0"]["rx_packets"]));
    CHECK(v(on["os"]["nic0_driver"]["polls"]) < v(off["os"]["nic0_driver"]["polls"]) / 4);
    CHECK(v(on["os"]["oracle"]["violations"]) == 0);
}

TEST_CASE("an SVA NIC transmits from its process's own pages without a map or unmap per packet",
          "[cli][host][nic][tx][sva]") {
    // The application writes each TX slot's page (a CPU page fault populates it on first
    // use) and keeps it; the NIC reads it through the process's page tables under its
    // PASID. The same offered load through the DMA API maps and unmaps every packet.
    const std::string load = "--set duration_us=1000 --set devices/0/rx=false --set devices/0/tx_rate_gbps=10 "
                             "--set devices/0/line_rate_gbps=100 ";
    const json sva = run_platform("nic-sva-tx", "platforms/vtd-pri-sva.json", load + "--set 'scenario=[]'");
    const json dma = run_platform("nic-dma-tx", "platforms/vtd-nic-lazy.json", load);
    const json& tx = sva["nic0"]["tx"];
    const json& fd = sva["os"]["iommufd"];
    REQUIRE(v(tx["packets"]) > 500);
    CHECK(v(fd["maps"]) == 0);
    CHECK(v(fd["unmaps"]) == 0);
    // One fault per TX slot's page, the first time the application writes it (256 slots).
    CHECK(v(fd["demand_faults"]) == 256);
    CHECK(v(sva["os"]["nic0_driver"]["tx_cleaned"]) > 500);
    // Every descriptor fetch, data read and write-back translated under the PASID and correct.
    const double checked = v(sva["os"]["oracle"]["checked"]);
    CHECK(checked == v(tx["descriptor_fetches"]) + v(tx["packets"]) + v(tx["descriptor_writebacks"]));
    CHECK(v(sva["os"]["oracle"]["correct"]) == checked);
    CHECK(v(sva["nic0"]["dma_errors"]) == 0);
    INFO("Gb/s: SVA " << v(tx["throughput"]) << ", DMA API " << v(dma["nic0"]["tx"]["throughput"]));
    CHECK(v(tx["throughput"]) > 9); // keeps up with the 10 Gb/s offered
    CHECK(v(dma["os"]["iommufd"]["unmaps"]) > 500);
}

TEST_CASE("TSO: the NIC segments each send into MSS-sized frames, and the host maps per page instead of per packet",
          "[cli][host][nic][tx][tso]") {
    // Strict flushing, 40 Gb/s offered: without TSO the sender maps (and the clean unmaps)
    // every 1500-byte packet; with 64 KiB sends, one context descriptor, a header buffer
    // and sixteen 4 KiB payload pages per send, each segment a 1500-byte frame
    // (MSS 1446 + 54 header bytes).
    auto run = [](const std::string& tag, int tso) {
        return run_platform(tag, "platforms/vtd-nic-strict.json",
                            "--set duration_us=1000 --set devices/0/rx=false --set devices/0/tx_rate_gbps=40 "
                            "--set devices/0/tso_bytes=" + std::to_string(tso));
    };
    const json plain = run("nic-tso0", 0);
    const json tso = run("nic-tso64k", 65536);
    const json& tx = tso["nic0"]["tx"];
    const double sends = v(tx["tso_sends"]);
    REQUIRE(sends > 10);
    const double payload = 65536 - 54, segments = std::ceil(payload / 1446);
    CHECK(v(tx["packets"]) == sends * segments);
    CHECK(v(tx["bytes"]) == sends * (payload + segments * 54));
    CHECK(v(tx["bad_descriptors"]) == 0);
    // Every descriptor fetch, data read (headers and pages) and write-back is checked and correct.
    const double checked = v(tso["os"]["oracle"]["checked"]);
    CHECK(checked == v(tx["descriptor_fetches"]) + tx["data_read_latency"]["count"].get<double>() + v(tx["descriptor_writebacks"]));
    CHECK(v(tso["os"]["oracle"]["correct"]) == checked);
    CHECK(v(tso["nic0"]["dma_errors"]) == 0);
    // Fewer unmaps (strict flushes) per byte sent, so more throughput from the same CPU.
    const double per_byte_tso = v(tso["os"]["iommufd"]["unmaps"]) / v(tx["bytes"]);
    const double per_byte_plain = v(plain["os"]["iommufd"]["unmaps"]) / v(plain["nic0"]["tx"]["bytes"]);
    INFO("unmaps per KB: TSO " << per_byte_tso * 1000 << ", none " << per_byte_plain * 1000 << "; Gb/s: TSO "
                               << v(tx["throughput"]) << ", none " << v(plain["nic0"]["tx"]["throughput"]));
    CHECK(per_byte_tso < per_byte_plain / 2);
    CHECK(v(tx["throughput"]) > 1.5 * v(plain["nic0"]["tx"]["throughput"]));
}

TEST_CASE("TSO settings that cannot work are bad input naming the key", "[cli][config][nic][tso]") {
    auto validate = [](const std::string& tag, const std::string& extra) {
        return run_cli("validate '" + source_path("platforms/default.json") + "' " + extra, tag);
    };
    const auto no_tx = validate("nic-tso-bad1", "--set devices/0/tso_bytes=65536");
    CHECK(no_tx.exit_code == 2);
    CHECK(no_tx.err.find("/devices/0/tso_bytes: expected 0 unless tx_rate_gbps > 0") != std::string::npos);
    const auto small = validate("nic-tso-bad2", "--set devices/0/tx_rate_gbps=10 --set devices/0/tso_bytes=1000");
    CHECK(small.exit_code == 2);
    CHECK(small.err.find("/devices/0/tso_bytes: expected more than packet_bytes") != std::string::npos);
    const auto ring = validate("nic-tso-bad3", "--set devices/0/tx_rate_gbps=10 --set devices/0/tso_bytes=65536 --set devices/0/tx_ring_entries=16");
    CHECK(ring.exit_code == 2);
    CHECK(ring.err.find("/devices/0/tx_ring_entries: expected more than the 18 descriptors") != std::string::npos);
    CHECK(validate("nic-tso-ok", "--set devices/0/tx_rate_gbps=10 --set devices/0/tso_bytes=65536").exit_code == 0);
}

TEST_CASE("a NIC's Translation Request takes one of its tags: with one tag a miss waits for the read in flight",
          "[cli][host][nic][ats][tags]") {
    // TX with ATS: every packet's data page misses the ATC (one mapping per packet), so
    // each packet needs a Translation Request before its data read. With one tag the
    // request waits for the previous packet's read, so ATS costs more than the IOMMU
    // translating the same untranslated reads (ATS off).
    auto run = [](const std::string& tag, int tags, bool ats) {
        return run_platform(tag, "platforms/vtd-nic-lazy.json",
                            "--set duration_us=1500 --set 'scenario=[{\"op\":\"reset_stats\",\"at_us\":1000}]' "
                            "--set devices/0/rx=false --set devices/0/tx_rate_gbps=60 --set devices/0/ats=" +
                                std::string(ats ? "true" : "false") + " --set devices/0/max_outstanding_reads=" + std::to_string(tags));
    };
    const json one = run("nic-tr-tag1", 1, true);
    const json off = run("nic-tr-tag1-noats", 1, false);
    const json many = run("nic-tr-tag256", 256, true);
    const json& f = one["nic0"]["fn0"];
    const double gbps_one = v(one["nic0"]["tx"]["throughput"]);
    INFO("Gb/s with 1 tag: ATS " << gbps_one << ", no ATS " << v(off["nic0"]["tx"]["throughput"]) << "; 256 tags: ATS "
                                 << v(many["nic0"]["tx"]["throughput"]));
    REQUIRE(v(f["translation_requests"]) > 100);
    // max_translation_requests is 16: these waits are for the one tag.
    CHECK(v(f["translation_request_stalls"]) > 0.5 * v(f["translation_requests"]));
    CHECK(gbps_one < v(off["nic0"]["tx"]["throughput"]));
    CHECK(gbps_one < 0.5 * v(many["nic0"]["tx"]["throughput"]));
    CHECK(v(one["os"]["oracle"]["violations"]) == 0);
}
