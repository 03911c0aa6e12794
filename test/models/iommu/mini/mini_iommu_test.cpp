// SPDX-License-Identifier: Apache-2.0
// The test-only family of mini_iommu.hpp on the shared shell: DMA through its
// linear context table, fault records in its event queue, and its commands
// (invalidate-all, invalidate-context, sync with status write) on the shared
// queue engine.
#include <catch2/catch.hpp>
#include <functional>
#include <memory>
#include <systemc>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

#include "models/iommu/common/table_builder.hpp"
#include "models/mem/memory.hpp"
#include "test/models/iommu/mini/mini_iommu.hpp"
#include "test/support/sc_run.hpp"

using namespace minifam;

namespace {

struct Initiator : sc_core::sc_module {
    tlm_utils::simple_initiator_socket<Initiator> socket{"socket"};
    explicit Initiator(const sc_core::sc_module_name& n) : sc_module(n) {}
    tlm::tlm_response_status access(tlm::tlm_command cmd, uint64_t addr, uint64_t& v, pcie::TlpExtension* ext) {
        tlm::tlm_generic_payload g;
        g.set_command(cmd);
        g.set_address(addr);
        g.set_data_ptr(reinterpret_cast<unsigned char*>(&v));
        g.set_data_length(8);
        g.set_streaming_width(8);
        g.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
        if (ext) g.set_extension(ext);
        sc_core::sc_time d = sc_core::SC_ZERO_TIME;
        socket->b_transport(g, d);
        if (ext) g.clear_extension(ext);
        sc_core::wait(d);
        return g.get_response_status();
    }
};

/// Where the unit's messages to devices go (this family sends only PRG Responses).
struct Sink : sc_core::sc_module {
    tlm_utils::simple_target_socket<Sink> socket{"socket"};
    int messages = 0;
    explicit Sink(const sc_core::sc_module_name& n) : sc_module(n) {
        socket.register_b_transport(this, &Sink::b_transport);
    }
    void b_transport(tlm::tlm_generic_payload& t, sc_core::sc_time&) {
        messages += t.get_extension<pcie::MessageExtension>() != nullptr;
        t.set_response_status(tlm::TLM_OK_RESPONSE);
    }
};

struct Rig {
    stats::Group root{"root"};
    iommusim::mem::Memory memory{"memory", iommusim::mem::MemoryParams{}, &root};
    Initiator cpu{"cpu"}, dev{"dev"};
    Sink sink{"sink"};
    std::unique_ptr<MiniIommu> unit;
    BumpAllocator alloc{0x100000, 0x1000000};
    static constexpr uint64_t kCtx = 0x2000000, kQueue = 0x3000000, kEvents = 0x3100000, kStatus = 0x3200000;
    uint64_t tail = 0;
    std::unique_ptr<TableBuilder> pt;

    Rig() {
        ShellParams p;
        p.core.iotlb.geometry = CacheGeometry{64, 4};
        p.iotlb_lookup = p.pipeline = Duration::ns(2);
        p.table_read = Duration::ns(100);
        p.status_write = Duration::ns(60);
        p.queue = CommandQueueCosts{Duration::ns(100), Duration::ns(40), Duration::ns(1), Duration::ns(20),
                                    Duration::ns(60)};
        p.ats_timeout = Duration::us(10);
        p.ats = false;
        unit = std::make_unique<MiniIommu>("mini0", p, &root);
        unit->mem.bind(memory.target);
        cpu.socket.bind(unit->mmio);
        dev.socket.bind(unit->upstream);
        unit->ats_inv.bind(sink.socket);
    }
    iommusim::mem::SparseMemory& m() { return memory.store(); }
    void wr(uint32_t off, uint64_t v) { cpu.access(tlm::TLM_WRITE_COMMAND, off, v, nullptr); }
    uint64_t rd(uint32_t off) {
        uint64_t v = 0;
        cpu.access(tlm::TLM_READ_COMMAND, off, v, nullptr);
        return v;
    }
    void enable() {
        wr(reg::CTXT, kCtx);
        wr(reg::CQB, kQueue | 8);   // 256 commands
        wr(reg::EQB, kEvents | 4);  // 16 records
        wr(reg::CTRL, 3);
    }
    /// A 4-level x86-64 table mapping iova -> pa, and the context entry of `rid` pointing at it.
    void map(uint16_t rid, uint16_t domain, uint64_t iova, uint64_t pa) {
        StageConfig c;
        c.enabled = true;
        pt = TableBuilder::create(m(), c, std::ref(alloc));
        REQUIRE(pt);
        REQUIRE(pt->map(iova, pa, 4096, 12) == MapError::none);
        m().write_u64(kCtx + rid * 16u, pt->root() | 1);
        m().write_u64(kCtx + rid * 16u + 8, domain);
    }
    /// Enabled, with 0x40000000 of device 01:00.0 (domain 7) mapped to 0x8000000 and used once.
    void enable_mapped() {
        enable();
        map(0x0100, 7, 0x40000000, 0x8000000);
        REQUIRE(dma(0x0100, 0x40000000) == 0x8000000);
    }
    /// Changes the leaf in place (same table, same domain).
    void remap(uint64_t iova, uint64_t pa) {
        REQUIRE(pt->unmap(iova, 4096) == MapError::none);
        REQUIRE(pt->map(iova, pa, 4096, 12) == MapError::none);
    }
    void command(uint64_t q0, uint64_t q1 = 0) {
        m().write_u64(kQueue + tail, q0);
        m().write_u64(kQueue + tail + 8, q1);
        tail += 16;
        wr(reg::CQT, tail);
    }
    /// Sync with a status write; waits until the unit has written it.
    void sync(uint32_t token) {
        m().write_u32(kStatus, 0);
        command(0x03 | 1u << 8 | uint64_t{token} << 32, kStatus);
        while (m().read_u32(kStatus) != token) sc_core::wait(sc_core::sc_time(50, sc_core::SC_NS));
    }
    /// A DMA read by `rid`; returns the physical address it reached (0 on a fault).
    uint64_t dma(uint16_t rid, uint64_t iova) {
        pcie::TlpExtension ext;
        ext.requester = pcie::Bdf(rid);
        uint64_t v = 0;
        return dev.access(tlm::TLM_READ_COMMAND, iova, v, &ext) == tlm::TLM_OK_RESPONSE ? ext.output_address : 0;
    }
    static void run(const std::function<void()>& scenario) { iommusim::test::run_scenario(scenario); }
};

} // namespace

TEST_CASE("mini family: DMA translates through the linear context table and the shared core", "[sc][shell]") {
    Rig r;
    Rig::run([&] {
        r.enable_mapped();
        CHECK(r.dma(0x0100, 0x40000010) == 0x8000010); // IOTLB hit
        CHECK(r.dma(0x0100, 0x40001000) == 0);         // not mapped: a fault
    });
    const auto* iotlb_hits = r.root.find("mini0.translation.iotlb.hits");
    REQUIRE(iotlb_hits);
    CHECK(stats::numeric_value(*iotlb_hits) == 1);
}

TEST_CASE("mini family: an invalid context entry faults and writes a record to the event queue", "[sc][shell]") {
    Rig r;
    Rig::run([&] {
        r.enable();
        CHECK(r.dma(0x0200, 0x5000) == 0);
        CHECK(r.rd(reg::EQT) == 16);
        CHECK(r.m().read_u64(Rig::kEvents) == (kBadContext | uint64_t{0x0200} << 16));
        CHECK(r.m().read_u64(Rig::kEvents + 8) == 0x5000);
    });
}

TEST_CASE("mini family: invalidate-context drops the cached context, sync writes its status word", "[sc][shell]") {
    Rig r;
    Rig::run([&] {
        r.enable_mapped();
        r.map(0x0100, 8, 0x40000000, 0x9000000); // a new table for the device, new domain
        CHECK(r.dma(0x0100, 0x40000000) == 0x8000000); // cached context: still the old table
        r.command(0x02 | uint64_t{0x0100} << 16);
        r.sync(0xC0DE);
        CHECK(r.dma(0x0100, 0x40000000) == 0x9000000);
        CHECK(r.rd(reg::CQH) == 32);
    });
}

TEST_CASE("mini family: invalidate-all drops cached translations too", "[sc][shell]") {
    Rig r;
    Rig::run([&] {
        r.enable_mapped();
        r.remap(0x40000000, 0xA000000);
        CHECK(r.dma(0x0100, 0x40000000) == 0x8000000); // the IOTLB still holds the old translation
        r.command(0x01);
        r.sync(1);
        CHECK(r.dma(0x0100, 0x40000000) == 0xA000000);
    });
}

TEST_CASE("mini family: an illegal command halts the queue until software acknowledges", "[sc][shell]") {
    Rig r;
    Rig::run([&] {
        r.enable();
        r.command(0xEE);
        sc_core::wait(sc_core::sc_time(1, sc_core::SC_US));
        CHECK(r.rd(reg::STS) == (1 | kIllegalCommand << 8));
        CHECK(r.rd(reg::CQH) == 0); // still on the offending command
        r.m().write_u64(Rig::kQueue, 0x01); // software repairs it in place
        r.wr(reg::STS, 1);
        r.sync(2);
        CHECK(r.rd(reg::CQH) == 32);
    });
}
