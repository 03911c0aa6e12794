// SPDX-License-Identifier: Apache-2.0
// What the VT-d backend writes where Linux's intel-iommu driver decides the
// encoding (drivers/iommu/intel/pasid.c, dmar.c): PASID-entry AW and PWSNP,
// the device-TLB descriptor's PFSID, the wait descriptor's QI_DONE status
// protocol; and what a unit whose walks do not snoop costs the driver (a
// cache-line flush per table line written).
#include <catch2/catch.hpp>

#include "models/host/host.hpp"
#include "models/host/vtd_driver.hpp"
#include "models/iommu/vtd/vtd_descriptors.hpp"
#include "models/iommu/vtd/vtd_regs.hpp"
#include "models/iommu/vtd/vtd_tables.hpp"
#include "test/models/host/vtd_host_rig.hpp"

using namespace iommusim;
using host::DomainDesc;

namespace {
struct Rig : hosttest::VtdHostRig {
    explicit Rig(const iommu::vtd::VtdParams& p = {}, const host::HostParams& hp = {}) : VtdHostRig(p, hp) {}
    iommu::vtd::PasidEntry pasid_entry(pcie::Bdf rid, uint32_t pasid, const iommu::vtd::VtdParams& p) {
        iommu::vtd::VtdTableReader reader(p);
        const auto ctx = reader.read_context(memory.store, iommu->regs().root_table(), true, rid);
        REQUIRE(ctx.status.ok());
        const auto pe = reader.read_pasid(memory.store, ctx.entry, pasid);
        REQUIRE(pe.status.ok());
        return pe.entry;
    }
    /// Every descriptor of type `type` in the invalidation queue (256-bit descriptors).
    std::vector<std::array<uint64_t, 4>> descriptors(unsigned type) {
        std::vector<std::array<uint64_t, 4>> out;
        const uint64_t base = iommu->regs().iqa_base();
        for (uint64_t off = 0; off < iommu->regs().iqt(); off += 32) {
            std::array<uint64_t, 4> q{};
            memory.store.read(base + off, q.data(), 32);
            if ((q[0] & 0xF) == type) out.push_back(q);
        }
        return out;
    }
    double stat(const char* s) { return stats::numeric_value(*root.find(s)); }
};
} // namespace

TEST_CASE("Linux's iommu->agaw: the widest depth both stages support, up to 5 levels", "[unit][host][vtd][linux]") {
    constexpr uint64_t flts = uint64_t{1} << 47, slts = uint64_t{1} << 46, fl5lp = uint64_t{1} << 60;
    auto sagaw = [](unsigned bits) { return uint64_t{bits} << 8; };
    CHECK(host::VtdDriver::linux_agaw(sagaw(0b0110), flts | slts) == 2);         // 4-level both: 48-bit
    CHECK(host::VtdDriver::linux_agaw(sagaw(0b1110) | fl5lp, flts | slts) == 3); // 5-level both
    CHECK(host::VtdDriver::linux_agaw(sagaw(0b1110), flts | slts) == 2);         // first stage without FL5LP
    CHECK(host::VtdDriver::linux_agaw(sagaw(0b0010), slts) == 1);                // second stage only, 3-level
    CHECK(host::VtdDriver::linux_agaw(fl5lp, flts) == 3);                        // first stage only
    CHECK(host::VtdDriver::linux_agaw(sagaw(0b0010), flts | slts) == -1);        // no common depth
}

namespace {
/// Attaches a first-stage, the kernel's identity and a 3-level second-stage domain to PASIDs
/// 9, 10, 11 of one device; checks AW and PWSNP as Linux writes them.
void check_pasid_entries(bool five, bool coherent) {
    iommu::vtd::VtdParams p;
    p.fl_5level = five;
    p.sl_5level = five;
    p.coherent = coherent;
    Rig rig(p);
    const host::DeviceInfo d = rig.add_pasid_device();
    rig.run([&] {
        auto& fd = rig.os->iommufd();
        const uint32_t ioas = fd.ioas_alloc();
        fd.attach(d.rid, 9, fd.hwpt_alloc(ioas, 0, DomainDesc::Kind::paging_s1));
        // iommufd allocates no identity domains (IOMMU_HWPT_ALLOC makes paging and nested
        // ones); the kernel's own identity domain goes to the backend directly.
        DomainDesc identity;
        identity.id = 1000;
        identity.kind = DomainDesc::Kind::identity;
        rig.drv->attach(host::Attachment{d, 10}, identity);
        fd.attach(d.rid, 11, fd.hwpt_alloc(ioas, 0, DomainDesc::Kind::paging_s2, 3));
    });
    const uint8_t agaw = five ? 3 : 2;
    const auto fl = rig.pasid_entry(d.rid, 9, p), pt = rig.pasid_entry(d.rid, 10, p), sl = rig.pasid_entry(d.rid, 11, p);
    CHECK(pt.pgtt == static_cast<uint8_t>(iommu::vtd::Pgtt::pass_through));
    CHECK(fl.aw == agaw);
    CHECK(pt.aw == agaw);
    CHECK(sl.aw == 1); // second stage: the domain's own depth (3 levels)
    CHECK(fl.pwsnp == coherent);
    CHECK(pt.pwsnp == coherent);
    CHECK(sl.pwsnp == coherent);
}
} // namespace

// (One unit per test case: a SystemC process elaborates once.)
TEST_CASE("PASID entries carry Linux's AW (iommu->agaw, 4-level unit) and PWSNP = ECAP.SMPWC (not snooping)",
          "[sc][host][vtd][linux]") {
    check_pasid_entries(false, false);
}

TEST_CASE("PASID entries carry Linux's AW (iommu->agaw, 5-level unit) and PWSNP = ECAP.SMPWC (snooping)",
          "[sc][host][vtd][linux]") {
    check_pasid_entries(true, true);
}

TEST_CASE("device-TLB invalidations carry the PF's requester ID as PFSID, a VF's PF for a VF", "[sc][host][vtd][linux]") {
    Rig rig;
    host::DeviceInfo pf, vf;
    pf.rid = pcie::Bdf(0x0300);
    pf.ats = true;
    vf.rid = pcie::Bdf(0x0310);
    vf.ats = true;
    vf.pf = pf.rid;
    rig.os->iommufd().add_device(pf, 0);
    rig.os->iommufd().add_device(vf, 0);
    rig.run([&] {
        auto& fd = rig.os->iommufd();
        const uint32_t ioas = fd.ioas_alloc();
        const uint32_t h = fd.hwpt_alloc(ioas, 0, DomainDesc::Kind::paging_s2);
        fd.attach(pf.rid, std::nullopt, h);
        fd.attach(vf.rid, std::nullopt, h);
        fd.unmap(ioas, fd.map(ioas, 4096), 4096); // strict: one flush for both functions
    });
    const auto devtlb = rig.descriptors(3); // QI_DIOTLB_TYPE
    REQUIRE(devtlb.size() == 2);
    for (const auto& q : devtlb) {
        const uint16_t sid = static_cast<uint16_t>(q[0] >> 32);
        const uint16_t pfsid = static_cast<uint16_t>(((q[0] >> 12) & 0xF) | (((q[0] >> 52) & 0xFFF) << 4));
        INFO("SID " << std::hex << sid);
        CHECK(pfsid == pf.rid.raw); // Linux info->pfsid = pci_dev_id(pci_physfn(dev))
    }
}

TEST_CASE("each wait descriptor writes QI_DONE into its own slot's status word, set to QI_IN_USE before",
          "[sc][host][vtd][linux]") {
    Rig rig;
    const host::DeviceInfo d = rig.add_pasid_device();
    rig.run([&] {
        auto& fd = rig.os->iommufd();
        const uint32_t ioas = fd.ioas_alloc();
        fd.attach(d.rid, 9, fd.hwpt_alloc(ioas, 0, DomainDesc::Kind::paging_s1));
        for (int i = 0; i < 3; ++i) fd.unmap(ioas, fd.map(ioas, 4096), 4096);
    });
    const auto waits = rig.descriptors(5); // QI_IWD_TYPE
    REQUIRE(waits.size() >= 3);
    std::set<uint64_t> addrs;
    for (const auto& q : waits) {
        CHECK(((q[0] >> 5) & 1) == 1);          // SW: status write
        CHECK((q[0] >> 32) == 2);               // status data QI_DONE
        CHECK(((q[0] >> 4) & 1) == 0);          // IF: Linux never asks for the interrupt
        CHECK(rig.memory.store.read_u32(q[1]) == 2); // done
        addrs.insert(q[1]);
    }
    CHECK(addrs.size() == waits.size()); // one status word per queue slot (desc_status[wait_index])
}

namespace {
struct MapCost {
    double attach_entry_lines = 0, first_lines = 0, small_ns = 0, large_ns = 0, lines = 0;
};
/// Attaches a 4-level first-stage domain, maps 4 KiB into it (three new tables below the root),
/// maps and unmaps 4 KiB and 64 KiB once (their IOVAs then come from the per-CPU caches), then
/// times a 4 KiB map (one PTE: one line) and a 64 KiB map (16 size-aligned PTEs: two lines).
MapCost map_cost(bool coherent) {
    iommu::vtd::VtdParams p;
    p.coherent = coherent;
    Rig rig(p);
    const host::DeviceInfo d = rig.add_pasid_device();
    MapCost c;
    rig.run([&] {
        auto& fd = rig.os->iommufd();
        const uint32_t ioas = fd.ioas_alloc();
        fd.attach(d.rid, 9, fd.hwpt_alloc(ioas, 0, DomainDesc::Kind::paging_s1, 4));
        c.attach_entry_lines = rig.stat("os.dmar0.entry_line_flushes");
        (void)fd.map(ioas, 4096);
        c.first_lines = rig.stat("os.iommufd.table_line_flushes");
        for (const uint64_t size : {4096u, 65536u}) fd.unmap(ioas, fd.map(ioas, size), size);
        const double lines0 = rig.stat("os.iommufd.table_line_flushes");
        Duration t0 = rig.os->cpu().now();
        (void)fd.map(ioas, 4096);
        c.small_ns = (rig.os->cpu().now() - t0).as_ns();
        t0 = rig.os->cpu().now();
        (void)fd.map(ioas, 65536);
        c.large_ns = (rig.os->cpu().now() - t0).as_ns();
        c.lines = rig.stat("os.iommufd.table_line_flushes") - lines0;
    });
    return c;
}
} // namespace

TEST_CASE("a unit whose walks do not snoop makes each table line the driver writes cost a flush",
          "[sc][host][vtd][coherency]") {
    const MapCost c = map_cost(false);
    const host::HostCpuParams cp;
    // Each new table: its whole 4 KiB page (64 lines) and its parent entry's line (Linux
    // pfn_to_dma_pte); then the leaf's line.
    CHECK(c.first_lines == 3 * 65 + 1);
    CHECK(c.lines == 1 + 2);
    // 15 more PTEs and one more line for 64 KiB than for 4 KiB; all else is the same path.
    CHECK(c.large_ns - c.small_ns == Approx(15 * cp.pte_write.as_ns() + cp.clflush.as_ns()));
    // The context entry and root entry, the PASID entry and its directory entry (ECAP.C = 0).
    CHECK(c.attach_entry_lines == 4);
}

TEST_CASE("a unit whose walks snoop costs the driver no table-line flushes", "[sc][host][vtd][coherency]") {
    const MapCost c = map_cost(true);
    const host::HostCpuParams cp;
    CHECK(c.first_lines == 0);
    CHECK(c.lines == 0);
    CHECK(c.attach_entry_lines == 0);
    CHECK(c.large_ns - c.small_ns == Approx(15 * cp.pte_write.as_ns()));
}
