// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>
#include <cstring>

#include "models/pcie/tlp.hpp"

using namespace iommusim::pcie;

TEST_CASE("requester IDs print and parse as BB:DD.F", "[unit][pcie]") {
    Bdf b(0x3a, 0x1f, 7);
    CHECK(b.raw == 0x3aff);
    CHECK(b.str() == "3a:1f.7");
    CHECK(parse_bdf("3a:1f.7") == b);
    CHECK(parse_bdf("00:02.0").devfn() == 0x10);
    CHECK_THROWS_AS(parse_bdf("00:20.0"), std::invalid_argument);
    CHECK_THROWS_AS(parse_bdf("zz"), std::invalid_argument);
}

TEST_CASE("ATS invalidate range encoding round-trips every order", "[unit][pcie][ats]") {
    for (unsigned order = 0; order < 30; ++order) {
        uint64_t base = uint64_t{0x12345} << (12 + order);
        auto r = AtsInvalidateRequest::for_range(Bdf(1, 0, 0), base, order);
        CHECK(r.range_size() == (uint64_t{4096} << order));
        CHECK(r.range_base() == base);
        CHECK(r.s == (order > 0));
    }
    // The whole-address-space encoding (Linux's mask 52): bits 62:12 set.
    auto whole = AtsInvalidateRequest::for_range(Bdf(1, 0, 0), 0, 52);
    CHECK(whole.address == 0x7FFF'FFFF'FFFF'F000ULL);
    CHECK(whole.range_base() == 0);
    CHECK(whole.range_size() == uint64_t{1} << 63);
    // Spec example: S=1, address bits 12 clear -> 8 KiB.
    AtsInvalidateRequest r;
    r.s = true;
    r.address = 0x2000;
    CHECK(r.range_size() == 8192);
}

TEST_CASE("TLP extension clones every field", "[unit][pcie]") {
    TlpExtension e;
    e.requester = Bdf(2, 3, 1);
    e.pasid_present = true;
    e.pasid = 0xABCDE;
    e.privileged = e.execute = e.no_snoop = true;
    e.at = AddressType::translated;
    e.traffic_class = 5;
    TlpExtension d;
    d.copy_from(*std::unique_ptr<TlpExtension>(static_cast<TlpExtension*>(e.clone())));
    CHECK(d.requester == e.requester);
    CHECK(d.pasid == 0xABCDE);
    CHECK(d.at == AddressType::translated);
    CHECK(d.traffic_class == 5);
    CHECK(d.no_snoop);
}

TEST_CASE("MessageTlp carries the message as an 8-byte write and detaches it when done", "[unit][pcie]") {
    MessageExtension m;
    m.code = MessageCode::ats_invalidate_request;
    m.inv_req.itag = 3;
    {
        MessageTlp tlp(m, 0x1122334455667788ull);
        tlm::tlm_generic_payload& g = tlp.payload();
        CHECK(g.is_write());
        CHECK(g.get_data_length() == 8);
        CHECK(g.get_streaming_width() == 8);
        CHECK(g.get_response_status() == tlm::TLM_INCOMPLETE_RESPONSE);
        uint64_t data = 0;
        std::memcpy(&data, g.get_data_ptr(), 8);
        CHECK(data == 0x1122334455667788ull);
        REQUIRE(g.get_extension<MessageExtension>() == &m);
    }
    CHECK(m.inv_req.itag == 3); // still the caller's: not freed with the payload
}
