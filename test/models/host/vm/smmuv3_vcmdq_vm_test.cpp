// SPDX-License-Identifier: Apache-2.0
// A VM on the SMMUv3's CMDQV (ViommuMode::accelerated): the host gives the VM a
// VINTF (the nesting parent's VMID, SID_MATCH / SID_REPLACE for its vDEVICEs) and
// maps the guest's queue as Linux's tegra241-cmdqv.c does for iommufd; the guest
// driver's TLBIs run on its vCMDQ without a VM exit; what its queue may not
// carry is reported to the guest in its queue's page.
#include <catch2/catch.hpp>

#include "models/iommu/smmuv3/smmuv3_cmdqv.hpp"
#include "models/iommu/smmuv3/smmuv3_commands.hpp"
#include "test/models/host/vm/vm_rig.hpp"

using namespace vmtest;
namespace sm = iommusim::iommu::smmuv3;
namespace cq = iommusim::iommu::smmuv3::cmdqv;

namespace {
sm::Smmuv3Cmdqv& hw(VmRig& r) { return *dynamic_cast<sm::Smmuv3&>(*r.iommu).cmdqv(); }
uint32_t hwreg(VmRig& r, uint32_t off) { return static_cast<uint32_t>(hw(r).core().read(off, 4)); }
/// The VMID of the host STE of a physical StreamID (the nesting parent's, the VINTF's).
uint16_t host_vmid(VmRig& r, pcie::Bdf rid) {
    const auto& unit = dynamic_cast<sm::Smmuv3&>(*r.iommu);
    const sm::Smmuv3TableReader reader(r.smmu_params);
    return reader.read_ste(r.memory.store, unit.regs().strtab(), rid.raw).ste.s2vmid;
}
/// The guest's DMA domain with the raw device, after a first unmap brought its vCMDQ up.
GuestDomain bring_up(VmRig& r) {
    host::IommuFd& g = r.vm->guest().iommufd();
    const GuestDomain d = guest_attach(r, {r.vrid});
    g.unmap(d.ioas, g.map(d.ioas, 4096), 4096);
    return d;
}
} // namespace

TEST_CASE("SMMUv3 vCMDQ: the host gives the VM a VINTF with the parent's VMID and a SID_MATCH pair per vSID",
          "[vm][smmuv3][cmdqv][sc]") {
    VmRig r(ViommuMode::accelerated, {}, {}, Family::smmuv3);
    r.run([&] {
        guest_attach(r, {r.vrid});
        host::IommuFd& g = r.vm->guest().iommufd();
        const GuestDomain d = guest_attach(r, {r.ep_vrid});
        g.unmap(d.ioas, g.map(d.ioas, 4096), 4096); // the guest's first TLBI brings its vCMDQ up
        const std::optional<uint16_t> vintf = r.smmu_viommu->vintf();
        REQUIRE(vintf == uint16_t{1}); // VINTF0 is the host's
        const uint32_t cfg = hwreg(r, cq::vintf(*vintf) + cq::kVintfConfig);
        CHECK((cfg & cq::kEn) != 0);
        CHECK((cfg & cq::kHypOwn) == 0);
        CHECK(((cfg >> 1) & 0xFFFF) == host_vmid(r, r.prid));
        // tegra241_vintf_init_vsid: pSID in SID_REPLACE, vSID << 1 | 1 in SID_MATCH.
        CHECK(hwreg(r, cq::vintf(*vintf) + cq::sid_match(0)) == cq::sid_match_value(r.vrid.raw));
        CHECK(hwreg(r, cq::vintf(*vintf) + cq::sid_replace(0)) == r.prid.raw);
        CHECK(hwreg(r, cq::vintf(*vintf) + cq::sid_match(1)) == cq::sid_match_value(r.ep_vrid.raw));
        CHECK(hwreg(r, cq::vintf(*vintf) + cq::sid_replace(1)) == r.ep_rid.raw);
        // The guest's queue: its LVCMDQ 0 based at the host PA of the guest's ring, enabled by the guest.
        const uint64_t base = hw(r).core().read(cq::vintf_page1(*vintf) + cq::kBase, 8);
        CHECK((base & 0x1F) == 8);
        CHECK(r.vm->memory().gpa_of(base & ~uint64_t{0x1F}).has_value());
        CHECK(hwreg(r, cq::vintf_page0(*vintf) + cq::kQStatus) == 1);
    });
}

TEST_CASE("SMMUv3 vCMDQ: a guest unmap's TLBI runs on the CMDQV with the VINTF's VMID and without a VM exit or a host flush",
          "[vm][smmuv3][cmdqv][sc]") {
    VmRig r(ViommuMode::accelerated, {}, {}, Family::smmuv3);
    r.run([&] {
        host::IommuFd& g = r.vm->guest().iommufd();
        const GuestDomain d = bring_up(r); // the vCMDQ's set-up traps once
        const uint64_t a = g.map(d.ioas, 4096);
        uint64_t v = 0;
        REQUIRE(r.dma(a, v) == tlm::TLM_OK_RESPONSE); // cached in the unit's IOTLB
        const double traps = r.value("vm0.vm0_viommu.traps"), host_flushes = r.value("os.dmar0.flushes");
        const double cmds = r.value("dmar0.cmdqv.guest_commands"), forced = r.value("dmar0.cmdqv.vmid_forced");
        g.unmap(d.ioas, a, 4096);
        CHECK(r.value("vm0.vm0_viommu.traps") == traps);                  // PROD and CONS did not exit
        CHECK(r.value("os.dmar0.flushes") == host_flushes);                // the host's CMDQ was not used
        CHECK(r.value("dmar0.cmdqv.guest_commands") == cmds + 2);          // TLBI_NH_VA + CMD_SYNC
        CHECK(r.value("dmar0.cmdqv.vmid_forced") == forced + 1);
        CHECK(r.value("vm0.vm0_guest.vm0_iommu_vcmdq.errors") == 0);
        CHECK(r.dma(a, v) != tlm::TLM_OK_RESPONSE);                        // the stale IOTLB entry is gone
    });
    CHECK(r.value("os.oracle.violations") == 0);
    CHECK(r.value("dmar0.cmdqv.queue_errors") == 0);
}

namespace {
/// The guest writes `cmds` into its vCMDQ by hand, publishes PROD and polls CONS (no exit).
uint32_t guest_issue(VmRig& r, const std::vector<sm::Command>& cmds) {
    const uint32_t page0 = host::vm::Smmuv3Viommu::kGuestCmdqv + cq::vintf_page0(0);
    host::HostCpu& cpu = r.vm->guest().cpu();
    // The ring's GPA (the guest knows it; read here from the unit's BASE, which a guest read would trap for).
    const uint64_t hpa = hw(r).core().read(cq::vintf_page1(r.smmu_viommu->vintf().value()) + cq::kBase, 8) & ~uint64_t{0x1F};
    const uint64_t base = r.vm->memory().gpa_of(hpa).value();
    uint32_t prod = static_cast<uint32_t>(cpu.mmio_read(0, page0 + cq::kProd, 4));
    for (const sm::Command& c : cmds) {
        const std::array<uint64_t, 2> e = c.encode();
        r.vm->memory().write(base + uint64_t{prod & 0xFF} * 16, e.data(), 16);
        prod = (prod + 1) & 0x1FF;
    }
    cpu.mmio_write(0, page0 + cq::kProd, prod, 4);
    uint32_t cons = 0;
    for (int k = 0; k < 1000; ++k) {
        sc_core::wait(sc_core::sc_time(100, sc_core::SC_NS));
        cons = static_cast<uint32_t>(cpu.mmio_read(0, page0 + cq::kCons, 4));
        if ((cons & 0x7F000000) || (cons & 0x1FF) == prod) break;
    }
    return cons;
}
} // namespace

TEST_CASE("SMMUv3 vCMDQ: an ATC_INV naming a vSID the host never mapped is refused with CONS.ERR = CERROR_ILL without an exit",
          "[vm][smmuv3][cmdqv][sc]") {
    VmRig r(ViommuMode::accelerated, {}, {}, Family::smmuv3);
    r.run([&] {
        (void)bring_up(r);
        const double traps = r.value("vm0.vm0_viommu.traps");
        const uint32_t cons = guest_issue(r, {sm::Command{.opcode = sm::op::kAtcInv, .sid = 0x77, .size = 52},
                                              sm::Command{.opcode = sm::op::kSync}});
        CHECK(((cons >> 24) & 0x7F) == static_cast<uint32_t>(sm::CmdError::ill));
        CHECK(r.value("vm0.vm0_viommu.traps") == traps);
        CHECK(hw(r).core().counts().unmatched_sids == 1);
        const uint16_t vintf = r.smmu_viommu->vintf().value();
        CHECK(hw(r).core().read(cq::vintf(vintf) + cq::lvcmdq_err_map(0), 8) == 1);
    });
}

TEST_CASE("SMMUv3 vCMDQ: a CFGI_STE in the guest's vCMDQ is reported in its GERROR and its driver recovers",
          "[vm][smmuv3][cmdqv][sc]") {
    VmRig r(ViommuMode::accelerated, {}, {}, Family::smmuv3);
    r.run([&] {
        host::IommuFd& g = r.vm->guest().iommufd();
        const GuestDomain d = bring_up(r);
        const uint32_t cons = guest_issue(r, {sm::Command{.opcode = sm::op::kCfgiSte, .sid = r.vrid.raw, .leaf = true},
                                              sm::Command{.opcode = sm::op::kSync}});
        CHECK(((cons >> 24) & 0x7F) == static_cast<uint32_t>(sm::CmdError::ill));
        host::HostCpu& cpu = r.vm->guest().cpu();
        const uint32_t page0 = host::vm::Smmuv3Viommu::kGuestCmdqv + cq::vintf_page0(0);
        CHECK(((cpu.mmio_read(0, page0 + cq::kGerror, 4) ^ cpu.mmio_read(0, page0 + cq::kGerrorN, 4)) & 1) == 1);
        CHECK(hw(r).core().counts().refused == 1);
        // The guest driver's next batch meets the error and recovers (arm_smmu_cmdq_skip_err): that
        // batch fails, the queue runs again, and a later unmap invalidates cleanly.
        g.unmap(d.ioas, g.map(d.ioas, 4096), 4096);
        CHECK(r.value("vm0.vm0_guest.vm0_iommu_vcmdq.errors") == 1);
        const uint64_t a = g.map(d.ioas, 4096);
        uint64_t v = 0;
        REQUIRE(r.dma(a, v) == tlm::TLM_OK_RESPONSE);
        g.unmap(d.ioas, a, 4096);
        CHECK(r.dma(a, v) != tlm::TLM_OK_RESPONSE);
        CHECK(r.value("vm0.vm0_guest.vm0_iommu_vcmdq.errors") == 1);
    });
    CHECK(r.value("os.oracle.violations") == 0);
}

namespace {
/// A second guest domain at guest PASID 5 of the raw device: its DMAs with SubstreamID 5 walk the
/// guest's CD[5] (the guest's CD table is the device's PASID space on Arm), the guest's unmap
/// invalidates that domain's ASID (trapped, or on the vCMDQ), and the stale entry is gone.
void check_guest_pasid(ViommuMode mode) {
    VmRig r(mode, {}, {}, Family::smmuv3);
    r.run([&] {
        (void)guest_attach(r, r.vrid);
        const uint64_t magic = 0x5a55'1d05;
        const GuestPasidDomain d = guest_pasid_domain(r, r.vrid, 5, magic);
        uint64_t v = 0;
        REQUIRE(r.dma(d.iova, v, 5u) == tlm::TLM_OK_RESPONSE);
        CHECK(v == magic);
        CHECK(r.dma(d.iova, v, 6u) != tlm::TLM_OK_RESPONSE); // a PASID the guest did not set up
        r.vm->guest().iommufd().unmap(d.ioas, d.iova, 4096);
        CHECK(r.dma(d.iova, v, 5u) != tlm::TLM_OK_RESPONSE);
    });
    CHECK(r.value("os.oracle.violations") == 0);
    CHECK(r.value("vm0.vm0_guest.oracle.correct") == 1); // judged by the guest's binding of PASID 5
    if (mode == ViommuMode::accelerated) CHECK(r.value("dmar0.cmdqv.vmid_forced") >= 1);
}
} // namespace

TEST_CASE("SMMUv3 nesting: a guest PASID walks the guest's CD of that SubstreamID (trapped invalidation)",
          "[vm][smmuv3][pasid][sc]") {
    check_guest_pasid(ViommuMode::nested);
}

TEST_CASE("SMMUv3 vCMDQ: a guest PASID walks the guest's CD of that SubstreamID (the vCMDQ invalidates it)",
          "[vm][smmuv3][cmdqv][pasid][sc]") {
    check_guest_pasid(ViommuMode::accelerated);
}

TEST_CASE("SMMUv3 vCMDQ: an accelerated VM needs the unit's CMDQV", "[vm][smmuv3][cmdqv][sc]") {
    check_accelerated_needs_hardware<iommusim::host::vm::Smmuv3Viommu>();
}

TEST_CASE("SMMUv3 vCMDQ: IOMMU_DESTROY of a hardware vIOMMU frees its VINTF and SID pairs for the next one",
          "[vm][smmuv3][cmdqv][sc]") {
    VmRig r(ViommuMode::accelerated, {}, {}, Family::smmuv3);
    r.run([&] {
        (void)bring_up(r); // the VM holds VINTF 1
        host::IommuFd& fd = r.os->iommufd();
        auto& drv = dynamic_cast<host::Smmuv3Driver&>(*r.host_drv);
        // A second VM's vIOMMU over a parent of its own: no VINTF left (2: the host's and the VM's).
        const uint32_t ioas = fd.ioas_alloc();
        const uint32_t parent = fd.hwpt_alloc(ioas, 0, host::DomainDesc::Kind::paging_s2);
        const uint64_t gpa = fd.map(ioas, uint64_t{1} << 20);
        CHECK_THROWS_AS(fd.viommu_alloc_hw(parent, gpa, uint64_t{1} << 20), host::HostError);
        // The first VM goes: its vIOMMU is busy while its vDEVICEs and nested domains hold it.
        const uint32_t viommu = viommu_id(r);
        CHECK_THROWS_AS(fd.viommu_free(viommu), host::HostError);
        // The guest detaches (its STE no longer stage 1): the VMM destroys the nested domain ...
        r.vm->guest().iommufd().detach(r.vrid, std::nullopt);
        CHECK_THROWS_AS(fd.viommu_free(viommu), host::HostError); // ... the vDEVICEs still hold it
        fd.vdevice_free(viommu, r.vrid.raw);
        fd.vdevice_free(viommu, r.ep_vrid.raw);
        CHECK(hwreg(r, cq::vintf(1) + cq::sid_match(0)) == 0);
        CHECK(hwreg(r, cq::vintf(1) + cq::sid_replace(0)) == 0);
        fd.viommu_free(viommu);
        CHECK(hwreg(r, cq::vintf(1) + cq::kVintfConfig) == 0);
        CHECK(hwreg(r, cq::cmdq_alloc(2)) == cq::alloc_value(1, 0, false)); // its LVCMDQ unmapped
        CHECK(drv.vintf(viommu) == std::nullopt);
        // The next vIOMMU gets VINTF 1 with its own parent's VMID.
        const uint32_t next = fd.viommu_alloc_hw(parent, gpa, uint64_t{1} << 20);
        CHECK(drv.vintf(next) == uint16_t{1});
        CHECK((hwreg(r, cq::vintf(1) + cq::kVintfConfig) & cq::kEn) != 0);
    });
}
