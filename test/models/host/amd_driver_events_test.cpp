// SPDX-License-Identifier: Apache-2.0
// AmdDriver's event log on the unit's IRQ thread (amd_iommu_int_thread: the
// event log's handler, then the PPR log's): with a PPR log the driver sets
// EventIntEn and an event-log record is read from its interrupt, not after a
// timed-out completion wait.
#include <catch2/catch.hpp>

#include "test/models/host/pri_host_rig.hpp"

using namespace iommusim;
using hosttest::PriFamily;
using hosttest::PriHostRig;
namespace amd = iommusim::iommu::amd;

TEST_CASE("AMD-Vi: an event-log record is read by the unit's IRQ thread from the event-log interrupt",
          "[sc][host][amd]") {
    PriHostRig rig(PriFamily::amd);
    const auto& regs = dynamic_cast<amd::AmdIommu&>(*rig.unit).regs();
    rig.run([&] {
        CHECK(regs.control(amd::ctl::EVT_INT_EN));
        const double reads = rig.stat("os.cpu.mmio_reads");
        sc_core::wait(50, sc_core::SC_US); // idle: nothing polls the event log
        CHECK(rig.stat("os.cpu.mmio_reads") == reads);
        // An untranslated read at PASID 5 of a page the process never touched: IO_PAGE_FAULT.
        pcie::TlpExtension ext;
        ext.requester = PriHostRig::kRid;
        ext.pasid_present = true;
        ext.pasid = PriHostRig::kPasid;
        uint64_t v = 0;
        sc_core::sc_time d = sc_core::SC_ZERO_TIME;
        CHECK(rig.dev.access(tlm::TLM_READ_COMMAND, 0x7000'0000, &v, 8, d, &ext) != tlm::TLM_OK_RESPONSE);
        sc_core::wait(d);
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
