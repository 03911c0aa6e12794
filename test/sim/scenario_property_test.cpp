// SPDX-License-Identifier: Apache-2.0
// Property test across the host driver and the IOMMU families (VT-d, AMD-Vi, SMMUv3):
// random sequences of map, unmap, attach, detach and invalidate
// (ranges and domain-wide) over a small IOVA window that is reused all the
// time, while an ATS device DMAs all over the window; the DMA safety oracle
// checks every completed DMA. A correct driver (strict or lazy flushing) has
// no violation, whatever the sequence; a driver with an injected fault
// (host.driver skip_devtlb_invalidation, skip_iotlb_invalidation,
// reuse_iova_before_flush) has violations on every family.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <algorithm>
#include <filesystem>
#include <random>
#include <sstream>

#include "test/support/cli.hpp"

using namespace iommusim::test;
using nlohmann::ordered_json;

namespace {

constexpr uint64_t kWindow = 0x4000'0000; ///< IOVA of the reused window
constexpr unsigned kPages = 16;

/// A platform on an IOMMU of `family` whose scenario is `steps` random operations drawn from `seed`.
/// `reuse_early`: a lazy unmap's IOVA is mapped again without draining the flush queue first
/// (only a driver with reuse_iova_before_flush allows it; a correct one refuses the map).
/// `churn` true: the device is attached first and the steps only map, unmap and wait (no
/// attach, detach or explicit invalidation), so only the driver's own flushes end a stale
/// translation's life while the device keeps using the window.
ordered_json random_platform(const std::string& family, uint32_t seed, const std::string& flush, unsigned steps,
                             bool reuse_early = false, bool churn = false) {
    ordered_json p = ordered_json::parse(R"({
      "name": "property", "seed": 1, "duration_us": 400,
      "iommus": [ { "name": "iommu0", "type": "vtd" } ],
      "topology": { "root_complex": { "name": "rc0", "iommu": "iommu0", "root_ports": [ { "name": "rp0" } ] } },
      "devices": [ { "name": "dev0", "type": "traffic", "port": "rp0", "start_at_us": 10,
                     "workloads": [ { "type": "random_uniform", "base": 1073741824, "region_bytes": "64KiB",
                                      "request_bytes": 64, "read_percent": 50, "rate_gbps": 1 } ] } ],
      "host": { "driver": { "flush": "strict" } },
      "scenario": [ { "op": "create_ioas", "name": "io0" },
                    { "op": "alloc_domain", "name": "d0", "ioas": "io0" } ]
    })");
    p["iommus"][0]["type"] = family;
    if (family == "smmuv3") p["host"]["cpu"]["arch"] = "arm64";
    p["host"]["driver"]["flush"] = flush;
    auto& sc = p["scenario"];
    std::mt19937 rng(seed);
    std::vector<bool> mapped(kPages, false), pending(kPages, false); // pending: unmapped, flush queued (lazy)
    bool attached = churn;
    if (churn) sc.push_back({{"op", "attach"}, {"device", "dev0"}, {"domain", "d0"}});
    auto page_iova = [](unsigned k) { return kWindow + uint64_t{k} * 4096; };
    for (unsigned i = 0; i < steps; ++i) {
        const unsigned k = rng() % kPages;
        switch (rng() % 5) {
        case 0:
        case 1: // map or unmap one page of the window: the same IOVAs come back again and again
            if (mapped[k]) {
                sc.push_back({{"op", "unmap"}, {"ioas", "io0"}, {"iova", page_iova(k)}, {"size_bytes", 4096}});
                pending[k] = flush == "lazy";
            } else {
                // Lazy: an IOVA comes back only once its flush completed (the
                // allocator refuses it before): drain the flush queue first.
                if (pending[k] && !reuse_early) {
                    sc.push_back({{"op", "flush_queue"}});
                    std::fill(pending.begin(), pending.end(), false);
                }
                sc.push_back({{"op", "map"}, {"ioas", "io0"}, {"iova", page_iova(k)}, {"size_bytes", 4096}});
            }
            mapped[k] = !mapped[k];
            break;
        case 2: // attach; later a domain-wide invalidation or a detach
            if (churn) {
                sc.push_back({{"op", "wait"}, {"us", 1 + rng() % 5}});
                break;
            }
            // A detach makes DMAs still in flight (stamped before it, checked
            // after it) the oracle's test: it judges each against the binding
            // of its own time.
            if (!attached) sc.push_back({{"op", "attach"}, {"device", "dev0"}, {"domain", "d0"}});
            else if (rng() % 3 == 0) sc.push_back({{"op", "detach"}, {"device", "dev0"}});
            else sc.push_back({{"op", "invalidate"}, {"domain", "d0"}});
            attached = !attached || sc.back()["op"] != "detach";
            break;
        case 3: {
            const unsigned n = 1 + rng() % 4;
            if (churn) {
                sc.push_back({{"op", "wait"}, {"us", n}});
                break;
            }
            sc.push_back({{"op", "invalidate"}, {"domain", "d0"}, {"iova", page_iova(k)}, {"size_bytes", 4096 * n}});
            break;
        }
        default: sc.push_back({{"op", "wait"}, {"us", 1 + rng() % 5}}); break;
        }
    }
    return p;
}

/// Every violation listed in `out`/violations.csv was served by `source` (an IOTLB, an ATC); returns how many.
unsigned violations_served_by(const std::filesystem::path& out, const std::string& source) {
    std::istringstream csv(slurp(out / "violations.csv"));
    std::string line;
    std::getline(csv, line);
    unsigned rows = 0;
    while (std::getline(csv, line)) {
        ++rows;
        INFO(line);
        CHECK(line.find("," + source + ",") != std::string::npos);
    }
    return rows;
}

/// Runs the platform with `extra` CLI options; returns its stats (and in `out` its results folder).
ordered_json run_platform(const ordered_json& p, const std::string& tag, const std::string& extra = "",
                          std::filesystem::path* out = nullptr) {
    auto dir = scratch_dir(tag);
    write_file(dir / "p.json", p.dump(2));
    auto r = run_cli("run '" + (dir / "p.json").string() + "' --quiet --out '" + (dir / "out").string() + "' " + extra, tag);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    if (out) *out = dir / "out";
    return ordered_json::parse(slurp(dir / "out" / "stats.json"));
}

const char* const kFamilies[] = {"vtd", "amd", "smmuv3"};

/// Runs `correct` with the correct driver and `broken` with the injected driver fault `setting`
/// (a host.driver boolean): the DMAs of both were checked, the first has no violation, the second
/// has some, each served by `source`. Returns the broken run's results folder.
std::filesystem::path check_injected_fault(const std::string& family, const ordered_json& correct,
                                           const ordered_json& broken, const std::string& setting,
                                           const std::string& source) {
    std::filesystem::path out;
    for (const bool faulty : {false, true}) {
        INFO(family << (faulty ? ", " + setting : std::string(", correct driver")));
        const std::string tag = "prop-" + setting + "-" + family + (faulty ? "-broken" : "-ok");
        const auto s = run_platform(faulty ? broken : correct, tag, faulty ? "--set host.driver." + setting + "=true" : "", &out);
        CHECK(s["os"]["oracle"]["checked"]["value"].get<uint64_t>() > 1000);
        if (!faulty) CHECK(s["os"]["oracle"]["violations"]["value"] == 0);
        else CHECK(s["os"]["oracle"]["violations"]["value"].get<uint64_t>() > 0);
    }
    INFO(family << ", " << setting);
    CHECK(violations_served_by(out, source) > 0);
    return out;
}

} // namespace

TEST_CASE("random map/unmap/attach/detach/invalidate sequences over reused IOVAs have no safety violation",
          "[sim][host][oracle][property]") {
    for (const char* family : kFamilies) {
        uint64_t checked = 0;
        for (const char* flush : {"strict", "lazy"})
            for (uint32_t seed = 1; seed <= 3; ++seed) {
                INFO(family << ", flush " << flush << ", sequence seed " << seed);
                const auto s = run_platform(random_platform(family, seed, flush, 120),
                                            std::string("prop-") + family + flush + std::to_string(seed));
                CHECK(s["os"]["oracle"]["violations"]["value"] == 0);
                checked += s["os"]["oracle"]["checked"]["value"].get<uint64_t>();
            }
        INFO(family);
        CHECK(checked > 1000); // the device really used the window while it changed
    }
}

// Regression (AMD-Vi, found by the sequences above, seed 3): the driver left the DTEs of
// devices it had not attached yet all-zero (V = 0: untranslated pass-through), so a device
// that started DMA before its first attach reached memory. Linux init_device_table_dma
// sets V = TV = 1 in every DTE at boot: blocked until a domain is attached.
TEST_CASE("a device that starts DMA before its first attach is blocked until then, on every family",
          "[sim][host][oracle]") {
    for (const char* family : kFamilies) {
        INFO(family);
        ordered_json p = random_platform(family, 1, "strict", 0);
        p["duration_us"] = 40; // the device starts at 10 us, after every family's driver bring-up
        auto& sc = p["scenario"];
        sc.push_back({{"op", "map"}, {"ioas", "io0"}, {"iova", kWindow}, {"size_bytes", 65536}});
        sc.push_back({{"op", "wait"}, {"us", 20}});
        sc.push_back({{"op", "attach"}, {"device", "dev0"}, {"domain", "d0"}});
        const auto s = run_platform(p, std::string("early-dma-") + family);
        CHECK(s["os"]["oracle"]["violations"]["value"] == 0);
        CHECK(s["iommu0"]["faults"]["value"].get<uint64_t>() > 0); // the early DMAs were refused
        CHECK(s["os"]["oracle"]["checked"]["value"].get<uint64_t>() > 100); // and later ones translated
    }
}

// Injected driver fault on random sequences with an ATS device: the driver never
// invalidates device TLBs. Beside the traffic device of the random sequence, an ATS NIC
// (its kernel driver recycles RX buffer IOVAs, unmapping and remapping them all the time)
// sits on a second root port of the same unit. With the fault, every family's oracle
// flags DMAs the NIC's ATC served after their invalidation should have completed; the
// same platform with the correct driver has none.
TEST_CASE("a driver skipping device-TLB invalidations is flagged by the oracle on every family, beside random sequences",
          "[sim][host][oracle][property]") {
    for (const char* family : kFamilies) {
        ordered_json p = random_platform(family, 2, "strict", 120);
        p["topology"]["root_complex"]["root_ports"].push_back({{"name", "rp1"}});
        p["devices"].push_back({{"name", "nic0"}, {"type", "nic"}, {"port", "rp1"}, {"ats", true},
                                {"ring_entries", 8}, {"napi_batch", 1}});
        if (std::string(family) == "vtd") p["iommus"][0]["device_tlb"] = true;
        // Every violation listed was served by an ATC (only the NIC has one).
        check_injected_fault(family, p, p, "skip_devtlb_invalidation", "atc");
    }
}

// Injected driver fault: the driver never invalidates the IOMMU's own IOTLB (the commands are
// left out of the queue, the sync still completes, so the driver believes every unmap's flush
// done). The random sequences' device has no ATC: every stale translation comes from the IOTLB.
TEST_CASE("a driver skipping IOTLB invalidations is flagged by the oracle on every family, on random sequences",
          "[sim][host][oracle][property]") {
    for (const char* family : kFamilies) {
        const ordered_json p = random_platform(family, 2, "strict", 120);
        check_injected_fault(family, p, p, "skip_iotlb_invalidation", "iotlb");
    }
}

// Injected driver fault: lazy unmaps give their IOVA back at once instead of after the flush
// queue's flush, and the random sequence maps it again while the old translation is still in
// the IOTLB. The correct driver runs the same sequence, draining the flush queue before each
// reuse as its allocator requires (it refuses the IOVA before). The sequences only map, unmap
// and wait with the device attached (an explicit invalidation between the reuse and the
// device's next access would end the stale translation before the fault could show).
TEST_CASE("a driver reusing IOVAs before their flush completed is flagged by the oracle on every family",
          "[sim][host][oracle][property]") {
    for (const char* family : kFamilies) {
        const auto out = check_injected_fault(family, random_platform(family, 3, "lazy", 120, false, /*churn=*/true),
                                              random_platform(family, 3, "lazy", 120, /*reuse_early=*/true, /*churn=*/true),
                                              "reuse_iova_before_flush", "iotlb");
        CHECK(slurp(out / "violations.csv").find("mapped again before its invalidation completed") != std::string::npos);
    }
}
