// SPDX-License-Identifier: Apache-2.0
// The AMD-Vi driver backend's reading of the EFR and of PPR log records.
#include <catch2/catch.hpp>

#include "models/host/amd_driver.hpp"
#include "models/iommu/amd/amd_params.hpp"

using namespace iommusim;
using namespace iommusim::host;
namespace amd = iommusim::iommu::amd;

TEST_CASE("AMD-Vi driver: capabilities come from the EFR as Linux reads it", "[unit][host][amd]") {
    amd::AmdParams p;
    p.host_levels = 5;
    p.guest_levels = 5;
    p.pasid_bits = 16;
    IommuCaps c = AmdDriver::decode_caps(p.efr());
    CHECK(c.s2.supported);
    CHECK(c.s2.has_format(iommu::PtFormat::amd_v1));
    CHECK(c.s2.has_levels(1));
    CHECK(c.s2.has_levels(5));
    CHECK_FALSE(c.s2.has_levels(6)); // HATS + 4
    CHECK(c.s1.supported);
    CHECK(c.s1.has_format(iommu::PtFormat::x86_64));
    CHECK(c.s1.has_levels(5)); // GATS = 1
    CHECK(c.pasid_bits == 16);  // PASmax + 1
    CHECK(c.pri);
    CHECK(c.domain_tags == 65536);
    p.guest_translation = false;
    p.guest_levels = 4;
    c = AmdDriver::decode_caps(p.efr());
    CHECK_FALSE(c.s1.supported);
    CHECK(c.pasid_bits == 0);
    CHECK_FALSE(c.pri); // PRI needs guest translation (PASIDs)
}

TEST_CASE("AMD-Vi driver: a PPR log record becomes the host's page request", "[unit][host][amd]") {
    amd::PprEntry p;
    p.device_id = 0x0310;
    p.pasid = 7;
    p.prg_index = 0x55;
    p.last = true;
    p.flags = amd::pprf::GN | amd::pprf::WRITE | amd::pprf::READ | amd::pprf::US;
    p.address = 0x7000'1000;
    PageRequestInfo r = AmdDriver::decode_page_request(amd::PprEntry::decode(p.encode()));
    CHECK(r.rid == pcie::Bdf{0x0310});
    REQUIRE(r.pasid);
    CHECK(*r.pasid == 7);
    CHECK(r.read);
    CHECK(r.write);
    CHECK_FALSE(r.privileged); // US set: a user request
    CHECK(r.last);
    CHECK(r.prg_index == 0x55);
    CHECK(r.address == 0x7000'1000);
    p.flags = amd::pprf::READ; // GN clear: no PASID (Linux answers it Invalid)
    CHECK_FALSE(AmdDriver::decode_page_request(p).pasid);
}
