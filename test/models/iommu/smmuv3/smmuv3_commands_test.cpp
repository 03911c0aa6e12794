// SPDX-License-Identifier: Apache-2.0
// SMMUv3 commands: the 128-bit layouts of spec-layouts.md C.3 (as Linux's
// arm_smmu_cmdq_build_cmd writes them), CERROR_ILL cases, and the scope each
// command invalidates.
#include <catch2/catch.hpp>

#include <functional>
#include <vector>

#include "models/iommu/common/iotlb.hpp"
#include "models/iommu/smmuv3/smmuv3_commands.hpp"

using namespace iommusim;
using namespace iommusim::iommu;
using namespace iommusim::iommu::smmuv3;
using W = std::array<uint64_t, 2>;
using K = InvalidationScope::Kind;

namespace {
Command cmd(uint8_t opcode) {
    Command c;
    c.opcode = opcode;
    return c;
}
/// Encodes, checks the words, and checks that decoding gives the command back.
void check_layout(const Command& c, const W& want, const Smmuv3Params& p = {}) {
    INFO(command_name(c.opcode));
    CHECK(c.encode() == want);
    auto d = decode_command(want, p);
    REQUIRE(d);
    CHECK(*d == c);
}
bool ill(const W& w, const Smmuv3Params& p = {}) { return !decode_command(w, p).has_value(); }
} // namespace

TEST_CASE("configuration and prefetch commands have the architected layout", "[unit]") {
    Command c = cmd(op::kPrefetchConfig);
    c.sid = 0x1234'5678;
    c.ssv = true;
    c.ssid = 0xFFFFF;
    check_layout(c, {0x1234'5678'FFFF'F801ull, 0});
    c = cmd(op::kCfgiSte);
    c.sid = 0x20;
    c.leaf = true;
    check_layout(c, {0x0000'0020'0000'0003ull, 1});
    c = cmd(op::kCfgiSteRange);
    c.sid = 0x40;
    c.range = 31;
    check_layout(c, {0x0000'0040'0000'0004ull, 31});
    c = cmd(op::kCfgiCd);
    c.sid = 0x20;
    c.ssid = 7;
    c.leaf = true;
    check_layout(c, {0x0000'0020'0000'7005ull, 1});
    c = cmd(op::kCfgiCdAll);
    c.sid = 0x20;
    check_layout(c, {0x0000'0020'0000'0006ull, 0});
    c = cmd(op::kCfgiAll);
    c.range = 31;
    check_layout(c, {0x07, 31});
    c = cmd(op::kStallTerm);
    c.sid = 9;
    check_layout(c, {0x0000'0009'0000'0045ull, 0});
}

TEST_CASE("TLB invalidation commands have the architected layout, with range fields", "[unit]") {
    Command c = cmd(op::kTlbiNhAll);
    c.vmid = 3;
    check_layout(c, {0x0000'0003'0000'0010ull, 0});
    c = cmd(op::kTlbiNhAsid);
    c.vmid = 3;
    c.asid = 0xBEEF;
    check_layout(c, {0xBEEF'0003'0000'0011ull, 0});
    c = cmd(op::kTlbiNhVa);
    c.vmid = 5;
    c.asid = 0x1234;
    c.num = 3;
    c.scale = 1;
    c.tg = 1;
    c.ttl = 3;
    c.leaf = true;
    c.addr = 0xFFFF'0000'1234'5000;
    // d0: NUM 16:12, SCALE 24:20, VMID 47:32, ASID 63:48; d1: Leaf 0, TTL 9:8, TG 11:10, Address 63:12.
    check_layout(c, {0x1234'0005'0010'3012ull, 0xFFFF'0000'1234'5701ull});
    c.opcode = op::kTlbiNhVaa;
    c.asid = 0;
    check_layout(c, {0x0000'0005'0010'3013ull, 0xFFFF'0000'1234'5701ull});
    c = cmd(op::kTlbiEl2All);
    check_layout(c, {0x20, 0});
    c = cmd(op::kTlbiEl2Asid);
    c.asid = 9;
    check_layout(c, {0x0009'0000'0000'0021ull, 0});
    c = cmd(op::kTlbiEl2Va);
    c.asid = 9;
    c.addr = 0x7000;
    check_layout(c, {0x0009'0000'0000'0022ull, 0x7000});
    c = cmd(op::kTlbiEl2Vaa);
    c.addr = 0x7000;
    c.leaf = true;
    check_layout(c, {0x23, 0x7001});
    c = cmd(op::kTlbiS12Vmall);
    c.vmid = 0xFFFF;
    check_layout(c, {0x0000'FFFF'0000'0028ull, 0});
    c = cmd(op::kTlbiS2Ipa);
    c.vmid = 7;
    c.addr = 0x000F'FFFF'FFFF'F000;
    c.tg = 3;
    c.num = 31;
    c.scale = 31;
    check_layout(c, {0x0000'0007'01F1'F02Aull, 0x000F'FFFF'FFFF'FC00ull}); // IPA 51:12
    check_layout(cmd(op::kTlbiNsnhAll), {0x30, 0});
}

TEST_CASE("ATC_INV, PRI_RESP, RESUME and CMD_SYNC have the architected layout", "[unit]") {
    Command c = cmd(op::kAtcInv);
    c.sid = 0x100;
    c.ssv = true;
    c.ssid = 0x55;
    c.size = 3;
    c.addr = 0x1234'5000;
    c.global = true;
    check_layout(c, {0x0000'0100'0005'5A40ull, 0x1234'5003ull}); // Global 9, SSV 11, Size 5:0
    c = cmd(op::kPriResp);
    c.sid = 0x10;
    c.ssv = true;
    c.ssid = 2;
    c.prg_index = 0x1FF;
    c.resp = static_cast<uint8_t>(PriResp::success);
    check_layout(c, {0x0000'0010'0000'2841ull, 0x21FFull}); // PRGIndex 8:0, Resp 13:12
    c = cmd(op::kResume);
    c.sid = 9;
    c.resp = static_cast<uint8_t>(ResumeAction::retry);
    c.stag = 0xBEEF;
    check_layout(c, {0x0000'0009'0000'1044ull, 0xBEEF});
    c = cmd(op::kSync);
    c.cs = SyncSignal::irq;
    c.msh = 3; // what Linux always writes (spec-layouts.md errata 6)
    c.msi_attr = 0xF;
    c.msi_data = 0x1234;
    c.msi_addr = 0x8000'1004;
    check_layout(c, {0x0000'1234'0FC0'1046ull, 0x8000'1004ull});
}

TEST_CASE("unknown and unusable opcodes are CERROR_ILL", "[unit]") {
    for (uint64_t opcode : {0x00, 0x08, 0x11 + 0x70, 0x18, 0x1A, 0x24, 0x2B, 0x31, 0x42, 0x43, 0x47, 0xFF}) {
        INFO(opcode);
        CHECK(ill({opcode, 0}));
    }
    Smmuv3Params p;
    p.hyp = false;
    CHECK(ill({op::kTlbiEl2All, 0}, p));
    CHECK(ill({op::kTlbiEl2Asid, 0}, p));
    p = {};
    p.s2p = false;
    CHECK(ill({op::kTlbiS2Ipa, 0}, p));
    CHECK(ill({op::kTlbiS12Vmall, 0}, p));
    p = {};
    p.ats = false;
    CHECK(ill({op::kAtcInv, 0}, p));
    p = {};
    p.pri = false;
    CHECK(ill({op::kPriResp, 0}, p));
    p = {};
    p.stall_model = StallModel::terminate_only;
    CHECK(ill({op::kResume, 0}, p));
    CHECK(ill({op::kStallTerm, 0}, p));
}

TEST_CASE("a set reserved bit or a reserved field value makes a command CERROR_ILL", "[unit]") {
    CHECK(ill({op::kCfgiSte | 1ull << 10, 0}));          // SSec on the Non-secure queue
    CHECK(ill({op::kCfgiSte, 0x2}));                     // dword 1 beyond Leaf
    CHECK(ill({op::kTlbiNsnhAll, 1}));
    CHECK(ill({op::kTlbiNhAll | 0x1ull << 48, 0}));      // ASID field does not exist in NH_ALL
    CHECK(ill({op::kCfgiCd | 1ull << 11, 0}));           // no SSV in CFGI_CD
    CHECK(ill({op::kSync | 3ull << 12, 0}));             // CS = 3
    CHECK(ill({op::kSync, 0x1}));                        // MSIAddress bits 1:0
    CHECK(ill({op::kPriResp, 3ull << 12}));              // Resp = 3
    CHECK(ill({op::kResume | 3ull << 12, 0}));
    CHECK(ill({op::kTlbiS2Ipa, 1ull << 52}));            // IPA above bit 51
    CHECK_FALSE(ill({op::kTlbiNhVa, 1ull << 63}));       // a VA may use every bit
}

TEST_CASE("range fields need IDR3.RIL and a granule, 16-bit tags need ASID16 / VMID16", "[unit]") {
    Smmuv3Params no_ril;
    no_ril.ril = false;
    const uint64_t num = 1ull << 12, scale = 1ull << 20, tg4k = 1ull << 10, ttl = 1ull << 8;
    CHECK(ill({op::kTlbiNhVa | num, 0}, no_ril));
    CHECK(ill({op::kTlbiNhVa, tg4k}, no_ril));
    CHECK(ill({op::kTlbiNhVa, ttl | tg4k}, no_ril));
    CHECK_FALSE(ill({op::kTlbiNhVa, 0x5000}, no_ril));
    CHECK_FALSE(ill({op::kTlbiNhVa | num | scale, tg4k | ttl}));
    CHECK(ill({op::kTlbiNhVa | num, 0}));  // NUM without TG
    CHECK(ill({op::kTlbiS2Ipa, ttl}));      // TTL without TG
    Smmuv3Params small;
    small.asid16 = false;
    small.vmid16 = false;
    CHECK(ill({op::kTlbiNhAsid | 0x100ull << 48, 0}, small));
    CHECK(ill({op::kTlbiNhAll | 0x100ull << 32, 0}, small));
    CHECK_FALSE(ill({op::kTlbiNhAsid | 0xFFull << 48 | 0xFFull << 32, 0}, small));
}

TEST_CASE("each TLBI command maps to its scope: tags, regime, stage, range and Leaf", "[unit]") {
    Command c = cmd(op::kTlbiNhVa);
    c.vmid = 5;
    c.asid = 9;
    c.addr = 0x10'0000;
    SECTION("a VA without range fields: every entry containing the address") {
        auto s = tlb_scope(c);
        REQUIRE(s);
        CHECK(s->kind == K::range);
        CHECK(s->domain_tag == 5);
        CHECK(s->as_tag == 9);
        CHECK(s->has_as);
        CHECK(s->size == 1);
        CHECK(s->include_global);
        CHECK(s->stage == InvalidationScope::Stage::s1);
        CHECK(s->regime == Regime::el1);
        CHECK_FALSE(s->leaf_only);
    }
    SECTION("range TLBI: (NUM+1) * 2^SCALE pages of TG") {
        c.tg = 1, c.num = 3, c.scale = 1, c.leaf = true;
        CHECK(tlb_scope(c)->size == 8 * 0x1000);
        CHECK(tlb_scope(c)->leaf_only);
        c.tg = 2, c.num = 0, c.scale = 0;
        CHECK(tlb_scope(c)->size == 0x4000);
        c.tg = 3, c.num = 1, c.scale = 2;
        CHECK(tlb_scope(c)->size == 8 * 0x10000);
    }
    SECTION("VAA: all ASIDs of the VMID") {
        c.opcode = op::kTlbiNhVaa;
        CHECK_FALSE(tlb_scope(c)->has_as);
    }
    SECTION("EL2 commands reach the EL2 regime only, without VMID") {
        c.opcode = op::kTlbiEl2Va;
        CHECK(tlb_scope(c)->regime == Regime::el2);
        CHECK(tlb_scope(c)->domain_tag == 0);
        c.opcode = op::kTlbiEl2Asid;
        CHECK(tlb_scope(c)->kind == K::as_only);
        CHECK(tlb_scope(c)->regime == Regime::el2);
        c.opcode = op::kTlbiEl2All;
        CHECK(tlb_scope(c)->kind == K::all);
        CHECK(tlb_scope(c)->regime == Regime::el2);
    }
    SECTION("VMID-wide and IPA commands") {
        c.opcode = op::kTlbiNhAll;
        CHECK(tlb_scope(c)->kind == K::domain);
        CHECK(tlb_scope(c)->stage == InvalidationScope::Stage::s1);
        c.opcode = op::kTlbiS12Vmall;
        CHECK(tlb_scope(c)->kind == K::domain);
        CHECK(tlb_scope(c)->stage == InvalidationScope::Stage::both);
        c.opcode = op::kTlbiS2Ipa;
        CHECK(tlb_scope(c)->stage == InvalidationScope::Stage::s2);
        CHECK_FALSE(tlb_scope(c)->has_as);
        c.opcode = op::kTlbiNsnhAll;
        CHECK(tlb_scope(c)->kind == K::all);
        CHECK(tlb_scope(c)->regime == Regime::el1);
        c.opcode = op::kCfgiSte;
        CHECK_FALSE(tlb_scope(c));
    }
}

namespace {
/// An IOTLB holding one 4 KiB entry per (regime, VMID, ASID, kind, page) of a small grid.
struct Grid {
    stats::Group root{"t"};
    Iotlb tlb{"iotlb", CacheGeometry{1024, 16, Replacement::lru, 1}, &root};
    struct E {
        Regime regime;
        uint32_t vmid, asid;
        TranslationKind kind;
        uint64_t va;
    };
    std::vector<E> all;
    Grid() {
        for (Regime r : {Regime::el1, Regime::el2})
            for (uint32_t vmid : {1u, 2u})
                for (uint32_t asid : {7u, 8u})
                    for (TranslationKind k : {TranslationKind::s1, TranslationKind::s2, TranslationKind::nested})
                        for (uint64_t va : {0x1000ull, 0x2000ull, 0x9000ull}) {
                            if (r == Regime::el2) continue; // EL2 entries (no VMID) below
                            if (k == TranslationKind::s2 && asid != 7) continue; // stage 2 has no ASID
                            all.push_back({r, vmid, k == TranslationKind::s2 ? 0 : asid, k, va});
                        }
        for (uint64_t va : {0x1000ull, 0x2000ull, 0x9000ull})
            for (uint32_t asid : {7u, 8u}) all.push_back({Regime::el2, 0, asid, TranslationKind::s1, va});
        for (const E& e : all) {
            IotlbEntry v;
            v.ipa = e.va; // nested entries: the IPA equals the VA here
            tlb.insert(e.vmid, e.asid, e.va, e.kind, 12, false, v, e.regime);
        }
    }
    /// The entries still cached after applying the command's scope.
    size_t remaining_after(const Command& c, const std::function<bool(const E&)>& dropped) {
        auto s = tlb_scope(c);
        REQUIRE(s);
        tlb.invalidate(*s);
        size_t n = 0;
        for (const E& e : all) {
            const bool hit = tlb.lookup(e.vmid, e.asid, e.va, e.kind, e.regime).hit;
            INFO(command_name(c.opcode) << " vmid " << e.vmid << " asid " << e.asid << " kind " << int(e.kind)
                                        << " va " << e.va << " regime " << int(e.regime));
            CHECK(hit == !dropped(e));
            n += hit;
        }
        return n;
    }
};
} // namespace

TEST_CASE("each TLBI command drops exactly the IOTLB entries of its scope and no more", "[unit]") {
    Grid g;
    REQUIRE(g.tlb.size() == g.all.size());
    using E = Grid::E;
    const auto el1 = [](const E& e) { return e.regime == Regime::el1; };
    const auto s1ish = [](const E& e) { return e.kind != TranslationKind::s2; };
    Command c;
    SECTION("NH_VA: the VMID's ASID at that address, stage-1 and nested entries") {
        c = cmd(op::kTlbiNhVa);
        c.vmid = 1, c.asid = 7, c.addr = 0x2000;
        g.remaining_after(c, [&](const E& e) {
            return el1(e) && s1ish(e) && e.vmid == 1 && e.asid == 7 && e.va == 0x2000;
        });
    }
    SECTION("range NH_VA: 2 pages from 0x1000") {
        c = cmd(op::kTlbiNhVa);
        c.vmid = 2, c.asid = 8, c.addr = 0x1000, c.tg = 1, c.num = 1;
        g.remaining_after(c, [&](const E& e) {
            return el1(e) && s1ish(e) && e.vmid == 2 && e.asid == 8 && e.va <= 0x2000;
        });
    }
    SECTION("NH_VAA: every ASID of the VMID at that address") {
        c = cmd(op::kTlbiNhVaa);
        c.vmid = 1, c.addr = 0x9000;
        g.remaining_after(c, [&](const E& e) { return el1(e) && s1ish(e) && e.vmid == 1 && e.va == 0x9000; });
    }
    SECTION("NH_ASID: the VMID's ASID, stage-1 and nested") {
        c = cmd(op::kTlbiNhAsid);
        c.vmid = 2, c.asid = 7;
        g.remaining_after(c, [&](const E& e) { return el1(e) && s1ish(e) && e.vmid == 2 && e.asid == 7; });
    }
    SECTION("NH_ASID with ASID 0 keeps the VMID's stage-2 entries (they carry no ASID)") {
        c = cmd(op::kTlbiNhAsid);
        c.vmid = 1, c.asid = 0;
        CHECK(g.remaining_after(c, [](const E&) { return false; }) == g.all.size());
    }
    SECTION("NH_ALL: every stage-1 and nested entry of the VMID, stage-2 entries kept") {
        c = cmd(op::kTlbiNhAll);
        c.vmid = 1;
        g.remaining_after(c, [&](const E& e) { return el1(e) && s1ish(e) && e.vmid == 1; });
    }
    SECTION("S12_VMALL: every entry of the VMID") {
        c = cmd(op::kTlbiS12Vmall);
        c.vmid = 2;
        g.remaining_after(c, [&](const E& e) { return el1(e) && e.vmid == 2; });
    }
    SECTION("S2_IPA: stage-2 and nested entries of the VMID at that IPA") {
        c = cmd(op::kTlbiS2Ipa);
        c.vmid = 1, c.addr = 0x1000;
        g.remaining_after(c, [&](const E& e) {
            return el1(e) && e.kind != TranslationKind::s1 && e.vmid == 1 && e.va == 0x1000;
        });
    }
    SECTION("NSNH_ALL: every NS-EL1 entry, no EL2 entry") {
        g.remaining_after(cmd(op::kTlbiNsnhAll), el1);
    }
    SECTION("EL2_ASID / EL2_VA / EL2_ALL: EL2 entries only") {
        c = cmd(op::kTlbiEl2Asid);
        c.asid = 7;
        g.remaining_after(c, [&](const E& e) { return !el1(e) && e.asid == 7; });
        c = cmd(op::kTlbiEl2Va);
        c.asid = 8, c.addr = 0x9000;
        g.remaining_after(c, [&](const E& e) { return !el1(e) && (e.asid == 7 || e.va == 0x9000); });
        g.remaining_after(cmd(op::kTlbiEl2All), [&](const E& e) { return !el1(e); });
    }
}

TEST_CASE("CFGI commands map to STE and CD cache scopes", "[unit]") {
    Command c = cmd(op::kCfgiSte);
    c.sid = 0x37;
    auto i = config_invalidation(c);
    REQUIRE(i);
    CHECK((i->ste && i->cd));
    CHECK(i->scope.kind == ConfigScope::Kind::requester);
    CHECK(i->scope.requester == 0x37);
    CHECK(i->scope.requester_mask == 0);
    c = cmd(op::kCfgiSteRange);
    c.sid = 0x37;
    c.range = 3; // 16 StreamIDs: 0x30..0x3F
    i = config_invalidation(c);
    CHECK(i->scope.requester_mask == 0xF);
    c.range = 31;
    CHECK(config_invalidation(c)->scope.kind == ConfigScope::Kind::all);
    c = cmd(op::kCfgiCd);
    c.sid = 4, c.ssid = 99;
    i = config_invalidation(c);
    CHECK((!i->ste && i->cd));
    CHECK(i->scope.kind == ConfigScope::Kind::requester_pasid);
    CHECK(i->scope.pasid == 99);
    c = cmd(op::kCfgiCdAll);
    c.sid = 4;
    i = config_invalidation(c);
    CHECK((!i->ste && i->cd));
    CHECK(i->scope.kind == ConfigScope::Kind::requester);
    CHECK(config_invalidation(cmd(op::kCfgiAll))->scope.kind == ConfigScope::Kind::all);
    CHECK_FALSE(config_invalidation(cmd(op::kTlbiNsnhAll)));
}

TEST_CASE("ATC_INV becomes an ATS Invalidate Request of 2^Size pages, Size 52 is the whole ATC", "[unit]") {
    Command c = cmd(op::kAtcInv);
    c.sid = 0x0300;
    c.ssv = true;
    c.ssid = 0x42;
    c.size = 2;
    c.addr = 0x1'2345'6000;
    auto r = atc_invalidation(c);
    REQUIRE(r);
    CHECK(r->target == pcie::Bdf(0x0300));
    CHECK(r->pasid_present);
    CHECK(r->pasid == 0x42);
    CHECK(r->range_base() == 0x1'2345'4000); // aligned to the 16 KiB span
    CHECK(r->range_size() == 0x4000);
    c.size = 52;
    c.ssv = false;
    r = atc_invalidation(c);
    CHECK_FALSE(r->pasid_present);
    CHECK(r->range_size() == uint64_t{1} << 63);
}

TEST_CASE("PRI_RESP becomes a PRG Response with the PCIe response code", "[unit]") {
    Command c = cmd(op::kPriResp);
    c.sid = 0x0208;
    c.ssv = true;
    c.ssid = 5;
    c.prg_index = 0x1FF;
    c.resp = static_cast<uint8_t>(PriResp::success);
    auto r = prg_response(c);
    REQUIRE(r);
    CHECK(r->destination == pcie::Bdf(0x0208));
    CHECK(r->prg_index == 0x1FF);
    CHECK(r->code == pcie::PrgResponseCode::success);
    c.resp = static_cast<uint8_t>(PriResp::deny);
    CHECK(prg_response(c)->code == pcie::PrgResponseCode::invalid_request);
    c.resp = static_cast<uint8_t>(PriResp::fail);
    CHECK(prg_response(c)->code == pcie::PrgResponseCode::response_failure);
}

TEST_CASE("the command decoder hook turns each command into the shared actions or CERROR_ILL", "[unit]") {
    Smmuv3Params p;
    Smmuv3CommandDecoder d(p);
    auto decode = [&](const Command& c) {
        const W w = c.encode();
        return d.decode(std::span<const uint64_t>(w.data(), 2));
    };
    Command sync = cmd(op::kSync);
    sync.cs = SyncSignal::irq;
    sync.msi_addr = 0x8000'0040;
    sync.msi_data = 0xD0E;
    auto s = decode(sync);
    REQUIRE(s.ok());
    REQUIRE(s.count == 1);
    const auto& a = std::get<SyncAction>(s.list()[0]);
    CHECK(a.status_write);
    CHECK(a.status_addr == 0x8000'0040);
    CHECK(a.status_data == 0xD0E);
    CHECK(a.status_bytes == 4);
    sync.cs = SyncSignal::sev;
    CHECK_FALSE(std::get<SyncAction>(decode(sync).list()[0]).status_write);
    Command ste = cmd(op::kCfgiSte);
    ste.sid = 3;
    auto cf = decode(ste);
    REQUIRE(cf.count == 2);
    CHECK(std::get<InvalidateConfig>(cf.list()[0]).cache == config_cache::kSte);
    CHECK(std::get<InvalidateConfig>(cf.list()[1]).cache == config_cache::kCd);
    CHECK(std::holds_alternative<InvalidateTranslations>(decode(cmd(op::kTlbiNsnhAll)).list()[0]));
    CHECK(std::holds_alternative<InvalidateDeviceAtc>(decode(cmd(op::kAtcInv)).list()[0]));
    CHECK(std::holds_alternative<PageResponseAction>(decode(cmd(op::kPriResp)).list()[0]));
    CHECK(std::holds_alternative<NoOpAction>(decode(cmd(op::kPrefetchConfig)).list()[0]));
    Command resume = cmd(op::kResume);
    resume.sid = 0x108;
    resume.stag = 77;
    resume.resp = static_cast<uint8_t>(ResumeAction::retry);
    auto rs = decode(resume);
    REQUIRE(rs.ok());
    CHECK(d.last().stag == 77);
    const auto& rel = std::get<ReleaseHeldAction>(rs.list()[0]); // the STAG's transaction, retried
    CHECK(rel.requester == 0x108);
    CHECK(rel.tag == 77);
    CHECK(rel.retry);
    CHECK_FALSE(rel.all);
    resume.resp = static_cast<uint8_t>(ResumeAction::abort);
    const DecodedCommand ab = decode(resume);
    CHECK_FALSE(std::get<ReleaseHeldAction>(ab.list()[0]).retry);
    resume.resp = static_cast<uint8_t>(ResumeAction::terminate);
    const DecodedCommand tm = decode(resume);
    CHECK_FALSE(std::get<ReleaseHeldAction>(tm.list()[0]).retry);
    Command term = cmd(op::kStallTerm);
    term.sid = 0x108;
    const DecodedCommand td = decode(term);
    const auto all = std::get<ReleaseHeldAction>(td.list()[0]); // every stalled transaction of the stream
    CHECK(all.all);
    CHECK(all.requester == 0x108);
    CHECK_FALSE(all.retry);
    const W bad{0x47, 0};
    auto e = d.decode(std::span<const uint64_t>(bad.data(), 2));
    CHECK(e.error == static_cast<uint32_t>(CmdError::ill));
}
