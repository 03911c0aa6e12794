// SPDX-License-Identifier: Apache-2.0
// AmdDriver's event log on the unit's IRQ thread (amd_iommu_int_thread: the
// event log's handler, then the PPR log's): the driver sets EventIntEn on every
// unit and an event-log record is read from its interrupt, not after a
// timed-out completion wait; a unit without PPR log has its own IRQ thread; an
// IOTLB_INV_TIMEOUT fails only the wait of the command it names.
#include <catch2/catch.hpp>

#include "test/models/host/pri_host_rig.hpp"

using namespace iommusim;
using hosttest::PriFamily;
using hosttest::PriHostRig;
namespace amd = iommusim::iommu::amd;

namespace {
/// An untranslated read at PASID 5 of a page the process never touched: IO_PAGE_FAULT (SC_THREAD).
void page_fault(PriHostRig& rig) {
    pcie::TlpExtension ext;
    ext.requester = PriHostRig::kRid;
    ext.pasid_present = true;
    ext.pasid = PriHostRig::kPasid;
    uint64_t v = 0;
    sc_core::sc_time d = sc_core::SC_ZERO_TIME;
    CHECK(rig.dev.access(tlm::TLM_READ_COMMAND, 0x7000'0000, &v, 8, d, &ext) != tlm::TLM_OK_RESPONSE);
    sc_core::wait(d);
}
} // namespace

TEST_CASE("AMD-Vi: an event-log record is read by the unit's IRQ thread from the event-log interrupt",
          "[sc][host][amd]") {
    PriHostRig rig(PriFamily::amd);
    const auto& regs = dynamic_cast<amd::AmdIommu&>(*rig.unit).regs();
    rig.run([&] {
        CHECK(regs.control(amd::ctl::EVT_INT_EN));
        const double reads = rig.stat("os.cpu.mmio_reads");
        sc_core::wait(50, sc_core::SC_US); // idle: nothing polls the event log
        CHECK(rig.stat("os.cpu.mmio_reads") == reads);
        page_fault(rig);
        CHECK(rig.stat("dmar0.events") == 1);
        CHECK(rig.stat("os.dmar0.events_serviced") == 0);
        sc_core::wait(20, sc_core::SC_US); // MSI delivery, the IRQ thread's wake-up and its pass
        CHECK(rig.stat("os.dmar0.events_serviced") == 1);
        CHECK(rig.stat("os.dmar0.event_log_runs") == 1);
        CHECK(rig.stat("os.prq.wakeups") == 1);
        CHECK(rig.stat("os.prq.requests") == 0); // the PPR log's turn found nothing
        const amd::RingRegs ev = regs.event_ring();
        CHECK(ev.head == ev.tail); // the driver published its head
        CHECK((regs.status() & (amd::st::EVT_INT | amd::st::EVT_OVERFLOW)) == 0);
        CHECK((regs.status() & amd::st::EVT_RUN) != 0);
    });
}

TEST_CASE("AMD-Vi: a unit without a PPR log reads its event log from the event-log interrupt, not after a timed-out wait",
          "[sc][host][amd]") {
    PriHostRig rig(PriFamily::amd, {}, host::DriverParams::kDefaultPrqOrder, /*pri=*/false);
    const auto& regs = dynamic_cast<amd::AmdIommu&>(*rig.unit).regs();
    rig.run([&] {
        CHECK_FALSE(regs.control(amd::ctl::PPRLOG_EN)); // no PRI device: no PPR log
        CHECK(regs.control(amd::ctl::EVT_INT_EN));      // iommu_init_irq: the event log interrupts anyway
        page_fault(rig);
        CHECK(rig.stat("dmar0.events") == 1);
        CHECK(rig.stat("os.dmar0.events_serviced") == 0);
        sc_core::wait(20, sc_core::SC_US); // far below the 100 ms completion-wait time-out
        CHECK(rig.stat("os.dmar0.events_serviced") == 1);
        CHECK(rig.stat("os.dmar0.event_log_runs") == 1);
        CHECK(rig.stat("os.prq.wakeups") == 0); // no page-request handler ran
        const amd::RingRegs ev = regs.event_ring();
        CHECK(ev.head == ev.tail);
        CHECK((regs.status() & (amd::st::EVT_INT | amd::st::EVT_OVERFLOW)) == 0);
    });
}

TEST_CASE("AMD-Vi: an IOTLB_INV_TIMEOUT read while no wait is pending fails no later wait", "[sc][host][amd]") {
    PriHostRig rig(PriFamily::amd);
    host::HostCpu& cpu = rig.os->cpu();
    host::DomainDesc dom;
    dom.id = 0x777;
    dom.kind = host::DomainDesc::Kind::paging_s2;
    host::DeviceInfo dev;
    dev.rid = PriHostRig::kRid;
    dev.ats = true;
    std::optional<host::FlushTiming> first, second;
    double timeouts_before_second = -1;
    rig.os->add_thread("flusher", [&] {
        while (!rig.bound) cpu.wait_until(cpu.now() + Duration::us(1));
        // The device never answers the ATS invalidation: the wait gives up after LOOP_TIMEOUT
        // (100 ms), the unit logs IOTLB_INV_TIMEOUT after InvTimeOut (1 s).
        first = rig.drv->flush(host::FlushRequest{.domain = &dom, .attachments = {host::Attachment{dev, std::nullopt}}});
        cpu.wait_until(Duration::us(1'200'000));
        timeouts_before_second = rig.stat("os.dmar0.iotlb_inv_timeouts");
        // No ATS invalidation: the unit completes it; the stale record names another command.
        host::FlushRequest plain;
        plain.domain = &dom;
        second = rig.drv->flush(plain);
    });
    rig.run([&] { sc_core::wait(1500, sc_core::SC_MS); }, sc_core::sc_time(2, sc_core::SC_SEC));
    REQUIRE(first);
    REQUIRE(second);
    CHECK(first->error);
    CHECK(timeouts_before_second == 1); // read by the unit's IRQ thread while nothing waited
    CHECK(rig.stat("os.dmar0.events_serviced") == 1);
    CHECK_FALSE(second->error);
    CHECK(second->wait_done.has_value());
}
