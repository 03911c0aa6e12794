// SPDX-License-Identifier: Apache-2.0
// A VM on the AMD-Vi unit's hardware vIOMMU (ViommuMode::accelerated): the host
// programs the unit's DeviceID / DomainID maps and the guest's command buffer as
// Linux's AMD vIOMMU series does; the guest's invalidations run on the unit
// without a VM exit; the commands the unit hands back (guest buffer trap mode)
// reach the VMM.
#include <catch2/catch.hpp>

#include "models/iommu/amd/amd_commands.hpp"
#include "models/iommu/amd/amd_hw_viommu.hpp"
#include "models/iommu/amd/amd_regs.hpp"
#include "test/models/host/vm/vm_rig.hpp"

using namespace vmtest;
namespace amd = iommusim::iommu::amd;

namespace {
amd::AmdHwViommu& hw(VmRig& r) { return *dynamic_cast<amd::AmdIommu&>(*r.iommu).hw_viommu(); }
/// The host's DTE of a physical DeviceID, read back from the host's device table.
amd::Dte host_dte(VmRig& r, pcie::Bdf rid) {
    std::array<uint64_t, 4> q{};
    r.memory.store.read(dynamic_cast<host::AmdDriver&>(*r.host_drv).device_table() + 32u * rid.raw, q.data(), 32);
    return amd::Dte::decode(q);
}
uint64_t read64(VmRig& r, uint64_t pa) {
    uint64_t v = 0;
    r.memory.store.read(pa, &v, 8);
    return v;
}
} // namespace

TEST_CASE("AMD hardware vIOMMU: the host maps the guest's DeviceIDs and DomainID into the unit's tables",
          "[vm][amd][hw][sc]") {
    VmRig r(ViommuMode::accelerated, {}, {}, Family::amd);
    r.run([&] {
        guest_attach(r, {r.vrid});
        const uint32_t viommu = viommu_id(r);
        const std::optional<uint16_t> gid = dynamic_cast<host::AmdDriver&>(*r.host_drv).guest_id(viommu);
        REQUIRE(gid == uint16_t{0});
        // vDEVICEs: the DeviceID map takes each virtual RID to its physical one (set_device_mapping).
        CHECK(read64(r, hw(r).core().devmap(*gid) + 16u * r.vrid.raw) == ((uint64_t{r.prid.raw} << 16) | 1));
        CHECK(read64(r, hw(r).core().devmap(*gid) + 16u * r.ep_vrid.raw) == ((uint64_t{r.ep_rid.raw} << 16) | 1));
        // The nested domain's guest DomainID -> its host DomainID (set_domain_mapping), the one in the host DTE.
        const amd::Dte pd = host_dte(r, r.prid);
        REQUIRE(pd.gv);
        const amd::Dte gd = [&] {
            std::array<uint64_t, 4> q{};
            r.vm->memory().read(r.amd_viommu->regs().dev_table().base + 32u * r.vrid.raw, q.data(), 32);
            return amd::Dte::decode(q);
        }();
        CHECK(read64(r, hw(r).core().dommap(*gid) + 8u * gd.domain_id) == ((uint64_t{pd.domain_id} << 16) | 1));
        // The guest's command buffer is the unit's: base (host PA of the guest's GPA) and enable.
        const uint64_t ctl = hw(r).core().vfcntl_read(*gid * amd::hwv::kVfCntlStride + amd::hwv::kCmdCtl);
        CHECK((ctl & amd::hwv::kCmdEn) != 0);
        CHECK((ctl & 0x000FFFFFFFFFF000ull) == *r.vm->memory().hpa_of(r.amd_viommu->regs().cmd_ring().base));
    });
    // The attach's INVALIDATE_DEVTAB_ENTRY went to the VMM (guest buffer trap mode).
    CHECK(r.value("vm0.vm0_viommu.hardware_traps") >= 1);
}

TEST_CASE("AMD hardware vIOMMU: a guest unmap's invalidation runs on the unit without a VM exit or a host flush",
          "[vm][amd][hw][sc]") {
    VmRig r(ViommuMode::accelerated, {}, {}, Family::amd);
    r.run([&] {
        host::IommuFd& g = r.vm->guest().iommufd();
        const GuestDomain d = guest_attach(r, {r.vrid});
        const uint64_t a = g.map(d.ioas, 4096);
        uint64_t v = 0;
        REQUIRE(r.dma(a, v) == tlm::TLM_OK_RESPONSE); // cached in the unit's IOTLB
        const double traps = r.value("vm0.vm0_viommu.traps"), host_flushes = r.value("os.dmar0.flushes");
        const double executed = r.value("dmar0.hw_viommu.guest_commands");
        g.unmap(d.ioas, a, 4096);
        CHECK(r.value("vm0.vm0_viommu.traps") == traps);             // the tail write did not exit
        CHECK(r.value("os.dmar0.flushes") == host_flushes);           // the host's queue was not used
        CHECK(r.value("dmar0.hw_viommu.guest_commands") == executed + 2); // INVALIDATE_IOMMU_PAGES + COMPLETION_WAIT
        CHECK(r.dma(a, v) != tlm::TLM_OK_RESPONSE);                   // the stale IOTLB entry is gone
    });
    CHECK(r.value("os.oracle.violations") == 0);
    CHECK(r.value("vm0.vm0_viommu.invalidation_phases.total") == 0);
    CHECK(r.value("dmar0.hw_viommu.unmapped_ids") == 0);
}

TEST_CASE("AMD hardware vIOMMU: the guest's ATC invalidation goes to the VMM, which forwards it with the physical DeviceID",
          "[vm][amd][hw][sc]") {
    VmRig r(ViommuMode::accelerated, {}, {}, Family::amd);
    r.run([&] {
        guest_attach(r, {r.ep_vrid});
        const double forwarded = r.value("vm0.vm0_viommu.forwarded"), traps = r.value("vm0.vm0_viommu.hardware_traps");
        const amd::RingRegs ring = r.amd_viommu->regs().cmd_ring();
        // The guest's INVALIDATE_IOTLB_PAGES for its virtual DeviceID, then a COMPLETION_WAIT, tail to the VF page.
        uint32_t tail = static_cast<uint32_t>(hw(r).core().vf_read(amd::hwv::kVfTail));
        const uint64_t sem = r.vm->memory().ram_gpa() + r.vm->memory().ram_bytes() - 8; // an unused guest word
        for (const auto& c : {amd::encode(amd::linux_inv_iotlb_pages(r.ep_vrid.raw, 0, 0x5000, 0x1000, 0)),
                              amd::encode(amd::linux_completion_wait(sem, 0x99))}) {
            r.vm->memory().write(ring.base + tail, c.data(), 16);
            tail = (tail + 16) % ring.bytes();
        }
        r.vm->guest().cpu().mmio_write(0, amd::reg::CMD_TAIL, tail, 4);
        uint64_t done = 0;
        for (int k = 0; k < 1000 && done != 0x99; ++k) {
            sc_core::wait(sc_core::sc_time(1, sc_core::SC_US));
            r.vm->memory().read(sem, &done, 8);
        }
        CHECK(done == 0x99);
        CHECK(r.value("vm0.vm0_viommu.hardware_traps") == traps + 1);
        CHECK(r.value("vm0.vm0_viommu.forwarded") == forwarded + 1);
        CHECK(r.value("os.dmar0.iotlb_invalidations") >= 1); // the host issued it with the physical DeviceID
    });
}

TEST_CASE("AMD hardware vIOMMU: IOMMU_DESTROY of a vIOMMU frees its GuestID and a vDEVICE's DeviceID map entry",
          "[vm][amd][hw][sc]") {
    VmRig r(ViommuMode::accelerated, {}, {}, Family::amd); // 2 GuestIDs: the VM has 0
    r.run([&] {
        guest_attach(r, {r.vrid});
        host::IommuFd& fd = r.os->iommufd();
        auto& drv = dynamic_cast<host::AmdDriver&>(*r.host_drv);
        const uint32_t ioas = fd.ioas_alloc();
        const uint32_t parent = fd.hwpt_alloc(ioas, 0, host::DomainDesc::Kind::paging_s2);
        const uint64_t gpa = fd.map(ioas, uint64_t{1} << 20);
        const uint32_t second = fd.viommu_alloc_hw(parent, gpa, uint64_t{1} << 20);
        REQUIRE(drv.guest_id(second) == uint16_t{1});
        CHECK_THROWS_AS(fd.viommu_alloc_hw(parent, gpa, uint64_t{1} << 20), host::HostError); // none left
        fd.vdevice_alloc(second, r.ep_rid, 0x40);
        CHECK(read64(r, hw(r).core().devmap(1) + 16u * 0x40) == ((uint64_t{r.ep_rid.raw} << 16) | 1));
        CHECK_THROWS_AS(fd.viommu_free(second), host::HostError); // its vDEVICE holds it
        fd.vdevice_free(second, 0x40);
        CHECK(read64(r, hw(r).core().devmap(1) + 16u * 0x40) == 0); // clear_device_mapping
        fd.viommu_free(second);
        CHECK(drv.guest_id(second) == std::nullopt);
        CHECK(hw(r).core().vfcntl_read(amd::hwv::kVfCntlStride + amd::hwv::kCmdCtl) == 0);
        const uint32_t third = fd.viommu_alloc_hw(parent, gpa, uint64_t{1} << 20);
        CHECK(drv.guest_id(third) == uint16_t{1}); // the freed GuestID again
    });
}

TEST_CASE("AMD hardware vIOMMU: an accelerated VM needs the unit's hardware vIOMMU", "[vm][amd][hw][sc]") {
    // The AMD unit without viommu_guests: the vIOMMU refuses accelerated mode.
    check_accelerated_needs_hardware<iommusim::host::vm::AmdViommu>();
}

namespace {
/// A second guest domain at guest PASID 5 of the raw device: its DMAs with PASID 5 walk the
/// guest's GCR3[5] (no PASID translation on AMD-Vi: the guest's GCR3 table is the device's PASID
/// space), the guest's unmap invalidates (DomainID, PASID 5), and the stale entry is gone.
void check_guest_pasid(ViommuMode mode) {
    VmRig r(mode, {}, {}, Family::amd);
    r.run([&] {
        (void)guest_attach(r, r.vrid);
        const uint64_t magic = 0x9a51d5;
        const GuestPasidDomain d = guest_pasid_domain(r, r.vrid, 5, magic);
        const uint64_t a = d.iova;
        uint64_t v = 0;
        REQUIRE(r.dma(a, v, 5u) == tlm::TLM_OK_RESPONSE); // the device's DMA carries the guest's PASID
        CHECK(v == magic);
        CHECK(r.dma(a, v, 6u) != tlm::TLM_OK_RESPONSE); // a PASID the guest did not set up
        r.vm->guest().iommufd().unmap(d.ioas, a, 4096);
        CHECK(r.dma(a, v, 5u) != tlm::TLM_OK_RESPONSE);
    });
    CHECK(r.value("os.oracle.violations") == 0);
    CHECK(r.value("vm0.vm0_guest.oracle.correct") == 1); // judged by the guest's binding of PASID 5
}
} // namespace

TEST_CASE("AMD nesting: a guest PASID walks the guest's GCR3 entry of that PASID (trapped invalidation)",
          "[vm][amd][pasid][sc]") {
    check_guest_pasid(ViommuMode::nested);
}

TEST_CASE("AMD hardware vIOMMU: a guest PASID walks the guest's GCR3 entry of that PASID (the unit invalidates it)",
          "[vm][amd][hw][pasid][sc]") {
    check_guest_pasid(ViommuMode::accelerated);
}
