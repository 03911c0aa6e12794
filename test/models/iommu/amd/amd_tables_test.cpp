// SPDX-License-Identifier: Apache-2.0
// AMD-Vi device table / GCR3 layouts, checks and context resolution, with the
// core walker translating through v1 and v2 tables built in simulated memory.
#include <catch2/catch.hpp>

#include "models/iommu/amd/amd_tables.hpp"
#include "models/iommu/common/walker.hpp"
#include "test/models/iommu/common/fixture.hpp"

using namespace iommusim;
using namespace iommusim::iommu;
using namespace iommusim::iommu::amd;

namespace {
constexpr uint64_t b(unsigned n) { return uint64_t{1} << n; }

struct Amd {
    mem::SparseMemory mem{uint64_t{1} << 40};
    BumpAllocator tables{0x100'0000, 0x1000'0000};
    AmdParams p;
    AmdTableWriter w{mem, std::ref(tables)};
    AmdTableReader r{p};
    PhysMemWalkPort port{mem};
    stats::Group root{"t"};
    Walker walker{port, test::no_caches(), &root};
    bool gt_enabled = true;

    DevTable dt() const { return DevTable::from_register(w.devtab_register()); }

    std::unique_ptr<TableBuilder> host(unsigned mode) {
        StageConfig c = test::amd_v1_cfg(mode);
        c.output_bits = 52;
        auto t = TableBuilder::create(mem, c, std::ref(tables));
        REQUIRE(t);
        return t;
    }
    std::unique_ptr<TableBuilder> guest(unsigned levels = 4, mem::PhysMem* m = nullptr,
                                        TableAllocator alloc = nullptr) {
        StageConfig c = test::x86_cfg(levels);
        c.output_bits = 52;
        auto t = TableBuilder::create(m ? *m : mem, c, alloc ? alloc : TableAllocator(std::ref(tables)));
        REQUIRE(t);
        return t;
    }
    static Dte host_dte(unsigned mode, uint64_t root, uint16_t dom = 5) {
        Dte d;
        d.v = d.tv = d.ir = d.iw = true;
        d.mode = static_cast<uint8_t>(mode);
        d.host_root = root;
        d.domain_id = dom;
        return d;
    }
    /// A DTE with a fresh GCR3 table of glx + 1 levels holding `cr3` for `pasid`.
    Dte guest_dte(uint8_t glx, uint32_t pasid, uint64_t cr3, unsigned mode = 0, uint64_t host_root = 0) {
        Dte d = host_dte(mode, host_root);
        d.gv = true;
        d.glx = glx;
        d.gcr3_root = w.new_gcr3_table();
        w.set_gcr3(d.gcr3_root, glx, pasid, cr3);
        return d;
    }

    struct Out {
        Resolved res;
        Translation t;
        uint64_t walk_reads = 0;
    };
    Out translate(uint16_t dev, uint64_t iova, bool write = false, std::optional<uint32_t> pasid = std::nullopt) {
        RequestInfo ri;
        ri.device_id = dev;
        ri.addr = iova;
        ri.write = write;
        ri.has_pasid = pasid.has_value();
        ri.pasid = pasid.value_or(0);
        Out o;
        o.res = r.resolve(mem, dt(), ri, gt_enabled);
        AccessRequest req{iova, write, false, false};
        if (o.res.kind == Resolved::Kind::translate) {
            WalkOutcome wo = walker.walk(o.res.ctx, req);
            o.walk_reads = wo.reads;
            o.t = AmdTableReader::apply_dte_rights(o.res, wo.t, req);
        } else if (o.res.kind == Resolved::Kind::pass_through) {
            Translation t;
            t.output = iova;
            t.set_rights(perm::all, false);
            o.t = AmdTableReader::apply_dte_rights(o.res, t, req);
        }
        return o;
    }
    RequestInfo req(uint16_t dev, uint64_t addr) const {
        RequestInfo ri;
        ri.device_id = dev;
        ri.addr = addr;
        return ri;
    }
};
} // namespace

TEST_CASE("DTE fields sit at the bit positions of spec-layouts.md B.1", "[unit][amd]") {
    auto only = [](auto set) {
        Dte d;
        set(d);
        return d.encode();
    };
    using Q = std::array<uint64_t, 4>;
    CHECK(only([](Dte& d) { d.v = true; }) == Q{b(0), 0, 0, 0});
    CHECK(only([](Dte& d) { d.tv = true; }) == Q{b(1), 0, 0, 0});
    CHECK(only([](Dte& d) { d.had = 3; }) == Q{b(7) | b(8), 0, 0, 0}); // Linux DTE_FLAG_HAD
    CHECK(only([](Dte& d) { d.mode = 6; }) == Q{uint64_t{6} << 9, 0, 0, 0});
    CHECK(only([](Dte& d) { d.host_root = 0x000F'FFFF'FFFF'F000ull; }) == Q{0x000F'FFFF'FFFF'F000ull, 0, 0, 0});
    CHECK(only([](Dte& d) { d.ppr = true; }) == Q{b(52), 0, 0, 0});
    CHECK(only([](Dte& d) { d.giov = true; }) == Q{b(54), 0, 0, 0});
    CHECK(only([](Dte& d) { d.gv = true; }) == Q{b(55), 0, 0, 0});
    CHECK(only([](Dte& d) { d.glx = 2; }) == Q{b(57), 0, 0, 0});
    CHECK(only([](Dte& d) { d.ir = true; }) == Q{b(61), 0, 0, 0});
    CHECK(only([](Dte& d) { d.iw = true; }) == Q{b(62), 0, 0, 0});
    CHECK(only([](Dte& d) { d.domain_id = 0xBEEF; }) == Q{0, 0xBEEF, 0, 0});
    CHECK(only([](Dte& d) { d.i = true; }) == Q{0, b(32), 0, 0}); // Linux DTE_FLAG_IOTLB
    CHECK(only([](Dte& d) { d.se = true; }) == Q{0, b(33), 0, 0});
    CHECK(only([](Dte& d) { d.sa = true; }) == Q{0, b(34), 0, 0}); // Linux DEV_ENTRY_NO_PAGE_FAULT 0x62
    CHECK(only([](Dte& d) { d.ex = true; }) == Q{0, b(39), 0, 0}); // DEV_ENTRY_EX 0x67
    CHECK(only([](Dte& d) { d.sysmgt = 3; }) == Q{0, b(40) | b(41), 0, 0});
    CHECK(only([](Dte& d) { d.iv = true; }) == Q{0, 0, b(0), 0});
    CHECK(only([](Dte& d) { d.int_tab_len = 9; }) == Q{0, 0, uint64_t{9} << 1, 0}); // DTE_INTTABLEN
    CHECK(only([](Dte& d) { d.irt_root = 0x000F'FFFF'FFFF'FFC0ull; }) == Q{0, 0, 0x000F'FFFF'FFFF'FFC0ull, 0});
    CHECK(only([](Dte& d) { d.gpm = 1; }) == Q{0, 0, b(54), 0}); // DTE_GPT_LEVEL_SHIFT 54
    CHECK(only([](Dte& d) { d.init_pass = true; }) == Q{0, 0, b(56), 0});
    CHECK(only([](Dte& d) { d.intctl = 2; }) == Q{0, 0, uint64_t{2} << 60, 0}); // DTE_IRQ_REMAP_INTCTL
    CHECK(only([](Dte& d) { d.lint1_pass = true; }) == Q{0, 0, b(63), 0});
}

TEST_CASE("The GCR3 root pointer is split over 60:58, 95:80 and 127:107", "[unit][amd]") {
    Dte d;
    const uint64_t root = 0x000F'EDCB'A987'6000ull;
    d.gcr3_root = root;
    auto q = d.encode();
    CHECK(((q[0] >> 58) & 0x7) == ((root >> 12) & 0x7));         // DTE_GCR3_VAL_A
    CHECK(((q[1] >> 16) & 0xFFFF) == ((root >> 15) & 0xFFFF));    // DTE_GCR3_VAL_B
    CHECK(((q[1] >> 43) & 0x1FFFFF) == ((root >> 31) & 0x1FFFFF)); // DTE_GCR3_VAL_C
    CHECK(Dte::decode(q).gcr3_root == root);
}

TEST_CASE("DTE decode inverts encode for every field", "[unit][amd]") {
    Dte d;
    d.v = d.tv = d.ppr = d.gprp = d.giov = d.gv = d.ir = d.iw = true;
    d.had = 2;
    d.mode = 5;
    d.host_root = 0x1234'5678'9000ull;
    d.glx = 1;
    d.domain_id = 0x4321;
    d.gcr3_root = 0x000A'BCDE'F012'3000ull;
    d.i = d.se = d.sa = d.cache = d.sd = d.ex = true;
    d.ioctl = 2;
    d.sysmgt = 1;
    d.iv = d.ig = d.init_pass = d.eint_pass = d.nmi_pass = d.lint0_pass = d.lint1_pass = true;
    d.int_tab_len = 9;
    d.irt_root = 0x0000'0045'6789'ABC0ull;
    d.gpm = 1;
    d.intctl = 2;
    d.q3 = b(20);
    CHECK(Dte::decode(d.encode()) == d);
    CHECK_FALSE(Dte::reserved_set(d.encode()));
}

TEST_CASE("The writer puts DTEs at base + 32 * DeviceID and programs Linux's 2 MiB table", "[unit][amd]") {
    Amd a;
    CHECK((a.w.devtab_register() & 0x1FF) == 0x1FF);
    CHECK(a.dt().entries == 65536);
    Dte d = Amd::host_dte(3, 0x5000);
    a.w.set_dte(0x0102, d);
    std::array<uint64_t, 4> q{};
    a.mem.read(a.w.devtab_base() + 32 * 0x0102, q.data(), 32);
    CHECK(q == d.encode());
    CHECK(a.w.get_dte(0x0102) == d);
}

TEST_CASE("GCR3 tables: intermediate entries point at the next table with V, the leaf holds CR3 | V",
          "[unit][amd]") {
    Amd a;
    const uint64_t root = a.w.new_gcr3_table();
    const uint32_t pasid = (0x100u << 9) | 0x1A3; // PASID[17:9] = 0x100, [8:0] = 0x1A3
    a.w.set_gcr3(root, 1, pasid, 0x7654'3000);
    uint64_t top = a.mem.read_u64(root + 8 * ((pasid >> 9) & 0x1FF));
    REQUIRE((top & gcr3::V) == 1);
    CHECK((top & ~uint64_t{0xFFF}) != 0);
    CHECK(a.mem.read_u64((top & ~uint64_t{0xFFF}) + 8 * (pasid & 0x1FF)) == (0x7654'3000 | gcr3::V));
    CHECK(a.w.gcr3_entry_addr(root, 1, pasid) == (top & ~uint64_t{0xFFF}) + 8 * (pasid & 0x1FF));
    a.w.clear_gcr3(root, 1, pasid);
    CHECK(a.mem.read_u64(*a.w.gcr3_entry_addr(root, 1, pasid)) == 0);
    CHECK(AmdTableWriter::glx_for(16) == 1); // Linux get_gcr3_levels
    CHECK(AmdTableWriter::glx_for(9) == 0);
    CHECK(AmdTableWriter::glx_for(20) == 2);
}

TEST_CASE("Every host paging mode 1-6 walks Mode levels of v1 tables", "[unit][amd]") {
    for (unsigned mode = 1; mode <= 6; ++mode) {
        CAPTURE(mode);
        Amd a;
        auto h = a.host(mode);
        // The highest index bit of the top level set, so every level's index is exercised.
        const uint64_t iova = (uint64_t{1} << (mode == 6 ? 63 : 12 + 9 * mode - 1)) | 0x5000;
        REQUIRE(h->map(iova, 0xABC000, 0x1000, 12) == MapError::none);
        a.w.set_dte(0x10, Amd::host_dte(mode, h->root()));
        auto o = a.translate(0x10, iova + 0x123);
        REQUIRE(o.res.kind == Resolved::Kind::translate);
        CHECK(o.res.ctx.s2.enabled);
        CHECK_FALSE(o.res.ctx.s1.enabled);
        CHECK(o.res.ctx.s2.levels == mode);
        CHECK(o.res.ctx.s2.input_bits == (mode == 6 ? 64 : 12 + 9 * mode));
        CHECK(o.res.ctx.domain_tag == 5);
        CHECK(o.res.reads == 1);
        REQUIRE(o.t.ok());
        CHECK(o.walk_reads == mode);
        CHECK(o.t.output == 0xABC123);
    }
}

TEST_CASE("An address beyond the Mode's width is an IO_PAGE_FAULT with PR clear", "[unit][amd]") {
    Amd a;
    auto h = a.host(3);
    a.w.set_dte(0x10, Amd::host_dte(3, h->root()));
    auto o = a.translate(0x10, b(39));
    REQUIRE(o.res.kind == Resolved::Kind::translate);
    REQUIRE(o.t.fault == FaultKind::input_size);
    RequestInfo ri = a.req(0x10, b(39));
    Event e = AmdTableReader::walk_fault_event(ri, o.res, o.t);
    CHECK(e.code == EventCode::io_page_fault);
    CHECK_FALSE(e.flags & evf::PR);
    CHECK(e.domain_id == 5);
    CHECK(e.address == b(39));
}

TEST_CASE("Level skipping: a Mode-4 root entry may point straight at a level-2 table", "[unit][amd]") {
    Amd a;
    auto page = [&] { return *a.tables(4096, 4096); };
    const uint64_t l4 = page(), l2 = page(), l1 = page();
    constexpr uint64_t PR = 1, IRW = b(61) | b(62);
    const uint64_t iova = 0x0000'0080'0060'3000ull; // level-4 index 1, level-3 index 0, level-2 index 3, level-1 index 3
    a.mem.write_u64(l4 + 8 * 1, l2 | PR | (uint64_t{2} << 9) | IRW);
    a.mem.write_u64(l2 + 8 * 3, l1 | PR | (uint64_t{1} << 9) | IRW);
    a.mem.write_u64(l1 + 8 * 3, 0x77'7000 | PR | IRW);
    a.w.set_dte(0x10, Amd::host_dte(4, l4));
    auto o = a.translate(0x10, iova);
    REQUIRE(o.t.ok());
    CHECK(o.walk_reads == 3);
    CHECK(o.t.output == 0x77'7000);
    // A non-zero index for the skipped level faults.
    auto bad = a.translate(0x10, iova | b(30));
    CHECK(bad.t.fault == FaultKind::address_size);
}

TEST_CASE("NextLevel 7 maps a power-of-two page by trailing ones, FC forces snooping", "[unit][amd]") {
    Amd a;
    auto h = a.host(3);
    LeafAttrs attrs;
    attrs.snoop = true;
    REQUIRE(h->map(0x40'0000, 0x80'0000, 0x4000, 14, attrs) == MapError::none); // 16 KiB at level 1
    auto pte = a.mem.read_u64(*h->descriptor_address(0x40'0000, 1));
    CHECK(((pte >> 9) & 7) == 7);
    CHECK(pte & b(60)); // FC
    a.w.set_dte(0x10, Amd::host_dte(3, h->root()));
    auto o = a.translate(0x10, 0x40'2ABC);
    REQUIRE(o.t.ok());
    CHECK(o.t.output == 0x80'2ABC);
    CHECK(o.t.page_shift == 14);
    CHECK(o.t.snoop);
}

TEST_CASE("IR/IW are ANDed from the DTE down to the leaf", "[unit][amd]") {
    Amd a;
    auto h = a.host(3);
    LeafAttrs ro;
    ro.perms = perm::both(true, false, true);
    REQUIRE(h->map(0x1000, 0x9000, 0x1000, 12) == MapError::none);
    REQUIRE(h->map(0x2000, 0xA000, 0x1000, 12, ro) == MapError::none);
    Dte d = Amd::host_dte(3, h->root());
    a.w.set_dte(0x10, d);
    CHECK(a.translate(0x10, 0x1000, true).t.ok());
    CHECK(a.translate(0x10, 0x2000, true).t.fault == FaultKind::permission); // PTE without IW
    CHECK(a.translate(0x10, 0x2000, false).t.ok());
    d.iw = false;
    a.w.set_dte(0x10, d);
    auto o = a.translate(0x10, 0x1000, true); // DTE without IW
    CHECK(o.t.fault == FaultKind::permission);
    Event e = AmdTableReader::walk_fault_event(a.req(0x10, 0x1000), o.res, o.t);
    CHECK((e.flags & (evf::PR | evf::PE)) == (evf::PR | evf::PE));
    auto rd = a.translate(0x10, 0x1000, false);
    REQUIRE(rd.t.ok());
    CHECK(rd.t.read);
    CHECK_FALSE(rd.t.write); // what an ATS completion reports
}

TEST_CASE("Mode 0 translates nothing under IR/IW, V=0 and TV=0 pass unchecked", "[unit][amd]") {
    Amd a;
    Dte d = Amd::host_dte(0, 0);
    d.iw = false;
    a.w.set_dte(0x10, d);
    auto o = a.translate(0x10, 0x1234'5678, false);
    CHECK(o.res.kind == Resolved::Kind::pass_through);
    REQUIRE(o.t.ok());
    CHECK(o.t.output == 0x1234'5678);
    CHECK(a.translate(0x10, 0x1234'5678, true).t.fault == FaultKind::permission);
    d.ir = false; // Linux's blocked domain: V, TV, Mode 0, no IR/IW
    a.w.set_dte(0x10, d);
    CHECK(a.translate(0x10, 0x1000, false).t.fault == FaultKind::permission);
    Dte off; // V = 0
    a.w.set_dte(0x11, off);
    CHECK(a.translate(0x11, 0x1000, true).t.ok());
    Dte no_tv = Amd::host_dte(3, 0);
    no_tv.tv = false;
    no_tv.ir = no_tv.iw = false;
    a.w.set_dte(0x12, no_tv);
    auto p = a.translate(0x12, 0x1000, true);
    CHECK(p.res.kind == Resolved::Kind::pass_through);
    CHECK(p.t.ok());
}

TEST_CASE("GV with GLX 0, 1 and 2 walks the GCR3 table by PASID to the guest table", "[unit][amd]") {
    for (uint8_t glx : {uint8_t{0}, uint8_t{1}, uint8_t{2}}) {
        CAPTURE(glx);
        Amd a;
        a.p.glx_max = 2;
        a.p.pasid_bits = 20;
        const uint32_t pasid = glx == 0 ? 0x1A5u : glx == 1 ? 0x9ABCu : 0xABCDEu;
        auto g = a.guest(4);
        REQUIRE(g->map(0x7F00'1234'5000ull, 0x5'6000, 0x1000, 12) == MapError::none);
        Dte d = a.guest_dte(glx, pasid, g->root());
        d.domain_id = 9;
        a.w.set_dte(0x20, d);
        auto o = a.translate(0x20, 0x7F00'1234'5678ull, false, pasid);
        REQUIRE(o.res.kind == Resolved::Kind::translate);
        CHECK(o.res.reads == 1u + glx + 1u); // DTE + one GCR3 entry per level
        CHECK(o.res.ctx.s1.enabled);
        CHECK_FALSE(o.res.ctx.s2.enabled);
        CHECK(o.res.ctx.s1.root == g->root());
        CHECK(o.res.ctx.s1.levels == 4);
        CHECK(o.res.ctx.as_tag == pasid);
        CHECK(o.res.ctx.domain_tag == 9);
        REQUIRE(o.t.ok());
        CHECK(o.walk_reads == 4);
        CHECK(o.t.output == 0x5'6678);
        // A PASID beyond what GLX covers is an IO_PAGE_FAULT with GN and the PASID.
        if (glx < 2) {
            const uint32_t big = 1u << (9 * (glx + 1));
            auto f = a.translate(0x20, 0x1000, false, big);
            REQUIRE(f.res.kind == Resolved::Kind::event);
            CHECK(f.res.event->code == EventCode::io_page_fault);
            CHECK(f.res.event->flags & evf::GN);
            CHECK(f.res.event->pasid == big);
        }
    }
}

TEST_CASE("5-level guest paging mode selects a 5-level v2 walk", "[unit][amd]") {
    Amd a;
    auto g = a.guest(5);
    REQUIRE(g->map(0x00AB'0000'1234'5000ull, 0x9000, 0x1000, 12) == MapError::none);
    Dte d = a.guest_dte(0, 3, g->root());
    d.gpm = 1;
    a.w.set_dte(0x20, d);
    auto o = a.translate(0x20, 0x00AB'0000'1234'5000ull, false, 3u);
    REQUIRE(o.t.ok());
    CHECK(o.res.ctx.s1.levels == 5);
    CHECK(o.walk_reads == 5);
}

TEST_CASE("GIoV sends requests without PASID through GCR3[0]", "[unit][amd]") {
    Amd a;
    auto g = a.guest(4);
    REQUIRE(g->map(0x10'0000, 0xC'0000, 0x1000, 12) == MapError::none);
    Dte d = a.guest_dte(1, 0, g->root()); // Linux: v2 DMA-API domain, PASID 0, GV + GIoV
    d.giov = true;
    a.w.set_dte(0x30, d);
    auto o = a.translate(0x30, 0x10'0010);
    REQUIRE(o.res.kind == Resolved::Kind::translate);
    CHECK(o.res.ctx.as_tag == 0);
    CHECK(o.res.ctx.s1.enabled);
    REQUIRE(o.t.ok());
    CHECK(o.t.output == 0xC'0010);
    // Without GIoV the same request is not guest-translated: Mode 0 passes it through.
    d.giov = false;
    a.w.set_dte(0x30, d);
    CHECK(a.translate(0x30, 0x10'0010).res.kind == Resolved::Kind::pass_through);
}

TEST_CASE("GV over Mode 4 is a v2-over-v1 nested walk: 24 reads once A/D are set", "[unit][amd]") {
    Amd a;
    constexpr uint64_t kGuestBase = 0x2'0000'0000ull; // GPA g lives at SPA g + kGuestBase
    test::OffsetMem gmem{a.mem, kGuestBase};
    BumpAllocator gtables{0x10'0000, 0x10'0000};
    auto h = a.host(4);
    REQUIRE(h->map(0x10'0000, 0x10'0000 + kGuestBase, 0x10'0000, 12) == MapError::none); // guest table pages
    auto g = a.guest(4, &gmem, std::ref(gtables));
    REQUIRE(g->map(0x4000'0000, 0x30'0000, 0x1000, 12) == MapError::none);
    REQUIRE(h->map(0x30'0000, 0x30'0000 + kGuestBase, 0x1000, 12) == MapError::none);
    Dte d = a.guest_dte(0, 5, g->root(), 4, h->root());
    a.w.set_dte(0x40, d);
    // The first walk also sets A (and D for the write) in the guest table, as the IOMMU does in
    // v2 tables; each update needs the table page's host translation, so it reads more.
    auto first = a.translate(0x40, 0x4000'0ABC, true, 5u);
    REQUIRE(first.t.ok());
    CHECK(first.walk_reads > 24);
    CHECK(gmem.read_u64(g->root() + 8 * ((0x4000'0000ull >> 39) & 0x1FF)) & b(5)); // PML4E.A
    auto o = a.translate(0x40, 0x4000'0ABC, true, 5u);
    REQUIRE(o.res.kind == Resolved::Kind::translate);
    CHECK(o.res.ctx.s1.enabled);
    CHECK(o.res.ctx.s2.enabled);
    CHECK(o.res.ctx.s2.format == PtFormat::amd_v1);
    REQUIRE(o.t.ok());
    CHECK(o.walk_reads == 24);
    CHECK(o.t.output == 0x30'0ABC + kGuestBase);
    // The same DTE translates requests without PASID through the host table alone.
    REQUIRE(h->map(0x50'0000, 0x60'0000, 0x1000, 12) == MapError::none);
    auto host_only = a.translate(0x40, 0x50'0004);
    REQUIRE(host_only.t.ok());
    CHECK_FALSE(host_only.res.ctx.s1.enabled);
    CHECK(host_only.t.output == 0x60'0004);
}

TEST_CASE("Under nesting the GCR3 table root is a GPA read through the host table", "[unit][amd]") {
    Amd a;
    constexpr uint64_t kGuestBase = 0x2'0000'0000ull; // GPA g lives at SPA g + kGuestBase
    test::OffsetMem gmem{a.mem, kGuestBase};
    BumpAllocator gtables{0x10'0000, 0x10'0000};
    auto h = a.host(4);
    REQUIRE(h->map(0x10'0000, 0x10'0000 + kGuestBase, 0x10'0000, 12) == MapError::none); // guest tables
    auto g = a.guest(4, &gmem, std::ref(gtables));
    REQUIRE(g->map(0x4000'0000, 0x30'0000, 0x1000, 12) == MapError::none);
    REQUIRE(h->map(0x30'0000, 0x30'0000 + kGuestBase, 0x1000, 12) == MapError::none);
    // The guest's own GCR3 table in guest memory (what Linux's set_dte_nested copies from the guest DTE).
    AmdTableWriter gw{gmem, std::ref(gtables), 1};
    const uint64_t gcr3 = gw.new_gcr3_table();
    gw.set_gcr3(gcr3, 0, 0, g->root());
    Dte d = Amd::host_dte(4, h->root());
    d.gv = d.giov = true;
    d.gcr3_root = gcr3;
    a.w.set_dte(0x40, d);
    unsigned s2_calls = 0;
    Walker& wk = a.walker;
    const AmdTableReader::Stage2Fn s2 = [&](const TranslationContext& c, uint64_t gpa) {
        ++s2_calls;
        return wk.walk(c, AccessRequest{gpa, false, false, false}).t;
    };
    RequestInfo ri = a.req(0x40, 0x4000'0010);
    const Resolved res = a.r.resolve(a.mem, a.dt(), ri, true, &s2);
    REQUIRE(res.kind == Resolved::Kind::translate);
    CHECK(s2_calls == 1); // one GCR3 level (GLX 0), its address translated
    CHECK(res.ctx.s1.root == g->root());
    const Translation t = a.walker.walk(res.ctx, AccessRequest{0x4000'0010, false, false, false}).t;
    REQUIRE(t.ok());
    CHECK(t.output == 0x30'0010 + kGuestBase);
    // A GCR3 root the host table does not map: IO_PAGE_FAULT, nothing read at that address.
    d.gcr3_root = 0x7000'0000;
    a.w.set_dte(0x41, d);
    const Resolved bad = a.r.resolve(a.mem, a.dt(), a.req(0x41, 0x4000'0010), true, &s2);
    REQUIRE(bad.kind == Resolved::Kind::event);
    CHECK(bad.event->code == EventCode::io_page_fault);
}

TEST_CASE("DTE.I and DTE.PPR allow ATS and page requests, SA suppresses page-fault events", "[unit][amd]") {
    Amd a;
    auto h = a.host(3);
    Dte d = Amd::host_dte(3, h->root());
    d.i = true;
    d.ppr = true;
    d.sa = true;
    a.w.set_dte(0x10, d);
    auto o = a.translate(0x10, 0x1000);
    CHECK(o.res.ctx.ats_allowed);
    CHECK(o.res.ctx.pri_allowed);
    CHECK(o.res.ctx.fault_suppress);
    // A PASID request to a DTE without GV: a suppressed IO_PAGE_FAULT.
    auto f = a.translate(0x10, 0x1000, false, 4u);
    REQUIRE(f.res.kind == Resolved::Kind::event);
    CHECK(f.res.event->code == EventCode::io_page_fault);
    CHECK(f.res.suppressed);
}

TEST_CASE("Each illegal DTE gives ILLEGAL_DEV_TABLE_ENTRY", "[unit][amd]") {
    struct Case {
        const char* what;
        std::function<void(Amd&, Dte&, std::array<uint64_t, 4>&)> make;
        bool rz;
    };
    auto raw = [](unsigned q, unsigned bitno) {
        return [q, bitno](Amd&, Dte&, std::array<uint64_t, 4>& r) { r[q] |= b(bitno); };
    };
    std::vector<Case> cases = {
        {"reserved q0 bit 2", raw(0, 2), true},
        {"reserved q0 bit 6", raw(0, 6), true},
        {"reserved q0 bit 63", raw(0, 63), true},
        {"reserved q2 bit 52", raw(2, 52), true},
        {"reserved q3 bit 0", raw(3, 0), true},
        {"reserved q3 bit 53", raw(3, 53), true},
        {"Mode 7", [](Amd&, Dte& d, auto&) { d.mode = 7; }, false},
        {"Mode above HATS", [](Amd& a, Dte& d, auto&) { a.p.host_levels = 4; d.mode = 5; }, false},
        {"root beyond the address width", [](Amd& a, Dte& d, auto&) { a.p.output_bits = 40; d.host_root = b(45); }, true},
        {"HAD without HASup", [](Amd&, Dte& d, auto&) { d.had = 3; }, false},
        {"PPR without PPRSup", [](Amd& a, Dte& d, auto&) { a.p.ppr = false; d.ppr = true; }, false},
        {"GIoV without GIoSup", [](Amd& a, Dte& d, auto&) { a.p.guest_io_protection = false; d.giov = true; }, false},
        {"GV without GTSup", [](Amd& a, Dte& d, auto&) { a.p.guest_translation = false; d.gv = true; }, false},
        {"GV with GTEn clear", [](Amd& a, Dte& d, auto&) { a.gt_enabled = false; d.gv = true; }, false},
        {"GLX above GLXSup", [](Amd& a, Dte& d, auto&) { a.p.glx_max = 1; d.gv = true; d.glx = 2; }, false},
        {"GLX 3", [](Amd& a, Dte& d, auto&) { a.p.glx_max = 2; d.gv = true; d.glx = 3; }, false},
        {"GPM 2", [](Amd&, Dte& d, auto&) { d.gv = true; d.gpm = 2; }, false},
        {"5-level GPM without GATS", [](Amd& a, Dte& d, auto&) { a.p.guest_levels = 4; d.gv = true; d.gpm = 1; }, false},
    };
    for (auto& c : cases) {
        CAPTURE(c.what);
        Amd a;
        Dte d = Amd::host_dte(3, 0x1000);
        std::array<uint64_t, 4> r{};
        c.make(a, d, r);
        auto q = d.encode();
        for (int i = 0; i < 4; ++i) q[static_cast<size_t>(i)] |= r[static_cast<size_t>(i)];
        a.mem.write(a.w.dte_addr(0x0050), q.data(), 32);
        RequestInfo ri = a.req(0x0050, 0xDEAD'B000);
        ri.write = true;
        Resolved res = a.r.resolve(a.mem, a.dt(), ri, a.gt_enabled);
        REQUIRE(res.kind == Resolved::Kind::event);
        CHECK(res.event->code == EventCode::illegal_dev_table_entry);
        CHECK(res.event->device_id == 0x0050);
        CHECK(res.event->address == 0xDEAD'B000);
        CHECK(bool(res.event->flags & evf::RW));
        CHECK(bool(res.event->flags & evf::RZ) == c.rz);
    }
}

TEST_CASE("Device-table and GCR3 read errors and GCR3 faults give the architected events", "[unit][amd]") {
    Amd a;
    SECTION("a DeviceID beyond the device table size is an illegal DTE") {
        DevTable small{a.w.devtab_base(), 128};
        Resolved res = a.r.resolve(a.mem, small, a.req(200, 0x1000), true);
        REQUIRE(res.event);
        CHECK(res.event->code == EventCode::illegal_dev_table_entry);
    }
    SECTION("a device table outside memory is DEV_TAB_HARDWARE_ERROR at the DTE address") {
        DevTable out{(uint64_t{1} << 40) - 4096, 65536};
        Resolved res = a.r.resolve(a.mem, out, a.req(200, 0x1000), true);
        REQUIRE(res.event);
        CHECK(res.event->code == EventCode::dev_tab_hardware_error);
        CHECK(res.event->address == out.base + 32 * 200);
    }
    SECTION("GCR3 entry with V clear: IO_PAGE_FAULT with GN and the PASID") {
        Dte d = a.guest_dte(0, 1, 0x8000);
        a.w.set_dte(0x60, d);
        auto o = a.translate(0x60, 0x1000, false, 2u);
        REQUIRE(o.res.event);
        CHECK(o.res.event->code == EventCode::io_page_fault);
        CHECK(o.res.event->pasid == 2);
        CHECK(o.res.event->flags & evf::GN);
        CHECK_FALSE(o.res.event->flags & evf::PR);
    }
    SECTION("GCR3 entry with reserved bits: IO_PAGE_FAULT with RZ") {
        Dte d = a.guest_dte(0, 1, 0x8000);
        a.w.set_dte(0x60, d);
        a.mem.write_u64(d.gcr3_root + 8, 0x8000 | 1 | b(60));
        auto o = a.translate(0x60, 0x1000, false, 1u);
        REQUIRE(o.res.event);
        CHECK(o.res.event->flags & evf::RZ);
    }
    SECTION("a GCR3 table outside memory is PAGE_TAB_HARDWARE_ERROR at the entry address") {
        Dte d = Amd::host_dte(0, 0);
        d.gv = true;
        d.gcr3_root = uint64_t{1} << 40; // the end of the test memory
        a.w.set_dte(0x60, d);
        auto o = a.translate(0x60, 0x1000, false, 3u);
        REQUIRE(o.res.event);
        CHECK(o.res.event->code == EventCode::page_tab_hardware_error);
        CHECK(o.res.event->address == (uint64_t{1} << 40) + 8 * 3);
    }
}

TEST_CASE("Walk faults map to IO_PAGE_FAULT flags and PAGE_TAB_HARDWARE_ERROR", "[unit][amd]") {
    Amd a;
    auto h = a.host(3);
    a.w.set_dte(0x10, Amd::host_dte(3, h->root()));
    RequestInfo ri = a.req(0x10, 0x5000);
    ri.type = RequestInfo::Type::translation_request;
    auto np = a.translate(0x10, 0x5000);
    REQUIRE(np.t.fault == FaultKind::not_present);
    Event e = AmdTableReader::walk_fault_event(ri, np.res, np.t);
    CHECK(e.code == EventCode::io_page_fault);
    CHECK((e.flags & (evf::PR | evf::TR)) == evf::TR);
    // A reserved bit in a PTE (bits 58:52).
    REQUIRE(h->map(0x6000, 0x9000, 0x1000, 12) == MapError::none);
    auto pa = *h->descriptor_address(0x6000, 1);
    a.mem.write_u64(pa, a.mem.read_u64(pa) | b(55));
    auto rz = a.translate(0x10, 0x6000);
    REQUIRE(rz.t.fault == FaultKind::reserved_bits);
    CHECK(AmdTableReader::walk_fault_event(ri, rz.res, rz.t).flags & evf::RZ);
    // A PDE pointing outside memory.
    auto pde = *h->descriptor_address(0x6000, 2);
    a.mem.write_u64(pde, (a.mem.read_u64(pde) & ~bits(51, 12)) | ((uint64_t{1} << 40) & bits(51, 12)));
    auto me = a.translate(0x10, 0x6000);
    REQUIRE(me.t.fault == FaultKind::memory_error);
    CHECK(AmdTableReader::walk_fault_event(ri, me.res, me.t).code == EventCode::page_tab_hardware_error);
}

TEST_CASE("ATS requests need DTE.I: otherwise INVALID_DEVICE_REQUEST", "[unit][amd]") {
    Amd a;
    auto h = a.host(3);
    Dte d = Amd::host_dte(3, h->root());
    a.w.set_dte(0x10, d);
    RequestInfo ri = a.req(0x10, 0x1000);
    ri.type = RequestInfo::Type::translation_request;
    Resolved res = a.r.resolve(a.mem, a.dt(), ri, true);
    auto e = AmdTableReader::check_ats(res, ri);
    REQUIRE(e);
    CHECK(e->code == EventCode::invalid_device_request);
    CHECK(((e->flags >> evf::kTypeShift) & 7) == static_cast<unsigned>(InvalidRequestType::translation_not_allowed));
    CHECK(e->flags & evf::TR);
    ri.type = RequestInfo::Type::translated;
    CHECK(((AmdTableReader::check_ats(res, ri)->flags >> evf::kTypeShift) & 7) ==
          static_cast<unsigned>(InvalidRequestType::translated_not_allowed));
    ri.type = RequestInfo::Type::untranslated;
    CHECK_FALSE(AmdTableReader::check_ats(res, ri));
    d.i = true;
    a.w.set_dte(0x10, d);
    ri.type = RequestInfo::Type::translated;
    CHECK_FALSE(AmdTableReader::check_ats(a.r.resolve(a.mem, a.dt(), ri, true), ri));
}

TEST_CASE("Page requests become PPR log entries when DTE.PPR and PPREn allow them", "[unit][amd]") {
    Amd a;
    Dte d = a.guest_dte(0, 0x11, 0x8000);
    d.ppr = true;
    a.w.set_dte(0x20, d);
    RequestInfo ri = a.req(0x20, 0x7000'1234);
    ri.has_pasid = true;
    ri.pasid = 0x11;
    ri.type = RequestInfo::Type::page_request;
    Resolved res = a.r.resolve(a.mem, a.dt(), ri, true);
    auto o = AmdTableReader::page_request(res, ri, true, true, true, 0x1A5, true);
    REQUIRE(o.entry);
    CHECK(o.entry->device_id == 0x20);
    CHECK(o.entry->pasid == 0x11);
    CHECK(o.entry->prg_index == 0x1A5);
    CHECK(o.entry->last);
    CHECK(o.entry->address == 0x7000'1000);
    CHECK(o.entry->flags == (pprf::GN | pprf::READ | pprf::WRITE | pprf::US));
    CHECK_FALSE(AmdTableReader::page_request(res, ri, true, false, false, 1, false).entry); // PPREn clear
    d.ppr = false;
    a.w.set_dte(0x20, d);
    auto bad = AmdTableReader::page_request(a.r.resolve(a.mem, a.dt(), ri, true), ri, true, false, false, 1, true);
    REQUIRE(bad.event);
    CHECK(bad.event->code == EventCode::invalid_ppr_request);
    CHECK(bad.event->pasid == 0x11);
}
