// SPDX-License-Identifier: Apache-2.0
// The AMD-Vi unit on the shared shell, driven only through its MMIO registers
// and in-memory device table, GCR3 tables, command buffer and logs, with an
// ATS/PRI endpoint model as the device; fault injection (corrupted tables,
// malformed commands) ends in architected events, never a crash or a stuck queue.
#include <catch2/catch.hpp>
#include <algorithm>
#include <functional>
#include <memory>
#include <random>
#include <set>
#include <systemc>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

#include "models/iommu/amd/amd_iommu.hpp"
#include "models/iommu/common/table_builder.hpp"
#include "models/mem/memory.hpp"
#include "models/pcie/ats_endpoint.hpp"
#include "test/support/corruptor.hpp"
#include "test/support/stage_configs.hpp"

using namespace iommusim;
using namespace iommusim::iommu;
using namespace iommusim::iommu::amd;

namespace {

constexpr uint64_t bit(unsigned b) { return uint64_t{1} << b; }

struct Cpu : sc_core::sc_module {
    tlm_utils::simple_initiator_socket<Cpu> socket{"socket"};
    explicit Cpu(const sc_core::sc_module_name& n) : sc_module(n) {}
    void access(tlm::tlm_command cmd, uint32_t off, uint64_t& v, unsigned len) {
        tlm::tlm_generic_payload g;
        g.set_command(cmd);
        g.set_address(off);
        g.set_data_ptr(reinterpret_cast<unsigned char*>(&v));
        g.set_data_length(len);
        g.set_streaming_width(len);
        sc_core::sc_time d = sc_core::SC_ZERO_TIME;
        socket->b_transport(g, d);
        sc_core::wait(d);
    }
};

/// Two devices' upstream paths into the unit's one upstream socket (a root port pair).
struct Merge : sc_core::sc_module {
    tlm_utils::simple_target_socket<Merge> a{"a"}, b{"b"};
    tlm_utils::simple_initiator_socket<Merge> out{"out"};
    tlm_utils::simple_target_socket<Merge> down{"down"};
    tlm_utils::simple_initiator_socket<Merge> down_a{"down_a"}, down_b{"down_b"};
    pcie::Bdf rid_b;
    explicit Merge(const sc_core::sc_module_name& n) : sc_module(n) {
        a.register_b_transport(this, &Merge::up);
        b.register_b_transport(this, &Merge::up);
        down.register_b_transport(this, &Merge::route);
    }
    void up(tlm::tlm_generic_payload& t, sc_core::sc_time& d) { out->b_transport(t, d); }
    void route(tlm::tlm_generic_payload& t, sc_core::sc_time& d) {
        auto* m = t.get_extension<pcie::MessageExtension>();
        (m && m->route_id() == rid_b ? down_b : down_a)->b_transport(t, d);
    }
};

struct Rig {
    static constexpr uint64_t kCmd = 0x300'0000, kEvt = 0x310'0000, kPpr = 0x320'0000, kSem = 0x330'0000,
                              kMsi = 0xFEE0'0000;
    static constexpr uint16_t kDev = 0x0100, kDev2 = 0x0108;
    stats::Group root{"root"};
    mem::Memory memory{"memory", mem::MemoryParams{}, &root};
    Cpu cpu{"cpu"};
    Merge merge{"merge"};
    AmdParams params;
    std::unique_ptr<AmdIommu> unit;
    std::unique_ptr<pcie::AtsEndpoint> ep, ep2;
    BumpAllocator alloc{0x100'0000, 0x100'0000};
    std::unique_ptr<AmdTableWriter> tables;
    uint32_t tail = 0;
    uint64_t seq = 0;

    explicit Rig(pcie::AtsEndpointParams e = {}, AmdParams p = {}) : params(p) {
        unit = std::make_unique<AmdIommu>("amd0", params, &root);
        unit->mem.bind(memory.target);
        cpu.socket.bind(unit->mmio);
        e.rid = pcie::Bdf{kDev};
        ep = std::make_unique<pcie::AtsEndpoint>("ep", e, &root);
        pcie::AtsEndpointParams e2 = e;
        e2.rid = pcie::Bdf{kDev2};
        ep2 = std::make_unique<pcie::AtsEndpoint>("ep2", e2, &root);
        merge.rid_b = e2.rid;
        ep->upstream.bind(merge.a);
        ep2->upstream.bind(merge.b);
        merge.out.bind(unit->upstream);
        unit->ats_inv.bind(merge.down);
        merge.down_a.bind(ep->downstream);
        merge.down_b.bind(ep2->downstream);
        tables = std::make_unique<AmdTableWriter>(m(), std::ref(alloc), 16);
    }
    mem::SparseMemory& m() { return memory.store(); }
    void wr(uint32_t off, uint64_t v, unsigned len = 8) { cpu.access(tlm::TLM_WRITE_COMMAND, off, v, len); }
    uint64_t rd(uint32_t off, unsigned len = 8) {
        uint64_t v = 0;
        cpu.access(tlm::TLM_READ_COMMAND, off, v, len);
        return v;
    }
    uint64_t control() const {
        return bit(ctl::IOMMU_EN) | bit(ctl::EVT_LOG_EN) | bit(ctl::EVT_INT_EN) | bit(ctl::COMWAIT_EN) |
               bit(ctl::CMDBUF_EN) | bit(ctl::PPRLOG_EN) | bit(ctl::PPRINT_EN) | bit(ctl::PPR_EN) | bit(ctl::GT_EN) |
               uint64_t{ctl::INV_TO_1S} << ctl::INV_TIMEOUT;
    }
    /// As Linux brings the unit up: device table, command buffer, logs (256 events, 512 PPRs), MSI, enables.
    void enable() {
        wr(reg::DEV_TABLE, tables->devtab_register());
        wr(reg::CMD_BASE, kCmd | uint64_t{9} << 56);
        wr(reg::EVT_BASE, kEvt | uint64_t{8} << 56);
        wr(reg::PPR_BASE, kPpr | uint64_t{9} << 56);
        wr(reg::MSI_ADDR_LO, kMsi, 4);
        wr(reg::MSI_DATA, 0x41, 4);
        wr(reg::CONTROL, control());
    }
    /// A Mode-3 v1 table for `dev` in `domain` mapping iova -> pa (4 KiB); the DTE grants
    /// read (IR) and write (IW) as asked.
    std::unique_ptr<TableBuilder> host_table(uint16_t dev, uint16_t domain, bool ats = false, bool ir = true,
                                             bool iw = true) {
        auto t = TableBuilder::create(m(), iommu::test::amd_v1_cfg(3, 52), std::ref(alloc));
        REQUIRE(t);
        Dte d;
        d.v = d.tv = true;
        d.ir = ir;
        d.iw = iw;
        d.mode = 3;
        d.host_root = t->root();
        d.domain_id = domain;
        d.i = ats;
        tables->set_dte(dev, d);
        return t;
    }
    void command(const Command& c) {
        auto q = encode(c);
        m().write(kCmd + tail, q.data(), 16);
        tail = (tail + 16) % 8192;
        wr(reg::CMD_TAIL, tail, 4);
    }
    /// COMPLETION_WAIT with Linux's semaphore store; waits (bounded) for it.
    bool completion_wait(unsigned max_us = 100) {
        ++seq;
        command(linux_completion_wait(kSem, seq));
        for (unsigned i = 0; i < max_us * 10; ++i) {
            if (m().read_u64(kSem) == seq) return true;
            sc_core::wait(sc_core::sc_time(100, sc_core::SC_NS));
        }
        return false;
    }
    bool dma_write(pcie::AtsEndpoint& e, uint64_t iova, uint64_t v) {
        sc_core::sc_time d = sc_core::SC_ZERO_TIME;
        auto s = e.dma(iova, &v, 8, true, std::nullopt, d);
        sc_core::wait(d);
        return s == tlm::TLM_OK_RESPONSE;
    }
    uint64_t dma_read(pcie::AtsEndpoint& e, uint64_t iova, std::optional<uint32_t> pasid = std::nullopt) {
        uint64_t v = 0;
        sc_core::sc_time d = sc_core::SC_ZERO_TIME;
        auto s = e.dma(iova, &v, 8, false, pasid, d);
        sc_core::wait(d);
        return s == tlm::TLM_OK_RESPONSE ? v : ~uint64_t{0};
    }
    std::optional<Event> event(unsigned i) {
        std::array<uint64_t, 2> q{};
        m().read(kEvt + 16u * i, q.data(), 16);
        return Event::decode(q);
    }
    double stat(const std::string& path) const {
        const auto* s = root.find(path);
        REQUIRE(s);
        return stats::numeric_value(*s);
    }
    static void run(const std::function<void()>& scenario) {
        bool done = false;
        sc_core::sc_spawn([&] {
            scenario();
            done = true;
            sc_core::sc_stop();
        });
        sc_core::sc_start();
        REQUIRE(done);
    }
};

pcie::AtsEndpointParams no_ats() {
    pcie::AtsEndpointParams e;
    e.ats_enabled = false;
    return e;
}

} // namespace

TEST_CASE("AMD unit: DMA translates through the DTE and v1 table in memory", "[sc][amd]") {
    Rig r{no_ats()};
    Rig::run([&] {
        r.enable();
        auto t = r.host_table(Rig::kDev, 5);
        REQUIRE(t->map(0x4000'0000, 0x800'0000, 0x1000, 12) == MapError::none);
        r.m().write_u64(0x800'0010, 0xCAFE);
        CHECK(r.dma_read(*r.ep, 0x4000'0010) == 0xCAFE);
        CHECK(r.dma_read(*r.ep, 0x4000'0010) == 0xCAFE);
    });
    CHECK(r.stat("amd0.translation.iotlb.hits") == 1);
    CHECK(r.stat("amd0.dte_cache.misses") == 1);
}

TEST_CASE("AMD unit: an IO_PAGE_FAULT is written to the event log with an MSI", "[sc][amd]") {
    Rig r{no_ats()};
    Rig::run([&] {
        r.enable();
        auto t = r.host_table(Rig::kDev, 5);
        CHECK(r.dma_read(*r.ep, 0x5000) == ~uint64_t{0});
        CHECK(r.rd(reg::EVT_TAIL, 4) == 16);
        auto e = r.event(0);
        REQUIRE(e);
        CHECK(e->code == EventCode::io_page_fault);
        CHECK(e->device_id == Rig::kDev);
        CHECK(e->domain_id == 5);
        CHECK(e->address == 0x5000);
        CHECK(r.rd(reg::STATUS, 4) & st::EVT_INT);
        CHECK(r.m().read_u32(Rig::kMsi) == 0x41);
    });
}

TEST_CASE("AMD unit: a DTE granting only IR or only IW allows only that access", "[sc][amd]") {
    Rig r{no_ats()};
    Rig::run([&] {
        r.enable();
        auto ro = r.host_table(Rig::kDev, 1, false, true, false);  // IR = 1, IW = 0
        auto wo = r.host_table(Rig::kDev2, 2, false, false, true); // IR = 0, IW = 1
        r.m().write_u64(0x80'0000, 0x11);
        REQUIRE(ro->map(0x1000, 0x80'0000, 0x1000, 12) == MapError::none); // the PTEs grant both
        REQUIRE(wo->map(0x1000, 0x90'0000, 0x1000, 12) == MapError::none);
        CHECK(r.dma_read(*r.ep, 0x1000) == 0x11);
        CHECK_FALSE(r.dma_write(*r.ep, 0x1000, 0x22));
        CHECK(r.m().read_u64(0x80'0000) == 0x11); // the write never reached memory
        CHECK(r.dma_write(*r.ep2, 0x1000, 0x33));
        CHECK(r.m().read_u64(0x90'0000) == 0x33);
        CHECK(r.dma_read(*r.ep2, 0x1000) == ~uint64_t{0});
        auto w = r.event(0);
        REQUIRE(w);
        CHECK(w->code == EventCode::io_page_fault);
        CHECK(w->device_id == Rig::kDev);
        CHECK(w->address == 0x1000);
        CHECK((w->flags & (evf::PR | evf::PE | evf::RW)) == (evf::PR | evf::PE | evf::RW));
        auto rd = r.event(1);
        REQUIRE(rd);
        CHECK(rd->code == EventCode::io_page_fault);
        CHECK(rd->device_id == Rig::kDev2);
        CHECK((rd->flags & (evf::PR | evf::PE)) == (evf::PR | evf::PE));
        CHECK_FALSE(rd->flags & evf::RW);
    });
}

TEST_CASE("AMD unit: Mode 0 with only IR set passes reads untranslated and blocks writes", "[sc][amd]") {
    Rig r{no_ats()};
    Rig::run([&] {
        r.enable();
        Dte d;
        d.v = d.tv = d.ir = true;
        d.mode = 0;
        d.domain_id = 3;
        r.tables->set_dte(Rig::kDev, d);
        r.m().write_u64(0x80'0000, 0x44);
        CHECK(r.dma_read(*r.ep, 0x80'0000) == 0x44);
        CHECK_FALSE(r.dma_write(*r.ep, 0x80'0000, 0x55));
        CHECK(r.m().read_u64(0x80'0000) == 0x44);
        auto e = r.event(0);
        REQUIRE(e);
        CHECK(e->code == EventCode::io_page_fault);
    });
}

TEST_CASE("AMD unit: an ATS completion for a DTE without IW grants read only", "[sc][amd]") {
    Rig r{pcie::AtsEndpointParams{}};
    Rig::run([&] {
        r.enable();
        auto a = r.host_table(Rig::kDev, 1, true, true, false); // I = 1, IR = 1, IW = 0
        r.m().write_u64(0x80'0000, 0x66);
        REQUIRE(a->map(0x1000, 0x80'0000, 0x1000, 12) == MapError::none);
        CHECK(r.dma_read(*r.ep, 0x1000) == 0x66);
        CHECK(r.ep->atc_holds(0x1000, std::nullopt));
        CHECK_FALSE(r.dma_write(*r.ep, 0x1000, 0x77)); // the completion said W = 0
        CHECK(r.m().read_u64(0x80'0000) == 0x66);
    });
    CHECK(r.stat("ep.translation_no_access") >= 1);
}

TEST_CASE("AMD unit: a v1 leaf with U set answers ATS with U and the device goes untranslated", "[sc][amd]") {
    Rig r{pcie::AtsEndpointParams{}};
    Rig::run([&] {
        r.enable();
        auto a = r.host_table(Rig::kDev, 1, true);
        r.m().write_u64(0x80'0000, 0x88);
        r.m().write_u64(0x81'0000, 0x99);
        LeafAttrs u;
        u.untranslated_only = true;
        REQUIRE(a->map(0x1000, 0x80'0000, 0x1000, 12, u) == MapError::none);
        REQUIRE(a->map(0x2000, 0x81'0000, 0x1000, 12) == MapError::none);
        CHECK(r.dma_read(*r.ep, 0x1000) == 0x88);
        CHECK_FALSE(r.ep->atc_holds(0x1000, std::nullopt)); // U = 1: not cached by the device
        CHECK(r.dma_read(*r.ep, 0x1000) == 0x88);            // IOTLB hit: U kept with the entry
        CHECK_FALSE(r.ep->atc_holds(0x1000, std::nullopt));
        CHECK(r.dma_read(*r.ep, 0x2000) == 0x99);
        CHECK(r.ep->atc_holds(0x2000, std::nullopt));
    });
    CHECK(r.stat("ep.untranslated_requests") == 2);
    CHECK(r.stat("amd0.translation.iotlb.hits") >= 1);
}

TEST_CASE("AMD unit: INVALIDATE_IOMMU_PAGES drops exactly its domain and range", "[sc][amd]") {
    Rig r{no_ats()};
    Rig::run([&] {
        r.enable();
        auto a = r.host_table(Rig::kDev, 1);
        auto b = r.host_table(Rig::kDev2, 2);
        for (uint64_t pa : {0x80'0000ull, 0x80'1000ull, 0x80'2000ull, 0x90'0000ull, 0x90'1000ull, 0x90'2000ull})
            r.m().write_u64(pa, pa);
        REQUIRE(a->map(0x1000, 0x80'0000, 0x1000, 12) == MapError::none);
        REQUIRE(a->map(0x2000, 0x80'1000, 0x1000, 12) == MapError::none);
        REQUIRE(b->map(0x1000, 0x90'0000, 0x1000, 12) == MapError::none);
        CHECK(r.dma_read(*r.ep, 0x1000) == 0x80'0000);
        CHECK(r.dma_read(*r.ep, 0x2000) == 0x80'1000);
        CHECK(r.dma_read(*r.ep2, 0x1000) == 0x90'0000);
        // Software changes every mapping in memory but invalidates only domain 1, page 0x1000.
        REQUIRE(a->unmap(0x1000, 0x1000) == MapError::none);
        REQUIRE(a->map(0x1000, 0x80'2000, 0x1000, 12) == MapError::none);
        REQUIRE(a->unmap(0x2000, 0x1000) == MapError::none);
        REQUIRE(a->map(0x2000, 0x90'1000, 0x1000, 12) == MapError::none);
        REQUIRE(b->unmap(0x1000, 0x1000) == MapError::none);
        REQUIRE(b->map(0x1000, 0x90'2000, 0x1000, 12) == MapError::none);
        r.command(linux_inv_iommu_pages(1, 0x1000, 0x1000, false));
        REQUIRE(r.completion_wait());
        CHECK(r.dma_read(*r.ep, 0x1000) == 0x80'2000);  // invalidated: the new mapping
        CHECK(r.dma_read(*r.ep, 0x2000) == 0x80'1000);  // same domain, other page: still cached
        CHECK(r.dma_read(*r.ep2, 0x1000) == 0x90'0000); // other domain: still cached
        r.command(InvalidateIommuAll{});
        REQUIRE(r.completion_wait());
        CHECK(r.dma_read(*r.ep, 0x2000) == 0x90'1000);
        CHECK(r.dma_read(*r.ep2, 0x1000) == 0x90'2000);
    });
}

TEST_CASE("AMD unit: INVALIDATE_DEVTAB_ENTRY makes a changed DTE take effect", "[sc][amd]") {
    Rig r{no_ats()};
    Rig::run([&] {
        r.enable();
        auto a = r.host_table(Rig::kDev, 1);
        r.m().write_u64(0x80'0000, 1);
        r.m().write_u64(0x81'0000, 2);
        REQUIRE(a->map(0x1000, 0x80'0000, 0x1000, 12) == MapError::none);
        CHECK(r.dma_read(*r.ep, 0x1000) == 1);
        auto b = r.host_table(Rig::kDev, 2); // Linux attaches the device to a new domain
        REQUIRE(b->map(0x1000, 0x81'0000, 0x1000, 12) == MapError::none);
        CHECK(r.dma_read(*r.ep, 0x1000) == 1); // cached DTE and translation
        r.command(InvalidateDevtabEntry{Rig::kDev});
        REQUIRE(r.completion_wait());
        CHECK(r.dma_read(*r.ep, 0x1000) == 2); // new DTE: domain 2's table
    });
}

TEST_CASE("AMD unit: ATS translation and INVALIDATE_IOTLB_PAGES round trip, COMPLETION_WAIT waits for it",
          "[sc][amd]") {
    Rig r{pcie::AtsEndpointParams{}};
    Rig::run([&] {
        r.enable();
        auto a = r.host_table(Rig::kDev, 1, true);
        r.m().write_u64(0x80'0000, 7);
        REQUIRE(a->map(0x1000, 0x80'0000, 0x1000, 12) == MapError::none);
        CHECK(r.dma_read(*r.ep, 0x1000) == 7);
        CHECK(r.ep->atc_holds(0x1000, std::nullopt));
        r.command(linux_inv_iommu_pages(1, 0x1000, 0x1000, false));
        r.command(linux_inv_iotlb_pages(Rig::kDev, 0, 0x1000, 0x1000));
        REQUIRE(r.completion_wait());
        // The semaphore is written only after the device's Invalidate Completion.
        CHECK(r.ep->invalidations_completed() == 1);
        CHECK_FALSE(r.ep->atc_holds(0x1000, std::nullopt));
    });
    CHECK(r.stat("amd0.ats_invalidations_sent") == 1);
}

TEST_CASE("AMD unit: a translated request from a device without DTE.I is an INVALID_DEVICE_REQUEST",
          "[sc][amd]") {
    Rig r{pcie::AtsEndpointParams{}};
    Rig::run([&] {
        r.enable();
        auto a = r.host_table(Rig::kDev, 1, false); // DTE.I = 0
        REQUIRE(a->map(0x1000, 0x80'0000, 0x1000, 12) == MapError::none);
        CHECK(r.dma_read(*r.ep, 0x1000) == ~uint64_t{0});
        auto e = r.event(0);
        REQUIRE(e);
        CHECK(e->code == EventCode::invalid_device_request);
    });
}

TEST_CASE("AMD unit: an ATS invalidation without completion gives IOTLB_INV_TIMEOUT after Control.InvTimeOut",
          "[sc][amd]") {
    pcie::AtsEndpointParams e;
    e.drop_invalidations = true;
    Rig r{e};
    Rig::run([&] {
        r.enable();
        // InvTimeOut = 1 ms (encoding 1) instead of Linux's 1 s.
        r.wr(reg::CONTROL, (r.control() & ~(uint64_t{7} << ctl::INV_TIMEOUT)) | uint64_t{ctl::INV_TO_1MS} << ctl::INV_TIMEOUT);
        auto a = r.host_table(Rig::kDev, 1, true);
        REQUIRE(a->map(0x1000, 0x80'0000, 0x1000, 12) == MapError::none);
        r.dma_read(*r.ep, 0x1000);
        const uint32_t at = r.tail;
        r.command(linux_inv_iotlb_pages(Rig::kDev, 0, 0x1000, 0x1000));
        // The shell abandons the COMPLETION_WAIT behind the timed-out invalidation: no store.
        const sc_core::sc_time sent = sc_core::sc_time_stamp();
        CHECK_FALSE(r.completion_wait(990)); // not before the programmed 1 ms
        CHECK_FALSE(r.event(0));
        sc_core::wait(sc_core::sc_time(50, sc_core::SC_US));
        CHECK(r.m().read_u64(Rig::kSem) != r.seq); // abandoned: never stored
        CHECK(sc_core::sc_time_stamp() - sent >= sc_core::sc_time(1, sc_core::SC_MS));
        auto ev = r.event(0);
        REQUIRE(ev);
        CHECK(ev->code == EventCode::iotlb_inv_timeout);
        CHECK(ev->device_id == Rig::kDev);
        CHECK(ev->address == Rig::kCmd + at);
    });
    CHECK(r.stat("amd0.iotlb_inv_timeouts") == 1);
}

TEST_CASE("AMD unit: ILLEGAL_COMMAND_ERROR stops the command buffer until CmdBufEn is toggled", "[sc][amd]") {
    Rig r{no_ats()};
    Rig::run([&] {
        r.enable();
        std::array<uint64_t, 2> bad{uint64_t{0xB} << 60, 0};
        r.m().write(Rig::kCmd, bad.data(), 16);
        r.tail = 16;
        r.wr(reg::CMD_TAIL, 16, 4);
        sc_core::wait(sc_core::sc_time(2, sc_core::SC_US));
        CHECK(r.rd(reg::CMD_HEAD, 4) == 0); // the head stays on the bad command
        CHECK_FALSE(r.rd(reg::STATUS, 4) & st::CMDBUF_RUN);
        auto e = r.event(0);
        REQUIRE(e);
        CHECK(e->code == EventCode::illegal_command_error);
        CHECK(e->address == Rig::kCmd);
        CHECK_FALSE(r.completion_wait(5)); // nothing runs behind it
        // Software repairs the command and restarts the buffer (clear and set CmdBufEn).
        auto fixed = encode(InvalidateIommuAll{});
        r.m().write(Rig::kCmd, fixed.data(), 16);
        r.wr(reg::CONTROL, r.control() & ~bit(ctl::CMDBUF_EN));
        r.wr(reg::CONTROL, r.control());
        CHECK(r.completion_wait());
        CHECK(r.rd(reg::STATUS, 4) & st::CMDBUF_RUN);
    });
}

TEST_CASE("AMD unit: event-log overflow sets EventOverflow and drops events", "[sc][amd]") {
    Rig r{no_ats()};
    Rig::run([&] {
        r.enable();
        auto t = r.host_table(Rig::kDev, 5);
        for (unsigned i = 0; i < 256; ++i) r.dma_read(*r.ep, 0x10'0000 + 0x1000ull * i); // all unmapped
        CHECK(r.rd(reg::EVT_TAIL, 4) == 255 * 16); // one slot stays free
        CHECK(r.rd(reg::STATUS, 4) & st::EVT_OVERFLOW);
        CHECK_FALSE(r.rd(reg::STATUS, 4) & st::EVT_RUN);
    });
    CHECK(r.stat("amd0.events_dropped") == 1);
}

TEST_CASE("AMD unit: a page request goes to the PPR log and COMPLETE_PPR_REQUEST answers it", "[sc][amd]") {
    pcie::AtsEndpointParams e;
    e.pri_enabled = true;
    Rig r{e};
    Rig::run([&] {
        r.enable();
        // SVA-style: v2 table for PASID 3 through a one-level GCR3 table.
        StageConfig c;
        c.enabled = true;
        c.output_bits = 52;
        auto g = TableBuilder::create(r.m(), c, std::ref(r.alloc));
        REQUIRE(g);
        Dte d;
        d.v = d.tv = d.ir = d.iw = d.gv = d.i = d.ppr = true;
        d.domain_id = 9;
        d.gcr3_root = r.tables->new_gcr3_table();
        r.tables->set_gcr3(d.gcr3_root, 0, 3, g->root());
        r.tables->set_dte(Rig::kDev, d);
        pcie::PrgResponseCode code = pcie::PrgResponseCode::invalid_request;
        bool answered = false;
        sc_core::sc_spawn([&] {
            sc_core::sc_time dl = sc_core::SC_ZERO_TIME;
            code = r.ep->request_page(0x7000'1000, true, 3u, 0x15, dl);
            answered = true;
        });
        sc_core::wait(sc_core::sc_time(2, sc_core::SC_US));
        REQUIRE(r.rd(reg::PPR_TAIL, 4) == 16);
        std::array<uint64_t, 2> q{};
        r.m().read(Rig::kPpr, q.data(), 16);
        PprEntry p = PprEntry::decode(q);
        CHECK(p.device_id == Rig::kDev);
        CHECK(p.pasid == 3);
        CHECK(p.prg_index == 0x15);
        CHECK(p.last);
        CHECK(p.address == 0x7000'1000);
        CHECK(p.flags & pprf::WRITE);
        CHECK(p.flags & pprf::GN);
        CHECK_FALSE(answered);
        r.wr(reg::PPR_HEAD, 16, 4);
        r.command(CompletePprRequest{Rig::kDev, 3, true, p.prg_index, ppr_status::kSuccess});
        REQUIRE(r.completion_wait());
        sc_core::wait(sc_core::sc_time(2, sc_core::SC_US));
        CHECK(answered);
        CHECK(code == pcie::PrgResponseCode::success);
    });
}

TEST_CASE("AMD unit: PASID DMA through GCR3 and v2 tables, GN=1 invalidation drops only its PASID", "[sc][amd]") {
    Rig r{no_ats()};
    Rig::run([&] {
        r.enable();
        StageConfig c;
        c.enabled = true;
        c.output_bits = 52;
        auto g1 = TableBuilder::create(r.m(), c, std::ref(r.alloc));
        auto g2 = TableBuilder::create(r.m(), c, std::ref(r.alloc));
        REQUIRE((g1 && g2));
        Dte d;
        d.v = d.tv = d.ir = d.iw = d.gv = d.giov = true;
        d.glx = 1;
        d.domain_id = 4;
        d.gcr3_root = r.tables->new_gcr3_table();
        r.tables->set_gcr3(d.gcr3_root, 1, 0, g1->root());     // PASID 0: DMA API (GIoV)
        r.tables->set_gcr3(d.gcr3_root, 1, 0x2345, g2->root()); // an SVA PASID
        r.tables->set_dte(Rig::kDev, d);
        for (uint64_t pa : {0xA0'0000ull, 0xA1'0000ull, 0xB0'0000ull, 0xB1'0000ull}) r.m().write_u64(pa, pa);
        REQUIRE(g1->map(0x1000, 0xA0'0000, 0x1000, 12) == MapError::none);
        REQUIRE(g2->map(0x1000, 0xB0'0000, 0x1000, 12) == MapError::none);
        CHECK(r.dma_read(*r.ep, 0x1000) == 0xA0'0000);          // no PASID: GCR3[0]
        CHECK(r.dma_read(*r.ep, 0x1000, 0x2345u) == 0xB0'0000); // PASID 0x2345
        REQUIRE(g1->unmap(0x1000, 0x1000) == MapError::none);
        REQUIRE(g1->map(0x1000, 0xA1'0000, 0x1000, 12) == MapError::none);
        REQUIRE(g2->unmap(0x1000, 0x1000) == MapError::none);
        REQUIRE(g2->map(0x1000, 0xB1'0000, 0x1000, 12) == MapError::none);
        r.command(linux_inv_iommu_pages(4, 0x1000, 0x1000, true, 0x2345));
        REQUIRE(r.completion_wait());
        CHECK(r.dma_read(*r.ep, 0x1000, 0x2345u) == 0xB1'0000); // its PASID: the new mapping
        CHECK(r.dma_read(*r.ep, 0x1000) == 0xA0'0000);          // PASID 0 kept its cached translation
        r.command(linux_inv_iommu_pages(4, 0, kAllPagesAddress | 0xFFF, true, 0));
        REQUIRE(r.completion_wait());
        CHECK(r.dma_read(*r.ep, 0x1000) == 0xA1'0000);
    });
}

namespace {

/// Reads every record between EVT_HEAD and EVT_TAIL, checks each is an architected
/// event the corrupted-hardware test may cause, and consumes them (EVT_HEAD = tail);
/// after an overflow, restarts the log as Linux does (amd_iommu_restart_log:
/// EventLogEn off, EventOverflow cleared, EventLogEn on). Returns the count.
unsigned drain_events(Rig& r, std::vector<EventCode>* seen = nullptr) {
    static const std::set<EventCode> kExpected = {
        EventCode::illegal_dev_table_entry, EventCode::io_page_fault,         EventCode::dev_tab_hardware_error,
        EventCode::page_tab_hardware_error, EventCode::illegal_command_error, EventCode::command_hardware_error,
        EventCode::iotlb_inv_timeout,       EventCode::invalid_device_request};
    const uint32_t tail = static_cast<uint32_t>(r.rd(reg::EVT_TAIL, 4));
    unsigned n = 0;
    for (uint32_t head = static_cast<uint32_t>(r.rd(reg::EVT_HEAD, 4)); head != tail; head = (head + 16) % 4096, ++n) {
        std::array<uint64_t, 2> q{};
        r.m().read(Rig::kEvt + head, q.data(), 16);
        const auto e = Event::decode(q);
        REQUIRE(e);
        INFO("event " << to_string(e->code));
        CHECK(kExpected.count(e->code) == 1);
        if (seen) seen->push_back(e->code);
    }
    r.wr(reg::EVT_HEAD, tail, 4);
    if (r.rd(reg::STATUS, 4) & st::EVT_OVERFLOW) {
        r.wr(reg::CONTROL, r.rd(reg::CONTROL) & ~bit(ctl::EVT_LOG_EN));
        r.wr(reg::STATUS, st::EVT_OVERFLOW, 4);
        r.wr(reg::CONTROL, r.rd(reg::CONTROL) | bit(ctl::EVT_LOG_EN));
    }
    return n;
}

/// Queues `q`, then a COMPLETION_WAIT. The wait completes; or it is abandoned
/// behind a device invalidation that timed out (IOTLB_INV_TIMEOUT logged, every
/// command consumed: Linux's wait_on_sem gives up and carries on); or the buffer
/// stops on an illegal command (CmdBufRun clear, the head on it,
/// ILLEGAL_COMMAND_ERROR or COMMAND_HARDWARE_ERROR logged), which software fixes
/// by overwriting the command at the head with INVALIDATE_IOMMU_ALL and toggling
/// CmdBufEn. Returns false only if the queue is stuck.
bool submit_survives(Rig& r, const std::array<uint64_t, 2>& q) {
    r.m().write(Rig::kCmd + r.tail, q.data(), 16);
    r.tail = (r.tail + 16) % 8192;
    ++r.seq;
    r.command(linux_completion_wait(Rig::kSem, r.seq));
    auto logged = [](const std::vector<EventCode>& seen, std::initializer_list<EventCode> codes) {
        return std::any_of(seen.begin(), seen.end(),
                           [&](EventCode c) { return std::find(codes.begin(), codes.end(), c) != codes.end(); });
    };
    for (int round = 0; round < 4; ++round) {
        for (unsigned i = 0; i < 30000; ++i) { // 3 ms: beyond Control.InvTimeOut (1 ms here)
            if (r.m().read_u64(Rig::kSem) == r.seq) return true;
            if (!(r.rd(reg::STATUS, 4) & st::CMDBUF_RUN)) break;
            sc_core::wait(sc_core::sc_time(100, sc_core::SC_NS));
        }
        std::vector<EventCode> seen;
        drain_events(r, &seen);
        if (r.rd(reg::STATUS, 4) & st::CMDBUF_RUN) {
            if (r.rd(reg::CMD_HEAD, 4) != r.tail || !logged(seen, {EventCode::iotlb_inv_timeout})) return false;
            return true; // abandoned behind the timed-out invalidation, the buffer runs on
        }
        CHECK(logged(seen, {EventCode::illegal_command_error, EventCode::command_hardware_error}));
        const uint32_t head = static_cast<uint32_t>(r.rd(reg::CMD_HEAD, 4));
        const auto fixed = encode(InvalidateIommuAll{});
        r.m().write(Rig::kCmd + head, fixed.data(), 16);
        r.wr(reg::CONTROL, r.rd(reg::CONTROL) & ~bit(ctl::CMDBUF_EN));
        r.wr(reg::CONTROL, r.rd(reg::CONTROL) | bit(ctl::CMDBUF_EN));
    }
    return false;
}

/// Half: a command as Linux writes it with one bit flipped; half: random bits with
/// a random opcode. A COMPLETION_WAIT's store goes to `status_page` (a store into
/// the tables would be a corruption the test does not restore).
std::array<uint64_t, 2> random_command(std::mt19937_64& rng, uint64_t status_page) {
    static const std::array<uint64_t, 2> good[] = {
        encode(linux_completion_wait(status_page, 7)),
        encode(InvalidateDevtabEntry{Rig::kDev}),
        encode(linux_inv_iommu_pages(5, 0x4000'0000, 0x1000, false)),
        encode(linux_inv_iommu_pages(6, 0x4000'0000, 0x1000, true, 1)),
        encode(linux_inv_iotlb_pages(Rig::kDev2, 32, 0x4000'0000, 0x1000)),
        encode(InvalidateInterruptTable{Rig::kDev}),
        encode(InvalidateIommuAll{}),
    };
    std::array<uint64_t, 2> q{};
    if (rng() % 2) {
        q = good[rng() % std::size(good)];
        q[rng() % 2] ^= uint64_t{1} << (rng() % 64);
    } else {
        q = {rng(), rng()};
        q[0] = (q[0] & ~(uint64_t{0xF} << 60)) | (rng() % 16) << 60;
    }
    if ((q[0] >> 60) == static_cast<uint64_t>(Opcode::completion_wait))
        q[0] = (q[0] & ~uint64_t{0x000F'FFFF'FFFF'FFF8}) | (status_page + 8 * (rng() % 16));
    return q;
}

} // namespace

TEST_CASE("AMD unit survives corrupted device table, GCR3 and page tables and malformed commands with architected events",
          "[sc][amd][property]") {
    Rig r; // ATS on: translation requests and INVALIDATE_IOTLB_PAGES reach the endpoints
    Rig::run([&] {
        r.enable();
        // InvTimeOut 1 ms: device invalidations nobody answers end quickly.
        r.wr(reg::CONTROL, (r.control() & ~(uint64_t{7} << ctl::INV_TIMEOUT)) |
                               uint64_t{ctl::INV_TO_1MS} << ctl::INV_TIMEOUT);
        constexpr uint64_t kWindow = 0x4000'0000;
        constexpr unsigned kPages = 16;
        // kDev: a v1 host table (DomainID 5, ATS allowed); kDev2: GCR3 with v2 tables for
        // requests without PASID (GIoV) and PASID 1 (DomainID 6).
        auto host = r.host_table(Rig::kDev, 5, true);
        StageConfig c;
        c.enabled = true;
        c.output_bits = 52;
        auto guest = TableBuilder::create(r.m(), c, std::ref(r.alloc));
        REQUIRE(guest);
        Dte d;
        d.v = d.tv = d.ir = d.iw = d.gv = d.giov = d.i = true;
        d.glx = 1;
        d.domain_id = 6;
        d.gcr3_root = r.tables->new_gcr3_table();
        r.tables->set_gcr3(d.gcr3_root, 1, 0, guest->root());
        r.tables->set_gcr3(d.gcr3_root, 1, 1, guest->root());
        r.tables->set_dte(Rig::kDev2, d);
        for (unsigned k = 0; k < kPages; ++k) {
            REQUIRE(host->map(kWindow + k * 4096, 0x800'0000 + k * 4096, 0x1000, 12) == MapError::none);
            REQUIRE(guest->map(kWindow + k * 4096, 0x900'0000 + k * 4096, 0x1000, 12) == MapError::none);
        }
        const uint64_t status_page = *r.alloc(4096, 4096);
        // The area: the two DTEs, then everything allocated after the device table.
        const uint64_t lo = r.tables->devtab_base() + 16 * 4096, hi = status_page;
        std::vector<uint64_t> live = iommusim::test::Corruptor::nonzero_words(r.m(), lo, hi);
        for (uint16_t dev : {Rig::kDev, Rig::kDev2})
            for (unsigned w = 0; w < 4; ++w) live.push_back(r.tables->dte_addr(dev) + 8 * w);
        iommusim::test::Corruptor corrupt(r.m(), live, lo, hi);
        auto flush_all = [&] {
            REQUIRE(submit_survives(r, encode(InvalidateDevtabEntry{Rig::kDev})));
            REQUIRE(submit_survives(r, encode(InvalidateDevtabEntry{Rig::kDev2})));
            REQUIRE(submit_survives(r, encode(InvalidateIommuAll{})));
        };
        corrupt.run_seeds(
            3, 250, flush_all, [&](std::mt19937_64& g) { REQUIRE(submit_survives(r, random_command(g, status_page))); },
            [&](std::mt19937_64& g) { // a DMA (kDev2 with or without PASID 1), read or write
                const bool second = g() % 2;
                const auto pasid = second && g() % 2 ? std::optional<uint32_t>(1) : std::nullopt;
                uint64_t v = 0;
                sc_core::sc_time t = sc_core::SC_ZERO_TIME;
                const auto s = (second ? r.ep2 : r.ep)->dma(kWindow + (g() % (kPages + 2)) * 4096, &v, 8, g() % 2,
                                                            pasid, t);
                sc_core::wait(t);
                return s;
            },
            [&] { return drain_events(r); },
            [&] { // both devices translate again
                CHECK(r.dma_read(*r.ep, kWindow + 0x10) != ~uint64_t{0});
                CHECK(r.dma_read(*r.ep2, kWindow + 0x10) != ~uint64_t{0});
                CHECK(r.dma_read(*r.ep2, kWindow + 0x10, 1u) != ~uint64_t{0});
            });
    });
}
