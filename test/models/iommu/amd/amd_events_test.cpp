// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "models/iommu/amd/amd_events.hpp"

using namespace iommusim::iommu::amd;

TEST_CASE("Event records place DeviceID, DomainID, flags, code and address as Linux decodes them", "[unit][amd]") {
    // IO_PAGE_FAULT without PASID: DomainID in 47:32, flags 59:48, code 63:60 (spec-layouts.md B.5).
    Event e = make_io_page_fault(0x0310, 0x0042, 0, 0x0000'1234'5678'9000ull, evf::RW | evf::PR | evf::PE);
    auto q = e.encode();
    CHECK((q[0] & 0xFFFF) == 0x0310);
    CHECK(((q[0] >> 32) & 0xFFFF) == 0x0042);
    CHECK(((q[0] >> 60) & 0xF) == 0x2);
    CHECK(((q[0] >> 48) & 0xFFF) == (0x020 | 0x010 | 0x040));
    CHECK((q[0] >> 53 & 1) == 1); // RW at absolute bit 53 (Linux EVENT_FLAG_RW 0x020)
    CHECK(q[1] == 0x0000'1234'5678'9000ull);
    CHECK(Event::decode(q) == e);
}

TEST_CASE("IO_PAGE_FAULT flag bits sit at their absolute positions", "[unit][amd]") {
    struct Case { uint16_t f; unsigned abs; };
    for (auto c : {Case{evf::GN, 48}, Case{evf::NX, 49}, Case{evf::US, 50}, Case{evf::I, 51}, Case{evf::PR, 52},
                   Case{evf::RW, 53}, Case{evf::PE, 54}, Case{evf::RZ, 55}, Case{evf::TR, 56}}) {
        auto q = make_io_page_fault(1, 2, 3, 0x1000, c.f).encode();
        CHECK(((q[0] >> 48) & 0xFFF) == c.f);
        CHECK((q[0] & (uint64_t{1} << c.abs)) != 0);
    }
}

TEST_CASE("A PASID-tagged event splits the PASID over 19:16 and 47:32", "[unit][amd]") {
    Event e = make_io_page_fault(0x0008, 0x7777, 0xABCDE, 0x5000, evf::GN | evf::US);
    auto q = e.encode();
    CHECK(((q[0] >> 16) & 0xF) == 0xA);
    CHECK(((q[0] >> 32) & 0xFFFF) == 0xBCDE);
    auto d = Event::decode(q);
    REQUIRE(d);
    CHECK(d->pasid == 0xABCDE);
    CHECK(d->domain_id == 0); // the DomainID is not in a PASID-tagged record
}

TEST_CASE("INVALID_PPR_REQUEST carries the PASID at 31:16 and 45:42", "[unit][amd]") {
    Event e = make_invalid_ppr_request(0x0100, 0x9ABCD, 0x7000, 0);
    auto q = e.encode();
    CHECK(((q[0] >> 60) & 0xF) == 0x9);
    CHECK(((q[0] >> 16) & 0xFFFF) == 0xABCD);
    CHECK(((q[0] >> 42) & 0xF) == 0x9);
    CHECK(Event::decode(q)->pasid == 0x9ABCD);
}

TEST_CASE("Every event code encodes and decodes", "[unit][amd]") {
    std::vector<Event> all = {
        make_illegal_dte(0x10, 0x77, 0x1000, evf::RZ | evf::TR | evf::GN),
        make_io_page_fault(0x10, 5, 0, 0x2000, evf::RW),
        make_dev_tab_hw_error(0x10, 0x10'0200, evf::TR, HwErrorType::master_abort),
        make_page_tab_hw_error(0x10, 5, 0, 0x20'0000, 0, HwErrorType::data_error),
        make_illegal_command(0x30'0040),
        make_command_hw_error(0x30'0050, HwErrorType::target_abort),
        make_iotlb_inv_timeout(0x18, 0x30'0060),
        make_invalid_device_request(0x18, 0, 0x8000, 0, InvalidRequestType::translated_not_allowed),
        make_invalid_ppr_request(0x18, 7, 0x9000, 0),
    };
    unsigned code = 1;
    for (const Event& e : all) {
        auto q = e.encode();
        CHECK(((q[0] >> 60) & 0xF) == code++);
        auto d = Event::decode(q);
        REQUIRE(d);
        CHECK(*d == e);
    }
    // Hardware-error Type (58:57): 1 master abort, 2 target abort, 3 data error (0 reserved).
    CHECK(((make_dev_tab_hw_error(0, 0, 0, HwErrorType::master_abort).encode()[0] >> 57) & 3) == 1);
    CHECK(((make_command_hw_error(0, HwErrorType::target_abort).encode()[0] >> 57) & 3) == 2);
    CHECK(((make_page_tab_hw_error(0, 0, 0, 0, 0, HwErrorType::data_error).encode()[0] >> 57) & 3) == 3);
    // INVALID_DEVICE_REQUEST Type (59:57) with TR (56): a translation request from a device
    // without ATS is type 0 with TR = 1; a translated request from it is type 1 with TR = 0.
    const auto tr = make_invalid_device_request(0, 0, 0, evf::TR, InvalidRequestType::translation_not_allowed).encode();
    CHECK(((tr[0] >> 57) & 7) == 0);
    CHECK(((tr[0] >> 56) & 1) == 1);
    const auto td = make_invalid_device_request(0, 0, 0, 0, InvalidRequestType::translated_not_allowed).encode();
    CHECK(((td[0] >> 57) & 7) == 1);
    CHECK(((td[0] >> 56) & 1) == 0);
    CHECK(make_illegal_command(0x30'0040).encode()[1] == 0x30'0040); // address of the bad command
}

TEST_CASE("Unknown event codes do not decode", "[unit][amd]") {
    CHECK_FALSE(Event::decode({uint64_t{0} << 60, 0}));
    CHECK_FALSE(Event::decode({uint64_t{0xA} << 60, 0}));
}

TEST_CASE("PPR log entries match Linux's PPR_* accessors", "[unit][amd]") {
    PprEntry p;
    p.device_id = 0x0420;
    p.pasid = 0x5F00D;
    p.prg_index = 0x1A5;
    p.last = true;
    p.flags = pprf::GN | pprf::WRITE | pprf::READ | pprf::US;
    p.address = 0x7FFF'1234'5000ull;
    auto q = p.encode();
    CHECK((q[0] & 0xFFFF) == 0x0420);                                              // PPR_DEVID
    CHECK((((q[0] >> 42) & 0xF) << 16 | ((q[0] >> 16) & 0xFFFF)) == 0x5F00D);       // PPR_PASID
    CHECK(((q[0] >> 32) & 0x3FF) == (0x1A5 | 0x200));                              // PPR_TAG, bit 9 = last
    CHECK(((q[0] >> 48) & 0xFFF) == (0x100 | 0x020 | 0x004 | 0x040));              // PPR_FLAGS
    CHECK(((q[0] >> 60) & 0xF) == kPprTypeFault);                                  // PPR_REQ_TYPE
    CHECK(q[1] == 0x7FFF'1234'5000ull);
    CHECK(PprEntry::decode(q) == p);
}
