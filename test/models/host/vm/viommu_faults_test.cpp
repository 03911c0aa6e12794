// SPDX-License-Identifier: Apache-2.0
// Guest fault delivery through iommufd (models/host/vm/viommu_faults.cpp,
// models/host/iommufd_fault.cpp): a nested HWPT's I/O page faults go to the
// VMM's fault queue, the VMM injects them into the guest's own queue with the
// virtual ID and the guest's PASID, the guest services them and its trapped
// response becomes the iommufd page response the host sends to the device;
// other stage-1 events reach the guest through the vEVENTQ. Per family.
#include <catch2/catch.hpp>
#include <cstring>

#include "models/iommu/smmuv3/smmuv3_commands.hpp"
#include "models/iommu/smmuv3/smmuv3_events.hpp"
#include "test/models/host/vm/vm_rig.hpp"

using namespace vmtest;
namespace sm = iommusim::iommu::smmuv3;
using host::uapi::Errno;

namespace {

host::vm::VmParams with_page_requests() {
    host::vm::VmParams vp;
    vp.page_requests = true;
    return vp;
}

/// An SMMUv3 rig whose raw device may stall, with guest fault delivery on.
std::unique_ptr<VmRig> smmu_stall_rig() {
    return std::make_unique<VmRig>(ViommuMode::nested, host::DriverParams{}, with_page_requests(), Family::smmuv3,
                                   /*snoop_control=*/true, /*can_stall=*/true);
}

/// The guest's EVTQ record at `index` (guest memory: what the guest driver read).
sm::Event guest_event(VmRig& r, uint32_t index) {
    std::array<uint64_t, 4> rec{};
    r.vm->memory().read(r.smmu_viommu->regs().queue_base(sm::Queue::evtq) + uint64_t{index} * 32, rec.data(), 32);
    return sm::Event::decode(rec);
}

constexpr const char* kPrq = "vm0.vm0_viommu.page_requests.";

/// Runs `body` on an SMMUv3 stall rig's guest thread with a vIOMMU of the test's own on the VM's
/// nesting parent and an SMMUv3-type vEVENTQ request of `depth` for it (not allocated yet).
void with_veventq(uint32_t depth,
                  const std::function<void(host::IommuFd&, uint32_t, host::uapi::VeventqAlloc&)>& body) {
    auto rp = smmu_stall_rig();
    VmRig& r = *rp;
    r.run([&] {
        host::IommuFd& fd = r.os->iommufd();
        const uint32_t v = fd.viommu_alloc(r.vm->vmm().parent_hwpt);
        host::uapi::VeventqAlloc q;
        q.viommu_id = v;
        q.type = host::uapi::kVeventqTypeArmSmmuv3;
        q.veventq_depth = depth;
        body(fd, v, q);
    });
}

} // namespace

TEST_CASE("SMMUv3 guest faults: a stall reaches the guest's EVTQ with the vSID and the guest's SSID, the guest's "
          "CMD_RESUME Abort ends the device's DMA",
          "[vm][smmuv3][faults][sc]") {
    auto rp = smmu_stall_rig();
    VmRig& r = *rp;
    const uint64_t magic = 0xfa17'0001;
    uint64_t missing = 0;
    r.run([&] {
        (void)guest_attach(r, r.vrid);
        const GuestPasidDomain d = guest_pasid_domain(r, r.vrid, 5, magic);
        missing = d.iova - 0x100000; // nothing mapped there in the guest's stage 1
        uint64_t v = 0;
        CHECK(r.dma(missing, v, 5u) != tlm::TLM_OK_RESPONSE); // stalled, then aborted by the guest's answer
    });
    const sm::Event e = guest_event(r, 0);
    CHECK(e.id == sm::evt::kTranslation);
    CHECK(e.stall);
    CHECK(e.sid == r.vrid.raw); // the virtual SID, not the physical 03:00.0
    CHECK(e.ssv);
    CHECK(e.ssid == 5);
    CHECK(e.rnw);
    CHECK(e.input_addr == missing);
    CHECK(r.value(std::string(kPrq) + "groups_delivered") == 1);
    CHECK(r.value(std::string(kPrq) + "responses") == 1);
    CHECK(r.value(std::string(kPrq) + "phases.total") > 0);
    CHECK(r.value("os.dmar0.stall_faults") == 1);
    CHECK(r.value("os.dmar0.stall_aborts") == 1); // the host's CMD_RESUME Abort, for the guest's
    CHECK(r.value("vm0.vm0_guest.vm0_iommu.stall_faults") == 1);
    CHECK(r.value("vm0.vm0_guest.vm0_iommu.stall_aborts") == 1);
    CHECK(r.value("os.oracle.violations") == 0);
}

TEST_CASE("SMMUv3 guest faults: the guest maps the page while the DMA is stalled, its CMD_RESUME Retry completes it",
          "[vm][smmuv3][faults][sc]") {
    auto rp = smmu_stall_rig();
    VmRig& r = *rp;
    r.run([&] {
        host::IommuFd& g = r.vm->guest().iommufd();
        (void)guest_attach(r, r.vrid);
        const GuestPasidDomain d = guest_pasid_domain(r, r.vrid, 5, 1);
        const uint64_t later = d.iova - 0x100000;
        bool done = false;
        tlm::tlm_response_status st = tlm::TLM_INCOMPLETE_RESPONSE;
        uint64_t v = 0;
        sc_core::sc_spawn([&] {
            st = r.dma(later, v, 5u);
            done = true;
        });
        sc_core::wait(sc_core::sc_time(200, sc_core::SC_NS)); // the DMA faults and stalls first
        g.map(d.ioas, 4096, later);
        const uint64_t magic = 0xfa17'0002;
        r.vm->memory().write(*g.lookup(d.ioas, later), &magic, 8);
        while (!done) sc_core::wait(sc_core::sc_time(1, sc_core::SC_US));
        CHECK(st == tlm::TLM_OK_RESPONSE);
        CHECK(v == magic);
    });
    CHECK(r.value(std::string(kPrq) + "responses") == 1);
    CHECK(r.value("os.dmar0.stall_aborts") == 0);
    CHECK(r.value("dmar0.stall_retries") == 1);
    CHECK(r.value("os.oracle.violations") == 0);
}

TEST_CASE("SMMUv3 guest faults: a CMD_RESUME naming no delivered stall or an unknown vSID is refused, nothing reaches the host",
          "[vm][smmuv3][faults][sc]") {
    auto rp = smmu_stall_rig();
    VmRig& r = *rp;
    r.run([&] {
        (void)guest_attach(r, r.vrid);
        guest_commands(r, {sm::Command{.opcode = sm::op::kResume, .sid = r.vrid.raw, .resp = 1, .stag = 7},
                           sm::Command{.opcode = sm::op::kResume, .sid = 0x0900, .resp = 1, .stag = 7},
                           sm::Command{.opcode = sm::op::kSync}});
    });
    CHECK(r.value(std::string(kPrq) + "unknown_responses") == 1);
    CHECK(r.value("vm0.vm0_viommu.refused") == 1); // the unknown vSID
    CHECK(r.value(std::string(kPrq) + "responses") == 0);
    CHECK(r.value("dmar0.stall_retries") == 0);
}

TEST_CASE("SMMUv3 vEVENTQ: a stage-1 configuration fault of a guest PASID reaches the guest's EVTQ with the vSID",
          "[vm][smmuv3][faults][veventq][sc]") {
    auto rp = smmu_stall_rig();
    VmRig& r = *rp;
    r.run([&] {
        (void)guest_attach(r, r.vrid);
        uint64_t v = 0;
        CHECK(r.dma(0x10000, v, 6u) != tlm::TLM_OK_RESPONSE); // CD[6] is not valid: C_BAD_CD, no stall
        sc_core::wait(sc_core::sc_time(20, sc_core::SC_US)); // the host's EVTQ thread, the VMM, the guest's
    });
    const sm::Event e = guest_event(r, 0);
    CHECK(e.id == sm::evt::kBadCd);
    CHECK(e.sid == r.vrid.raw);
    CHECK(e.ssid == 6);
    CHECK(r.value(std::string(kPrq) + "vevents") == 1);
    CHECK(r.value("vm0.vm0_guest.vm0_iommu.events_serviced") == 1); // the guest driver read it
    CHECK(r.value(std::string(kPrq) + "groups_delivered") == 0);
}

TEST_CASE("iommufd fault queue: responses for unknown cookies or with codes other than SUCCESS / INVALID are EINVAL",
          "[vm][iommufd][faults][sc]") {
    auto rp = smmu_stall_rig();
    VmRig& r = *rp;
    r.run([&] {
        host::IommuFd& fd = r.os->iommufd();
        const uint32_t f = fd.fault_queue_alloc({});
        size_t done = 9;
        CHECK(fd.fault_respond(f, {host::uapi::HwptPageResponse{1, 0}}, done) == Errno::einval);
        CHECK(done == 0);
        CHECK(fd.fault_respond(f, {host::uapi::HwptPageResponse{1, 2}}, done) == Errno::einval); // FAILURE is not user's
        CHECK(fd.fault_respond(f + 1000, {}, done) == Errno::enoent);
        CHECK(fd.fault_read(f, 64).empty());
        // A fault queue belongs on a nested HWPT only.
        CHECK_THROWS_AS(fd.hwpt_set_fault(r.vm->vmm().parent_hwpt, f), host::HostError);
    });
}

TEST_CASE("iommufd vEVENTQ: allocation errors as Linux, a full queue loses events behind a LOST_EVENTS header",
          "[vm][iommufd][veventq][sc]") {
    with_veventq(2, [](host::IommuFd& fd, uint32_t v, host::uapi::VeventqAlloc& q) {
        q.type = host::uapi::kVeventqTypeDefault;
        CHECK(fd.veventq_alloc(q, {}) == Errno::eopnotsupp);
        q.type = host::uapi::kVeventqTypeArmSmmuv3;
        q.veventq_depth = 0;
        CHECK(fd.veventq_alloc(q, {}) == Errno::einval);
        q.veventq_depth = 2;
        q.viommu_id = v + 1000;
        CHECK(fd.veventq_alloc(q, {}) == Errno::enoent);
        q.viommu_id = v;
        REQUIRE(fd.veventq_alloc(q, {}) == Errno::ok);
        CHECK(fd.veventq_alloc(q, {}) == Errno::eexist);
        for (uint64_t i = 0; i < 4; ++i) CHECK(fd.report_vevent(v, q.type, {i, 0, 0, 0}) == Errno::ok);
        CHECK(fd.report_vevent(v, 99, {0}) == Errno::eopnotsupp);
        const std::vector<uint8_t> b = fd.veventq_read(q.out_veventq_id, 4096);
        REQUIRE(b.size() == 2 * (8 + 32) + 8);
        host::uapi::VeventHeader h[3];
        std::memcpy(&h[0], b.data(), 8);
        std::memcpy(&h[1], b.data() + 40, 8);
        std::memcpy(&h[2], b.data() + 80, 8);
        CHECK(h[0].sequence == 0);
        CHECK(h[1].sequence == 1);
        CHECK(h[2].flags == host::uapi::kVeventqFlagLostEvents);
        CHECK(h[2].sequence == 3); // events 2 and 3 were lost
        CHECK(fd.report_vevent(v, q.type, {4, 0, 0, 0}) == Errno::ok);
        const std::vector<uint8_t> b2 = fd.veventq_read(q.out_veventq_id, 4096);
        REQUIRE(b2.size() == 40);
        std::memcpy(&h[0], b2.data(), 8);
        CHECK(h[0].flags == 0);
        CHECK(h[0].sequence == 4);
    });
}

namespace {

/// A VT-d rig whose ATS endpoint sends page requests, with guest fault delivery on; the guest binds
/// the endpoint's guest PASID 5 (a nested HWPT at a host PASID of the VM's set) and maps one page.
struct VtdPri {
    VmRig r{ViommuMode::nested, host::DriverParams{}, with_page_requests(), Family::vtd, true, false, /*ep_pri=*/true};
    GuestPasidDomain d;
    uint32_t host_pasid = 0;
    void setup() {
        (void)guest_attach(r, r.ep_vrid);
        d = guest_pasid_domain(r, r.ep_vrid, 5, 0x9a9e);
        host_pasid = r.os->pasids().host_pasid(*r.os->pasids().find_set("vm0"), 5);
    }
    pcie::PrgResponseCode request(uint64_t addr, uint16_t prg) {
        sc_core::sc_time t = sc_core::SC_ZERO_TIME;
        const auto code = r.ep->request_page(addr, false, host_pasid, prg, t);
        sc_core::wait(t);
        return code;
    }
};

} // namespace

TEST_CASE("VT-d guest page requests: delivered to the guest's PRQ with the vRID and guest PASID, the guest's "
          "page group response reaches the device",
          "[vm][vtd][faults][sc]") {
    VtdPri v;
    VmRig& r = v.r;
    uint64_t missing = 0;
    r.run([&] {
        v.setup();
        missing = v.d.iova - 0x100000;
        CHECK(v.request(v.d.iova, 3) == pcie::PrgResponseCode::success);         // mapped: the guest says Success
        CHECK(v.request(missing, 4) == pcie::PrgResponseCode::invalid_request);   // not mapped: Invalid Request
        // The device has its answer before the host's page group response wait (and the guest's) ends.
        sc_core::wait(sc_core::sc_time(50, sc_core::SC_US));
    });
    // The guest's queue holds what the VMM wrote: vRID 00:04.0, the guest's PASID 5 (not the host's).
    const uint64_t pqa = r.viommu->regs().pqa_base();
    std::array<uint64_t, 4> q{};
    r.vm->memory().read(pqa + 32, q.data(), 32);
    const host::PageRequestInfo i = host::VtdDriver::decode_page_request(q);
    CHECK(i.rid == r.ep_vrid);
    REQUIRE(i.pasid.has_value());
    CHECK(*i.pasid == 5);
    CHECK(v.host_pasid != 5);
    CHECK(i.prg_index == 4);
    CHECK(i.address == missing);
    CHECK(i.last);
    CHECK(r.value(std::string(kPrq) + "groups_delivered") == 2);
    CHECK(r.value(std::string(kPrq) + "responses") == 2);
    CHECK(r.value("vm0.vm0_guest.prq.successes") == 1);
    CHECK(r.value("vm0.vm0_guest.prq.invalid") == 1);
    CHECK(r.value("os.prq.responses") == 0); // the host answered nothing itself
    CHECK(r.value("os.oracle.violations") == 0);
}

TEST_CASE("VT-d guest page requests: a page group response for a group never delivered is refused",
          "[vm][vtd][faults][sc]") {
    VtdPri v;
    VmRig& r = v.r;
    r.run([&] {
        v.setup();
        host::IommuFd& g = r.vm->guest().iommufd();
        (void)g;
        // The guest driver answers a group the VMM never injected (its own queue write + IQT doorbell).
        host::IommuDriver& gd = r.vm->guest().driver(0);
        host::PageRequestInfo fake;
        fake.rid = r.ep_vrid;
        fake.pasid = 5;
        fake.prg_index = 9;
        fake.last = true;
        gd.page_response(fake, pcie::PrgResponseCode::success);
    });
    CHECK(r.value(std::string(kPrq) + "unknown_responses") == 1);
    CHECK(r.value(std::string(kPrq) + "responses") == 0);
}

namespace {
/// A page request of (rid, pasid) for `addr` in group `prg` with Last set.
host::PageRequestInfo page_request(pcie::Bdf rid, uint32_t pasid, uint64_t addr, uint16_t prg) {
    host::PageRequestInfo q;
    q.rid = rid;
    q.pasid = pasid;
    q.address = addr;
    q.prg_index = prg;
    q.read = true;
    q.last = true;
    return q;
}
} // namespace

TEST_CASE("iommufd fault queue: detaching a device answers its queued and read groups INVALID, the queue is EBUSY while "
          "a HWPT names it and destroyed once none does",
          "[vm][iommufd][faults][destroy][sc]") {
    VtdPri v;
    VmRig& r = v.r;
    r.run([&] {
        v.setup();
        host::IommuFd& fd = r.os->iommufd();
        // A fault queue and a nested HWPT of the test's own (the VMM's event thread never reads it).
        const uint32_t fault = fd.fault_queue_alloc([] {});
        host::uapi::HwptVtdS1 s1;
        s1.pgtbl_addr = r.vm->params().ram_gpa; // any guest table: no DMA walks it here
        const uint32_t h = fd.hwpt_alloc_nested_vtd(r.vm->vmm().parent_hwpt, s1);
        fd.hwpt_set_fault(h, fault);
        constexpr uint32_t kPasid = 40;
        fd.attach(r.ep_rid, kPasid, h);
        CHECK(fd.deliver_to_user(0, page_request(r.ep_rid, kPasid, 0x1000, 1)));
        CHECK(fd.deliver_to_user(0, page_request(r.ep_rid, kPasid, 0x2000, 2)));
        const std::vector<host::uapi::HwptPgfault> read = fd.fault_read(fault, 1); // group 1 read, group 2 queued
        REQUIRE(read.size() == 1);
        CHECK(fd.fault_pending(fault) == 1);
        CHECK(fd.fault_unanswered(fault) == 1);
        CHECK(fd.fault_queue_destroy(fault) == Errno::ebusy); // the HWPT's fault_id holds it
        const double sent = r.value("dmar0.prg_responses");
        fd.detach(r.ep_rid, kPasid); // iommufd_auto_response_faults: both groups answered INVALID
        sc_core::wait(sc_core::sc_time(5, sc_core::SC_US));
        CHECK(r.value("dmar0.prg_responses") == sent + 2);
        CHECK(fd.fault_pending(fault) == 0);
        CHECK(fd.fault_unanswered(fault) == 0);
        size_t done = 9;
        CHECK(fd.fault_respond(fault, {host::uapi::HwptPageResponse{read[0].cookie, host::uapi::kPageRespSuccess}}, done) ==
              Errno::einval); // answered already: the VMM's late response finds no group
        CHECK(done == 0);
        CHECK(fd.deliver_to_user(0, page_request(r.ep_rid, kPasid, 0x3000, 3)) == false); // nothing attached: the host's
        fd.hwpt_free(h);
        CHECK(fd.fault_queue_destroy(fault) == Errno::ok);
        CHECK(fd.fault_queue_destroy(fault) == Errno::enoent);
    });
    CHECK(r.value(std::string(kPrq) + "groups_delivered") == 0); // none reached the guest
}

TEST_CASE("iommufd vEVENTQ: destroying it discards its events, frees its type and lets the vIOMMU be destroyed",
          "[vm][iommufd][veventq][destroy][sc]") {
    with_veventq(1, [](host::IommuFd& fd, uint32_t v, host::uapi::VeventqAlloc& q) {
        REQUIRE(fd.veventq_alloc(q, {}) == Errno::ok);
        CHECK(fd.report_vevent(v, q.type, {1, 0, 0, 0}) == Errno::ok);
        CHECK(fd.report_vevent(v, q.type, {2, 0, 0, 0}) == Errno::ok); // lost: LOST_EVENTS at the tail
        CHECK(fd.veventq_pending(q.out_veventq_id) == 2);
        CHECK_THROWS_AS(fd.viommu_free(v), host::HostError); // the vEVENTQ holds the vIOMMU (EBUSY)
        CHECK(fd.veventq_destroy(q.out_veventq_id) == Errno::ok);
        CHECK(fd.veventq_pending(q.out_veventq_id) == 0);
        CHECK(fd.veventq_destroy(q.out_veventq_id) == Errno::enoent);
        CHECK(fd.report_vevent(v, q.type, {3, 0, 0, 0}) == Errno::eopnotsupp); // nobody listens for the type
        host::uapi::VeventqAlloc again = q;
        REQUIRE(fd.veventq_alloc(again, {}) == Errno::ok); // the type is free again
        CHECK(fd.veventq_read(again.out_veventq_id, 4096).empty()); // a fresh queue: nothing of the old one
        CHECK(fd.veventq_destroy(again.out_veventq_id) == Errno::ok);
        fd.viommu_free(v);
    });
}

TEST_CASE("SMMUv3 vEVENTQ full: the VMM reads the LOST_EVENTS header, counts the loss and injects what was kept",
          "[vm][smmuv3][veventq][faults][sc]") {
    // A guest EVTQ of 2 records (IDR1.EVTQS = 1): the VMM's vEVENTQ gets the same depth.
    iommusim::iommu::smmuv3::Smmuv3Params caps = host::vm::Smmuv3Viommu::default_caps();
    caps.evtqs = 1;
    VmRig r{ViommuMode::nested, host::DriverParams{}, with_page_requests(), Family::smmuv3,
            /*snoop_control=*/true, /*can_stall=*/true, /*ep_pri=*/false, caps};
    r.run([&] {
        (void)guest_attach(r, r.vrid); // the VMM made its vIOMMU and the vEVENTQ
        host::IommuFd& fd = r.os->iommufd();
        const uint32_t v = viommu_id(r);
        REQUIRE(v != 0);
        // Five C_BAD_CD events of the vSID at one instant, before the VMM's event thread wakes:
        // the vEVENTQ keeps two, the rest are lost behind its LOST_EVENTS header.
        for (uint32_t ssid = 1; ssid <= 5; ++ssid) {
            sm::Event e;
            e.id = sm::evt::kBadCd;
            e.sid = r.vrid.raw;
            e.ssv = true;
            e.ssid = ssid;
            const auto rec = e.encode();
            CHECK(fd.report_vevent(v, host::uapi::kVeventqTypeArmSmmuv3, {rec[0], rec[1], rec[2], rec[3]}) == Errno::ok);
        }
        sc_core::wait(sc_core::sc_time(50, sc_core::SC_US)); // the VMM, the guest's EVTQ thread
    });
    CHECK(r.value(std::string(kPrq) + "vevents") == 2);
    CHECK(r.value(std::string(kPrq) + "vevents_lost") == 1); // the header says some were lost, not how many
    CHECK(r.value("vm0.vm0_guest.vm0_iommu.events_serviced") == 2);
    CHECK(guest_event(r, 0).ssid == 1);
    CHECK(guest_event(r, 1).ssid == 2);
}

TEST_CASE("VT-d guest page requests: a full guest page request queue sets PRS.PRO and the VMM answers the group "
          "Success (§7.5.1 auto-response) instead of injecting it",
          "[vm][vtd][faults][sc]") {
    VtdPri v;
    VmRig& r = v.r;
    constexpr uint32_t kPasids = 5, kPerPasid = 440; // 2,200 groups with distinct (PASID, PRG index) keys
    uint64_t slots = 0;
    bool pro = false;
    r.run([&] {
        v.setup(); // guest PASID 5
        std::vector<uint32_t> host_pasids{v.host_pasid};
        for (uint32_t p = 6; p < 5 + kPasids; ++p) {
            (void)guest_pasid_domain(r, r.ep_vrid, p, p);
            host_pasids.push_back(r.os->pasids().host_pasid(*r.os->pasids().find_set("vm0"), p));
        }
        slots = r.viommu->regs().pq_bytes() / 32; // the guest driver's queue (Linux PRQ_ORDER pages)
        REQUIRE(kPasids * kPerPasid > slots);
        host::IommuFd& fd = r.os->iommufd();
        // A burst at one instant (what the host's PRQ thread read): the VMM reads 64 groups at a time
        // and injects them far faster than the guest's handler drains its queue.
        for (uint32_t i = 0; i < kPasids * kPerPasid; ++i)
            CHECK(fd.deliver_to_user(0, page_request(r.ep_rid, host_pasids[i / kPerPasid], 0x40000000 + uint64_t{i} * 4096,
                                                     static_cast<uint16_t>(i % kPerPasid))));
        sc_core::wait(sc_core::sc_time(200, sc_core::SC_US)); // the VMM has handled the burst by now
        pro = r.viommu->regs().read(iommusim::iommu::vtd::reg::PRS, 4) & iommusim::iommu::vtd::bits::PRS_PRO;
    });
    CHECK(pro); // §7.5.1: the overflow is visible to the guest (its driver clears it once it drained)
    const double delivered = r.value(std::string(kPrq) + "groups_delivered");
    const double full = r.value(std::string(kPrq) + "guest_queue_full");
    CHECK(full > 0);
    CHECK(delivered >= static_cast<double>(slots) - 1); // a full ring went in before it overflowed
    CHECK(delivered + full == kPasids * kPerPasid);      // every group was injected or answered at once
    CHECK(r.value("dmar0.prg_responses") >= full);       // the auto-responses reached the device
    CHECK(r.value("os.prq.responses") == 0);             // none was the host's own
}
