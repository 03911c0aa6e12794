// SPDX-License-Identifier: Apache-2.0
// Page requests serviced from the unit's interrupt, for each family's unit
// and driver backend (VT-d page request event, AMD-Vi PPR log interrupt,
// SMMUv3 PRIQ IRQ): nothing runs until the MSI arrives (no register read
// while idle), a request logged while the handler drains is not lost, a
// masked VT-d event leaves PRS.PPR / PECTL.IP set until unmasked, and an
// overflowed log is re-armed so that later requests are serviced again.
// One test case per behaviour, instantiated per family (TEMPLATE_TEST_CASE:
// each instance runs in its own process).
#include <catch2/catch.hpp>

#include "test/models/host/pri_host_rig.hpp"

using namespace iommusim;
using hosttest::PriHostRig;
using iommusim::test::Amd;
using iommusim::test::Family;
using iommusim::test::Smmuv3;
using iommusim::test::Vtd;
namespace vreg = iommusim::iommu::vtd::reg;
namespace vbits = iommusim::iommu::vtd::bits;
namespace areg = iommusim::iommu::amd::reg;
namespace sreg = iommusim::iommu::smmuv3::reg;

namespace {

constexpr uint64_t kVa = 0x7000'0000;

double us(sc_core::sc_time t) { return t.to_seconds() * 1e6; }

/// Clears (`on` false) or sets the unit's page-request interrupt enable as software would:
/// AMD-Vi Control.PPRIntEn (bit 14), SMMUv3 IRQ_CTRL.PRIQ_IRQEN (bit 1). Port 0: the unit.
void page_request_irq(PriHostRig& rig, bool on) {
    host::HostCpu& cpu = rig.os->cpu();
    const uint32_t off = rig.family == Family::amd ? areg::CONTROL : sreg::kIrqCtrl;
    const unsigned size = rig.family == Family::amd ? 8 : 4;
    const uint64_t bit = rig.family == Family::amd ? uint64_t{1} << 14 : uint64_t{1} << 1;
    const uint64_t v = cpu.mmio_read(0, off, size);
    cpu.mmio_write(0, off, on ? v | bit : v & ~bit, size);
}

} // namespace

// AMD-Vi Control.PPRIntEn, SMMUv3 IRQ_CTRL.PRIQ_IRQEN (VT-d's masked event: the test below).
TEMPLATE_TEST_CASE("with the page-request interrupt disabled a logged request waits until the next interrupt serves it "
                   "with the new one",
                   "[sc][host][pri]", Amd, Smmuv3) {
    const Family f = TestType::value;
    INFO(test::name_of(f));
    PriHostRig rig(f);
    rig.run([&] {
        page_request_irq(rig, false);
        rig.page_request(kVa, 1);
        sc_core::wait(100, sc_core::SC_US);
        CHECK(rig.responses() == 0); // logged, no interrupt: nobody looks
        CHECK(rig.stat("os.prq.wakeups") == 0);
        page_request_irq(rig, true);
        rig.page_request(kVa + 0x1000, 2); // its interrupt runs the handler, which drains both
        sc_core::wait(100, sc_core::SC_US);
        CHECK(rig.responses() == 2);
        CHECK(rig.stat("os.prq.successes") == 2);
        CHECK(rig.stat("os.prq.wakeups") == 1);
    });
}

// VT-d: the page request event; AMD-Vi: the PPR log interrupt; SMMUv3: the PRIQ interrupt.
TEMPLATE_TEST_CASE("a page request is serviced from the unit's page-request interrupt, with no register read while idle",
                   "[sc][host][pri]", Vtd, Amd, Smmuv3) {
    const Family f = TestType::value;
    INFO(test::name_of(f));
    host::HostParams hp;
    hp.cpu.interrupt_latency = Duration::us(20); // a slow delivery: service must wait for it
    PriHostRig rig(f, hp);
    rig.run([&] {
        const double reads = rig.stat("os.cpu.mmio_reads");
        sc_core::wait(100, sc_core::SC_US); // idle: the handler thread sleeps, nothing polls
        CHECK(rig.stat("os.cpu.mmio_reads") == reads);
        CHECK(rig.stat("os.prq.wakeups") == 0);
        // Entries the backend writes into its command queue for the response.
        const std::string entries = f == Family::vtd ? "os.dmar0.descriptors" : "os.dmar0.commands";
        const double entries0 = rig.stat(entries);
        const sc_core::sc_time sent = sc_core::sc_time_stamp();
        rig.page_request(kVa, 1);
        sc_core::wait(sent + sc_core::sc_time(19, sc_core::SC_US) - sc_core::sc_time_stamp());
        CHECK(rig.stat("os.prq.requests") == 0); // logged, but the interrupt is still on its way
        CHECK(rig.responses() == 0);
        CHECK(rig.stat("os.cpu.mmio_reads") == reads);
        sc_core::wait(200, sc_core::SC_US);
        REQUIRE(rig.responses() == 1);
        // Delivery (20 us) and the IRQ thread's wake-up come before the handler's first access.
        CHECK(us(rig.sink.at.back() - sent) > 20.0 + host::HostCpuParams::kDefaultIrqThreadWakeupNs / 1000);
        CHECK(rig.stat("os.prq.wakeups") == 1);
        CHECK(rig.stat("os.prq.successes") == 1);
        CHECK(rig.stat("os.prq.mmio_reads") > 0);
        CHECK(rig.stat("os.dmar0_msi.msis") >= 1);
        // VT-d waits for its page group response (qi_submit_sync: + a wait descriptor); AMD-Vi
        // (amd_iommu_complete_ppr) and SMMUv3 (arm_smmu_handle_ppr) only queue it.
        CHECK(rig.stat(entries) == entries0 + (f == Family::vtd ? 2 : 1));
        // Idle again: no more reads.
        const double after = rig.stat("os.cpu.mmio_reads");
        sc_core::wait(100, sc_core::SC_US);
        CHECK(rig.stat("os.cpu.mmio_reads") == after);
    });
}

// What keeps the request from being lost: VT-d clears PRS.PPR before reading PQT, AMD-Vi clears
// PPRInt before reading the log, SMMUv3 re-reads PROD until the queue is empty.
TEMPLATE_TEST_CASE("a page request logged while the handler drains is serviced", "[sc][host][pri]", Vtd, Amd, Smmuv3) {
    const Family f = TestType::value;
    INFO(test::name_of(f));
    PriHostRig rig(f);
    rig.run([&] {
        rig.page_request(kVa, 1);
        // The handler starts after delivery (1.5 us) and its wake-up (0.445 us), clears the
        // pending state, reads the positions and resolves the first request (iopf hand-off
        // 1.5 us + fault 0.5 us): the second request arrives in the middle of that.
        sc_core::wait(3, sc_core::SC_US);
        rig.page_request(kVa + 0x1000, 2);
        sc_core::wait(300, sc_core::SC_US);
        CHECK(rig.responses() == 2);
        CHECK(rig.stat("os.prq.requests") == 2);
        CHECK(rig.stat("os.prq.successes") == 2);
        CHECK(rig.stat("os.prq.wakeups") >= 2); // the second request raised its own interrupt
    });
    if (f == Family::vtd) {
        const auto& r = dynamic_cast<iommu::vtd::VtdIommu&>(*rig.unit).regs();
        CHECK(r.pqh() == r.pqt());
        CHECK((r.raw32(vreg::PRS) & vbits::PRS_PPR) == 0);
    }
}

TEST_CASE("VT-d: with the page request event masked PRS.PPR and PECTL.IP stay set and nothing is serviced until unmask",
          "[sc][host][vtd][pri]") {
    PriHostRig rig(Family::vtd);
    const auto& regs = dynamic_cast<iommu::vtd::VtdIommu&>(*rig.unit).regs();
    rig.run([&] {
        host::HostCpu& cpu = rig.os->cpu();
        cpu.mmio_write(0, vreg::PECTL, vbits::ECTL_IM, 4); // software masks the event (port 0: the unit)
        const double msis = rig.stat("os.dmar0_msi.msis");
        rig.page_request(kVa, 1);
        sc_core::wait(100, sc_core::SC_US);
        CHECK(rig.responses() == 0);
        CHECK(rig.stat("os.prq.wakeups") == 0);
        CHECK(rig.stat("os.dmar0_msi.msis") == msis);
        CHECK(regs.raw32(vreg::PRS) & vbits::PRS_PPR);
        CHECK(regs.raw32(vreg::PECTL) & vbits::ECTL_IP);
        cpu.mmio_write(0, vreg::PECTL, 0, 4); // unmasking with IP set sends the event (§11.4.11)
        sc_core::wait(100, sc_core::SC_US);
        CHECK(rig.stat("os.dmar0_msi.msis") == msis + 1);
        CHECK(rig.responses() == 1);
        CHECK(rig.stat("os.prq.wakeups") == 1);
        CHECK((regs.raw32(vreg::PRS) & vbits::PRS_PPR) == 0);
        CHECK((regs.raw32(vreg::PECTL) & vbits::ECTL_IP) == 0);
    });
}

// Re-armed as each family's driver does it: VT-d clears PRS.PRO once the queue is drained, AMD-Vi
// restarts the PPR log, SMMUv3 acknowledges the overflow (CONS.OVACKFLG).
TEMPLATE_TEST_CASE("an overflowed page-request log is re-armed and serves requests again", "[sc][host][pri]", Vtd, Amd,
                   Smmuv3) {
    const Family f = TestType::value;
    INFO(test::name_of(f));
    // Requests the log holds: VT-d 4 KiB of 32-byte descriptors, one slot kept free; AMD-Vi 512
    // records (Linux PPR_LOG_SIZE_512), one slot kept free; SMMUv3 4 KiB of 16-byte records,
    // every slot usable (wrap bit).
    const unsigned slots = f == Family::vtd ? 127 : f == Family::amd ? 511 : 256;
    const char* dropped = f == Family::vtd   ? "dmar0.prq_overflows"
                          : f == Family::amd ? "dmar0.ppr_dropped"
                                             : "dmar0.page_request_overflows";
    host::HostParams hp;
    hp.cpu.interrupt_latency = Duration::us(1000); // the burst fills the log before the handler runs
    PriHostRig rig(f, hp, 0);                      // VT-d PRQ / SMMUv3 PRIQ of one page
    const unsigned burst = slots + 3;
    rig.run([&] {
        for (unsigned i = 0; i < burst; ++i) rig.page_request(kVa + uint64_t{i} * 0x1000, static_cast<uint16_t>(i & 0x1FF));
        CHECK(rig.stat(dropped) >= 1);
        sc_core::wait(8, sc_core::SC_MS);
        CHECK(rig.stat("os.prq.overflows") == 1);
        CHECK(rig.responses() == burst); // every request answered: by the host or, dropped, by the unit
        const double served = rig.stat("os.prq.successes");
        rig.page_request(kVa + uint64_t{burst} * 0x1000, 0x1FF); // the log accepts requests again
        sc_core::wait(3, sc_core::SC_MS);
        CHECK(rig.responses() == burst + 1);
        CHECK(rig.stat("os.prq.successes") == served + 1);
    }, sc_core::sc_time(20, sc_core::SC_MS));
}
