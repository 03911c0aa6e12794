// SPDX-License-Identifier: Apache-2.0
// The virtual AMD-Vi unit over iommufd nesting: guest GCR3 tables (v2) over the
// host v1 stage, nested domains per GCR3 table sharing a host DomainID per guest
// DomainID, the trapped command buffer (vDomainID -> pDomainID, vDeviceID ->
// pDeviceID, the forwarded ATC invalidation), and the vIOMMU's invalidation array.
#include <catch2/catch.hpp>

#include "models/iommu/amd/amd_commands.hpp"
#include "models/iommu/amd/amd_regs.hpp"
#include "test/models/host/vm/vm_rig.hpp"

using namespace vmtest;
namespace amd = iommusim::iommu::amd;
using host::uapi::Errno;

namespace {
/// The host's DTE of a physical DeviceID, read back from the host's device table.
amd::Dte host_dte(VmRig& r, pcie::Bdf rid) {
    std::array<uint64_t, 4> q{};
    r.memory.store.read(dynamic_cast<host::AmdDriver&>(*r.host_drv).device_table() + 32u * rid.raw, q.data(), 32);
    return amd::Dte::decode(q);
}
/// The guest driver's raw commands written into its command buffer and the tail rung (a guest kernel's doing).
void guest_commands(VmRig& r, const std::vector<std::array<uint64_t, 2>>& cmds) {
    const amd::RingRegs ring = r.amd_viommu->regs().cmd_ring();
    uint32_t tail = ring.tail;
    for (const auto& c : cmds) {
        r.vm->memory().write(ring.base + tail, c.data(), 16);
        tail = (tail + 16) % ring.bytes();
    }
    r.vm->guest().cpu().mmio_write(0, amd::reg::CMD_TAIL, tail, 4);
}
} // namespace

TEST_CASE("AMD nesting: the guest's v2 table over the host v1 stage, a cold 4+4 walk reads 24 entries",
          "[vm][amd][sc]") {
    VmRig r(ViommuMode::nested, {}, {}, Family::amd);
    r.run([&] {
        const GuestDomain d = guest_attach(r, {r.vrid});
        // The VMM read the guest DTE (GV, GIoV, GCR3 root in guest memory) at the trapped
        // INVALIDATE_DEVTAB_ENTRY and attached the physical device to a nested domain.
        const amd::Dte pd = host_dte(r, r.prid);
        CHECK(pd.gv);
        CHECK(pd.giov);
        CHECK(pd.mode == 4); // the nesting parent's v1 table
        REQUIRE(r.amd_viommu->nested_domain(pd.gcr3_root).has_value()); // the guest's GCR3 root, a GPA
        // The first DMA caches the DTE and GCR3[0] (read through the host table); the second walks cold.
        CHECK(cold_walk_reads(r, d) == 24); // (4+1)(4+1)-1, no walk caches
    });
    CHECK(r.value("os.oracle.violations") == 0);
    CHECK(r.value("os.oracle.correct") == 2);
}

TEST_CASE("AMD nesting: a guest unmap forwards INVALIDATE_IOMMU_PAGES with the vDomainID made the pDomainID",
          "[vm][amd][sc]") {
    VmRig r(ViommuMode::nested, {}, {}, Family::amd);
    check_guest_unmap_forwarded(r, "os.dmar0.flushes"); // INVALIDATE_IOMMU_PAGES reached the unit
}

TEST_CASE("AMD nesting: two guest GCR3 tables under one guest DomainID are two nested domains sharing one host DomainID",
          "[vm][amd][sc]") {
    VmRig r(ViommuMode::nested, {}, {}, Family::amd);
    r.run([&] {
        (void)guest_attach(r, {r.vrid, r.ep_vrid}); // one guest domain, a GCR3 table per device (Linux)
        const amd::Dte a = host_dte(r, r.prid), b = host_dte(r, r.ep_rid);
        CHECK(a.gcr3_root != b.gcr3_root);
        const auto na = r.amd_viommu->nested_domain(a.gcr3_root), nb = r.amd_viommu->nested_domain(b.gcr3_root);
        REQUIRE(na.has_value());
        REQUIRE(nb.has_value());
        CHECK(*na != *nb);
        CHECK(a.domain_id == b.domain_id); // one pDomainID for the vDomainID
    });
}

TEST_CASE("AMD nesting: a guest detach destroys the nested domain no device uses any more, a new attach makes another",
          "[vm][amd][sc]") {
    VmRig r(ViommuMode::nested, {}, {}, Family::amd);
    r.run([&] {
        host::IommuFd& g = r.vm->guest().iommufd();
        const GuestDomain first = guest_attach(r, r.vrid);
        const uint64_t gcr3 = host_dte(r, r.prid).gcr3_root;
        const std::optional<uint32_t> old = r.amd_viommu->nested_domain(gcr3);
        REQUIRE(old.has_value());
        g.detach(r.vrid, std::nullopt); // the guest's blocked DTE (GIoV clear): the VMM detaches
        CHECK_FALSE(r.amd_viommu->nested_domain(gcr3).has_value());
        CHECK_THROWS_AS(r.os->iommufd().hwpt_iommu(*old), host::HostError); // IOMMU_DESTROY'd
        CHECK_FALSE(host_dte(r, r.prid).gv);
        const GuestDomain second = guest_attach(r, r.vrid); // the same GCR3 table (Linux keeps it per device)
        const std::optional<uint32_t> now = r.amd_viommu->nested_domain(host_dte(r, r.prid).gcr3_root);
        REQUIRE(now.has_value());
        CHECK(*now != *old);
        const uint64_t a = g.map(second.ioas, 4096);
        uint64_t v = 0;
        CHECK(r.dma(a, v) == tlm::TLM_OK_RESPONSE);
        (void)first;
    });
    CHECK(r.value("os.oracle.violations") == 0);
}

TEST_CASE("AMD nesting: guest commands naming an unknown vDomainID or vDeviceID are refused, the wait still completes",
          "[vm][amd][sc]") {
    VmRig r(ViommuMode::nested, {}, {}, Family::amd);
    r.run([&] {
        (void)guest_attach(r, {r.vrid});
        const amd::RingRegs ring = r.amd_viommu->regs().cmd_ring();
        const uint64_t sem = ring.base + ring.bytes() - 16; // a spare slot of the ring
        const double refused = r.value("vm0.vm0_viommu.refused"), flushes = r.value("os.dmar0.flushes");
        guest_commands(r, {amd::encode(amd::linux_inv_iommu_pages(77, 0x10000, 0x1000, true, 0)),
                           amd::encode(amd::linux_inv_iotlb_pages(0x0909, 0, 0x10000, 0x1000)),
                           amd::encode(amd::linux_completion_wait(sem, 0xabc))});
        CHECK(r.value("vm0.vm0_viommu.refused") == refused + 2);
        CHECK(r.value("os.dmar0.flushes") == flushes); // nothing reached the physical unit
        CHECK(r.vm->memory().read_u64(sem) == 0xabc);
    });
}

TEST_CASE("AMD vIOMMU invalidation arrays: entries in order, the first unknown ID or opcode stops the batch",
          "[vm][amd][iommufd][sc]") {
    VmRig r(ViommuMode::nested, {}, {}, Family::amd);
    r.run([&] {
        (void)guest_attach(r, {r.vrid, r.ep_vrid});
        const uint16_t gdom = [&] {
            std::array<uint64_t, 4> q{};
            r.vm->memory().read(r.amd_viommu->regs().dev_table().base + 32u * r.vrid.raw, q.data(), 32);
            return amd::Dte::decode(q).domain_id;
        }();
        host::IommuFd& fd = r.os->iommufd();
        const uint32_t viommu = viommu_id(r);
        REQUIRE(viommu != 0);
        CHECK(fd.vdevice(viommu, r.ep_vrid.raw)->rid == r.ep_rid);
        auto run = [&](std::vector<std::array<uint64_t, 2>> cmds, Errno want, uint32_t done) {
            check_viommu_invalidate(fd, viommu, host::uapi::kInvalidateDataAmdModel, std::move(cmds), want, done);
        };
        const auto pages = amd::encode(amd::linux_inv_iommu_pages(gdom, 0x10000, 0x1000, true, 0));
        const auto atc = amd::encode(amd::linux_inv_iotlb_pages(r.ep_vrid.raw, 0, 0x10000, 0x1000));
        const auto unknown_dom = amd::encode(amd::linux_inv_iommu_pages(77, 0, 0x1000, true, 0));
        const auto unknown_dev = amd::encode(amd::linux_inv_iotlb_pages(0x0909, 0, 0, 0x1000));
        const auto devtab = amd::encode(amd::InvalidateDevtabEntry{r.vrid.raw});
        run({pages, atc}, Errno::ok, 2);
        run({pages, unknown_dom}, Errno::einval, 1); // the first took effect
        run({unknown_dev, pages}, Errno::einval, 0);
        run({pages, atc, devtab}, Errno::eio, 2);   // not an invalidation the kernel forwards
        run({}, Errno::ok, 0);
        // A nested domain's guest DTE is checked as validate_gdte_nested does.
        amd::Dte bad;
        bad.v = bad.tv = bad.gv = true;
        bad.gcr3_root = 0x4000'0000;
        bad.mode = 4; // a guest may not name a host table
        CHECK_THROWS_AS(fd.hwpt_alloc_nested_viommu(viommu, host::uapi::kHwptDataAmdGuest, bad.encode()), host::HostError);
        bad.mode = 0;
        bad.gcr3_root = 0; // GV without a GCR3 table
        CHECK_THROWS_AS(fd.hwpt_alloc_nested_viommu(viommu, host::uapi::kHwptDataAmdGuest, bad.encode()), host::HostError);
        bad.gcr3_root = 0x4000'0000;
        CHECK_THROWS_AS(fd.hwpt_alloc_nested_viommu(viommu, host::uapi::kHwptDataArmSmmuv3, bad.encode()), host::HostError);
        CHECK_NOTHROW(fd.hwpt_alloc_nested_viommu(viommu, host::uapi::kHwptDataAmdGuest, bad.encode()));
        std::vector<std::array<uint64_t, 2>> one{pages};
        host::uapi::HwptInvalidate q;
        q.hwpt_id = viommu;
        q.data_uptr = reinterpret_cast<uintptr_t>(one.data());
        q.data_type = host::uapi::kInvalidateDataVtdS1; // the wrong data type
        q.entry_len = 16;
        q.entry_num = 1;
        CHECK(fd.hwpt_invalidate(q) == Errno::einval);
        CHECK(q.entry_num == 0);
    });
}
