// SPDX-License-Identifier: Apache-2.0
// AMD-Vi guest page requests (models/host/vm/amd_viommu.cpp, the AMD part of
// viommu_faults.cpp, AmdDriver::page_response): a physical PPR log record of a
// device on a nested domain goes to the VMM's iommufd fault queue, becomes a
// bit-exact PPR log entry with the vDeviceID in the guest's PPR log, the guest's
// AmdDriver faults the page in and answers with COMPLETE_PPR_REQUEST, which the
// VMM translates into the iommufd page response the host sends as its own
// COMPLETE_PPR_REQUEST with the physical DeviceID. Trapped and hardware vIOMMU.
#include <catch2/catch.hpp>

#include "models/iommu/amd/amd_commands.hpp"
#include "models/iommu/amd/amd_events.hpp"
#include "models/iommu/amd/amd_regs.hpp"
#include "test/models/host/vm/vm_rig.hpp"

using namespace vmtest;
namespace amd = iommusim::iommu::amd;

namespace {

constexpr const char* kPrq = "vm0.vm0_viommu.page_requests.";
constexpr uint32_t kPasid = 5;
constexpr uint64_t kVa = 0x7000'0000;

/// An AMD rig whose ATS endpoint (vDeviceID 00:04.0, physical 04:00.0) has PASID and PRI, guest
/// fault delivery on; the guest binds a process (SVA) at its PASID 5 behind a v2 RID domain.
struct AmdPri {
    VmRig r;
    uint32_t pid = 0;
    explicit AmdPri(ViommuMode mode = ViommuMode::nested)
        : r(mode, host::DriverParams{}, params(), Family::amd, true, false, /*ep_pri=*/true) {}
    static host::vm::VmParams params() {
        host::vm::VmParams vp;
        vp.page_requests = true;
        return vp;
    }
    void setup() {
        host::IommuFd& g = r.vm->guest().iommufd();
        (void)guest_attach(r, r.ep_vrid); // GV + GIoV: the VMM nests the guest's GCR3 table
        pid = g.process_create();
        g.attach(r.ep_vrid, kPasid, g.hwpt_alloc_sva(pid, 0));
    }
    pcie::PrgResponseCode request(uint64_t addr, uint16_t prg, bool write = false) {
        sc_core::sc_time t = sc_core::SC_ZERO_TIME;
        const auto code = r.ep->request_page(addr, write, kPasid, prg, t);
        sc_core::wait(t);
        return code;
    }
    tlm::tlm_response_status dma(uint64_t va, uint64_t& v) {
        sc_core::sc_time t = sc_core::SC_ZERO_TIME;
        const auto st = r.ep->dma(va, &v, 8, false, kPasid, t);
        sc_core::wait(t);
        return st;
    }
    /// The guest kernel's Control register (trapped read), with `bit` set or cleared (trapped write).
    void guest_control(unsigned bit, bool on) {
        host::HostCpu& vcpu = r.vm->guest().cpu();
        const uint64_t c = vcpu.mmio_read(0, amd::reg::CONTROL, 8);
        vcpu.mmio_write(0, amd::reg::CONTROL, on ? c | (uint64_t{1} << bit) : c & ~(uint64_t{1} << bit), 8);
    }
};

/// Raw commands written into the guest's command buffer and the tail rung (a guest kernel's doing; the
/// tail read from the guest's register: the emulated one, or the unit's VF page when accelerated).
void guest_commands(VmRig& r, const std::vector<std::array<uint64_t, 2>>& cmds) {
    const amd::RingRegs ring = r.amd_viommu->regs().cmd_ring();
    auto tail = static_cast<uint32_t>(r.vm->guest().cpu().mmio_read(0, amd::reg::CMD_TAIL, 4));
    for (const auto& c : cmds) {
        r.vm->memory().write(ring.base + tail, c.data(), 16);
        tail = (tail + 16) % ring.bytes();
    }
    r.vm->guest().cpu().mmio_write(0, amd::reg::CMD_TAIL, tail, 4);
}

/// The end-to-end check of both modes: the DMA faults, the page request is served by the guest,
/// the retried DMA reads what the guest's process holds at the page. Returns how many guest commands
/// the unit handed to the VMM meanwhile (hardware vIOMMU: guest buffer trap mode).
double check_fault_in_and_retry(AmdPri& a) {
    VmRig& r = a.r;
    double traps = 0;
    r.run([&] {
        a.setup();
        traps = r.value("vm0.vm0_viommu.hardware_traps");
        host::IommuFd& g = r.vm->guest().iommufd();
        CHECK_FALSE(g.process_mapped(a.pid, kVa));
        // The page is not present in the guest's process: the device's Translation Request finds no
        // access, it sends a Page Request (PRI), the guest's handler faults the page in and answers
        // Success, the device translates again and its DMA completes.
        uint64_t v = 0;
        REQUIRE(a.dma(kVa, v) == tlm::TLM_OK_RESPONSE);
        REQUIRE(g.process_mapped(a.pid, kVa));
        // The device reads the guest process's page through the guest's and the host's tables.
        const uint64_t magic = 0xa3d0'0000'0000'0042;
        r.vm->memory().write(*g.process_lookup(a.pid, kVa), &magic, 8);
        REQUIRE(a.dma(kVa, v) == tlm::TLM_OK_RESPONSE);
        CHECK(v == magic);
        sc_core::wait(sc_core::sc_time(20, sc_core::SC_US)); // the guest's handler returns from its trapped tail write
        traps = r.value("vm0.vm0_viommu.hardware_traps") - traps;
    });
    CHECK(r.value(std::string(kPrq) + "groups_delivered") == 1);
    CHECK(r.value(std::string(kPrq) + "responses") == 1);
    CHECK(r.value(std::string(kPrq) + "refused_by_host") == 0);
    CHECK(r.value(std::string(kPrq) + "phases.total") > 0);
    CHECK(r.value("vm0.vm0_guest.prq.requests") == 1);   // the guest's AmdDriver read it from its PPR log
    CHECK(r.value("vm0.vm0_guest.prq.successes") == 1);
    CHECK(r.value("os.prq.requests") == 1);               // the host's PPR handler read it from the unit's
    CHECK(r.value("os.prq.responses") == 0);              // and answered nothing itself
    CHECK(r.value("dmar0.ppr_requests") == 1);
    CHECK(r.value("os.oracle.violations") == 0);
    return traps;
}

} // namespace

TEST_CASE("AMD guest page requests: the guest faults the page in, its COMPLETE_PPR_REQUEST reaches the device and "
          "the retried DMA succeeds",
          "[vm][amd][faults][sc]") {
    AmdPri a;
    (void)check_fault_in_and_retry(a);
}

TEST_CASE("AMD guest page requests: the guest PPR log entry is bit-exact with the vDeviceID, the tail advances, "
          "PPRInt only with PPRIntEn",
          "[vm][amd][faults][sc]") {
    AmdPri a;
    VmRig& r = a.r;
    std::array<uint64_t, 2> rec{};
    uint32_t tail_before = 0, tail_after = 0, status = 0;
    int done = 0;
    pcie::PrgResponseCode c0 = pcie::PrgResponseCode::response_failure, c1 = c0;
    r.run([&] {
        a.setup();
        a.guest_control(amd::ctl::PPRINT_EN, false); // the guest handler is not woken: the record stays
        tail_before = r.amd_viommu->regs().ppr_ring().tail;
        sc_core::sc_spawn([&] {
            c0 = a.request(kVa + 0x3000, 0x1A5, /*write=*/true);
            ++done;
        });
        sc_core::wait(sc_core::sc_time(50, sc_core::SC_US));
        const amd::RingRegs ppr = r.amd_viommu->regs().ppr_ring();
        tail_after = ppr.tail;
        status = r.amd_viommu->regs().status();
        r.vm->memory().read(ppr.base + tail_before, rec.data(), 16);
        // PPRIntEn back on: the next request's PPRInt wakes the guest, which drains both.
        a.guest_control(amd::ctl::PPRINT_EN, true);
        sc_core::sc_spawn([&] {
            c1 = a.request(kVa + 0x4000, 7);
            ++done;
        });
        while (done < 2) sc_core::wait(sc_core::sc_time(1, sc_core::SC_US));
        sc_core::wait(sc_core::sc_time(20, sc_core::SC_US)); // the guest's handler returns from its trapped tail write
    });
    CHECK(tail_after == tail_before + 16);
    CHECK((status & amd::st::PPR_INT) == 0);
    // B.6: DeviceID 15:0 = the vDeviceID 00:04.0 (not 04:00.0), PASID[15:0] 31:16, tag 41:32 (PRG index
    // with bit 9 = last of group), PASID[19:16] 45:42, flags 59:48 (GN 0x100 | US 0x040 | WRITE 0x020),
    // type 63:60 = 1, address 127:64.
    CHECK((rec[0] & 0xFFFF) == r.ep_vrid.raw);
    CHECK(((rec[0] >> 16) & 0xFFFF) == kPasid);
    CHECK(((rec[0] >> 32) & 0x3FF) == (0x200u | 0x1A5u));
    CHECK(((rec[0] >> 42) & 0xF) == 0);
    CHECK(((rec[0] >> 48) & 0xFFF) == (0x100u | 0x040u | 0x020u));
    CHECK((rec[0] >> 60) == 1);
    CHECK(rec[1] == kVa + 0x3000);
    CHECK(c0 == pcie::PrgResponseCode::success);
    CHECK(c1 == pcie::PrgResponseCode::success);
    CHECK(r.value(std::string(kPrq) + "responses") == 2);
    CHECK(r.value("vm0.vm0_guest.prq.successes") == 2);
}

TEST_CASE("AMD guest page requests: a full guest PPR log sets PPROverflow and stops it, the group is answered "
          "INVALID, the guest restarts the log and the next request is served",
          "[vm][amd][faults][sc]") {
    AmdPri a;
    VmRig& r = a.r;
    r.run([&] {
        a.setup();
        // The guest kernel's head one record past the tail: 511 records unconsumed, the log full
        // (one slot always free, B.7).
        const amd::RingRegs ppr = r.amd_viommu->regs().ppr_ring();
        r.vm->guest().cpu().mmio_write(0, amd::reg::PPR_HEAD, (ppr.tail + 16) % ppr.bytes(), 4);
        CHECK(a.request(kVa, 1) == pcie::PrgResponseCode::invalid_request); // dropped: the VMM answers INVALID
        CHECK(r.amd_viommu->regs().ppr_ring().tail == ppr.tail);           // nothing written
        // The guest's handler drains the 511 records (a trapped head write each), then restarts the log.
        for (int i = 0; i < 1000 && r.value("vm0.vm0_guest.prq.overflows") < 1; ++i)
            sc_core::wait(sc_core::sc_time(10, sc_core::SC_US));
        CHECK((r.amd_viommu->regs().status() & amd::st::PPR_RUN) != 0);
        CHECK((r.amd_viommu->regs().status() & amd::st::PPR_OVERFLOW) == 0);
        CHECK(a.request(kVa, 2) == pcie::PrgResponseCode::success);
        sc_core::wait(sc_core::sc_time(20, sc_core::SC_US)); // the guest's handler returns from its trapped tail write
    });
    CHECK(r.value(std::string(kPrq) + "guest_queue_full") == 1);
    CHECK(r.value(std::string(kPrq) + "groups_delivered") == 1);
    CHECK(r.value("vm0.vm0_guest.prq.overflows") == 1); // the guest read Status.PPROverflow and restarted
    CHECK(r.value("vm0.vm0_guest.prq.successes") == 1);
    CHECK(r.value("os.oracle.violations") == 0);
}

TEST_CASE("AMD guest page requests: a COMPLETE_PPR_REQUEST with an unknown vDeviceID is refused, one for no "
          "delivered group is not forwarded, reserved bits stop the buffer with ILLEGAL_COMMAND_ERROR",
          "[vm][amd][faults][sc]") {
    AmdPri a;
    VmRig& r = a.r;
    const amd::CompletePprRequest unknown_dev{0x0900, kPasid, true, 9, amd::ppr_status::kSuccess};
    const amd::CompletePprRequest no_group{r.ep_vrid.raw, kPasid, true, 9, amd::ppr_status::kSuccess};
    std::array<uint64_t, 2> bad = amd::encode(amd::Command{no_group});
    bad[0] |= uint64_t{1} << 20; // 31:16 is reserved
    uint64_t bad_at = 0;
    r.run([&] {
        a.setup();
        const double refused = r.value("vm0.vm0_viommu.refused");
        guest_commands(r, {amd::encode(amd::Command{unknown_dev}), amd::encode(amd::Command{no_group})});
        CHECK(r.value("vm0.vm0_viommu.refused") == refused + 1);
        const amd::RingRegs ring = r.amd_viommu->regs().cmd_ring();
        bad_at = ring.base + ring.tail;
        guest_commands(r, {bad});
    });
    CHECK(r.value(std::string(kPrq) + "unknown_responses") == 1);
    CHECK(r.value(std::string(kPrq) + "responses") == 0);
    CHECK(r.value("dmar0.ppr_requests") == 0);
    // The buffer stopped on the bad command, ILLEGAL_COMMAND_ERROR with its address in the guest's event log.
    CHECK((r.amd_viommu->regs().status() & amd::st::CMDBUF_RUN) == 0);
    const amd::RingRegs ev = r.amd_viommu->regs().event_ring();
    REQUIRE(ev.tail >= 16);
    std::array<uint64_t, 2> q{};
    r.vm->memory().read(ev.base + ev.tail - 16, q.data(), 16);
    const std::optional<amd::Event> e = amd::Event::decode(q);
    REQUIRE(e.has_value());
    CHECK(e->code == amd::EventCode::illegal_command_error);
    CHECK(e->address == bad_at);
}

TEST_CASE("AMD hardware vIOMMU guest page requests: the guest COMPLETE_PPR_REQUEST is trapped by the unit and "
          "answers the device",
          "[vm][amd][hw][faults][sc]") {
    AmdPri a(ViommuMode::accelerated);
    CHECK(check_fault_in_and_retry(a) == 1); // the guest's COMPLETE_PPR_REQUEST, handed to the VMM by the unit
}

TEST_CASE("AMD hardware vIOMMU guest page requests: a COMPLETE_PPR_REQUEST naming an unmapped guest DeviceID "
          "never reaches the VMM",
          "[vm][amd][hw][faults][sc]") {
    AmdPri a(ViommuMode::accelerated);
    VmRig& r = a.r;
    double traps = 0;
    r.run([&] {
        a.setup();
        traps = r.value("vm0.vm0_viommu.hardware_traps");
        const amd::CompletePprRequest unknown_dev{0x0900, kPasid, true, 9, amd::ppr_status::kSuccess};
        guest_commands(r, {amd::encode(amd::Command{unknown_dev})});
        sc_core::wait(sc_core::sc_time(20, sc_core::SC_US)); // the unit's engine
    });
    CHECK(r.value("dmar0.hw_viommu.unmapped_ids") == 1);
    CHECK(r.value("vm0.vm0_viommu.hardware_traps") == traps);
    CHECK(r.value(std::string(kPrq) + "unknown_responses") == 0);
}
