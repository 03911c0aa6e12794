// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "models/iommu/vtd/vtd_tables.hpp"
#include "models/mem/sparse_memory.hpp"

using namespace iommusim;
using namespace iommusim::iommu;
using namespace iommusim::iommu::vtd;

namespace {
struct Fixture {
    mem::SparseMemory mem{uint64_t{1} << 40};
    uint64_t next = 0x100000;
    VtdParams params;
    VtdTableWriter w{mem, [this] { uint64_t a = next; next += 4096; return a; }};
    VtdTableReader r{params};

    PasidEntry fl_entry(uint16_t did, uint64_t root) {
        PasidEntry e;
        e.present = true;
        e.pgtt = static_cast<uint8_t>(Pgtt::first_stage);
        e.did = did;
        e.flptptr = root;
        e.pwsnp = true;
        return e;
    }
    /// Full resolution as the IOMMU performs it.
    uint8_t resolve(pcie::Bdf rid, RequestAttrs req, TranslationContext& out, bool* fpd = nullptr) {
        auto c = r.read_context(mem, w.root_table(), true, rid);
        if (fpd) *fpd = c.status.fpd;
        if (!c.status.ok()) return c.status.fault;
        uint32_t pasid = 0;
        auto s = r.check_request(c.entry, req, pasid);
        if (!s.ok()) return s.fault;
        auto p = r.read_pasid(mem, c.entry, pasid);
        if (fpd) *fpd = p.status.fpd;
        if (!p.status.ok()) return p.status.fault;
        auto m = r.make_context(c.entry, p.entry, pasid, out);
        if (!m.ok()) return m.fault;
        return VtdTableReader::check_pasid_permissions(p.entry, req);
    }
};
} // namespace

TEST_CASE("VT-d context and PASID entries encode at the spec-layouts A.2/A.4 bit positions", "[unit][vtd]") {
    SmContextEntry ce;
    ce.present = ce.dte = ce.paside = ce.pre = true;
    ce.pdts = 7;
    ce.pasid_dir = 0xABCDE000;
    ce.rid_pasid = 0x54321;
    auto q = ce.encode();
    CHECK(q[0] == (0xABCDE000ull | 7u << 9 | 0b11101));
    CHECK(q[1] == 0x54321);
    CHECK(q[2] == 0);
    CHECK(q[3] == 0);
    auto d = SmContextEntry::decode(q);
    REQUIRE(d);
    CHECK(d->pdts == 7);
    CHECK(d->rid_pasid == 0x54321);
    CHECK(d->pasid_dir == 0xABCDE000);

    PasidEntry pe;
    pe.present = true;
    pe.aw = 2;
    pe.pgtt = 3;
    pe.slptptr = 0x1111000;
    pe.did = 0xBEEF;
    pe.pgsnp = true;
    pe.sre = true;
    pe.flpm = 1;
    pe.wpe = true;
    pe.flptptr = 0x2222000;
    auto p = pe.encode();
    CHECK(p[0] == (0x1111000ull | 3u << 6 | 2u << 2 | 1));
    CHECK(p[1] == (0xBEEFull | 1ull << 24));
    CHECK(p[2] == (0x2222000ull | 1u << 4 | 1u << 2 | 1));
    auto pd = PasidEntry::decode(p);
    REQUIRE(pd);
    CHECK(pd->did == 0xBEEF);
    CHECK(pd->flptptr == 0x2222000);
    CHECK(pd->pgtt == 3);
}

TEST_CASE("VT-d context resolution: every PGTT mode yields the matching TranslationContext", "[unit][vtd]") {
    Fixture fx;
    const pcie::Bdf rid(0x03, 0x00, 0x0);
    auto ce = fx.w.make_context(rid, 0, true, true, true, 0);
    PasidEntry fl = fx.fl_entry(5, 0x500000);
    fl.sre = true;
    fx.w.set_pasid_entry(ce, 7, fl);
    PasidEntry sl;
    sl.present = true;
    sl.pgtt = 2;
    sl.aw = 1;
    sl.did = 6;
    sl.slptptr = 0x600000;
    fx.w.set_pasid_entry(ce, 8, sl);
    PasidEntry ne = fl;
    ne.pgtt = 3;
    ne.aw = 2;
    ne.slptptr = 0x700000;
    ne.flpm = 1;
    ne.did = 9;
    fx.w.set_pasid_entry(ce, 9, ne);
    PasidEntry pt;
    pt.present = true;
    pt.pgtt = 4;
    pt.did = 1;
    pt.pgsnp = true;
    fx.w.set_pasid_entry(ce, 10, pt);

    TranslationContext c;
    RequestAttrs req;
    req.has_pasid = true;
    req.pasid = 7;
    REQUIRE(fx.resolve(rid, req, c) == 0);
    CHECK(c.s1.enabled);
    CHECK_FALSE(c.s2.enabled);
    CHECK(c.s1.format == PtFormat::x86_64);
    CHECK(c.s1.levels == 4);
    CHECK(c.s1.root == 0x500000);
    CHECK(c.domain_tag == 5);
    CHECK(c.as_tag == 7);
    CHECK(c.ats_allowed);
    CHECK(c.pri_allowed);
    CHECK(c.allow_supervisor);

    req.pasid = 8;
    REQUIRE(fx.resolve(rid, req, c) == 0);
    CHECK_FALSE(c.s1.enabled);
    CHECK(c.s2.enabled);
    CHECK(c.s2.format == PtFormat::vtd_ss);
    CHECK(c.s2.levels == 3);
    CHECK(c.s2.input_bits == 39);
    CHECK(c.s2.root == 0x600000);

    req.pasid = 9;
    REQUIRE(fx.resolve(rid, req, c) == 0);
    CHECK(c.s1.enabled);
    CHECK(c.s2.enabled);
    CHECK(c.s1.levels == 5);
    CHECK(c.s2.levels == 4);
    CHECK(c.s1.root == 0x500000);
    CHECK(c.s2.root == 0x700000);
    CHECK(c.domain_tag == 9);

    req.pasid = 10;
    REQUIRE(fx.resolve(rid, req, c) == 0);
    CHECK(c.pass_through);
    CHECK(c.force_snoop);
}

TEST_CASE("VT-d requests without PASID resolve through the context entry's RID_PASID", "[unit][vtd]") {
    Fixture fx;
    const pcie::Bdf rid(0x05, 0x01, 0x2);
    auto ce = fx.w.make_context(rid, 2, false, false, false, 300); // RID_PASID 300 -> dir index 4
    fx.w.set_pasid_entry(ce, 300, fx.fl_entry(42, 0x900000));
    TranslationContext c;
    RequestAttrs req; // no PASID
    REQUIRE(fx.resolve(rid, req, c) == 0);
    CHECK(c.as_tag == 300);
    CHECK(c.domain_tag == 42);
    // Upper half of the bus (devfn >= 0x80) uses the upper context table.
    const pcie::Bdf upper(0x05, 0x1F, 0x7);
    auto ce2 = fx.w.make_context(upper, 0, false, false, false, 0);
    fx.w.set_pasid_entry(ce2, 0, fx.fl_entry(43, 0xA00000));
    REQUIRE(fx.resolve(upper, req, c) == 0);
    CHECK(c.domain_tag == 43);
    const uint64_t root_hi = fx.mem.read_u64(fx.w.root_entry_addr(5) + 8);
    CHECK((root_hi & 1) == 1); // UP
}

TEST_CASE("VT-d context resolution reports the architected fault reason for each broken level", "[unit][vtd]") {
    Fixture fx;
    const pcie::Bdf rid(0x01, 0x00, 0x0);
    TranslationContext c;
    RequestAttrs req;
    req.has_pasid = true;
    req.pasid = 65;

    SECTION("non-present root entry") { CHECK(fx.resolve(rid, req, c) == fr::kRootNotPresent); }
    SECTION("reserved bits in the root entry") {
        fx.mem.write_u64(fx.w.root_entry_addr(1), 0x200000 | 1 | 0x10);
        CHECK(fx.resolve(rid, req, c) == fr::kRootReserved);
    }
    auto ce = fx.w.make_context(rid, 0, false, true, false, 0);
    const uint64_t cea = fx.w.context_entry_addr(rid);
    SECTION("non-present context entry") {
        fx.mem.write_u64(cea, fx.mem.read_u64(cea) & ~uint64_t{1});
        CHECK(fx.resolve(rid, req, c) == fr::kCtxNotPresent);
    }
    SECTION("reserved bits in the context entry") {
        fx.mem.write_u64(cea + 16, 1);
        CHECK(fx.resolve(rid, req, c) == fr::kCtxReserved);
    }
    SECTION("non-present PASID directory entry") { CHECK(fx.resolve(rid, req, c) == fr::kPdNotPresent); }
    SECTION("PASID beyond PDTS") {
        req.pasid = 128 * 64; // directory index 128 >= 2^(0+7)
        CHECK(fx.resolve(rid, req, c) == fr::kCtxPasidTooLarge);
    }
    SECTION("request with PASID while PASIDE is clear") {
        auto ce2 = ce;
        ce2.paside = false;
        fx.w.set_context(rid, ce2);
        CHECK(fx.resolve(rid, req, c) == fr::kCtxPasidDisabled);
    }
    SECTION("ATS request while DTE is clear") {
        req.ats = true;
        CHECK(fx.resolve(rid, req, c) == fr::kCtxDteClear);
    }
    fx.w.set_pasid_entry(ce, 64, fx.fl_entry(3, 0x400000)); // creates the PASID table for dir slot 1
    SECTION("non-present PASID table entry") { CHECK(fx.resolve(rid, req, c) == fr::kPeNotPresent); }
    fx.w.set_pasid_entry(ce, 65, fx.fl_entry(3, 0x400000));
    SECTION("present entry resolves") { CHECK(fx.resolve(rid, req, c) == 0); }
    SECTION("reserved PGTT values") {
        for (uint8_t pg : {0, 5, 6, 7}) {
            auto e = fx.fl_entry(3, 0x400000);
            e.pgtt = pg;
            fx.w.set_pasid_entry(ce, 65, e);
            CHECK(fx.resolve(rid, req, c) == fr::kPeInvalid);
        }
    }
    SECTION("reserved bits in the PASID entry") {
        const uint64_t a = fx.w.pasid_entry_addr(ce, 65);
        fx.mem.write_u64(a + 8, fx.mem.read_u64(a + 8) | (1ull << 16));
        CHECK(fx.resolve(rid, req, c) == fr::kPeReserved);
    }
    SECTION("a DID beyond the CAP.ND domain-id width is a reserved field") {
        fx.params.nd = 2; // 2^(4 + 2 * 2) = 256 domain IDs: DID bits 15:8 are reserved (§11.4.2 ND)
        fx.w.set_pasid_entry(ce, 65, fx.fl_entry(0x100, 0x400000));
        CHECK(fx.resolve(rid, req, c) == fr::kPeReserved);
        fx.w.set_pasid_entry(ce, 65, fx.fl_entry(0xFF, 0x400000));
        CHECK(fx.resolve(rid, req, c) == 0);
    }
    SECTION("second-stage AW not supported by SAGAW") {
        fx.params.sl_5level = false;
        auto e = fx.fl_entry(3, 0);
        e.pgtt = 2;
        e.aw = 3;
        fx.w.set_pasid_entry(ce, 65, e);
        CHECK(fx.resolve(rid, req, c) == fr::kPeInvalid);
    }
    SECTION("supervisor request without SRE") {
        req.privileged = true;
        CHECK(fx.resolve(rid, req, c) == fr::kPeSreClear);
    }
    SECTION("FPD in the PASID entry is reported for suppression") {
        auto e = fx.fl_entry(3, 0x400000);
        e.fpd = true;
        fx.w.set_pasid_entry(ce, 65, e);
        bool fpd = false;
        CHECK(fx.resolve(rid, req, c, &fpd) == 0);
        CHECK(fpd);
        CHECK(c.fault_suppress);
    }
    SECTION("root table outside memory gives an access fault") {
        auto cl = fx.r.read_context(fx.mem, (uint64_t{1} << 40) - 8, true, rid);
        CHECK(cl.status.fault == fr::kRootAccess);
    }
    SECTION("legacy mode (TTM 0) is refused") {
        auto cl = fx.r.read_context(fx.mem, fx.w.root_table(), false, rid);
        CHECK(cl.status.fault == fr::kInvalidRootTable);
    }
}
