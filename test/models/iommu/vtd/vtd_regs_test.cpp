// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "models/iommu/vtd/vtd_regs.hpp"

using namespace iommusim::iommu::vtd;

TEST_CASE("VT-d CAP and ECAP advertise the configured capabilities at architected bit positions", "[unit][vtd]") {
    VtdParams p;
    p.nested = true;
    p.device_tlb = true;
    p.page_requests = true;
    p.snoop_control = true;
    p.pasid_bits = 20;
    p.mgaw = 48;
    p.num_fault_records = 8;
    VtdRegs r(p);
    const uint64_t cap = r.read(reg::CAP, 8), ecap = r.read(reg::ECAP, 8);
    CHECK(((cap >> 16) & 0x3F) + 1 == 48);                // MGAW
    CHECK(((cap >> 8) & 0x1F) == 0b01110);                // SAGAW: 39/48/57-bit
    CHECK(((cap >> 24) & 0x3FF) * 16 == p.fault_record_offset);
    CHECK(((cap >> 40) & 0xFF) + 1 == 8);                 // NFR
    CHECK(((cap >> 48) & 0x3F) == p.mamv);
    CHECK(((cap >> 39) & 1) == 1);                        // PSI
    CHECK(((cap >> 56) & 1) == 1);                        // FL1GP
    CHECK(((cap >> 60) & 1) == 1);                        // FL5LP
    CHECK((uint64_t{1} << (4 + 2 * (cap & 7))) == 65536); // ND
    CHECK((ecap & 2) != 0);                               // QI
    CHECK(((ecap >> 2) & 1) == 1);                        // DT
    CHECK(((ecap >> 7) & 1) == 1);                        // SC
    CHECK(((ecap >> 8) & 0x3FF) * 16 == p.iotlb_reg_offset);
    CHECK(((ecap >> 26) & 1) == 1);                       // NEST
    CHECK(((ecap >> 29) & 1) == 1);                       // PRS
    CHECK(((ecap >> 35) & 0x1F) + 1 == 20);               // PSS
    CHECK(((ecap >> 40) & 1) == 1);                       // PASID
    CHECK(((ecap >> 43) & 1) == 1);                       // SMTS
    CHECK(((ecap >> 46) & 3) == 3);                       // SLTS, FLTS

    p.nested = false;
    p.device_tlb = false;
    p.page_requests = false;
    p.snoop_control = false;
    VtdRegs r2(p);
    const uint64_t e2 = r2.read(reg::ECAP, 8);
    CHECK(((e2 >> 26) & 1) == 0);
    CHECK(((e2 >> 2) & 1) == 0);
    CHECK(((e2 >> 29) & 1) == 0);
    CHECK(((e2 >> 7) & 1) == 0);
}

TEST_CASE("VT-d read-only registers ignore software writes", "[unit][vtd]") {
    VtdParams p;
    VtdRegs r(p);
    const uint64_t cap = r.read(reg::CAP, 8);
    r.write(reg::CAP, 8, 0);
    r.write(reg::IQH, 8, 0x1230);
    r.write(reg::GSTS, 4, 0xFFFFFFFF);
    CHECK(r.read(reg::CAP, 8) == cap);
    CHECK(r.read(reg::IQH, 8) == 0);
    CHECK(r.read(reg::GSTS, 4) == 0);
}

TEST_CASE("VT-d GCMD SRTP latches RTADDR with SMT and sets RTPS, TE and QIE are reflected in GSTS", "[unit][vtd]") {
    VtdParams p;
    VtdRegs r(p);
    r.write(reg::RTADDR, 8, 0x12345000 | bits::RTADDR_SMT | 0x3); // low bits 1:0 are reserved
    CHECK(r.read(reg::RTADDR, 8) == (0x12345000 | bits::RTADDR_SMT));
    CHECK_FALSE(r.root_table_set());
    uint32_t e = r.write(reg::GCMD, 4, bits::GCMD_SRTP);
    CHECK((e & VtdRegs::root_table_latched));
    CHECK(r.root_table() == 0x12345000);
    CHECK(r.scalable_mode());
    CHECK((r.read(reg::GSTS, 4) & bits::GCMD_SRTP));
    // Changing RTADDR afterwards does not change the active root until the next SRTP.
    r.write(reg::RTADDR, 8, 0x999000);
    CHECK(r.root_table() == 0x12345000);

    r.write(reg::IQA, 8, 0x40000 | bits::IQA_DW | 1);
    e = r.write(reg::GCMD, 4, bits::GCMD_QIE);
    CHECK((e & VtdRegs::qi_enabled));
    CHECK(r.queue_enabled());
    CHECK(r.iq_256bit());
    CHECK(r.iq_bytes() == 8192);
    e = r.write(reg::GCMD, 4, bits::GCMD_QIE | bits::GCMD_TE);
    CHECK((e & VtdRegs::te_changed));
    CHECK(r.translation_enabled());
    CHECK(r.read(reg::GCMD, 4) == 0); // write-only
    e = r.write(reg::GCMD, 4, bits::GCMD_QIE);
    CHECK((e & VtdRegs::te_changed));
    CHECK_FALSE(r.translation_enabled());
}

TEST_CASE("VT-d primary fault logging fills records and sets PPF and FRI and overflows into PFO", "[unit][vtd]") {
    VtdParams p;
    p.num_fault_records = 2;
    VtdRegs r(p);
    r.write(reg::FEADDR, 4, 0xFEE00000);
    r.write(reg::FEDATA, 4, 0x41);
    r.write(reg::FECTL, 4, 0); // unmask
    FaultRecord f;
    f.page_addr = 0xABCDE123;
    f.sid = 0x0310;
    f.pasid_present = true;
    f.pasid = 0x12345;
    f.reason = 0x59;
    f.is_read = true;
    std::optional<Msi> msi;
    REQUIRE(r.record_fault(f, msi));
    REQUIRE(msi);
    CHECK(msi->address == 0xFEE00000);
    CHECK(msi->data == 0x41);
    const uint32_t fro = p.fault_record_offset;
    CHECK(r.read(fro, 8) == 0xABCDE000);
    const uint64_t hi = r.read(fro + 8, 8);
    CHECK((hi & 0xFFFF) == 0x0310);
    CHECK(((hi >> 31) & 1) == 1);          // PP (bit 95)
    CHECK(((hi >> 32) & 0xFF) == 0x59);    // FR
    CHECK(((hi >> 40) & 0xFFFFF) == 0x12345);
    CHECK(((hi >> 62) & 1) == 1);          // T: read
    CHECK(((hi >> 63) & 1) == 1);          // F
    CHECK((r.fsts() & bits::FSTS_PPF));
    CHECK(((r.fsts() >> 8) & 0xFF) == 0);  // FRI

    // Second fault: recorded, but no new event while PPF is pending.
    REQUIRE(r.record_fault(f, msi));
    CHECK_FALSE(msi);
    // Third: both records owned by software -> overflow.
    CHECK_FALSE(r.record_fault(f, msi));
    CHECK((r.fsts() & bits::FSTS_PFO));

    // Software clears F of both records and PFO: PPF drops.
    r.write(fro + 12, 4, 1u << 31);
    r.write(fro + 16 + 12, 4, 1u << 31);
    CHECK((r.fsts() & bits::FSTS_PPF) == 0);
    r.write(reg::FSTS, 4, bits::FSTS_PFO);
    CHECK(r.fsts() == 0);
    REQUIRE(r.record_fault(f, msi));
    CHECK(msi); // a fresh event
}

TEST_CASE("VT-d masked fault event stays pending and fires when software unmasks", "[unit][vtd]") {
    VtdParams p;
    VtdRegs r(p);
    CHECK((r.read(reg::FECTL, 4) & bits::ECTL_IM)); // masked at reset
    auto msi = r.report_iqe(IqeReason::reserved_field);
    CHECK_FALSE(msi);
    CHECK((r.read(reg::FECTL, 4) & bits::ECTL_IP));
    CHECK((r.read(reg::IQER, 8) & 0xF) == static_cast<uint64_t>(IqeReason::reserved_field));
    const uint32_t e = r.write(reg::FECTL, 4, 0);
    CHECK((e & VtdRegs::fault_msi));
    CHECK((r.read(reg::FECTL, 4) & bits::ECTL_IP) == 0);
    const uint32_t e2 = r.write(reg::FSTS, 4, bits::FSTS_IQE);
    CHECK((e2 & VtdRegs::iqe_cleared));
}

TEST_CASE("VT-d wait completion sets ICS.IWC once and raises the invalidation event", "[unit][vtd]") {
    VtdParams p;
    VtdRegs r(p);
    r.write(reg::IECTL, 4, 0);
    r.write(reg::IEADDR, 4, 0xFEE01000);
    r.write(reg::IEDATA, 4, 7);
    auto m = r.report_wait_complete();
    REQUIRE(m);
    CHECK(m->address == 0xFEE01000);
    CHECK(m->data == 7);
    CHECK(r.read(reg::ICS, 4) == bits::ICS_IWC);
    CHECK_FALSE(r.report_wait_complete()); // IWC still set
    r.write(reg::ICS, 4, bits::ICS_IWC);
    CHECK(r.read(reg::ICS, 4) == 0);
    CHECK(r.report_wait_complete());
}

TEST_CASE("VT-d page request queue registers wrap and detect full and report overflow", "[unit][vtd]") {
    VtdParams p;
    VtdRegs r(p);
    r.write(reg::PQA, 8, 0x80000); // one page: 128 descriptors
    r.write(reg::PECTL, 4, 0);
    CHECK(r.pq_bytes() == 4096);
    auto m = r.advance_pqt();
    CHECK(m);
    CHECK(r.pqt() == 32);
    CHECK((r.read(reg::PRS, 4) & bits::PRS_PPR));
    CHECK_FALSE(r.advance_pqt()); // PPR still pending
    for (int i = 2; i < 127; ++i) r.advance_pqt();
    CHECK(r.prq_full());
    r.report_prq_overflow();
    CHECK((r.read(reg::PRS, 4) & bits::PRS_PRO));
    r.write(reg::PQH, 8, 32 * 10);
    CHECK_FALSE(r.prq_full());
}
