// SPDX-License-Identifier: Apache-2.0
// ATS on a workload-driven device's functions (models/pcie/ats_traffic_endpoint):
// platforms/sriov-ats.json, four SR-IOV VFs each with its own ATC.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "test/support/cli.hpp"
#include "test/support/stats.hpp"

using namespace iommusim::test;
using nlohmann::ordered_json;

namespace {
ordered_json run_edited(ordered_json p, const std::string& tag) {
    auto dir = scratch_dir(tag);
    write_file(dir / "p.json", p.dump(2));
    auto r = run_cli("run '" + (dir / "p.json").string() + "' --quiet --out '" + (dir / "out").string() + "'", tag);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    return ordered_json::parse(slurp(dir / "out" / "stats.json"));
}
ordered_json shipped() { return ordered_json::parse(slurp(source_path("platforms/sriov-ats.json"))); }
uint64_t value(const ordered_json& s, std::initializer_list<const char*> path) { return stat_value(s, path); }
} // namespace

TEST_CASE("each SR-IOV VF with ATS caches its own translations and answers its own Invalidate Request",
          "[cli][pcie][ats][sriov]") {
    const ordered_json s = run_edited(shipped(), "sriov-ats");
    uint64_t translated = 0;
    for (const char* fn : {"fn1", "fn2", "fn3", "fn4"}) {
        INFO(fn);
        CHECK(value(s, {"nic0", fn, "translation_requests"}) > 0);
        // Every access after the first of a page hits the VF's own ATC.
        CHECK(value(s, {"nic0", fn, "atc", "hits"}) > 5 * value(s, {"nic0", fn, "translation_requests"}));
        // The strict unmap of the buffers reached this VF's RID once and dropped its buffer pages.
        CHECK(value(s, {"nic0", fn, "invalidations_completed"}) == 1);
        CHECK(value(s, {"nic0", fn, "atc_entries_invalidated"}) > 0);
        translated += value(s, {"nic0", fn, "translated_requests"});
    }
    CHECK(value(s, {"nic0", "fn0", "translation_requests"}) == 0); // the PF issues nothing
    CHECK(value(s, {"nic0", "invalidations_received"}) == 4);
    // Every TLP went out translated and the oracle judged each.
    CHECK(translated == value(s, {"nic0", "read_tlps"}) + value(s, {"nic0", "write_tlps"}));
    CHECK(value(s, {"dmar0", "translated_requests"}) == translated);
    CHECK(value(s, {"os", "oracle", "checked"}) == translated);
    CHECK(value(s, {"os", "oracle", "violations"}) == 0);
}

TEST_CASE("a VF never uses a translation its completed invalidation dropped: later accesses translate again and fault",
          "[cli][pcie][ats][sriov]") {
    // The buffers are unmapped while the VFs keep running: each VF's next access to a
    // buffer page misses its ATC and the Translation Completion says no access.
    ordered_json p = shipped();
    ordered_json steps = ordered_json::array();
    for (const auto& st : p["scenario"])
        if (st["op"] != "stop" && st["op"] != "expect") steps.push_back(st);
    p["scenario"] = steps;
    const ordered_json s = run_edited(p, "sriov-ats-live");
    for (const char* fn : {"fn1", "fn2", "fn3", "fn4"}) {
        INFO(fn);
        CHECK(value(s, {"nic0", fn, "invalidations_completed"}) == 1);
        CHECK(value(s, {"nic0", fn, "translation_no_access"}) > 0);
    }
    CHECK(value(s, {"nic0", "errors"}) > 0);
    CHECK(value(s, {"os", "oracle", "violations"}) == 0);
}

TEST_CASE("each family's device-TLB invalidation reaches the VFs' ATCs and is answered", "[cli][pcie][ats][sriov]") {
    // The same platform on an SMMUv3 (CMD_ATC_INV) and an AMD-Vi unit (INVALIDATE_IOTLB_PAGES).
    for (const auto& [type, unit] : {std::pair<const char*, const char*>{"smmuv3", "smmu0"}, {"amd", "amdvi0"}}) {
        INFO(type);
        ordered_json p = shipped();
        p["iommus"][0]["type"] = type;
        p["iommus"][0]["name"] = unit;
        p["topology"]["root_complex"]["iommu"] = unit;
        const ordered_json s = run_edited(p, std::string("sriov-ats-") + type); // its expect steps hold
        for (const char* fn : {"fn1", "fn2", "fn3", "fn4"}) {
            INFO(fn);
            CHECK(value(s, {"nic0", fn, "translation_requests"}) > 0);
            CHECK(value(s, {"nic0", fn, "invalidations_completed"}) >= 1);
            CHECK(value(s, {"nic0", fn, "atc_entries_invalidated"}) > 0);
        }
        CHECK(value(s, {"nic0", "errors"}) == 0);
        CHECK(value(s, {"os", "oracle", "violations"}) == 0);
    }
}

TEST_CASE("a traffic device's ATC geometry that cannot work is bad input naming the key", "[cli][config][ats]") {
    ordered_json p = shipped();
    p["devices"][0]["ats"] = {{"atc_entries", 6}, {"atc_ways", 4}};
    auto dir = scratch_dir("sriov-ats-bad");
    write_file(dir / "p.json", p.dump(2));
    const auto r = run_cli("validate '" + (dir / "p.json").string() + "'", "sriov-ats-bad");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("/devices/0/ats/atc_entries") != std::string::npos);
}
