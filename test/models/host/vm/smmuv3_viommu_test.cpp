// SPDX-License-Identifier: Apache-2.0
// The virtual SMMUv3 over iommufd nesting: the guest's CD table and stage-1
// tables over the host stage 2 (STE Config = nested, the parent's VMID),
// nested domains per CD-table pointer, the trapped CMDQ (VMID forced, vSID ->
// pSID, the forwarded ATC_INV), and the vIOMMU's invalidation array (E.3).
#include <catch2/catch.hpp>

#include "models/iommu/smmuv3/smmuv3_commands.hpp"
#include "models/iommu/smmuv3/smmuv3_tables.hpp"
#include "test/models/host/vm/vm_rig.hpp"

using namespace vmtest;
namespace sm = iommusim::iommu::smmuv3;
using host::uapi::Errno;

namespace {
/// An STE as the physical unit sees it (the host's stream table).
sm::Ste host_ste(VmRig& r, pcie::Bdf rid) {
    const auto& unit = dynamic_cast<sm::Smmuv3&>(*r.iommu);
    const sm::Smmuv3TableReader reader(r.smmu_params);
    return reader.read_ste(r.memory.store, unit.regs().strtab(), rid.raw).ste;
}
/// The guest's STE of a vSID (the guest's stream table in guest memory).
sm::Ste guest_ste(VmRig& r, pcie::Bdf vrid) {
    static const sm::Smmuv3Params guest = host::vm::Smmuv3Viommu::default_caps();
    const sm::Smmuv3TableReader reader(guest);
    return reader.read_ste(r.vm->memory(), r.smmu_viommu->regs().strtab(), vrid.raw).ste;
}
} // namespace

TEST_CASE("SMMUv3 nesting: the guest's CD table and stage 1 over the host stage 2, a cold 4+4 walk reads 24 entries",
          "[vm][smmuv3][sc]") {
    VmRig r(ViommuMode::nested, {}, {}, Family::smmuv3);
    r.run([&] {
        const GuestDomain d = guest_attach(r, {r.vrid});
        // The VMM read the guest's stage-1 STE at the trapped CFGI_STE and attached the physical
        // device to a nested domain for its CD table: STE Config = nested, the guest's CD table IPA.
        const sm::Ste gs = guest_ste(r, r.vrid), hs = host_ste(r, r.prid);
        CHECK(gs.config == sm::ste_cfg::kS1);
        CHECK(hs.config == sm::ste_cfg::kNested);
        CHECK(hs.s1_context_ptr == gs.s1_context_ptr);
        CHECK(hs.s2vmid != 0);
        REQUIRE(r.smmu_viommu->nested_domain(gs.s1_context_ptr).has_value());
        // The first DMA caches the STE and the CD (read through stage 2); the second walks cold.
        CHECK(cold_walk_reads(r, d) == 24); // (4+1)(4+1)-1, no walk caches
    });
    CHECK(r.value("os.oracle.violations") == 0);
    CHECK(r.value("os.oracle.correct") == 2);
}

TEST_CASE("SMMUv3 nesting: two guest CD tables are two nested domains under the nesting parent's one VMID",
          "[vm][smmuv3][sc]") {
    VmRig r(ViommuMode::nested, {}, {}, Family::smmuv3);
    r.run([&] {
        (void)guest_attach(r, {r.vrid, r.ep_vrid}); // one guest domain, a CD table per master (Linux)
        const sm::Ste a = host_ste(r, r.prid), b = host_ste(r, r.ep_rid);
        CHECK(a.s1_context_ptr != b.s1_context_ptr);
        REQUIRE(r.smmu_viommu->nested_domain(a.s1_context_ptr).has_value());
        REQUIRE(r.smmu_viommu->nested_domain(b.s1_context_ptr).has_value());
        CHECK(*r.smmu_viommu->nested_domain(a.s1_context_ptr) != *r.smmu_viommu->nested_domain(b.s1_context_ptr));
        CHECK(a.s2vmid == b.s2vmid); // the VMID belongs to the nesting parent
    });
}

TEST_CASE("SMMUv3 nesting: a guest unmap forwards TLBI_NH_VA with the VMID forced and drops the stale entry",
          "[vm][smmuv3][sc]") {
    VmRig r(ViommuMode::nested, {}, {}, Family::smmuv3);
    // The guest's VMID-less TLBI_NH_VA, given the nesting parent's VMID, drops the stale entry.
    check_guest_unmap_forwarded(r, "os.dmar0.tlbi_commands");
}

TEST_CASE("SMMUv3 nesting: guest commands naming an unknown vSID are refused, the CMD_SYNC still completes",
          "[vm][smmuv3][sc]") {
    VmRig r(ViommuMode::nested, {}, {}, Family::smmuv3);
    r.run([&] {
        (void)guest_attach(r, {r.vrid});
        const sm::Smmuv3Regs& regs = r.smmu_viommu->regs();
        const uint64_t word = regs.queue_base(sm::Queue::cmdq) + (uint64_t{16} << regs.queue_log2size(sm::Queue::cmdq)) - 16;
        r.vm->memory().write_u32(word, 1);
        const double refused = r.value("vm0.vm0_viommu.refused"), flushes = r.value("os.dmar0.flushes");
        guest_commands(r, {sm::Command{.opcode = sm::op::kAtcInv, .sid = 0x0909, .size = 52},
                           sm::Command{.opcode = sm::op::kCfgiCd, .sid = 0x0909, .ssid = 0, .leaf = true},
                           sm::Command{.opcode = sm::op::kSync, .cs = sm::SyncSignal::irq, .msh = 3, .msi_attr = 0xF,
                                       .msi_data = 0, .msi_addr = word}});
        CHECK(r.value("vm0.vm0_viommu.refused") == refused + 2);
        CHECK(r.value("os.dmar0.flushes") == flushes); // nothing reached the physical unit
        CHECK(r.vm->memory().read_u32(word) == 0);    // the CMD_SYNC's MSI write
    });
}

TEST_CASE("SMMUv3 vIOMMU invalidation arrays: the VMID is forced, vSIDs translated, the first bad entry stops",
          "[vm][smmuv3][iommufd][sc]") {
    VmRig r(ViommuMode::nested, {}, {}, Family::smmuv3);
    r.run([&] {
        (void)guest_attach(r, {r.vrid, r.ep_vrid});
        host::IommuFd& fd = r.os->iommufd();
        const uint32_t viommu = viommu_id(r);
        REQUIRE(viommu != 0);
        auto run = [&](std::vector<sm::Command> cs, Errno want, uint32_t done) {
            std::vector<std::array<uint64_t, 2>> cmds;
            for (const auto& c : cs) cmds.push_back(c.encode());
            check_viommu_invalidate(fd, viommu, host::uapi::kInvalidateDataArmSmmuv3, std::move(cmds), want, done);
        };
        const sm::Command va{.opcode = sm::op::kTlbiNhVa, .leaf = true, .vmid = 0x77, .asid = 1, .addr = 0x10000};
        const sm::Command atc{.opcode = sm::op::kAtcInv, .sid = r.ep_vrid.raw, .size = 52};
        const sm::Command bad_sid{.opcode = sm::op::kAtcInv, .sid = 0x0909, .size = 52};
        const sm::Command s2{.opcode = sm::op::kTlbiS12Vmall, .vmid = 1};
        const double atc0 = r.value("os.dmar0.atc_inv_commands");
        run({va, atc}, Errno::ok, 2);
        CHECK(r.value("os.dmar0.atc_inv_commands") == atc0 + 1);
        run({va, bad_sid}, Errno::eio, 1); // the first took effect
        run({s2}, Errno::eio, 0);          // a guest may not name stage 2
        run({}, Errno::ok, 0);
        // A vSTE is checked as arm_smmu_validate_vste does: only the guest's own fields.
        sm::Ste v;
        v.valid = true;
        v.config = sm::ste_cfg::kS1;
        v.s1_context_ptr = 0x4000'0000;
        auto data = [](const sm::Ste& s) {
            const auto e = s.encode();
            return std::array<uint64_t, 4>{e[0], e[1], 0, 0};
        };
        CHECK_NOTHROW(fd.hwpt_alloc_nested_viommu(viommu, host::uapi::kHwptDataArmSmmuv3, data(v)));
        sm::Ste strw = v;
        strw.strw = 2; // the EL2 regime is the host's
        CHECK_THROWS_AS(fd.hwpt_alloc_nested_viommu(viommu, host::uapi::kHwptDataArmSmmuv3, data(strw)), host::HostError);
        sm::Ste nested = v;
        nested.config = sm::ste_cfg::kNested; // the guest cannot ask for stage 2
        CHECK_THROWS_AS(fd.hwpt_alloc_nested_viommu(viommu, host::uapi::kHwptDataArmSmmuv3, data(nested)), host::HostError);
        CHECK_THROWS_AS(fd.hwpt_alloc_nested_viommu(viommu, host::uapi::kHwptDataAmdGuest, data(v)), host::HostError);
    });
}
