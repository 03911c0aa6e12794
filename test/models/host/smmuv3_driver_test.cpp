// SPDX-License-Identifier: Apache-2.0
// The SMMUv3 driver backend's kernel-free pieces: what it reads from the ID
// registers, and the TLBI / ATC_INV commands it builds for a range, checked
// against what Linux's __arm_smmu_tlb_inv_range and arm_smmu_atc_inv_to_cmd
// produce (and against the unit's own decoder).
#include <catch2/catch.hpp>

#include "models/host/smmuv3_driver.hpp"
#include "models/iommu/smmuv3/smmuv3_regs.hpp"

using iommusim::host::Smmuv3Driver;
using iommusim::host::page_size_bit;
namespace sm = iommusim::iommu::smmuv3;

namespace {
Smmuv3Driver::Features features(const sm::Smmuv3Params& p) {
    return Smmuv3Driver::decode_features(sm::Smmuv3Regs::idr0(p), sm::Smmuv3Regs::idr1(p), sm::Smmuv3Regs::idr3(p),
                                         sm::Smmuv3Regs::idr5(p));
}
sm::Command nh_va(uint16_t asid, bool leaf) {
    sm::Command c;
    c.opcode = sm::op::kTlbiNhVa;
    c.asid = asid;
    c.leaf = leaf;
    return c;
}
} // namespace

TEST_CASE("SMMUv3 driver reads stages, granule, widths and features from IDR0/1/3/5", "[unit][host][smmuv3]") {
    sm::Smmuv3Params p;
    auto f = features(p);
    CHECK(f.caps.s1.supported);
    CHECK(f.caps.s2.supported);
    CHECK(f.caps.s1.has_format(iommusim::iommu::PtFormat::arm_s1));
    CHECK(f.caps.s2.has_format(iommusim::iommu::PtFormat::arm_s2));
    CHECK(f.granule == 12);
    CHECK(f.caps.s1.page_sizes == (page_size_bit(12) | page_size_bit(21) | page_size_bit(30)));
    CHECK(f.caps.s1.has_levels(4));
    CHECK(f.caps.s1.has_levels(3));
    CHECK(f.caps.pasid_bits == 20);
    CHECK(f.caps.ats);
    CHECK(f.caps.pri);
    CHECK(f.caps.nesting);
    CHECK(f.caps.output_bits == 48);
    CHECK(f.asid_bits == 16);
    CHECK(f.vmid_bits == 16);
    CHECK(f.st_2level);
    CHECK(f.cd_2level);
    CHECK(f.ril);
    CHECK(f.hyp);
    CHECK(f.ha);
    CHECK(f.hd);
    CHECK(f.sid_bits == 32);
    CHECK(f.cmdqs == 19);

    p.gran4k = false; // no 4 KiB granule: Linux takes the smallest offered
    p.asid16 = false;
    p.ril = false;
    p.s1p = false;
    p.oas_bits = 44;
    f = features(p);
    CHECK(f.granule == 14);
    CHECK(f.caps.s2.page_sizes == (page_size_bit(14) | page_size_bit(25)));
    CHECK_FALSE(f.caps.s1.supported);
    CHECK(f.caps.pasid_bits == 0); // SubstreamIDs select CDs: no stage 1, no PASIDs
    CHECK(f.asid_bits == 8);
    CHECK_FALSE(f.ril);
    CHECK(f.caps.output_bits == 44);
    p.gran16k = false;
    CHECK(features(p).granule == 16);
}

TEST_CASE("SMMUv3 driver issues one TLBI_NH_VA per page up to the cap and none above it without RIL",
          "[unit][host][smmuv3]") {
    auto cmds = Smmuv3Driver::tlbi_range(nh_va(7, true), 0x10000, 3 * 4096, 12, false, 512);
    REQUIRE(cmds.size() == 3);
    for (size_t i = 0; i < 3; ++i) {
        CHECK(cmds[i].addr == 0x10000 + i * 4096);
        CHECK(cmds[i].asid == 7);
        CHECK(cmds[i].leaf);
        CHECK(cmds[i].tg == 0); // not a range command
        CHECK(cmds[i].num == 0);
    }
    CHECK(Smmuv3Driver::tlbi_range(nh_va(7, true), 0, 512 * 4096, 12, false, 512).size() == 512);
    CHECK(Smmuv3Driver::tlbi_range(nh_va(7, true), 0, 513 * 4096, 12, false, 512).empty()); // ASID-wide instead
}

TEST_CASE("SMMUv3 driver builds range TLBIs with RIL as Linux does: 5 bits of the page count per command",
          "[unit][host][smmuv3]") {
    sm::Smmuv3Params p;
    // 33 pages: 1 page (SCALE 0, NUM 0) then 32 pages (SCALE 5, NUM 0); TG 4 KiB, TTL 3 for leaves.
    auto cmds = Smmuv3Driver::tlbi_range(nh_va(3, true), 0x200000, 33 * 4096, 12, true, 512);
    REQUIRE(cmds.size() == 2);
    CHECK(cmds[0].addr == 0x200000);
    CHECK(cmds[0].scale == 0);
    CHECK(cmds[0].num == 0);
    CHECK(cmds[1].addr == 0x201000);
    CHECK(cmds[1].scale == 5);
    CHECK(cmds[1].num == 0);
    for (const auto& c : cmds) {
        CHECK(c.tg == 1);
        CHECK(c.ttl == 3);
        // The unit accepts what the driver builds.
        CHECK(sm::decode_command(c.encode(), p) == c);
    }
    // 3 pages: one command, NUM 2.
    cmds = Smmuv3Driver::tlbi_range(nh_va(3, true), 0, 3 * 4096, 12, true, 512);
    REQUIRE(cmds.size() == 1);
    CHECK(cmds[0].num == 2);
    CHECK(cmds[0].scale == 0);
    // Above the per-page cap a range command still covers it: 1024 pages = NUM 0, SCALE 10.
    cmds = Smmuv3Driver::tlbi_range(nh_va(3, true), 0, 1024 * 4096, 12, true, 512);
    REQUIRE(cmds.size() == 1);
    CHECK(cmds[0].scale == 10);
    CHECK(cmds[0].num == 0);
    // Non-leaf: no TTL, and a count whose low 5 bits are 1 is rounded up (no SCALE = NUM = 0 command).
    // (1 page becomes 2: NUM 0, SCALE 1).
    cmds = Smmuv3Driver::tlbi_range(nh_va(3, false), 0, 4096, 12, true, 512);
    REQUIRE(cmds.size() == 1);
    CHECK(cmds[0].ttl == 0);
    CHECK(cmds[0].num == 0);
    CHECK(cmds[0].scale == 1);
    // 64 KiB granule: TG 3; 2 pages = NUM 0, SCALE 1.
    cmds = Smmuv3Driver::tlbi_range(nh_va(3, true), 0, 2 * 65536, 16, true, 512);
    REQUIRE(cmds.size() == 1);
    CHECK(cmds[0].tg == 3);
    CHECK(cmds[0].num == 0);
    CHECK(cmds[0].scale == 1);
}

TEST_CASE("SMMUv3 driver ATC_INV covers a range with the smallest aligned power-of-two span, Size 52 for all",
          "[unit][host][smmuv3]") {
    auto c = Smmuv3Driver::atc_inv(0x100, std::nullopt, 0x5000, 4096);
    CHECK(c.opcode == sm::op::kAtcInv);
    CHECK(c.sid == 0x100);
    CHECK_FALSE(c.ssv);
    CHECK(c.addr == 0x5000);
    CHECK(c.size == 0);
    // Pages 5..8: 5 ^ 8 = 0b1101, span 2^4 pages from page 0.
    c = Smmuv3Driver::atc_inv(0x100, 9u, 0x5000, 4 * 4096);
    CHECK(c.ssv);
    CHECK(c.ssid == 9);
    CHECK(c.size == 4);
    CHECK(c.addr == 0);
    c = Smmuv3Driver::atc_inv(0x100, std::nullopt, 0, 0);
    CHECK(c.size == 52);
    CHECK(c.addr == 0);
    // The unit turns it into an ATS invalidation of the whole ATC.
    const auto req = sm::atc_invalidation(c);
    REQUIRE(req);
}

TEST_CASE("SMMUv3 driver reads IDR0.STALL_MODEL as Linux does: stall, forced (stall for every master), terminate only",
          "[unit][host][smmuv3]") {
    sm::Smmuv3Params p;
    auto f = features(p);
    CHECK(f.stall);
    CHECK_FALSE(f.stall_force);
    CHECK(f.caps.stall);
    p.stall_model = sm::StallModel::forced;
    f = features(p);
    CHECK(f.stall); // ARM_SMMU_FEAT_STALL_FORCE implies ARM_SMMU_FEAT_STALLS
    CHECK(f.stall_force);
    p.stall_model = sm::StallModel::terminate_only;
    f = features(p);
    CHECK_FALSE(f.stall);
    CHECK_FALSE(f.stall_force);
    CHECK_FALSE(f.caps.stall);
}
