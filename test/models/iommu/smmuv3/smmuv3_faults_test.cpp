// SPDX-License-Identifier: Apache-2.0
// SMMUv3 fault model: which event a translation fault records, with which
// fields, and whether it is recorded, stalled or terminated; the stall table.
#include <catch2/catch.hpp>

#include "models/iommu/smmuv3/smmuv3_faults.hpp"
#include "test/models/iommu/smmuv3/smmuv3_fixture.hpp"

using namespace iommusim;
using namespace iommusim::iommu;
using namespace iommusim::iommu::smmuv3;
using namespace iommusim::iommu::smmuv3::test;
using iommusim::iommu::test::arm_cfg;
using iommusim::iommu::test::NestedTables;
using iommusim::iommu::test::wr;

namespace {
/// A stage-1 stream (SID 4) over 48-bit 4 KiB tables with one read-only page at 0x1000.
struct S1Stream {
    Smmu u;
    std::unique_ptr<TableBuilder> t = u.env.build(arm_cfg(false));
    CdTableWriter cds = u.s1_stream(4, t->config(), 0, 0, 0, 9);
    S1Stream() {
        LeafAttrs ro;
        ro.perms = perm::both(true, false, false);
        REQUIRE(t->map(0x1000, 0xA000, 0x1000, 12, ro) == MapError::none);
    }
    void set_cd(const std::function<void(Cd&)>& change) {
        Cd c = linux_cd(t->config(), 9);
        change(c);
        REQUIRE(cds.write_cd(0, c));
    }
    FaultDisposition fault(uint64_t addr, bool write, bool exec = false, bool priv = false) {
        auto r = u.resolve(4);
        REQUIRE_FALSE(r.event);
        const Translation tr = u.core.translate(r.sc.ctx, AccessRequest{addr, write, exec, priv}).t;
        REQUIRE_FALSE(tr.ok());
        return translation_fault(r.sc, Transaction{4, false, 0, addr, write, exec, priv}, tr);
    }
};
} // namespace

TEST_CASE("an unmapped stage-1 address is F_TRANSLATION with the transaction's fields, recorded per CD.R",
          "[unit]") {
    S1Stream s;
    auto d = s.fault(0x5'0000'1234, true, false, true);
    CHECK(d.event.id == evt::kTranslation);
    CHECK(d.event.sid == 4);
    CHECK(d.event.input_addr == 0x5'0000'1234);
    CHECK_FALSE(d.event.rnw); // a write
    CHECK(d.event.pnu);
    CHECK_FALSE(d.event.ind);
    CHECK_FALSE(d.event.s2);
    CHECK(d.event.cls == EventClass::in);
    CHECK(d.record);
    CHECK_FALSE(d.stall);
    CHECK(d.abort); // CD.A = 1
    s.set_cd([](Cd& c) { c.r = false, c.a = false; });
    d = s.fault(0x5'0000'1234, false);
    CHECK_FALSE(d.record);
    CHECK_FALSE(d.abort); // RAZ/WI
}

TEST_CASE("permission, access-flag and address-size faults map to their events", "[unit]") {
    S1Stream s;
    CHECK(s.fault(0x1000, true).event.id == evt::kPermission);
    LeafAttrs no_af;
    no_af.accessed = false;
    REQUIRE(s.t->map(0x2000, 0xB000, 0x1000, 12, no_af) == MapError::none);
    CHECK(s.fault(0x2000, false).event.id == evt::kAccess);
    // Output beyond CD.IPS (32 bits): F_ADDR_SIZE.
    REQUIRE(s.t->map(0x3000, 0x1'0000'0000, 0x1000, 12) == MapError::none);
    s.set_cd([](Cd& c) { c.ips = 0; });
    CHECK(s.fault(0x3000, false).event.id == evt::kAddrSize);
}

TEST_CASE("an input outside the stage's input size is F_TRANSLATION: beyond CD.T0SZ at stage 1, beyond STE.S2T0SZ at stage 2",
          "[unit]") {
    // IHI 0070 3.4: an address outside the range TxSZ / S2T0SZ configures is a Translation fault
    // at its stage (QEMU smmu_ptw_64_s2 likewise), not F_ADDR_SIZE (which is for outputs).
    S1Stream s;
    auto d = s.fault(uint64_t{1} << 48, false); // CD.T0SZ = 16: 48-bit input
    CHECK(d.event.id == evt::kTranslation);
    CHECK_FALSE(d.event.s2);
    // A stage-2-only stream whose S2T0SZ gives 40 bits, over tables that index them.
    Smmu u;
    auto t2 = u.env.build(arm_cfg(true, 12, 40, 3, 2));
    REQUIRE(t2->map(0x1000, 0xA000, 0x1000, 12) == MapError::none);
    Ste st = ste(ste_cfg::kS2);
    set_s2(st, t2->config(), 5);
    REQUIRE(u.st.write_ste(2, st));
    auto r = u.resolve(2);
    REQUIRE_FALSE(r.event);
    CHECK(u.core.translate(r.sc.ctx, rd(0x1008)).t.ok());
    const uint64_t ipa = (uint64_t{1} << 40) + 0x1008;
    const Translation tr = u.core.translate(r.sc.ctx, rd(ipa)).t;
    REQUIRE(tr.fault == FaultKind::input_size);
    d = translation_fault(r.sc, Transaction{2, false, 0, ipa, false, false, false}, tr);
    CHECK(d.event.id == evt::kTranslation);
    CHECK(d.event.s2);
    CHECK(d.event.ipa == ipa);
}

TEST_CASE("stage-2 faults carry S2, the IPA, and CLASS TT on a stage-1 table address or IN on the output",
          "[unit]") {
    Smmu u;
    NestedTables t(u.env, arm_cfg(false), arm_cfg(true));
    BumpAllocator guest_cfg{0x30'0000, 0x1000};
    REQUIRE(t.s2->map(0x30'0000, 0x30'0000 + NestedTables::kGuestBase, 0x1000, 12) == MapError::none);
    CdTableWriter cds(t.guest, [&](uint64_t b, uint64_t a) { return guest_cfg(b, a); }, 0, 0);
    REQUIRE(cds.write_cd(0, linux_cd(t.s1->config(), 3)));
    Ste s = ste(ste_cfg::kNested);
    s.s1_context_ptr = cds.context_ptr();
    set_s2(s, t.s2->config(), 7);
    REQUIRE(u.st.write_ste(1, s));
    REQUIRE(t.s1->map(0x7000, 0x4000'0000, 0x1000, 12) == MapError::none); // IPA 0x4000'0000 not in stage 2
    auto r = u.resolve(1);
    REQUIRE_FALSE(r.event);
    const Transaction tx{1, false, 0, 0x7008, false, false, false};
    Translation tr = u.core.translate(r.sc.ctx, rd(0x7008)).t;
    auto d = translation_fault(r.sc, tx, tr);
    CHECK(d.event.id == evt::kTranslation);
    CHECK(d.event.s2);
    CHECK(d.event.cls == EventClass::in);
    CHECK(d.event.ipa == 0x4000'0008);
    CHECK(d.event.input_addr == 0x7008);
    CHECK(d.record); // STE.S2R
    CHECK(d.abort);
    // The stage-1 tables' pages leave stage 2: the first table read faults at stage 2.
    REQUIRE(t.s2->unmap(0x10'0000, 0x10'0000) == MapError::none);
    u.core.invalidate(InvalidationScope{});
    tr = u.core.translate(r.sc.ctx, rd(0x7008)).t;
    d = translation_fault(r.sc, tx, tr);
    CHECK(d.event.s2);
    CHECK(d.event.cls == EventClass::tt);
    CHECK(d.event.ipa == t.s1->root()); // the top-level descriptor's IPA (index 0)
    s.s2r = false;
    REQUIRE(u.st.write_ste(1, s));
    CHECK_FALSE(translation_fault(u.resolve(1).sc, tx, tr).record);
}

TEST_CASE("a fault stalls with CD.S or STE.S2S on a stall-capable stream, and is then always recorded", "[unit]") {
    S1Stream s;
    s.set_cd([](Cd& c) { c.s = true, c.r = false; });
    auto d = s.fault(0x1000, true);
    CHECK(d.stall);
    CHECK(d.record);
    auto r = s.u.resolve(4);
    const Translation tr = s.u.core.translate(r.sc.ctx, wr(0x1000)).t;
    Transaction ats{4, false, 0, 0x1000, true, false, false, true};
    CHECK_FALSE(translation_fault(r.sc, ats, tr).stall); // ATS Translation Requests never stall
    r.sc.s1stalld = true;                                 // STE.S1STALLD: this stream may not stall
    CHECK_FALSE(translation_fault(r.sc, Transaction{4, false, 0, 0x1000, true}, tr).stall);
    Translation s2f = tr;
    s2f.fault_stage = 2;
    r.sc.stall_s2 = true;
    CHECK(translation_fault(r.sc, Transaction{4, false, 0, 0x1000, true}, s2f).stall);
    // The unit cannot hold it (STALL_MAX reached, or a requester that cannot wait): terminated,
    // recorded per S2R / CD.R like an unstalled fault.
    r.sc.record_s2 = false;
    const auto held = translation_fault(r.sc, Transaction{4, false, 0, 0x1000, true}, s2f, false);
    CHECK_FALSE(held.stall);
    CHECK_FALSE(held.record);
}

TEST_CASE("an unwalkable stage config is C_BAD_CD at stage 1 and C_BAD_STE at stage 2, always recorded",
          "[unit]") {
    StreamContext sc;
    Translation tr;
    tr.fault = FaultKind::invalid_config;
    tr.fault_stage = 1;
    auto d = translation_fault(sc, Transaction{}, tr);
    CHECK(d.event.id == evt::kBadCd);
    CHECK(d.record);
    CHECK_FALSE(d.stall);
    tr.fault_stage = 2;
    CHECK(translation_fault(sc, Transaction{}, tr).event.id == evt::kBadSte);
    tr.fault = FaultKind::memory_error;
    tr.fault_stage = 1;
    d = translation_fault(sc, Transaction{}, tr);
    CHECK(d.event.id == evt::kWalkEabt);
    CHECK(d.event.cls == EventClass::tt);
}

TEST_CASE("the stall table hands out unique STAGs up to STALL_MAX and releases them by RESUME or STALL_TERM",
          "[unit]") {
    StallTable st(3);
    auto a = st.stall(1, 100), b = st.stall(2, 200), c = st.stall(1, 300);
    REQUIRE((a && b && c));
    CHECK((*a != *b && *b != *c && *a != *c));
    CHECK_FALSE(st.stall(1, 400)); // STALL_MAX reached: the fault terminates instead
    CHECK_FALSE(st.resume(2, *a)); // a STAG of another stream: ignored
    CHECK(st.resume(1, *a) == 100u);
    CHECK_FALSE(st.resume(1, *a)); // already released
    auto d = st.stall(3, 500);
    REQUIRE(d);
    CHECK(*d != *b);
    CHECK(*d != *c);
    CHECK(st.terminate(1) == std::vector<uint64_t>{300});
    CHECK(st.size() == 2);
    CHECK(st.terminate(9).empty());
}
