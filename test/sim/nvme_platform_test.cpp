// SPDX-License-Identifier: Apache-2.0
// The NVMe-like device end to end: admin queue bring-up, I/O queues created
// by admin commands, SQEs fetched, PRP lists read and data moved by DMA
// through VT-d (checked by the oracle), completions by phase tag.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "test/support/cli.hpp"

using namespace iommusim::test;
using nlohmann::json;

namespace {
json run_nvme(const std::string& tag, const std::string& extra) {
    auto dir = scratch_dir(tag);
    auto r = run_cli("run --quiet --out '" + dir.string() + "' '" + source_path("platforms/vtd-nvme-strict.json") + "' " + extra, tag);
    INFO("stderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    return json::parse(slurp(dir / "stats.json"));
}
double v(const json& j) { return j.contains("value") ? j["value"].get<double>() : j["count"].get<double>(); }
} // namespace

TEST_CASE("an NVMe command's PRP list is read through the IOMMU and its data moves by checked DMAs", "[cli][host][nvme]") {
    // 16 KiB commands: PRP1 is the first page, PRP2 points at a list of the other three.
    const json s = run_nvme("nvme-prp", "--set duration_us=500 --set devices/0/block_bytes=16384");
    const json& dev = s["nvme0"];
    const double io = v(dev["reads"]) + v(dev["writes"]);
    REQUIRE(io > 50);
    CHECK(v(dev["prp_list_reads"]) == io); // one list per I/O command
    CHECK(v(dev["errors"]) == 0);
    CHECK(v(s["os"]["nvme0_driver"]["completed"]) > 0);
    CHECK(v(s["os"]["nvme0_driver"]["errors"]) == 0);
    // Every device access (SQE, PRP list, data pages, CQE) is a translated request the oracle checked.
    const double checked = v(s["os"]["oracle"]["checked"]);
    CHECK(checked >= io * (1 + 1 + 4));
    CHECK(v(s["os"]["oracle"]["correct"]) == checked);
    CHECK(v(s["os"]["oracle"]["violations"]) == 0);
    CHECK(v(s["dmar0"]["translated_requests"]) == checked);
}

TEST_CASE("an 8 KiB NVMe command needs no PRP list: PRP2 names its second page", "[cli][host][nvme]") {
    const json s = run_nvme("nvme-prp2", "--set duration_us=300 --set devices/0/block_bytes=8192");
    CHECK(v(s["nvme0"]["reads"]) + v(s["nvme0"]["writes"]) > 20);
    CHECK(v(s["nvme0"]["prp_list_reads"]) == 0);
    CHECK(v(s["os"]["oracle"]["violations"]) == 0);
    CHECK(v(s["os"]["oracle"]["correct"]) == v(s["os"]["oracle"]["checked"]));
}

TEST_CASE("NVMe latency follows the media service time at a shallow queue", "[cli][host][nvme]") {
    // One job at queue depth 1 on lazy flushing: each command is host submit +
    // SQE fetch + media (75 us NAND default) + data + CQE + interrupt.
    const json s = run_nvme("nvme-qd1", "--set duration_us=2000 --set devices/0/queue_depth=1 --set devices/0/jobs=1 "
                                        "--set devices/0/block_bytes=4096 --set devices/0/service_ns=75000 "
                                        "--set host.driver.flush=lazy");
    const json& lat = s["os"]["nvme0_driver"]["io_latency"];
    CHECK(lat["p50"].get<double>() > 75000);
    CHECK(lat["p50"].get<double>() < 90000);
    CHECK(v(s["nvme0"]["media_wait"]) > 0);
}

TEST_CASE("NVMe interrupt coalescing delivers one interrupt per threshold of completions or aggregation time",
          "[cli][host][nvme][interrupts]") {
    // 2 jobs x QD 32: without coalescing most polls find one or two completions; with a
    // threshold of 8 (Set Features FID 08h THR = 7) and 100 us (TIME = 1) an interrupt
    // waits for 8 completions or 100 us after the first of them.
    const json off = run_nvme("nvme-coal-off", "--set duration_us=1000");
    const json on = run_nvme("nvme-coal-8", "--set duration_us=1000 --set devices/0/coalescing_entries=8 "
                                            "--set devices/0/coalescing_time_us=100");
    const double irq_off = v(off["nvme0"]["interrupts"]), irq_on = v(on["nvme0"]["interrupts"]);
    const double cmds_on = v(on["nvme0"]["commands"]);
    INFO("interrupts without coalescing " << irq_off << ", with " << irq_on << " for " << cmds_on << " commands");
    REQUIRE(cmds_on > 100);
    CHECK(irq_on < irq_off / 3);
    // At most one per 8 completions, plus one per 100 us per queue that ends on the timer.
    CHECK(irq_on <= cmds_on / 8 + 2 * 1000.0 / 100 + 2);
    CHECK(v(on["os"]["nvme0_driver"]["errors"]) == 0);
    CHECK(v(on["os"]["oracle"]["violations"]) == 0);
    // Completions wait for their interrupt: the mean I/O latency grows.
    CHECK(on["os"]["nvme0_driver"]["io_latency"]["mean"].get<double>() > off["os"]["nvme0_driver"]["io_latency"]["mean"].get<double>());
}

TEST_CASE("an NVMe coalescing time that is not a multiple of 100 us is bad input naming the key", "[cli][config][nvme]") {
    const auto r = run_cli("validate '" + source_path("platforms/vtd-nvme-strict.json") + "' --set devices/0/coalescing_time_us=150",
                           "nvme-coal-bad");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("/devices/0/coalescing_time_us: expected a multiple of 100") != std::string::npos);
}
