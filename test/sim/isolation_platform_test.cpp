// SPDX-License-Identifier: Apache-2.0
// Isolation and PASID ownership (issue 18): the platforms/isolation/ files, each
// pinning one behaviour with its own expect steps, and the checks behind them.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "test/support/cli.hpp"
#include "test/support/stats.hpp"

using namespace iommusim::test;
using nlohmann::ordered_json;

namespace {

/// Runs a platforms/isolation/ file (its expect steps must all pass) and returns stats.json.
ordered_json run_shipped(const std::string& name) {
    auto dir = scratch_dir("isolation-" + name);
    auto r = run_cli("run '" + source_path("platforms/isolation/" + name + ".json") + "' --quiet --out '" + dir.string() + "'",
                     "isolation-" + name);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    return ordered_json::parse(slurp(dir / "stats.json"));
}

/// Runs an edited platform; returns the CLI result.
CliResult run_edited(const ordered_json& p, const std::string& tag) {
    auto dir = scratch_dir(tag);
    write_file(dir / "p.json", p.dump(2));
    return run_cli("run '" + (dir / "p.json").string() + "' --quiet --out '" + (dir / "out").string() + "'", tag);
}

uint64_t value(const ordered_json& s, std::initializer_list<const char*> path) { return stat_value(s, path); }

ordered_json shipped(const std::string& name) {
    return ordered_json::parse(slurp(source_path("platforms/isolation/" + name + ".json")));
}

} // namespace

TEST_CASE("a PASID is attached only by the owner of the set it was allocated in, and a never-allocated PASID is refused",
          "[sim][host][isolation][pasid]") {
    auto s = run_shipped("pasid-ownership");
    CHECK(value(s, {"scenario", "failures"}) == 0);
    // Another owner's PASID (not_owner), PASID 9 never allocated (not_found), as vm2 and as the kernel.
    CHECK(value(s, {"os", "isolation", "pasid_refusals"}) == 3);
    CHECK(value(s, {"acc1", "errors"}) == 0); // vm2's guest PASID 101 = host PASID 2 translates
    CHECK(value(s, {"os", "oracle", "violations"}) == 0);
}

TEST_CASE("an SVA bind's hidden PASID is charged to the caller's quota", "[sim][host][isolation][pasid]") {
    auto s = run_shipped("pasid-ownership");
    CHECK(value(s, {"os", "isolation", "hidden_pasids"}) == 1); // vm1 at its quota of 2: the next alloc failed
}

TEST_CASE("freeing a PASID still attached tears the attachment down before the PASID is reused",
          "[sim][host][isolation][pasid]") {
    auto s = run_shipped("pasid-ownership");
    CHECK(value(s, {"os", "isolation", "pasid_teardowns"}) == 1);
    CHECK(value(s, {"acc0", "errors"}) > 0); // acc0's PASID 1 DMAs fault after the teardown
    CHECK(value(s, {"acc0", "errors"}) == value(s, {"dmar0", "faults"}));
}

TEST_CASE("the default PASID quota per owner is host.pasid.default_quota", "[sim][host][isolation][pasid]") {
    auto p = shipped("pasid-ownership");
    p["host"]["pasid"]["default_quota"] = 1; // vm2's set is created on first use with this quota
    p["scenario"] = ordered_json::parse(R"([
        {"op": "alloc_pasid", "name": "a", "owner": "vm2"},
        {"op": "alloc_pasid", "name": "b", "owner": "vm2", "expect_error": "quota_exceeded"},
        {"op": "free_pasid", "owner": "vm2", "pasid": "a"},
        {"op": "alloc_pasid", "name": "c", "owner": "vm2"}
    ])");
    auto r = run_edited(p, "isolation-default-quota");
    INFO(r.err);
    CHECK(r.exit_code == 0);
    p["host"]["pasid"]["default_quota"] = 0;
    auto bad = run_edited(p, "isolation-default-quota-0");
    CHECK(bad.exit_code == 2);
    CHECK(bad.err.find("/host/pasid/default_quota") != std::string::npos);
}

TEST_CASE("a scenario PASID step names the PASID once and a private ID needs its owner", "[sim][config][isolation]") {
    auto p = shipped("pasid-ownership");
    p["scenario"] = ordered_json::parse(R"([{"op": "free_pasid", "owner": "vm1"}])");
    auto r = run_edited(p, "isolation-free-no-pasid");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("free_pasid needs one of") != std::string::npos);
    p["scenario"] = ordered_json::parse(R"([{"op": "create_ioas", "name": "io"}, {"op": "alloc_domain", "name": "d", "ioas": "io"},
        {"op": "attach", "device": "acc0", "domain": "d", "private_id": 5}])");
    r = run_edited(p, "isolation-private-no-owner");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("/scenario/2/private_id") != std::string::npos);
}

TEST_CASE("the functions of one IOMMU group cannot be attached to different owners or domains", "[sim][host][isolation][group]") {
    auto s = run_shipped("group-viability");
    CHECK(value(s, {"os", "isolation", "group_refusals"}) == 3);
    CHECK(value(s, {"mf0", "errors"}) == 0); // both functions end up with vm2, on one domain
    // The refusal names the group and the owner holding it.
    auto p = shipped("group-viability");
    p["scenario"][7].erase("expect_error");
    auto r = run_edited(p, "isolation-group-message");
    CHECK(r.exit_code == 1);
    INFO(r.err);
    CHECK(r.err.find("busy: device 01:00.1: IOMMU group 0 of rc0 (01:00.0, 01:00.1) belongs to \"vm1\", not \"vm2\"") !=
          std::string::npos);
}

TEST_CASE("iommusim topology shows the owner of each IOMMU group", "[cli][isolation][group]") {
    auto r = run_cli("topology '" + source_path("platforms/isolation/group-viability.json") + "'");
    INFO(r.out);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("group 0 (01:00.0, 01:00.1): owners in turn vm1, vm2") != std::string::npos);
    CHECK(r.out.find("group 1 (02:00.0): owner vm2") != std::string::npos);
    auto m = run_cli("topology '" + source_path("platforms/isolation/same-rid-migration.json") + "'");
    CHECK(m.out.find("group 2 (01:00.2): unowned (kernel)") != std::string::npos);
}

TEST_CASE("a function's DMA to its own BAR never reaches the IOMMU and the checker reports the host's region",
          "[sim][host][isolation][same_rid]") {
    auto s = run_shipped("same-rid-migration");
    const uint64_t unmediated = value(s, {"acc0", "unmediated_accesses"});
    CHECK(unmediated == 282); // every write of the BAR stream (64 B each, 0.1 GB/s over 180 us)
    CHECK(value(s, {"os", "isolation", "bar_accesses"}) == unmediated);
    CHECK(value(s, {"acc0", "bar_writes"}) == unmediated);
    CHECK(value(s, {"dmar0", "faults"}) == 0);
    // The stream is uniform over the VF's 64 KiB BAR; the upper half is the host's migration region.
    CHECK(value(s, {"os", "isolation", "violations"}) == 145);
}

TEST_CASE("the migration region on another function in another group is translated and blocked",
          "[sim][host][isolation][same_rid]") {
    auto s = run_shipped("same-rid-migration-fix");
    CHECK(value(s, {"acc0", "unmediated_accesses"}) == 0);
    CHECK(value(s, {"os", "isolation", "violations"}) == 0);
    CHECK(value(s, {"dmar0", "faults"}) == 282); // the same 282 writes, now faulted by the IOMMU
    CHECK(value(s, {"acc0", "errors"}) == 282);
}

TEST_CASE("an owned region must lie inside its BAR and behind an IOMMU", "[sim][config][isolation]") {
    auto p = shipped("same-rid-migration");
    p["devices"][0]["owned_regions"][0]["offset"] = "64KiB";
    auto r = run_edited(p, "isolation-region-outside");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("/devices/0/owned_regions/0") != std::string::npos);
    p = shipped("same-rid-migration");
    p["devices"][0]["owned_regions"][0]["function"] = 7;
    r = run_edited(p, "isolation-region-function");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("/devices/0/owned_regions/0/function") != std::string::npos);
}

TEST_CASE("with snoop control every paging domain enforces coherency and No-Snoop DMA is snooped",
          "[sim][host][isolation][coherency]") {
    auto s = run_shipped("coherency-snoop-control");
    CHECK(value(s, {"os", "iommufd", "noncoherent_domains"}) == 0);
    CHECK(value(s, {"dmar0", "snoop_forced"}) > 0);
    CHECK(value(s, {"dmar0", "no_snoop_to_memory"}) == 0);
}

TEST_CASE("without snoop control the domains do not enforce coherency and No-Snoop DMA reaches memory non-snooped",
          "[sim][host][isolation][coherency]") {
    auto s = run_shipped("coherency-no-snoop-control");
    auto on = run_shipped("coherency-snoop-control");
    CHECK(value(s, {"os", "iommufd", "noncoherent_domains"}) == 2);
    CHECK(value(s, {"dmar0", "snoop_forced"}) == 0);
    // The same requests: what one unit forced snooped, the other let through non-snooped.
    CHECK(value(s, {"dmar0", "no_snoop_to_memory"}) == value(on, {"dmar0", "snoop_forced"}));
}

TEST_CASE("SMMUv3 behind a CANWBS root complex: every domain enforces coherency and No-Snoop DMA stays coherent",
          "[sim][host][isolation][coherency][smmuv3]") {
    auto s = run_shipped("coherency-smmuv3-canwbs");
    auto off = run_shipped("coherency-smmuv3");
    CHECK(value(s, {"os", "iommufd", "noncoherent_domains"}) == 0);
    CHECK(value(s, {"smmu0", "no_snoop_to_memory"}) == 0);
    // The same requests: what the CANWBS root complex kept coherent reaches memory non-snooped without it.
    CHECK(value(s, {"rc0", "no_snoop_made_coherent"}) == value(off, {"smmu0", "no_snoop_to_memory"}));
    CHECK(value(off, {"os", "iommufd", "noncoherent_domains"}) == 2);
}

TEST_CASE("an SMMUv3 domain that enforces coherency refuses a device of a root complex without CANWBS, and a CANWBS "
          "device refuses a domain that cannot",
          "[sim][host][isolation][coherency][smmuv3]") {
    // Two root complexes on one SMMU is not a topology this simulator builds (one root complex per
    // IOMMU), so the mixed case is the same device before and after: attached to a domain that a
    // CANWBS device already made coherent is checked by the driver (arm_smmu_attach_prepare).
    auto p = shipped("coherency-smmuv3-canwbs");
    auto& sc = p["scenario"];
    sc = ordered_json::array();
    sc.push_back({{"op", "create_ioas"}, {"name", "io"}});
    sc.push_back({{"op", "alloc_domain"}, {"name", "d"}, {"ioas", "io"}, {"stage", "first_stage"}});
    sc.push_back({{"op", "attach"}, {"device", "gpu0"}, {"domain", "d"}, {"owner", "vm1"}});
    sc.push_back({{"op", "attach"}, {"device", "gpu1"}, {"domain", "d"}, {"owner", "vm1"}});
    sc.push_back({{"op", "expect"}, {"stat", "os.iommufd.noncoherent_domains"}, {"eq", 0}});
    auto ok = run_edited(p, "isolation-smmuv3-canwbs-shared");
    INFO(ok.err);
    CHECK(ok.exit_code == 0);
}

TEST_CASE("kernel drivers hold their devices' IOMMU groups and take their PASIDs from the allocator",
          "[sim][host][isolation][group][pasid]") {
    auto s = run_shipped("kernel-drivers");
    // nic0 (DMA API with PASID) gets the lowest free PASID in the kernel's set, then nic1's SVA
    // bind the next one in its process's set; each NIC's DMA carries the PASID its driver wrote.
    CHECK(value(s, {"os", "nic0_driver", "pasid"}) == 1);
    CHECK(value(s, {"os", "nic1_driver", "pasid"}) == 2);
    CHECK(value(s, {"os", "isolation", "hidden_pasids"}) == 1);
    CHECK(value(s, {"nic0", "rx_packets"}) > 0);
    CHECK(value(s, {"nic0", "dma_errors"}) == 0);
    // A user's attach to nic0, and to acc0 (one group with the NVMe the kernel drives), are busy.
    CHECK(value(s, {"os", "isolation", "group_refusals"}) == 2);
    // The refusal names the kernel as the group's owner.
    auto p = shipped("kernel-drivers");
    p["scenario"][6].erase("expect_error");
    auto r = run_edited(p, "isolation-kernel-group-message");
    CHECK(r.exit_code == 1);
    INFO(r.err);
    CHECK(r.err.find("belongs to \"kernel\", not \"vm1\"") != std::string::npos);
}

TEST_CASE("a NIC asking for a PASID value the allocator already gave out fails its setup with busy",
          "[sim][host][isolation][pasid]") {
    auto p = shipped("kernel-drivers");
    p["devices"][0]["pasid"] = 2; // nic1's SVA bind asks for 2 as well
    p["devices"][1]["pasid"] = 2;
    p["scenario"] = ordered_json::array();
    auto r = run_edited(p, "isolation-nic-pasid-taken");
    INFO(r.err);
    CHECK(r.exit_code != 0);
    CHECK(r.err.find("busy") != std::string::npos);
}

TEST_CASE("a VM's passed-through device in an IOMMU group a kernel driver holds is refused",
          "[sim][host][isolation][group][vm]") {
    auto s = run_shipped("vm-shared-group");
    CHECK(value(s, {"vm0", "vm0_viommu", "attach_refused"}) >= 1);
    CHECK(value(s, {"acc0", "errors"}) > 0); // the guest's context stays unbound: its DMA faults
    CHECK(value(s, {"os", "ssd0_driver", "errors"}) == 0);
    // The same VM with its device in a group of its own (ACS on the switch ports) is attached.
    auto p = shipped("vm-shared-group");
    for (auto& dp : p["topology"]["switches"][0]["downstream_ports"]) dp["acs"] = {"SV", "RR", "CR", "UF"};
    p["scenario"] = ordered_json::array({{{"op", "guest_map"}, {"vm", "vm0"}, {"name", "buf"}, {"iova", "0x10000000"}, {"size_bytes", "16KiB"}},
                                         {{"op", "start"}, {"device", "acc0"}},
                                         {{"op", "wait"}, {"us", 100}},
                                         {{"op", "expect"}, {"stat", "vm0.vm0_viommu.attach_refused"}, {"eq", 0}},
                                         {{"op", "expect"}, {"stat", "acc0.errors"}, {"eq", 0}},
                                         {{"op", "expect"}, {"stat", "acc0.reads"}, {"gt", 0}}});
    auto r = run_edited(p, "isolation-vm-own-group");
    INFO(r.err);
    CHECK(r.exit_code == 0);
}

TEST_CASE("a nested domain enforces coherency as its nesting parent does, and each VM reports its non-coherent domains",
          "[sim][host][isolation][coherency][vm]") {
    auto s = run_shipped("vm-coherency");
    CHECK(value(s, {"vm0", "vm0_viommu", "noncoherent_domains"}) == 0);
    CHECK(value(s, {"os", "iommufd", "noncoherent_domains"}) == 0);
    CHECK(value(s, {"dmar0", "snoop_forced"}) > 0);
    auto p = shipped("vm-coherency");
    p["iommus"][0]["snoop_control"] = false;
    p["scenario"] = ordered_json::array({{{"op", "guest_map"}, {"vm", "vm0"}, {"name", "buf"}, {"iova", "0x10000000"}, {"size_bytes", "16KiB"}},
                                         {{"op", "start"}, {"device", "acc0"}},
                                         {{"op", "wait"}, {"us", 100}},
                                         {{"op", "expect"}, {"stat", "vm0.vm0_viommu.noncoherent_domains"}, {"eq", 1}},
                                         {{"op", "expect"}, {"stat", "os.iommufd.noncoherent_domains"}, {"eq", 1}},
                                         {{"op", "expect"}, {"stat", "dmar0.no_snoop_to_memory"}, {"gt", 0}}});
    auto r = run_edited(p, "isolation-vm-noncoherent");
    INFO(r.err);
    CHECK(r.exit_code == 0);
}

TEST_CASE("NIC and NVMe data with No Snoop: forced snooped by the IOMMU untranslated, sent snooped by the NIC where its "
          "translation carries N, and reaching memory non-snooped only without snoop control",
          "[sim][host][isolation][coherency]") {
    auto s = run_shipped("coherency-nic-nvme");
    CHECK(value(s, {"nic0", "fn0", "no_snoop_cleared"}) > 0);   // translated: N set by PGSNP
    CHECK(value(s, {"dmar0", "snoop_forced"}) > 0);             // untranslated (NVMe without ATS)
    CHECK(value(s, {"dmar0", "no_snoop_to_memory"}) == 0);
    auto p = shipped("coherency-nic-nvme");
    p["iommus"][0]["snoop_control"] = false;
    p["scenario"] = ordered_json::array();
    auto dir = scratch_dir("isolation-nic-nvme-noncoherent");
    write_file(dir / "p.json", p.dump(2));
    auto r = run_cli("run '" + (dir / "p.json").string() + "' --quiet --out '" + (dir / "out").string() + "'",
                     "isolation-nic-nvme-noncoherent");
    REQUIRE(r.exit_code == 0);
    auto off = ordered_json::parse(slurp(dir / "out" / "stats.json"));
    CHECK(value(off, {"nic0", "fn0", "no_snoop_cleared"}) == 0);
    CHECK(value(off, {"dmar0", "snoop_forced"}) == 0);
    CHECK(value(off, {"dmar0", "no_snoop_to_memory"}) > 0);
    CHECK(value(off, {"os", "iommufd", "noncoherent_domains"}) == 2);
}
