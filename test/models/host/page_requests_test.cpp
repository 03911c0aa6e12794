// SPDX-License-Identifier: Apache-2.0
// Host side of PRI: the page-request-group tracker, the VT-d page request
// descriptor decode, and the whole service loop against a real VtdIommu:
// requests written to the PRQ in memory, resolved by iommufd (SVA demand
// paging / paging-domain refusal), answered with page group responses.
#include <catch2/catch.hpp>

#include "models/host/host.hpp"
#include "models/host/page_requests.hpp"
#include "models/host/vtd_driver.hpp"
#include "test/models/host/pri_host_rig.hpp"
#include "test/models/host/vtd_host_rig.hpp"
#include "test/models/iommu/vtd/vtd_harness.hpp"

using namespace iommusim;
using iommusim::host::PageRequestGroups;
using iommusim::host::PageRequestInfo;
using C = iommusim::pcie::PrgResponseCode;

TEST_CASE("a page request group is answered once, at its last request, and fails if any request failed",
          "[unit][host]") {
    PageRequestGroups g;
    PageRequestInfo r;
    r.rid = pcie::Bdf(0x0100);
    r.pasid = 5;
    r.prg_index = 7;
    r.write = true;
    CHECK_FALSE(g.add(r, C::success, Duration::ns(100)));
    CHECK_FALSE(g.add(r, C::invalid_request, Duration::ns(200)));
    // Another group (other PASID, same index) is independent.
    PageRequestInfo other = r;
    other.pasid = 6;
    other.last = true;
    auto o = g.add(other, C::success, Duration::ns(250));
    REQUIRE(o);
    CHECK(o->code == C::success);
    r.last = true;
    auto c = g.add(r, C::success, Duration::ns(300));
    REQUIRE(c);
    CHECK(c->code == C::invalid_request);
    CHECK(c->first_read == Duration::ns(100)); // service time counts from the group's first request
    CHECK(g.open() == 0);
}

TEST_CASE("the VT-d driver decodes every field of a page request descriptor", "[unit][host][vtd]") {
    // Built field by field from spec-layouts.md A.10 (as VtdIommu writes it).
    std::array<uint64_t, 4> q{};
    q[0] = 0x1 | uint64_t{1} << 8 | uint64_t{0x1234} << 16 | uint64_t{0xABCDE} << 32 | uint64_t{1} << 52 |
           uint64_t{1} << 53;
    q[1] = 0x1 | 0x2 | 0x4 | uint64_t{0x1A5} << 3 | 0x7FFF'1234'5000ull;
    const PageRequestInfo r = host::VtdDriver::decode_page_request(q);
    CHECK(r.rid.raw == 0x1234);
    REQUIRE(r.pasid);
    CHECK(*r.pasid == 0xABCDE);
    CHECK(r.execute);
    CHECK(r.privileged);
    CHECK(r.read);
    CHECK(r.write);
    CHECK(r.last);
    CHECK(r.prg_index == 0x1A5);
    CHECK(r.address == 0x7FFF'1234'5000ull);
    CHECK_FALSE(r.stop_marker());
    q[0] &= ~uint64_t{1 << 8}; // PP = 0: no PASID
    q[1] = 0x4;                // LPIG without R/W: a stop marker
    const PageRequestInfo s = host::VtdDriver::decode_page_request(q);
    CHECK_FALSE(s.pasid);
    CHECK(s.stop_marker());
}

namespace {
struct PrqRig : hosttest::VtdHostRig {
    static constexpr pcie::Bdf kRid{0x0200};
    PrqRig() { hosttest::add_pri_device(*os, kRid); }
    void page_request(uint32_t pasid, uint64_t addr, bool last, uint16_t prg, bool write = true) {
        // addr 0 + last + no R/W: a stop marker
        hosttest::send_page_request(dev, pcie::PageRequest{.requester = kRid, .pasid_present = true, .pasid = pasid,
                                                           .address = addr, .read = !write && !(last && addr == 0),
                                                           .write = write, .last = last, .prg_index = prg});
    }
    double stat(const std::string& s) const {
        const stats::Entry* e = root.find(s);
        return e ? stats::numeric_value(*e) : -1.0;
    }
};
} // namespace

TEST_CASE("the host services VT-d page requests: SVA pages are faulted in, unmapped IOVAs refused, one response per group",
          "[sc][host][vtd]") {
    PrqRig rig;
    uint32_t pid = 0;
    constexpr uint64_t kVa = 0x7000'0000;
    bool attached = false;
    rig.os->add_thread("setup", [&] {
        auto& fd = rig.os->iommufd();
        pid = fd.process_create();
        fd.attach(PrqRig::kRid, 5, fd.hwpt_alloc_sva(pid, 0));
        const uint32_t ioas = fd.ioas_alloc();
        fd.attach(PrqRig::kRid, 9, fd.hwpt_alloc(ioas, 0, host::DomainDesc::Kind::paging_s1));
        attached = true;
    });
    bool checked = false;
    sc_core::sc_spawn([&] {
        sc_core::wait(sc_core::sc_time(50, sc_core::SC_US));
        REQUIRE(attached);
        // Group 3 (SVA, two pages), group 4 (paging domain, unmapped IOVA), a stop marker.
        rig.page_request(5, kVa, false, 3);
        rig.page_request(5, kVa + 0x1000, true, 3);
        rig.page_request(9, 0x40'0000, true, 4);
        rig.page_request(5, 0, true, 0, false);
        sc_core::wait(sc_core::sc_time(100, sc_core::SC_US));
        // Exactly one response per group, with the group's outcome, PASID and index.
        REQUIRE(rig.sink.got.size() == 2);
        const auto& r0 = rig.sink.got[0].prg_resp;
        CHECK(rig.sink.got[0].code == pcie::MessageCode::prg_response);
        CHECK(r0.destination == PrqRig::kRid);
        CHECK(r0.pasid_present);
        CHECK(r0.pasid == 5);
        CHECK(r0.prg_index == 3);
        CHECK(r0.code == C::success);
        const auto& r1 = rig.sink.got[1].prg_resp;
        CHECK(r1.pasid == 9);
        CHECK(r1.prg_index == 4);
        CHECK(r1.code == C::invalid_request);
        // The faulted pages are in the process's page table in memory: the IOMMU now grants them.
        for (uint64_t va : {kVa, kVa + 0x1000}) {
            pcie::TlpExtension ext;
            ext.requester = PrqRig::kRid;
            ext.pasid_present = true;
            ext.pasid = 5;
            ext.at = pcie::AddressType::translation_request;
            uint64_t entry = 0;
            sc_core::sc_time d = sc_core::SC_ZERO_TIME;
            REQUIRE(rig.dev.access(tlm::TLM_READ_COMMAND, va, &entry, 8, d, &ext) == tlm::TLM_OK_RESPONSE);
            const auto t = pcie::decode_translation_entry(entry);
            CHECK(t.read);
            CHECK(t.write);
            CHECK(rig.os->iommufd().process_mapped(pid, va));
        }
        // The queue was consumed: PQH caught up with PQT (4 descriptors).
        CHECK(rig.iommu->regs().pqh() == 4 * 32);
        CHECK(rig.iommu->regs().pqt() == 4 * 32);
        checked = true;
        sc_core::sc_stop();
    });
    sc_core::sc_start(sc_core::sc_time(1, sc_core::SC_MS));
    REQUIRE(checked);
    CHECK(rig.stat("os.prq.requests") == 4);
    CHECK(rig.stat("os.prq.stop_markers") == 1);
    CHECK(rig.stat("os.prq.successes") == 1);
    CHECK(rig.stat("os.prq.invalid") == 1);
    CHECK(rig.stat("os.prq.responses") == 2);
    CHECK(rig.stat("os.prq.service_latency") == 2);
    CHECK(rig.stat("os.iommufd.demand_faults") == 2);
    CHECK(rig.stat("dmar0.page_requests") == 4);
    CHECK(rig.stat("dmar0.prg_responses") == 2);
}
