// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "models/iommu/common/iotlb.hpp"
#include "models/iommu/vtd/vtd_descriptors.hpp"

using namespace iommusim;
using namespace iommusim::iommu;
using namespace iommusim::iommu::vtd;

namespace {
const VtdParams kCaps{};
template <typename T>
T decode_as(const RawDesc& d, bool wide = true) {
    auto r = decode_descriptor(d, wide, kCaps);
    REQUIRE(r.ok());
    REQUIRE(std::holds_alternative<T>(r.desc));
    return std::get<T>(r.desc);
}
} // namespace

TEST_CASE("VT-d descriptor encoders place fields at the Linux QI_* bit positions", "[unit][vtd]") {
    // Type 2 PSI: G=3 at 5:4, DR 7, DW 6, DID 31:16; AM 5:0, IH 6, ADDR 63:12 of q1.
    auto d = encode_iotlb_page(0x1234, 0x7654000, 2, true);
    CHECK(d[0] == (0x2 | 3u << 4 | 1u << 6 | 1u << 7 | 0x1234ull << 16));
    CHECK(d[1] == (0x7654000ull | 1u << 6 | 2));
    // Type 8: MIP 8:4, SID 31:16, PASID 51:32, S at q1[11], G at q1[0].
    auto p = encode_pasid_dev_tlb(0x0300, 0x55, 0x10000, 1, true, 4);
    CHECK(p[0] == (0x8 | 4u << 4 | 0x0300ull << 16 | 0x55ull << 32));
    CHECK(p[1] == (0x10000ull | 1u << 11 | 1));
    // Type 3: MIP 20:16, SID 47:32, S at q1[0]; 16 KiB range: bit 12 set.
    auto t3 = encode_dev_tlb(0x0300, 0x20000, 2, 8);
    CHECK(t3[0] == (0x3 | 8u << 16 | 0x0300ull << 32));
    CHECK(t3[1] == (0x20000ull | 0x1000 | 1));
    // Wait: IF 4, SW 5, FN 6, status data 63:32, address q1[63:2].
    auto w = encode_wait(true, 0x8000, 2, true, true);
    CHECK(w[0] == (0x5 | 1u << 4 | 1u << 5 | 1u << 6 | 2ull << 32));
    CHECK(w[1] == 0x8000);
}

TEST_CASE("VT-d IOTLB descriptors decode to second-stage scopes of the right kind", "[unit][vtd]") {
    auto g = decode_as<IotlbInv>(encode_iotlb_global());
    CHECK(g.scope.kind == InvalidationScope::Kind::all);
    auto dsi = decode_as<IotlbInv>(encode_iotlb_domain(17));
    CHECK(dsi.scope.kind == InvalidationScope::Kind::domain);
    CHECK(dsi.scope.domain_tag == 17);
    CHECK(dsi.scope.stage == InvalidationScope::Stage::s2);
    auto psi = decode_as<IotlbInv>(encode_iotlb_page(17, 0x40000, 3, true));
    CHECK(psi.scope.kind == InvalidationScope::Kind::range);
    CHECK(psi.scope.addr == 0x40000);
    CHECK(psi.scope.size == 8 * 4096);
    CHECK(psi.scope.leaf_only);
    CHECK(psi.drain_reads);
    CHECK(psi.drain_writes);
}

TEST_CASE("VT-d PASID-based IOTLB descriptors decode to DID+PASID first-stage scopes", "[unit][vtd]") {
    auto all = decode_as<IotlbInv>(encode_pasid_iotlb_all(4, 0xABCDE));
    CHECK(all.pasid_based);
    CHECK(all.scope.kind == InvalidationScope::Kind::domain_as);
    CHECK(all.scope.has_as);
    CHECK(all.scope.as_tag == 0xABCDE);
    CHECK_FALSE(all.scope.include_global);
    CHECK(all.scope.stage == InvalidationScope::Stage::s1);
    auto pg = decode_as<IotlbInv>(encode_pasid_iotlb_page(4, 9, 0x200000, 9, false));
    CHECK(pg.scope.kind == InvalidationScope::Kind::range);
    CHECK(pg.scope.size == 2 * 1024 * 1024);
    CHECK(pg.scope.as_tag == 9);
    CHECK_FALSE(pg.scope.leaf_only);
}

TEST_CASE("VT-d context-cache and PASID-cache descriptors match exactly their scope", "[unit][vtd]") {
    auto dev = decode_as<ContextCacheInv>(encode_context_cache(ContextCacheInv::Gran::device, 0, 0x0308, 1));
    CHECK(dev.matches(pcie::Bdf(0x0308), 0));
    CHECK(dev.matches(pcie::Bdf(0x0309), 0));  // FM=1 ignores function bit 0
    CHECK_FALSE(dev.matches(pcie::Bdf(0x030A), 0));
    auto dom = decode_as<ContextCacheInv>(encode_context_cache(ContextCacheInv::Gran::domain, 7));
    CHECK(dom.matches(pcie::Bdf(0x0100), 7));
    CHECK_FALSE(dom.matches(pcie::Bdf(0x0100), 8));

    auto ps = decode_as<PasidCacheInv>(encode_pasid_cache(PasidCacheInv::Gran::pasid, 3, 77));
    CHECK(ps.matches(3, 77));
    CHECK_FALSE(ps.matches(3, 78));
    CHECK_FALSE(ps.matches(4, 77));
    auto pd = decode_as<PasidCacheInv>(encode_pasid_cache(PasidCacheInv::Gran::domain, 3));
    CHECK(pd.matches(3, 1));
    CHECK_FALSE(pd.matches(2, 1));
    auto pg = decode_as<PasidCacheInv>(encode_pasid_cache(PasidCacheInv::Gran::global));
    CHECK(pg.matches(2, 1));
}

TEST_CASE("VT-d device-TLB descriptors decode into ATS Invalidate Requests with the encoded range", "[unit][vtd]") {
    auto d = decode_as<DevTlbInv>(encode_dev_tlb(0x0300, 0x40000, 2, 5));
    CHECK(d.request.target == pcie::Bdf(0x0300));
    CHECK_FALSE(d.request.pasid_present);
    CHECK(d.request.range_base() == 0x40000);
    CHECK(d.request.range_size() == 16384);
    CHECK(d.mip == 5);
    auto p = decode_as<DevTlbInv>(encode_pasid_dev_tlb(0x0301, 12, 0x200000, 9, false, 0));
    CHECK(p.request.pasid_present);
    CHECK(p.request.pasid == 12);
    CHECK(p.request.range_size() == 2 * 1024 * 1024);
    // Whole-device flush as Linux issues it: address bits 62:12 set, S=1.
    RawDesc whole = encode_dev_tlb(0x0300, 0, 0);
    whole[1] = (~uint64_t{0} >> 1 & ~uint64_t{0xFFF}) | 1;
    auto w = decode_as<DevTlbInv>(whole);
    CHECK(w.request.range_size() == (uint64_t{1} << 63));
}

TEST_CASE("VT-d wait and page-group-response descriptors decode their fields", "[unit][vtd]") {
    auto w = decode_as<WaitDesc>(encode_wait(true, 0x123458, 0xCAFE, true, false, true));
    CHECK(w.status_write);
    CHECK(w.interrupt);
    CHECK(w.page_drain);
    CHECK(w.status_addr == 0x123458);
    CHECK(w.status_data == 0xCAFE);
    auto pr = decode_as<PageGroupResponse>(
        encode_page_group_response(0x0300, true, 5, 0x1AB, pcie::PrgResponseCode::invalid_request, true, {1, 2}));
    CHECK(pr.response.destination == pcie::Bdf(0x0300));
    CHECK(pr.response.pasid == 5);
    CHECK(pr.response.prg_index == 0x1AB);
    CHECK(pr.response.code == pcie::PrgResponseCode::invalid_request);
    CHECK(pr.private_data[1] == 2);
}

TEST_CASE("VT-d malformed descriptors are decode errors with the IQE reason", "[unit][vtd]") {
    auto bad = [](RawDesc d, bool wide = true) { return decode_descriptor(d, wide, kCaps).error; };
    CHECK(bad({0x0, 0, 0, 0}) == IqeReason::invalid_type);
    CHECK(bad({0xA, 0, 0, 0}) == IqeReason::invalid_type);
    CHECK(bad({0xF, 0, 0, 0}) == IqeReason::invalid_type);
    auto r = encode_iotlb_domain(1);
    r[0] |= 1ull << 40; // reserved q0[63:32]
    CHECK(bad(r) == IqeReason::reserved_field);
    r = encode_iotlb_page(1, 0x1000, 1, false); // address not aligned to 2^AM pages
    CHECK(bad(r) == IqeReason::reserved_field);
    r = encode_iotlb_page(1, 0, kCaps.mamv + 1, false);
    CHECK(bad(r) == IqeReason::reserved_field);
    CHECK(bad({0x2, 0, 0, 0}) == IqeReason::reserved_field);          // IOTLB G=0
    CHECK(bad(encode_pasid_cache(static_cast<PasidCacheInv::Gran>(2))) == IqeReason::reserved_field);
    CHECK(bad({0x6 | 1u << 4, 0, 0, 0}) == IqeReason::reserved_field); // PASID-IOTLB G=1
    r = encode_wait(true, 0x1000, 1);
    r[1] |= 1; // status address not dword aligned
    CHECK(bad(r) == IqeReason::reserved_field);
    r = encode_iotlb_global();
    r[2] = 1; // upper half of a 256-bit descriptor
    CHECK(bad(r) == IqeReason::reserved_field);
    CHECK(bad(encode_page_group_response(1, false, 0, 0, pcie::PrgResponseCode::success), false) ==
          IqeReason::invalid_width);
}

TEST_CASE("VT-d page-selective flush with AM >= 52 covers the whole address space, not one page",
          "[unit][vtd][regression]") {
    VtdParams caps;
    caps.mamv = 63; // the schema allows it
    stats::Group root("t");
    for (const uint8_t am : {uint8_t{52}, uint8_t{63}}) {
        Iotlb tlb("iotlb", CacheGeometry{64, 4}, &root);
        IotlbEntry e;
        e.output = 0x40000000;
        tlb.insert(5, 0, 0x0, TranslationKind::s2, 12, false, e);
        tlb.insert(5, 0, 0x7f0000120000, TranslationKind::s2, 12, false, e);
        auto r = decode_descriptor(encode_iotlb_page(5, 0, am, false), true, caps);
        REQUIRE(r.ok());
        CHECK(tlb.invalidate(std::get<IotlbInv>(r.desc).scope) == 2);
    }
}

TEST_CASE("VT-d PFSID in device-TLB descriptors is decoded with ECAP.DIT and reserved without it", "[unit][vtd]") {
    // Linux (iommu_enable_pci_caps) zeroes the PFSID when DIT is clear: "PFSID will be treated as reserved".
    VtdParams dit;
    dit.dit = true;
    for (const RawDesc& d : {encode_dev_tlb(0x0301, 0x40000, 0, 0, 0x0300),
                             encode_pasid_dev_tlb(0x0301, 12, 0x200000, 9, false, 0, 0x0300)}) {
        const auto with = decode_descriptor(d, true, dit);
        REQUIRE(with.ok());
        CHECK(std::get<DevTlbInv>(with.desc).pfsid == 0x0300);
        CHECK(decode_descriptor(d, true, kCaps).error == IqeReason::reserved_field);
    }
    // PFSID 0 (what Linux writes without DIT) is fine either way.
    CHECK(decode_descriptor(encode_dev_tlb(0x0301, 0x40000, 0), true, kCaps).ok());
    CHECK(decode_descriptor(encode_pasid_dev_tlb(0x0301, 12, 0x200000, 9, false, 0), true, kCaps).ok());
}
