// SPDX-License-Identifier: Apache-2.0
// The SMMUv3 unit on the shared shell, driven only through its registers and
// in-memory structures: DMA through STE + CD, fault events in the EVTQ,
// command queue (TLBI, CFGI, CMD_SYNC with its MSI, CERROR_ILL recovery as
// Linux does it, CMD_SYNC behind ATC_INV, CERROR_ATC_INV_SYNC), PRI round trip;
// fault injection (corrupted tables, malformed commands) ends in architected
// events and command errors, never a crash or a stuck queue.
#include <catch2/catch.hpp>
#include <functional>
#include <memory>
#include <random>
#include <set>
#include <systemc>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>
#include <vector>

#include "models/iommu/common/table_builder.hpp"
#include "models/iommu/smmuv3/smmuv3.hpp"
#include "models/mem/memory.hpp"
#include "models/pcie/ats_codec.hpp"
#include "test/models/iommu/smmuv3/smmuv3_fixture.hpp"
#include "test/support/smmuv3_sync.hpp"
#include "test/support/corruptor.hpp"

using namespace iommusim;
using namespace iommusim::iommu;
using namespace iommusim::iommu::smmuv3;
using namespace iommusim::iommu::smmuv3::test;
using sc_core::sc_time;
using sc_core::SC_NS;

namespace {

struct Initiator : sc_core::sc_module {
    tlm_utils::simple_initiator_socket<Initiator> socket{"socket"};
    explicit Initiator(const sc_core::sc_module_name& n) : sc_module(n) {}
    template <class Ext>
    tlm::tlm_response_status access(tlm::tlm_command cmd, uint64_t addr, void* v, unsigned len, Ext* ext) {
        tlm::tlm_generic_payload g;
        g.set_command(cmd);
        g.set_address(addr);
        g.set_data_ptr(static_cast<unsigned char*>(v));
        g.set_data_length(len);
        g.set_streaming_width(len);
        g.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
        if (ext) g.set_extension(ext);
        sc_time d = sc_core::SC_ZERO_TIME;
        socket->b_transport(g, d);
        if (ext) g.clear_extension(ext);
        sc_core::wait(d);
        return g.get_response_status();
    }
};

/// The device side of the unit's messages: records them; answers ATS Invalidate
/// Requests after `answer_after` (never when zero) through the device's initiator.
struct Device : sc_core::sc_module {
    tlm_utils::simple_target_socket<Device> socket{"socket"};
    Initiator* up = nullptr;
    std::vector<pcie::MessageExtension> got;
    sc_time answer_after = sc_time(2, sc_core::SC_US);
    explicit Device(const sc_core::sc_module_name& n) : sc_module(n) {
        socket.register_b_transport(this, &Device::b_transport);
    }
    void b_transport(tlm::tlm_generic_payload& t, sc_time&) {
        auto* m = t.get_extension<pcie::MessageExtension>();
        REQUIRE(m);
        got.push_back(*m);
        t.set_response_status(tlm::TLM_OK_RESPONSE);
        if (m->code == pcie::MessageCode::ats_invalidate_request && answer_after != sc_core::SC_ZERO_TIME) {
            const pcie::AtsInvalidateRequest req = m->inv_req;
            sc_core::sc_spawn([this, req] {
                sc_core::wait(answer_after);
                pcie::MessageExtension c;
                c.code = pcie::MessageCode::ats_invalidate_completion;
                c.inv_cpl.requester = req.target;
                c.inv_cpl.itag_vector = 1u << req.itag;
                c.inv_cpl.cc = 1;
                uint64_t payload = 0;
                up->access(tlm::TLM_WRITE_COMMAND, 0, &payload, 8, &c);
            });
        }
    }
};

constexpr uint16_t kSid = 0x0108;

struct Rig {
    stats::Group root{"root"};
    mem::Memory memory{"memory", mem::MemoryParams{}, &root};
    Initiator cpu{"cpu"}, dev{"dev"};
    Device device{"device"};
    Smmuv3Params p;
    std::unique_ptr<Smmuv3> unit;
    BumpAllocator tables{0x100'0000, 0x100'0000};
    TableAlloc alloc = [this](uint64_t b, uint64_t a) { return tables(b, a); };
    std::unique_ptr<StreamTableWriter> st;
    std::unique_ptr<TableBuilder> pt;
    std::unique_ptr<CdTableWriter> cds;
    static constexpr uint64_t kQueue = 0x300'0000, kEvtq = 0x310'0000, kPriq = 0x320'0000, kSync = 0x330'0000,
                              kEvtqMsi = 0x340'0000;
    uint32_t prod = 0; // index + wrap of a 256-entry queue

    explicit Rig(Duration atc_timeout = Duration::us(1000), uint16_t stall_max = 64,
                 const std::function<void(Smmuv3Params&)>& tweak = {}) {
        p.atc_inv_timeout = atc_timeout;
        p.stall_max = stall_max;
        if (tweak) tweak(p);
        unit = std::make_unique<Smmuv3>("smmu0", p, &root);
        unit->mem.bind(memory.target);
        cpu.socket.bind(unit->mmio);
        dev.socket.bind(unit->upstream);
        unit->ats_inv.bind(device.socket);
        device.up = &dev;
    }
    mem::SparseMemory& m() { return memory.store(); }
    void wr32(uint32_t off, uint32_t v) { cpu.access(tlm::TLM_WRITE_COMMAND, off, &v, 4, static_cast<pcie::TlpExtension*>(nullptr)); }
    void wr64(uint32_t off, uint64_t v) { cpu.access(tlm::TLM_WRITE_COMMAND, off, &v, 8, static_cast<pcie::TlpExtension*>(nullptr)); }
    uint32_t rd32(uint32_t off) {
        uint32_t v = 0;
        cpu.access(tlm::TLM_READ_COMMAND, off, &v, 4, static_cast<pcie::TlpExtension*>(nullptr));
        return v;
    }
    /// Linux's order: tables, queues, IRQ configuration, then CR0.
    void enable() {
        st = std::make_unique<StreamTableWriter>(m(), alloc, 16, true, 8);
        wr64(reg::kStrtabBase, st->strtab_base_reg());
        wr32(reg::kStrtabBaseCfg, st->strtab_base_cfg_reg());
        wr64(reg::kCmdqBase, kQueue | 8);
        wr64(reg::kEvtqBase, kEvtq | 4);
        wr64(reg::kPriqBase, kPriq | 4);
        wr64(reg::kEvtqIrqCfg0, kEvtqMsi);
        wr32(reg::kEvtqIrqCfg1, 0xE0E0);
        wr32(reg::kIrqCtrl, bit::kEvtqIrqEn | bit::kPriqIrqEn | bit::kGerrorIrqEn);
        wr32(reg::kCr0, bit::kSmmuEn | bit::kEvtqEn | bit::kPriqEn | bit::kCmdqEn | bit::kAtsChk);
    }
    /// A stage-1 stream over fresh 4-level tables (CD table with 2^cdmax CDs, CD 0 and `ssid`).
    void stream(uint8_t eats = 0, uint8_t cdmax = 0) {
        pt = TableBuilder::create(m(), iommu::test::arm_cfg(false), std::ref(tables));
        REQUIRE(pt);
        cds = std::make_unique<CdTableWriter>(m(), alloc, cdmax, 0);
        REQUIRE(cds->write_cd(0, linux_cd(pt->config(), 5)));
        Ste s = ste(ste_cfg::kS1);
        s.s1_context_ptr = cds->context_ptr();
        s.s1cdmax = cdmax;
        s.s1dss = s1dss::kSsid0;
        s.eats = eats;
        REQUIRE(st->write_ste(kSid, s));
    }
    tlm::tlm_response_status dma(uint64_t iova, bool write, uint64_t& v, pcie::TlpExtension* out = nullptr) {
        pcie::TlpExtension ext;
        ext.requester = pcie::Bdf(kSid);
        auto r = dev.access(write ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND, iova, &v, 8, &ext);
        if (out) *out = ext;
        return r;
    }
    void command(const Command& c) {
        const auto w = c.encode();
        const uint32_t idx = prod & 0xFF;
        m().write_u64(kQueue + idx * 16, w[0]);
        m().write_u64(kQueue + idx * 16 + 8, w[1]);
        prod = (prod + 1) & 0x1FF;
        wr32(reg::kCmdqProd, prod);
    }
    /// CMD_SYNC with its MSI written into memory (Linux polls it); returns once written.
    Command sync_cmd(uint32_t token) { return iommu::test::msi_sync(token, kSync); }
    bool wait_sync(uint32_t token, sc_time limit = sc_time(50, sc_core::SC_US)) {
        const sc_time end = sc_core::sc_time_stamp() + limit;
        while (m().read_u32(kSync) != token) {
            if (sc_core::sc_time_stamp() > end) return false;
            sc_core::wait(sc_time(50, SC_NS));
        }
        return true;
    }
    /// CMD_ATC_INV of kSid's whole ATC (Size 52, as Linux invalidates everything).
    void atc_inv_all() {
        Command a;
        a.opcode = op::kAtcInv;
        a.sid = kSid;
        a.size = 52;
        command(a);
    }
    /// CMD_CFGI_STE for kSid + CMD_SYNC (MSI `token`), waited for: a rewritten STE takes effect.
    void cfgi_ste(uint32_t token) {
        Command c;
        c.opcode = op::kCfgiSte;
        c.sid = kSid;
        command(c);
        command(sync_cmd(token));
        REQUIRE(wait_sync(token));
    }
    std::array<uint64_t, 4> event(unsigned i) {
        std::array<uint64_t, 4> w{};
        m().read(kEvtq + i * 32, w.data(), 32);
        return w;
    }
};

/// Runs `body` in an SC_THREAD until the simulation starves; the body must have
/// run to its end (a body still blocked when nothing is left to happen skipped
/// its remaining checks).
void run(const std::function<void()>& body) {
    bool done = false;
    sc_core::sc_spawn([&] {
        body();
        done = true;
    });
    sc_core::sc_start();
    REQUIRE(done);
}

} // namespace

TEST_CASE("SMMUv3 DMA through STE and CD: a walk, then IOTLB hits, the data at the output address", "[sc]") {
    Rig r;
    run([&] {
        r.enable();
        r.stream();
        REQUIRE(r.pt->map(0x4000, 0x70'0000, 0x1000, 12) == MapError::none);
        uint64_t v = 0xABCD;
        pcie::TlpExtension ext;
        REQUIRE(r.dma(0x4010, true, v, &ext) == tlm::TLM_OK_RESPONSE);
        CHECK(ext.served_by == pcie::TlpExtension::Source::walk);
        CHECK(ext.output_address == 0x70'0010);
        CHECK(r.m().read_u64(0x70'0010) == 0xABCD);
        REQUIRE(r.dma(0x4018, false, v, &ext) == tlm::TLM_OK_RESPONSE);
        CHECK(ext.served_by == pcie::TlpExtension::Source::iotlb);
    });
}

TEST_CASE("SMMUv3 with SMMUEN = 0 bypasses, or aborts when GBPA.ABORT is set", "[sc]") {
    Rig r;
    run([&] {
        uint64_t v = 7;
        pcie::TlpExtension ext;
        REQUIRE(r.dma(0x5000, true, v, &ext) == tlm::TLM_OK_RESPONSE);
        CHECK(ext.output_address == 0x5000);
        r.wr32(reg::kGbpa, bit::kGbpaAbort | bit::kGbpaUpdate);
        CHECK(r.dma(0x5000, true, v) != tlm::TLM_OK_RESPONSE);
        CHECK(r.rd32(reg::kEvtqProd) == 0); // no event
    });
}

TEST_CASE("SMMUv3 records a translation fault in the EVTQ with its fields and sends the EVTQ MSI", "[sc]") {
    Rig r;
    run([&] {
        r.enable();
        r.stream();
        uint64_t v = 0;
        CHECK(r.dma(0x9000, true, v) != tlm::TLM_OK_RESPONSE);
        CHECK(r.rd32(reg::kEvtqProd) == 1);
        const Event e = Event::decode(r.event(0));
        CHECK(e.id == evt::kTranslation);
        CHECK(e.sid == kSid);
        CHECK(e.input_addr == 0x9000);
        CHECK_FALSE(e.rnw);
        CHECK_FALSE(e.s2);
        CHECK(r.m().read_u32(Rig::kEvtqMsi) == 0xE0E0);
    });
}

TEST_CASE("SMMUv3 records C_BAD_STREAMID for a StreamID outside the stream table only with CR2.RECINVSID",
          "[sc][events]") {
    Rig r;
    run([&] {
        r.enable(); // CR2 = 0 (reset value of the model; UNKNOWN in the spec)
        r.stream();
        uint64_t v = 0;
        pcie::TlpExtension ext;
        ext.requester = pcie::Bdf(0x7700); // no L2 stream table: C_BAD_STREAMID (IHI 0070 7.3.3)
        CHECK(r.dev.access(tlm::TLM_READ_COMMAND, 0x1000, &v, 8, &ext) == tlm::TLM_ADDRESS_ERROR_RESPONSE);
        CHECK(r.rd32(reg::kEvtqProd) == 0); // terminated, not recorded
        // RECINVSID is Guarded by SMMUEN (6.3.12): written with the unit off, as Linux does.
        r.wr32(reg::kCr0, 0);
        r.wr32(reg::kCr2, bit::kCr2Ptm | bit::kCr2RecInvSid);
        r.wr32(reg::kCr0, bit::kSmmuEn | bit::kEvtqEn | bit::kPriqEn | bit::kCmdqEn | bit::kAtsChk);
        pcie::TlpExtension ext2;
        ext2.requester = pcie::Bdf(0x7700);
        CHECK(r.dev.access(tlm::TLM_WRITE_COMMAND, 0x1008, &v, 8, &ext2) == tlm::TLM_ADDRESS_ERROR_RESPONSE);
        REQUIRE(r.rd32(reg::kEvtqProd) == 1);
        const Event e = Event::decode(r.event(0));
        CHECK(e.id == evt::kBadStreamId);
        CHECK(e.sid == 0x7700);
        // A StreamID the table holds is unaffected by RECINVSID either way.
        REQUIRE(r.pt->map(0x4000, 0x70'0000, 0x1000, 12) == MapError::none);
        CHECK(r.dma(0x4000, false, v) == tlm::TLM_OK_RESPONSE);
        CHECK(r.rd32(reg::kEvtqProd) == 1);
    });
}

TEST_CASE("SMMUv3 TLBI_NH_VA + CMD_SYNC: the new mapping is used after the sync's MSI", "[sc]") {
    Rig r;
    run([&] {
        r.enable();
        r.stream();
        REQUIRE(r.pt->map(0x4000, 0x70'0000, 0x1000, 12) == MapError::none);
        uint64_t v = 0;
        pcie::TlpExtension ext;
        r.dma(0x4000, false, v, &ext);
        REQUIRE(r.pt->unmap(0x4000, 0x1000) == MapError::none);
        REQUIRE(r.pt->map(0x4000, 0x71'0000, 0x1000, 12) == MapError::none);
        r.dma(0x4000, false, v, &ext);
        CHECK(ext.output_address == 0x70'0000); // stale IOTLB entry until invalidated
        Command t;
        t.opcode = op::kTlbiNhVa;
        t.asid = 5;
        t.addr = 0x4000;
        t.leaf = true;
        r.command(t);
        r.command(r.sync_cmd(0x51));
        REQUIRE(r.wait_sync(0x51));
        CHECK(r.rd32(reg::kCmdqCons) == 2);
        r.dma(0x4000, false, v, &ext);
        CHECK(ext.output_address == 0x71'0000);
    });
}

TEST_CASE("SMMUv3 range TLBI through the CMDQ: NUM/SCALE/TG drop exactly their pages, TTL changes nothing",
          "[sc]") {
    Rig r;
    run([&] {
        r.enable();
        r.stream();
        // 40 pages at 0x10'0000, all walked once into the IOTLB.
        REQUIRE(r.pt->map(0x10'0000, 0x80'0000, 40 * 0x1000, 12) == MapError::none);
        uint64_t v = 0;
        pcie::TlpExtension ext;
        for (uint64_t i = 0; i < 40; ++i) REQUIRE(r.dma(0x10'0000 + i * 0x1000, false, v) == tlm::TLM_OK_RESPONSE);
        // (NUM + 1) * 2^SCALE = 3 * 2^2 = 12 pages from page 4 (as Linux builds it: TG 4 KiB, TTL 3, Leaf).
        Command t;
        t.opcode = op::kTlbiNhVa;
        t.asid = 5;
        t.leaf = true;
        t.tg = 1;
        t.ttl = 3;
        t.num = 2;
        t.scale = 2;
        t.addr = 0x10'4000;
        r.command(t);
        r.command(r.sync_cmd(0x61));
        REQUIRE(r.wait_sync(0x61));
        for (uint64_t i = 0; i < 40; ++i) {
            INFO("page " << i);
            REQUIRE(r.dma(0x10'0000 + i * 0x1000, false, v, &ext) == tlm::TLM_OK_RESPONSE);
            const bool dropped = i >= 4 && i < 16;
            CHECK(ext.served_by == (dropped ? pcie::TlpExtension::Source::walk : pcie::TlpExtension::Source::iotlb));
        }
        // The same range with another ASID drops nothing; with TTL = 0 it drops the same pages.
        t.asid = 6;
        r.command(t);
        t.asid = 5;
        t.ttl = 0;
        t.num = 0;
        t.scale = 0; // one page
        t.addr = 0x10'2000;
        r.command(t);
        r.command(r.sync_cmd(0x62));
        REQUIRE(r.wait_sync(0x62));
        for (uint64_t i = 0; i < 40; ++i) {
            INFO("page " << i);
            REQUIRE(r.dma(0x10'0000 + i * 0x1000, false, v, &ext) == tlm::TLM_OK_RESPONSE);
            CHECK(ext.served_by == (i == 2 ? pcie::TlpExtension::Source::walk : pcie::TlpExtension::Source::iotlb));
        }
    });
}

TEST_CASE("SMMUv3 CFGI_STE: a rewritten STE is used only after its invalidation", "[sc]") {
    Rig r;
    run([&] {
        r.enable();
        r.stream();
        REQUIRE(r.pt->map(0x4000, 0x70'0000, 0x1000, 12) == MapError::none);
        uint64_t v = 0;
        REQUIRE(r.dma(0x4000, false, v) == tlm::TLM_OK_RESPONSE);
        REQUIRE(r.st->write_ste(kSid, ste(ste_cfg::kAbort)));
        CHECK(r.dma(0x4000, false, v) == tlm::TLM_OK_RESPONSE); // cached STE
        Command c;
        c.opcode = op::kCfgiSte;
        c.sid = kSid;
        c.leaf = true;
        r.command(c);
        r.command(r.sync_cmd(1));
        REQUIRE(r.wait_sync(1));
        CHECK(r.dma(0x4000, false, v) != tlm::TLM_OK_RESPONSE);
        CHECK(r.rd32(reg::kEvtqProd) == 0); // Config = abort: no event
    });
}

TEST_CASE("SMMUv3 CERROR_ILL leaves CONS on the bad command and Linux's fix-up (a CMD_SYNC in its place and a GERRORN toggle) restarts the queue",
          "[sc]") {
    Rig r;
    run([&] {
        r.enable();
        Command bad;
        bad.opcode = 0x47;
        r.command(r.sync_cmd(1));
        r.command(bad);
        r.command(r.sync_cmd(2));
        REQUIRE(r.wait_sync(1));
        sc_core::wait(sc_time(2, sc_core::SC_US));
        CHECK(r.rd32(reg::kCmdqCons) == ((1u << 24) | 1)); // ERR = CERROR_ILL, RD = 1
        CHECK((r.rd32(reg::kGerror) ^ r.rd32(reg::kGerrorN)) == 1u);
        CHECK(r.m().read_u32(Rig::kSync) == 1); // the sync behind it has not run
        const auto w = r.sync_cmd(3).encode();
        r.m().write_u64(Rig::kQueue + 16, w[0]);
        r.m().write_u64(Rig::kQueue + 24, w[1]);
        r.wr32(reg::kGerrorN, r.rd32(reg::kGerror));
        REQUIRE(r.wait_sync(2));
        CHECK(r.rd32(reg::kCmdqCons) == 3);
    });
}

TEST_CASE("SMMUv3 CMD_SYNC completes only after the ATC_INV before it is answered", "[sc]") {
    Rig r;
    run([&] {
        r.enable();
        r.atc_inv_all();
        const sc_time issued = sc_core::sc_time_stamp();
        r.command(r.sync_cmd(9));
        REQUIRE(r.wait_sync(9));
        CHECK(sc_core::sc_time_stamp() - issued >= sc_time(2, sc_core::SC_US)); // the device answered after 2 us
        REQUIRE(r.device.got.size() == 1);
        CHECK(r.device.got[0].code == pcie::MessageCode::ats_invalidate_request);
        CHECK(r.device.got[0].inv_req.target == pcie::Bdf(kSid));
        CHECK(r.device.got[0].inv_req.range_size() == uint64_t{1} << 63); // Size 52: the whole ATC
    });
}

TEST_CASE("SMMUv3 ATC invalidation time-out: CERROR_ATC_INV_SYNC with CONS back on the CMD_SYNC", "[sc]") {
    Rig r(Duration::us(10));
    r.device.answer_after = sc_core::SC_ZERO_TIME; // the device never answers
    run([&] {
        r.enable();
        Command a;
        a.opcode = op::kAtcInv;
        a.sid = kSid;
        r.command(a);
        r.command(r.sync_cmd(4));
        sc_core::wait(sc_time(30, sc_core::SC_US));
        CHECK(r.m().read_u32(Rig::kSync) != 4);
        CHECK(r.rd32(reg::kCmdqCons) == ((3u << 24) | 1)); // ERR = CERROR_ATC_INV_SYNC, on the sync
        CHECK((r.rd32(reg::kGerror) ^ r.rd32(reg::kGerrorN)) == 1u);
        // Linux lets the CMD_SYNC run again once the error is acknowledged.
        r.device.answer_after = sc_time(1, sc_core::SC_US);
        r.wr32(reg::kGerrorN, r.rd32(reg::kGerror));
        REQUIRE(r.wait_sync(4));
    });
}

namespace {
/// The unit's CMDQV with VINTF 1 given to a VM as Linux's tegra241-cmdqv.c does (VMID 9,
/// HYP_OWN 0, vSID 0x18 -> kSid), its LVCMDQ 0 at kRing; the guest writes commands there.
struct GuestVcmdqRig {
    static constexpr uint64_t kRing = 0x350'0000;
    Rig r;
    Initiator vcpu{"vcpu"};
    uint32_t prod = 0;
    explicit GuestVcmdqRig(Duration atc_timeout = Duration::us(1000))
        : r(atc_timeout, 64, [](Smmuv3Params& p) { p.cmdqv_vintfs = 2; }) {
        vcpu.socket.bind(r.unit->cmdqv()->mmio);
    }
    void wr(uint32_t off, uint64_t v, unsigned len = 4) {
        vcpu.access(tlm::TLM_WRITE_COMMAND, off, &v, len, static_cast<pcie::TlpExtension*>(nullptr));
    }
    uint32_t rd(uint32_t off) {
        uint32_t v = 0;
        vcpu.access(tlm::TLM_READ_COMMAND, off, &v, 4, static_cast<pcie::TlpExtension*>(nullptr));
        return v;
    }
    void bring_up() {
        wr(cmdqv::kConfig, cmdqv::kEn);
        wr(cmdqv::vintf(1) + cmdqv::kVintfConfig, cmdqv::vintf_config(9, false, true));
        wr(cmdqv::vintf(1) + cmdqv::sid_replace(0), kSid);
        wr(cmdqv::vintf(1) + cmdqv::sid_match(0), cmdqv::sid_match_value(0x18));
        wr(cmdqv::cmdq_alloc(2), cmdqv::alloc_value(1, 0, true));
        wr(cmdqv::vintf_page1(1) + cmdqv::kBase, cmdqv::base_value(kRing, 8), 8);
        wr(cmdqv::vintf_page0(1) + cmdqv::kQConfig, cmdqv::kEn);
    }
    void push(const Command& c) {
        const auto e = c.encode();
        r.m().write(kRing + uint64_t{prod % 256} * 16, e.data(), 16);
        prod = (prod + 1) % 512;
    }
    void publish() { wr(cmdqv::vintf_page0(1) + cmdqv::kProd, prod); }
    uint32_t cons() { return rd(cmdqv::vintf_page0(1) + cmdqv::kCons); }
};
} // namespace

TEST_CASE("SMMUv3 CMDQV: a guest's ATC_INV leaves as an ATS Invalidate Request to the pSID and its CMD_SYNC passes "
          "only after the completion",
          "[sc][cmdqv]") {
    GuestVcmdqRig g;
    run([&] {
        g.r.enable();
        g.bring_up();
        g.push(Command{.opcode = op::kAtcInv, .sid = 0x18, .size = 52});
        g.push(Command{.opcode = op::kSync});
        const sc_time issued = sc_core::sc_time_stamp();
        g.publish();
        sc_time passed = sc_core::SC_ZERO_TIME;
        for (int k = 0; k < 200 && passed == sc_core::SC_ZERO_TIME; ++k) {
            if (g.cons() == 2) passed = sc_core::sc_time_stamp();
            else sc_core::wait(sc_time(50, SC_NS));
        }
        REQUIRE(passed != sc_core::SC_ZERO_TIME);
        CHECK(passed - issued >= sc_time(2, sc_core::SC_US)); // the device answered after 2 us
        REQUIRE(g.r.device.got.size() == 1);
        CHECK(g.r.device.got[0].code == pcie::MessageCode::ats_invalidate_request);
        CHECK(g.r.device.got[0].inv_req.target == pcie::Bdf(kSid)); // vSID 0x18 -> pSID
        CHECK(g.r.device.got[0].inv_req.range_size() == uint64_t{1} << 63);
        CHECK(g.r.unit->cmdqv()->core().counts().atc_invalidations == 1);
        CHECK(g.r.rd32(reg::kCmdqCons) == 0); // the SMMU's own CMDQ did nothing
    });
}

TEST_CASE("SMMUv3 CMDQV: an ATC_INV the device never answers stops the VCMDQ with CERROR_ATC_INV_SYNC on its CMD_SYNC "
          "while the SMMU's CMDQ does not wait for it",
          "[sc][cmdqv]") {
    GuestVcmdqRig g(Duration::us(10));
    g.r.device.answer_after = sc_core::SC_ZERO_TIME; // the device never answers
    run([&] {
        g.r.enable();
        g.bring_up();
        g.push(Command{.opcode = op::kAtcInv, .sid = 0x18, .size = 52});
        g.push(Command{.opcode = op::kSync});
        g.publish();
        sc_core::wait(sc_time(2, sc_core::SC_US));
        // The SMMU's CMDQ syncs meanwhile: its CMD_SYNC waits only for its own ATC_INVs.
        g.r.command(g.r.sync_cmd(5));
        REQUIRE(g.r.wait_sync(5, sc_time(5, sc_core::SC_US)));
        CHECK((g.cons() & 0x1FF) == 1); // the VCMDQ still waits on its CMD_SYNC
        sc_core::wait(sc_time(20, sc_core::SC_US));
        const uint32_t cons = g.cons();
        CHECK(((cons >> 24) & 0x7F) == static_cast<uint32_t>(CmdError::atc_inv_sync));
        CHECK((cons & 0x1FF) == 1);
        CHECK(((g.rd(cmdqv::vintf_page0(1) + cmdqv::kGerror) ^ g.rd(cmdqv::vintf_page0(1) + cmdqv::kGerrorN)) & 1) == 1);
        CHECK(g.r.unit->cmdqv()->core().counts().atc_timeouts == 1);
        CHECK(g.r.rd32(reg::kCmdqCons) == 1); // no error on the SMMU's own queue
        // Acknowledged: the CMD_SYNC runs again and passes (the timed-out invalidation was abandoned).
        g.wr(cmdqv::vintf_page0(1) + cmdqv::kGerrorN, g.rd(cmdqv::vintf_page0(1) + cmdqv::kGerror));
        sc_core::wait(sc_time(1, sc_core::SC_US));
        CHECK(g.cons() == 2);
    });
}

TEST_CASE("SMMUv3 PRI round trip: the page request lands in the PRIQ, PRI_RESP sends the PRG Response", "[sc]") {
    Rig r;
    run([&] {
        r.enable();
        pcie::MessageExtension pr;
        pr.code = pcie::MessageCode::page_request;
        pr.page_req.requester = pcie::Bdf(kSid);
        pr.page_req.pasid_present = true;
        pr.page_req.pasid = 3;
        pr.page_req.address = 0x7000'1000;
        pr.page_req.read = pr.page_req.write = true;
        pr.page_req.last = true;
        pr.page_req.prg_index = 0x55;
        uint64_t payload = 0;
        r.dev.access(tlm::TLM_WRITE_COMMAND, 0, &payload, 8, &pr);
        CHECK(r.rd32(reg::kPriqProd) == 1);
        std::array<uint64_t, 2> w{};
        r.m().read(Rig::kPriq, w.data(), 16);
        const PriRecord rec = PriRecord::decode(w);
        CHECK(rec.sid == kSid);
        CHECK(rec.ssv);
        CHECK(rec.ssid == 3);
        CHECK(rec.addr == 0x7000'1000);
        CHECK(rec.prg_index == 0x55);
        CHECK(rec.last);
        Command resp;
        resp.opcode = op::kPriResp;
        resp.sid = kSid;
        resp.ssv = true;
        resp.ssid = 3;
        resp.prg_index = 0x55;
        resp.resp = static_cast<uint8_t>(PriResp::success);
        r.command(resp);
        r.command(r.sync_cmd(6));
        REQUIRE(r.wait_sync(6));
        REQUIRE(r.device.got.size() == 1);
        CHECK(r.device.got[0].code == pcie::MessageCode::prg_response);
        CHECK(r.device.got[0].prg_resp.prg_index == 0x55);
        CHECK(r.device.got[0].prg_resp.pasid == 3);
        CHECK(r.device.got[0].prg_resp.code == pcie::PrgResponseCode::success);
    });
}

TEST_CASE("SMMUv3 translated requests pass with EATS = 1 and are F_TRANSL_FORBIDDEN without", "[sc]") {
    Rig r;
    run([&] {
        r.enable();
        r.stream(1);
        uint64_t v = 0;
        pcie::TlpExtension ext;
        ext.requester = pcie::Bdf(kSid);
        ext.at = pcie::AddressType::translated;
        CHECK(r.dev.access(tlm::TLM_READ_COMMAND, 0x70'0000, &v, 8, &ext) == tlm::TLM_OK_RESPONSE);
        r.stream(0);
        r.cfgi_ste(2);
        CHECK(r.dev.access(tlm::TLM_READ_COMMAND, 0x70'0000, &v, 8, &ext) != tlm::TLM_OK_RESPONSE);
        CHECK(Event::decode(r.event(0)).id == evt::kTranslForbidden);
    });
}

namespace {
/// A nested stream: guest memory at GPA g lives at HPA g + kGuest, stage 2 maps the guest's
/// first 16 MiB, stage 1 (in guest memory) maps IOVA 0x8000 -> GPA 0x60'0000; `eats` as given.
struct NestedStream {
    static constexpr uint64_t kGuest = 0x4000'0000;
    iommu::test::OffsetMem guest;
    BumpAllocator guest_tables{0x10'0000, 0x10'0000};
    std::unique_ptr<TableBuilder> s1, s2;
    std::unique_ptr<CdTableWriter> cds;
    NestedStream(Rig& r, uint8_t eats, bool s2r = true) : guest(r.m(), kGuest) {
        s2 = TableBuilder::create(r.m(), iommu::test::arm_cfg(true), std::ref(r.tables));
        REQUIRE(s2);
        REQUIRE(s2->map(0, kGuest, 0x100'0000, 21) == MapError::none);
        s1 = TableBuilder::create(guest, iommu::test::arm_cfg(false), std::ref(guest_tables));
        REQUIRE(s1);
        REQUIRE(s1->map(0x8000, 0x60'0000, 0x1000, 12) == MapError::none);
        cds = std::make_unique<CdTableWriter>(guest, [this](uint64_t b, uint64_t a) { return guest_tables(b, a); }, 0, 0);
        REQUIRE(cds->write_cd(0, linux_cd(s1->config(), 2)));
        Ste s = ste(ste_cfg::kNested);
        s.s1_context_ptr = cds->context_ptr();
        set_s2(s, s2->config(), 3);
        s.s2r = s2r;
        s.eats = eats;
        REQUIRE(r.st->write_ste(kSid, s));
    }
};

} // namespace

TEST_CASE("SMMUv3 nested stream: the CD is fetched through stage 2 and DMA goes through both stages", "[sc]") {
    Rig r;
    run([&] {
        r.enable();
        NestedStream n(r, 0); // the CD table pointer is an IPA
        constexpr uint64_t kGuest = NestedStream::kGuest;
        auto& s1 = n.s1;
        uint64_t v = 0x77;
        pcie::TlpExtension ext;
        REQUIRE(r.dma(0x8008, true, v, &ext) == tlm::TLM_OK_RESPONSE);
        CHECK(ext.output_address == kGuest + 0x60'0008);
        CHECK(r.m().read_u64(kGuest + 0x60'0008) == 0x77);
        // A stage-2 fault on the output IPA is recorded with S2 = 1 and the IPA.
        REQUIRE(s1->map(0x9000, 0x200'0000, 0x1000, 12) == MapError::none); // beyond stage 2's 16 MiB
        CHECK(r.dma(0x9000, false, v) != tlm::TLM_OK_RESPONSE);
        const Event e = Event::decode(r.event(0));
        CHECK(e.id == evt::kTranslation);
        CHECK(e.s2);
        CHECK(e.ipa == 0x200'0000);
        CHECK(e.input_addr == 0x9000);
    });
}

namespace {
tlm::tlm_response_status ats_request(Rig& r, uint64_t iova, pcie::AtsTranslation& out) {
    pcie::TlpExtension ext;
    ext.requester = pcie::Bdf(kSid);
    ext.at = pcie::AddressType::translation_request;
    uint64_t e = 0;
    const auto st = r.dev.access(tlm::TLM_READ_COMMAND, iova, &e, 8, &ext);
    out = pcie::decode_translation_entry(e);
    return st;
}

tlm::tlm_response_status translated(Rig& r, uint64_t addr, bool write, uint64_t& v, pcie::TlpExtension* out = nullptr) {
    pcie::TlpExtension ext;
    ext.requester = pcie::Bdf(kSid);
    ext.at = pcie::AddressType::translated;
    const auto st = r.dev.access(write ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND, addr, &v, 8, &ext);
    if (out) *out = ext;
    return st;
}
} // namespace

TEST_CASE("SMMUv3 split-stage ATS (EATS = 2): the completion carries the IPA and translated requests go through stage 2",
          "[sc]") {
    Rig r;
    run([&] {
        r.enable();
        NestedStream n(r, 2);
        pcie::AtsTranslation c;
        REQUIRE(ats_request(r, 0x8000, c) == tlm::TLM_OK_RESPONSE);
        CHECK(c.read);
        CHECK(c.write);
        CHECK(c.range_base() == 0x60'0000); // stage 1's output: the guest-physical address
        // The device uses the IPA; stage 2 puts it at the host address.
        uint64_t v = 0x5A5A;
        pcie::TlpExtension ext;
        REQUIRE(translated(r, 0x60'0010, true, v, &ext) == tlm::TLM_OK_RESPONSE);
        CHECK(ext.output_address == NestedStream::kGuest + 0x60'0010);
        CHECK(r.m().read_u64(NestedStream::kGuest + 0x60'0010) == 0x5A5A);
        CHECK(r.rd32(reg::kEvtqProd) == 0);
        // Full ATS on the same tables answers with the host address (and forwards translated requests as they are).
        NestedStream full(r, 1);
        r.cfgi_ste(1);
        REQUIRE(ats_request(r, 0x8000, c) == tlm::TLM_OK_RESPONSE);
        CHECK(c.range_base() == NestedStream::kGuest + 0x60'0000);
        r.m().write_u64(0x60'0010, 0x1234);
        REQUIRE(translated(r, 0x60'0010, false, v, &ext) == tlm::TLM_OK_RESPONSE);
        CHECK(v == 0x1234); // the address was taken as a PA
    });
}

TEST_CASE("SMMUv3 split-stage ATS: a translated IPA outside stage 2 is a stage-2 F_TRANSLATION, recorded per S2R", "[sc]") {
    Rig r;
    run([&] {
        r.enable();
        NestedStream n(r, 2);
        uint64_t v = 0;
        CHECK(translated(r, 0x200'0000, true, v) == tlm::TLM_ADDRESS_ERROR_RESPONSE); // beyond stage 2's 16 MiB
        REQUIRE(r.rd32(reg::kEvtqProd) == 1);
        const Event e = Event::decode(r.event(0));
        CHECK(e.id == evt::kTranslation);
        CHECK(e.sid == kSid);
        CHECK(e.s2);
        CHECK(e.ipa == 0x200'0000);
        CHECK(e.input_addr == 0x200'0000);
        CHECK_FALSE(e.rnw);
        CHECK(e.cls == EventClass::in);
        // S2R = 0: the same fault terminates the request without an event.
        NestedStream quiet(r, 2, false);
        r.cfgi_ste(1);
        CHECK(translated(r, 0x200'0000, false, v) == tlm::TLM_ADDRESS_ERROR_RESPONSE);
        CHECK(r.rd32(reg::kEvtqProd) == 1);
    });
}

TEST_CASE("SMMUv3 ATS with EATS = 0: Translation Requests are F_BAD_ATS_TREQ and answered UR", "[sc]") {
    Rig r;
    run([&] {
        r.enable();
        r.stream(0);
        REQUIRE(r.pt->map(0x4000, 0x70'0000, 0x1000, 12) == MapError::none);
        pcie::AtsTranslation c;
        CHECK(ats_request(r, 0x4000, c) == tlm::TLM_COMMAND_ERROR_RESPONSE);
        REQUIRE(r.rd32(reg::kEvtqProd) == 1);
        const Event e = Event::decode(r.event(0));
        CHECK(e.id == evt::kBadAtsTreq);
        CHECK(e.sid == kSid);
        CHECK(e.input_addr == 0x4000);
        CHECK(e.rnw);
    });
}

TEST_CASE("SMMUv3 ATS Translation Requests while SMMUEN = 0 are F_BAD_ATS_TREQ and answered UR whatever GBPA says",
          "[sc][ats]") {
    Rig r;
    run([&] {
        r.enable();
        r.stream(1); // EATS = 1: served while the unit is on
        REQUIRE(r.pt->map(0x4000, 0x70'0000, 0x1000, 12) == MapError::none);
        pcie::AtsTranslation c;
        REQUIRE(ats_request(r, 0x4000, c) == tlm::TLM_OK_RESPONSE);
        CHECK(c.range_base() == 0x70'0000);
        // SMMUEN = 0 with the EVTQ on (SMMUEN = 0 does not imply EVENTQEN = 0, IHI 0070 7.2).
        r.wr32(reg::kCr0, bit::kEvtqEn | bit::kCmdqEn);
        for (const bool abort : {false, true}) {
            INFO("GBPA.ABORT = " << abort);
            r.wr32(reg::kGbpa, (abort ? bit::kGbpaAbort : 0u) | bit::kGbpaUpdate);
            const uint32_t before = r.rd32(reg::kEvtqProd);
            // Untranslated traffic follows GBPA (13.2) ...
            uint64_t v = 0;
            CHECK((r.dma(0x5000, false, v) == tlm::TLM_OK_RESPONSE) == !abort);
            // ... a Translation Request is refused either way (3.9.1.2, 7.3.6).
            CHECK(ats_request(r, 0x4000, c) == tlm::TLM_COMMAND_ERROR_RESPONSE);
            REQUIRE(r.rd32(reg::kEvtqProd) == before + 1);
            const Event e = Event::decode(r.event(before));
            CHECK(e.id == evt::kBadAtsTreq);
            CHECK(e.sid == kSid);
            CHECK(e.input_addr == 0x4000);
            CHECK(e.rnw);
        }
    });
}

TEST_CASE("SMMUv3 STE Config bypass: Translation Requests are F_BAD_ATS_TREQ, checked translated requests "
          "F_TRANSL_FORBIDDEN",
          "[sc][ats]") {
    Rig r;
    run([&] {
        r.enable(); // CR0.ATSCHK = 1
        Ste s = ste(ste_cfg::kBypass);
        s.eats = 1; // effective EATS = 0 under Config bypass (IHI 0070 5.2 STE.EATS)
        REQUIRE(r.st->write_ste(kSid, s));
        uint64_t v = 0;
        CHECK(r.dma(0x5000, false, v) == tlm::TLM_OK_RESPONSE); // ordinary traffic bypasses
        pcie::AtsTranslation c;
        CHECK(ats_request(r, 0x4000, c) == tlm::TLM_COMMAND_ERROR_RESPONSE); // 3.9.1.2
        CHECK(translated(r, 0x70'0000, false, v) == tlm::TLM_ADDRESS_ERROR_RESPONSE); // 3.9.1.3
        REQUIRE(r.rd32(reg::kEvtqProd) == 2);
        CHECK(Event::decode(r.event(0)).id == evt::kBadAtsTreq);
        CHECK(Event::decode(r.event(1)).id == evt::kTranslForbidden);
        CHECK(Event::decode(r.event(1)).sid == kSid);
    });
}

TEST_CASE("SMMUv3 split-stage EATS = 2 with CR0.ATSCHK = 0: Translation Requests are F_BAD_ATS_TREQ", "[sc][ats]") {
    Rig r;
    run([&] {
        r.enable();
        NestedStream n(r, 2);
        pcie::AtsTranslation c;
        REQUIRE(ats_request(r, 0x8000, c) == tlm::TLM_OK_RESPONSE); // ATSCHK = 1: split-stage ATS
        r.wr32(reg::kCr0, bit::kSmmuEn | bit::kEvtqEn | bit::kPriqEn | bit::kCmdqEn); // ATSCHK = 0
        CHECK(ats_request(r, 0x8000, c) == tlm::TLM_COMMAND_ERROR_RESPONSE); // effective EATS = 0 (3.9.1.2)
        REQUIRE(r.rd32(reg::kEvtqProd) == 1);
        CHECK(Event::decode(r.event(0)).id == evt::kBadAtsTreq);
    });
}

TEST_CASE("SMMUv3 CR0.ATSCHK = 0 (fast mode): translated requests pass without a Stream table check", "[sc]") {
    Rig r;
    run([&] {
        r.enable();
        r.stream(0);
        r.wr32(reg::kCr0, bit::kSmmuEn | bit::kEvtqEn | bit::kPriqEn | bit::kCmdqEn); // ATSCHK off
        uint64_t v = 0;
        pcie::TlpExtension ext;
        CHECK(translated(r, 0x70'0000, false, v, &ext) == tlm::TLM_OK_RESPONSE);
        CHECK(r.rd32(reg::kEvtqProd) == 0);
        r.wr32(reg::kCr0, bit::kSmmuEn | bit::kEvtqEn | bit::kPriqEn | bit::kCmdqEn | bit::kAtsChk);
        CHECK(translated(r, 0x70'0000, false, v, &ext) == tlm::TLM_ADDRESS_ERROR_RESPONSE);
        CHECK(Event::decode(r.event(0)).id == evt::kTranslForbidden);
    });
}

namespace {
/// A stage-1 stream whose CD has S = 1 (stall on fault), R = 1.
void stalling_stream(Rig& r) {
    r.stream();
    Cd c = linux_cd(r.pt->config(), 5);
    c.s = true;
    REQUIRE(r.cds->write_cd(0, c));
}

/// A DMA write on its own thread (a device whose request may be held); `done` once answered.
struct HeldDma {
    bool done = false;
    tlm::tlm_response_status status = tlm::TLM_INCOMPLETE_RESPONSE;
    sc_time finished;
    HeldDma(Rig& r, uint64_t iova, uint64_t value) {
        sc_core::sc_spawn([this, &r, iova, value] {
            uint64_t v = value;
            status = r.dma(iova, true, v);
            finished = sc_core::sc_time_stamp();
            done = true;
        });
    }
};

Command resume(uint16_t stag, ResumeAction a) {
    Command c;
    c.opcode = op::kResume;
    c.sid = kSid;
    c.stag = stag;
    c.resp = static_cast<uint8_t>(a);
    return c;
}
} // namespace

TEST_CASE("SMMUv3 stall: a faulting DMA is held with a STAG until CMD_RESUME retries it through the new mapping",
          "[sc]") {
    Rig r;
    run([&] {
        r.enable();
        stalling_stream(r);
        HeldDma dma(r, 0x9008, 0xFEED);
        sc_core::wait(sc_time(2, sc_core::SC_US));
        CHECK_FALSE(dma.done); // held in the unit: the device is still waiting
        REQUIRE(r.rd32(reg::kEvtqProd) == 1);
        const Event e = Event::decode(r.event(0));
        CHECK(e.id == evt::kTranslation);
        CHECK(e.stall);
        CHECK(e.sid == kSid);
        CHECK(e.input_addr == 0x9008);
        CHECK_FALSE(e.rnw);
        // Software resolves the fault (maps the page), then resumes with Retry (no CMD_SYNC: Linux's way).
        REQUIRE(r.pt->map(0x9000, 0x72'0000, 0x1000, 12) == MapError::none);
        const sc_time resumed = sc_core::sc_time_stamp();
        r.command(resume(e.stag, ResumeAction::retry));
        while (!dma.done) sc_core::wait(sc_time(50, SC_NS));
        CHECK(dma.status == tlm::TLM_OK_RESPONSE);
        CHECK(dma.finished >= resumed);
        CHECK(r.m().read_u64(0x72'0008) == 0xFEED);
        CHECK(r.rd32(reg::kEvtqProd) == 1); // the retry walked and succeeded: no second event
        // A RESUME naming no stalled transaction is ignored (and the queue goes on).
        r.command(resume(e.stag, ResumeAction::retry));
        r.command(r.sync_cmd(3));
        CHECK(r.wait_sync(3));
    });
}

TEST_CASE("SMMUv3 stall: CMD_RESUME Abort and CMD_STALL_TERM terminate held transactions with an error", "[sc]") {
    Rig r;
    run([&] {
        r.enable();
        stalling_stream(r);
        HeldDma a(r, 0x9000, 1), b(r, 0xA000, 2), c(r, 0xB000, 3);
        sc_core::wait(sc_time(2, sc_core::SC_US));
        REQUIRE(r.rd32(reg::kEvtqProd) == 3);
        const Event ea = Event::decode(r.event(0)), eb = Event::decode(r.event(1)), ec = Event::decode(r.event(2));
        CHECK(ea.stall);
        CHECK(eb.stall);
        CHECK(ec.stall);
        CHECK(ea.stag != eb.stag); // each held transaction has its own tag
        CHECK(eb.stag != ec.stag);
        REQUIRE(r.pt->map(0x9000, 0x72'0000, 0x1000, 12) == MapError::none); // mapped, but aborted all the same
        uint16_t first = ea.input_addr == 0x9000 ? ea.stag : eb.input_addr == 0x9000 ? eb.stag : ec.stag;
        r.command(resume(first, ResumeAction::abort));
        r.command(r.sync_cmd(1));
        REQUIRE(r.wait_sync(1));
        sc_core::wait(sc_time(100, SC_NS));
        CHECK(a.done);
        CHECK(a.status == tlm::TLM_ADDRESS_ERROR_RESPONSE);
        CHECK(r.m().read_u64(0x72'0000) == 0); // never written
        CHECK_FALSE(b.done);
        CHECK_FALSE(c.done);
        Command term;
        term.opcode = op::kStallTerm;
        term.sid = kSid;
        r.command(term);
        r.command(r.sync_cmd(2));
        REQUIRE(r.wait_sync(2));
        sc_core::wait(sc_time(100, SC_NS));
        CHECK(b.done);
        CHECK(c.done);
        CHECK(b.status == tlm::TLM_ADDRESS_ERROR_RESPONSE);
        CHECK(c.status == tlm::TLM_ADDRESS_ERROR_RESPONSE);
    });
}

TEST_CASE("SMMUv3 stall: beyond IDR5.STALL_MAX held transactions a fault terminates with Stall = 0", "[sc]") {
    Rig r(Duration::us(1000), 1);
    run([&] {
        CHECK((r.rd32(reg::kIdr5) >> 16) == 1); // STALL_MAX as configured
        r.enable();
        stalling_stream(r);
        HeldDma a(r, 0x9000, 1);
        sc_core::wait(sc_time(1, sc_core::SC_US));
        HeldDma b(r, 0xA000, 2);
        sc_core::wait(sc_time(1, sc_core::SC_US));
        CHECK_FALSE(a.done);
        CHECK(b.done); // no room: terminated at once
        CHECK(b.status == tlm::TLM_ADDRESS_ERROR_RESPONSE);
        REQUIRE(r.rd32(reg::kEvtqProd) == 2);
        CHECK(Event::decode(r.event(0)).stall);
        CHECK_FALSE(Event::decode(r.event(1)).stall); // recorded per CD.R, not stalled
        r.command(resume(Event::decode(r.event(0)).stag, ResumeAction::abort));
        while (!a.done) sc_core::wait(sc_time(50, SC_NS));
        CHECK(a.status == tlm::TLM_ADDRESS_ERROR_RESPONSE);
    });
}

TEST_CASE("SMMUv3 CMD_SYNC is consumed only when complete: CONS stays on a SIG_NONE sync behind an outstanding ATC_INV",
          "[sc]") {
    Rig r;
    run([&] {
        r.enable();
        r.atc_inv_all();
        Command sync;
        sync.opcode = op::kSync; // CS = SIG_NONE: software learns completion from CONS alone
        r.command(sync);
        sc_core::wait(sc_time(1, sc_core::SC_US)); // the device answers after 2 us
        CHECK(r.rd32(reg::kCmdqCons) == 1);        // the ATC_INV is consumed, the sync is not
        sc_core::wait(sc_time(2, sc_core::SC_US));
        CHECK(r.rd32(reg::kCmdqCons) == 2);
    });
}

TEST_CASE("SMMUv3 CMD_SYNC in the queue's last slot: its MSI lands in its own slot before CONS wraps past it", "[sc]") {
    Rig r;
    run([&] {
        r.enable();
        Command pf;
        pf.opcode = op::kPrefetchConfig;
        pf.sid = kSid;
        for (int i = 0; i < 254; ++i) r.command(pf);
        r.atc_inv_all(); // slot 254
        Command sync = r.sync_cmd(0); // slot 255, Linux's way: MSI data 0 into the sync's own first word
        sync.msi_addr = Rig::kQueue + 255 * 16;
        r.command(sync);
        REQUIRE(r.prod == 0x100); // PROD wrapped: index 0, wrap 1
        while (r.device.got.empty()) sc_core::wait(sc_time(100, SC_NS)); // the ATC_INV went out
        sc_core::wait(sc_time(500, SC_NS));   // the sync is fetched and waits for the device's answer (2 us)
        CHECK(r.rd32(reg::kCmdqCons) == 255); // on the sync, wrap bit clear: its slot is not free yet
        CHECK(r.m().read_u32(Rig::kQueue + 255 * 16) != 0);
        sc_core::wait(sc_time(3, sc_core::SC_US));
        CHECK(r.m().read_u32(Rig::kQueue + 255 * 16) == 0); // the MSI wrote into its own slot...
        CHECK(r.rd32(reg::kCmdqCons) == 0x100);               // ...then CONS wrapped past it (index 0, wrap 1)
        // The queue goes on across the wrap.
        r.command(r.sync_cmd(7));
        CHECK(r.wait_sync(7));
        CHECK(r.rd32(reg::kCmdqCons) == 0x101);
    });
}

namespace {
void page_request(Rig& r, uint16_t prg, bool last, bool pasid = true, bool stop = false, uint32_t sid = kSid) {
    pcie::MessageExtension pr;
    pr.code = pcie::MessageCode::page_request;
    pr.page_req.requester = pcie::Bdf(static_cast<uint16_t>(sid));
    pr.page_req.pasid_present = pasid;
    pr.page_req.pasid = 3;
    pr.page_req.address = 0x7000'0000 + uint64_t{prg} * 0x1000;
    pr.page_req.read = pr.page_req.write = !stop;
    pr.page_req.last = last || stop;
    pr.page_req.prg_index = prg;
    uint64_t payload = 0;
    r.dev.access(tlm::TLM_WRITE_COMMAND, 0, &payload, 8, &pr);
}
} // namespace

TEST_CASE("SMMUv3 PRIQ full: OVFLG toggles, discarded Last requests get an automatic Success, and nothing is written "
          "until software acknowledges",
          "[sc]") {
    Rig r;
    run([&] {
        r.enable();
        r.stream();
        for (uint16_t i = 0; i < 16; ++i) page_request(r, i, true); // a 16-entry PRIQ: full
        CHECK(r.rd32(reg::kPriqProd) == 0x10);                       // index 0, wrap 1: full, not empty
        CHECK(r.device.got.empty());
        page_request(r, 16, false); // Last = 0: dropped silently
        CHECK(r.device.got.empty());
        CHECK(r.rd32(reg::kPriqProd) == (0x10u | 1u << 31)); // OVFLG toggled
        page_request(r, 17, true);                           // Last = 1: answered by the unit
        REQUIRE(r.device.got.size() == 1);
        const pcie::PrgResponse a = r.device.got[0].prg_resp;
        CHECK(a.prg_index == 17);
        CHECK(a.code == pcie::PrgResponseCode::success);
        CHECK_FALSE(a.pasid_present); // STE.PPAR = 0 (what Linux writes): no PASID
        page_request(r, 0, false, true, true); // a stop marker: discarded, no response
        CHECK(r.device.got.size() == 1);
        // Software consumes half the queue without acknowledging: still nothing is written.
        r.wr32(reg::kPriqCons, 8);
        page_request(r, 18, true);
        CHECK(r.rd32(reg::kPriqProd) == (0x10u | 1u << 31));
        CHECK(r.device.got.size() == 2);
        // The acknowledgement (CONS.OVACKFLG = PROD.OVFLG) ends the overflow: written again.
        r.wr32(reg::kPriqCons, 8u | 1u << 31);
        page_request(r, 19, true);
        CHECK(r.rd32(reg::kPriqProd) == (0x11u | 1u << 31));
        CHECK(r.device.got.size() == 2);
    });
}

TEST_CASE("SMMUv3 PRIQ overflow auto-response: the PASID per STE.PPAR, Failure when the STE cannot be checked", "[sc]") {
    Rig r;
    run([&] {
        r.enable();
        r.stream();
        Ste s = ste(ste_cfg::kS1); // the same stream with PPAR = 1
        s.s1_context_ptr = r.cds->context_ptr();
        s.s1dss = s1dss::kSsid0;
        s.ppar = true;
        REQUIRE(r.st->write_ste(kSid, s));
        for (uint16_t i = 0; i < 16; ++i) page_request(r, i, true);
        page_request(r, 20, true);
        REQUIRE(r.device.got.size() == 1);
        CHECK(r.device.got[0].prg_resp.pasid_present);
        CHECK(r.device.got[0].prg_resp.pasid == 3);
        CHECK(r.device.got[0].prg_resp.code == pcie::PrgResponseCode::success);
        // A StreamID without a stream table entry: Failure, no PASID.
        pcie::MessageExtension pr;
        pr.code = pcie::MessageCode::page_request;
        pr.page_req.requester = pcie::Bdf(0x7700);
        pr.page_req.pasid_present = true;
        pr.page_req.pasid = 3;
        pr.page_req.read = true;
        pr.page_req.last = true;
        pr.page_req.prg_index = 21;
        uint64_t payload = 0;
        r.dev.access(tlm::TLM_WRITE_COMMAND, 0, &payload, 8, &pr);
        REQUIRE(r.device.got.size() == 2);
        CHECK(r.device.got[1].prg_resp.code == pcie::PrgResponseCode::response_failure);
        CHECK_FALSE(r.device.got[1].prg_resp.pasid_present);
        CHECK(r.rd32(reg::kEvtqProd) == 0); // no event: CR2.REC_CFG_ATS is clear (as Linux leaves it)
    });
}


namespace {
/// PRIQ overflow auto-responses from a StreamID without STE and from kSid (STE.PPAR = 0).
void check_overflow_responses(bool pps) {
    {
        Rig r(Duration::us(1000), 64, [pps](Smmuv3Params& p) { p.pps = pps; });
        run([&] {
            CHECK(((r.rd32(reg::kIdr3) >> bit::kPps) & 1) == (pps ? 1u : 0u));
            r.enable();
            r.stream();
            for (uint16_t i = 0; i < 16; ++i) page_request(r, i, true); // a 16-entry PRIQ: full
            // StreamID 0x7700 has no stream table entry: only a PPAR check could fail.
            page_request(r, 30, true, false, false, 0x7700);
            REQUIRE(r.device.got.size() == 1);
            CHECK(r.device.got[0].prg_resp.code == pcie::PrgResponseCode::success); // 8.1: no STE check
            CHECK_FALSE(r.device.got[0].prg_resp.pasid_present);
            page_request(r, 31, true, true, false, 0x7700);
            REQUIRE(r.device.got.size() == 2);
            const pcie::PrgResponse a = r.device.got[1].prg_resp;
            CHECK(a.prg_index == 31);
            CHECK(a.code == (pps ? pcie::PrgResponseCode::success : pcie::PrgResponseCode::response_failure));
            CHECK(a.pasid_present == pps);
            if (pps) CHECK(a.pasid == 3);
            // kSid's STE has PPAR = 0: with PPS its PASID is used all the same.
            page_request(r, 32, true, true, false, kSid);
            REQUIRE(r.device.got.size() == 3);
            CHECK(r.device.got[2].prg_resp.code == pcie::PrgResponseCode::success);
            CHECK(r.device.got[2].prg_resp.pasid_present == pps);
            CHECK(r.rd32(reg::kEvtqProd) == 0);
        });
    }
}
} // namespace

TEST_CASE("SMMUv3 PRIQ overflow: a request without PASID gets Success with no STE check, a PASID request the STE's PPAR "
          "or Failure",
          "[sc]") {
    check_overflow_responses(false);
}

TEST_CASE("SMMUv3 PRIQ overflow with IDR3.PPS: a PASID request's auto-response carries its PASID without an STE check",
          "[sc]") {
    check_overflow_responses(true);
}

TEST_CASE("SMMUv3 PRIQ disabled: every discarded Page Request gets Failure without PASID", "[sc]") {
    Rig r;
    run([&] {
        r.enable();
        r.stream();
        r.wr32(reg::kCr0, bit::kSmmuEn | bit::kEvtqEn | bit::kCmdqEn | bit::kAtsChk); // PRIQEN off
        page_request(r, 5, true, true, false, kSid);
        REQUIRE(r.device.got.size() == 1);
        CHECK(r.device.got[0].prg_resp.code == pcie::PrgResponseCode::response_failure);
        CHECK_FALSE(r.device.got[0].prg_resp.pasid_present);
        CHECK(r.rd32(reg::kPriqProd) == 0); // nothing written
    });
}

namespace {
/// C_BAD_STE met by an ATS Translation Request, a checked translated request and a PRIQ-overflow
/// STE.PPAR check, and C_BAD_STREAMID by the latter two (RECINVSID clear): events as CR2.REC_CFG_ATS
/// says, except the PRIQ check's C_BAD_STREAMID, which also needs RECINVSID.
void check_rec_cfg_ats(bool rec) {
    {
        Rig r;
        run([&] {
            CHECK(((r.rd32(reg::kIdr0) >> bit::kAtsRecErr) & 1) == 1u);
            r.wr32(reg::kCr2, bit::kCr2Ptm | (rec ? bit::kCr2RecCfgAts : 0u)); // RECINVSID clear
            CHECK(r.rd32(reg::kCr2) == (bit::kCr2Ptm | (rec ? bit::kCr2RecCfgAts : 0u)));
            r.enable();
            REQUIRE(r.st->write_ste(kSid, Ste{})); // V = 0: C_BAD_STE
            pcie::AtsTranslation c;
            CHECK(ats_request(r, 0x4000, c) != tlm::TLM_OK_RESPONSE);
            uint64_t v = 0;
            CHECK(translated(r, 0x70'0000, false, v) == tlm::TLM_ADDRESS_ERROR_RESPONSE); // ATSCHK = 1
            const uint32_t n = rec ? 2 : 0;
            REQUIRE(r.rd32(reg::kEvtqProd) == n);
            for (uint32_t i = 0; i < n; ++i) {
                const Event e = Event::decode(r.event(i));
                CHECK(e.id == evt::kBadSte);
                CHECK(e.sid == kSid);
            }
            // PRIQ overflow: the STE.PPAR check meets the same C_BAD_STE (recorded per REC_CFG_ATS);
            // a StreamID outside the table is C_BAD_STREAMID, which also needs RECINVSID.
            for (uint16_t i = 0; i < 16; ++i) page_request(r, i, true, false, false, kSid); // PASID-less: queued
            page_request(r, 20, true, true, false, kSid);
            page_request(r, 21, true, true, false, 0x7700);
            REQUIRE(r.device.got.size() == 2);
            CHECK(r.device.got[0].prg_resp.code == pcie::PrgResponseCode::response_failure);
            CHECK(r.device.got[1].prg_resp.code == pcie::PrgResponseCode::response_failure);
            REQUIRE(r.rd32(reg::kEvtqProd) == n + (rec ? 1 : 0));
            if (rec) CHECK(Event::decode(r.event(n)).id == evt::kBadSte);
            // A checked translated request from outside the table: C_BAD_STREAMID, recorded per
            // REC_CFG_ATS alone (RECINVSID does not apply to translated requests, 3.9.1.3).
            pcie::TlpExtension ext;
            ext.requester = pcie::Bdf(0x7700);
            ext.at = pcie::AddressType::translated;
            CHECK(r.dev.access(tlm::TLM_READ_COMMAND, 0x70'0000, &v, 8, &ext) == tlm::TLM_ADDRESS_ERROR_RESPONSE);
            REQUIRE(r.rd32(reg::kEvtqProd) == n + (rec ? 2 : 0));
            if (rec) CHECK(Event::decode(r.event(n + 1)).id == evt::kBadStreamId);
        });
    }
}
} // namespace

TEST_CASE("SMMUv3 with CR2.REC_CFG_ATS clear, configuration errors of ATS Translation Requests, checked translated "
          "requests and PRIQ-overflow STE.PPAR checks record no event",
          "[sc]") {
    check_rec_cfg_ats(false);
}

TEST_CASE("SMMUv3 with CR2.REC_CFG_ATS set, configuration errors of ATS Translation Requests, checked translated "
          "requests and PRIQ-overflow STE.PPAR checks are recorded (C_BAD_STREAMID only with RECINVSID)",
          "[sc]") {
    check_rec_cfg_ats(true);
}

TEST_CASE("SMMUv3 clearing SMMUEN terminates stalled transactions with an abort and frees their STAGs, clearing CMDQEN "
          "leaves them stalled",
          "[sc]") {
    Rig r(Duration::us(1000), 1); // STALL_MAX = 1: a freed STAG shows as room for the next stall
    run([&] {
        r.enable();
        stalling_stream(r);
        HeldDma a(r, 0x9000, 1);
        sc_core::wait(sc_time(2, sc_core::SC_US));
        REQUIRE(r.rd32(reg::kEvtqProd) == 1);
        CHECK(Event::decode(r.event(0)).stall);
        const uint32_t on = bit::kSmmuEn | bit::kEvtqEn | bit::kPriqEn | bit::kCmdqEn | bit::kAtsChk;
        r.wr32(reg::kCr0, on & ~bit::kCmdqEn);
        sc_core::wait(sc_time(2, sc_core::SC_US));
        CHECK_FALSE(a.done); // 6.3.9.3: the command queue's disable does not touch stalled transactions
        r.wr32(reg::kCr0, on & ~bit::kCmdqEn & ~bit::kSmmuEn);
        sc_core::wait(sc_time(1, sc_core::SC_US));
        CHECK(a.done); // 6.3.9.6: terminated with an abort
        CHECK(a.status == tlm::TLM_ADDRESS_ERROR_RESPONSE);
        CHECK(r.m().read_u64(0x9000) == 0);
        r.wr32(reg::kCr0, on);
        HeldDma b(r, 0xA000, 2);
        sc_core::wait(sc_time(2, sc_core::SC_US));
        CHECK_FALSE(b.done); // stalled: the STAG of `a` was freed
        REQUIRE(r.rd32(reg::kEvtqProd) == 2);
        const Event eb = Event::decode(r.event(1));
        CHECK(eb.stall);
        r.command(resume(eb.stag, ResumeAction::abort));
        while (!b.done) sc_core::wait(sc_time(50, SC_NS));
        CHECK(b.status == tlm::TLM_ADDRESS_ERROR_RESPONSE);
    });
}

namespace {

/// Consumes every EVTQ record between CONS and PROD, checking each is an
/// architected event type, and acknowledges an overflow as Linux does
/// (queue_sync_cons_ovf: CONS.OVACKFLG = PROD.OVFLG). Returns the count.
unsigned drain_events(Rig& r) {
    static const std::set<uint8_t> kArchitected = {
        evt::kUut,           evt::kBadStreamId,  evt::kSteFetch,       evt::kBadSte,    evt::kBadAtsTreq,
        evt::kStreamDisabled, evt::kTranslForbidden, evt::kBadSubstreamId, evt::kCdFetch, evt::kBadCd,
        evt::kWalkEabt,      evt::kTranslation,  evt::kAddrSize,       evt::kAccess,    evt::kPermission};
    const uint32_t prod = r.rd32(reg::kEvtqProd);
    unsigned n = 0;
    for (uint32_t cons = r.rd32(reg::kEvtqCons) & 0x1F; cons != (prod & 0x1F); cons = (cons + 1) & 0x1F, ++n) {
        const Event e = Event::decode(r.event(cons & 0xF));
        INFO("event 0x" << std::hex << unsigned{e.id});
        CHECK(kArchitected.count(e.id) == 1);
    }
    r.wr32(reg::kEvtqCons, prod & (0x1Fu | 1u << 31));
    return n;
}

void write_command(Rig& r, const std::array<uint64_t, 2>& w) {
    const uint32_t idx = r.prod & 0xFF;
    r.m().write_u64(Rig::kQueue + idx * 16, w[0]);
    r.m().write_u64(Rig::kQueue + idx * 16 + 8, w[1]);
    r.prod = (r.prod + 1) & 0x1FF;
    r.wr32(reg::kCmdqProd, r.prod);
}

/// Queues `w`, then a CMD_SYNC with MSI `token`. The sync completes, or the queue
/// stops with GERROR.CMDQ_ERR and CONS.ERR = CERROR_ILL (the bad command at CONS,
/// which Linux's arm_smmu_cmdq_skip_err overwrites with a CMD_SYNC) or
/// CERROR_ATC_INV_SYNC (the sync is retried), acknowledged through GERRORN.
/// Returns false only if the queue is stuck.
bool submit_survives(Rig& r, const std::array<uint64_t, 2>& w, uint32_t token) {
    write_command(r, w);
    r.command(r.sync_cmd(token));
    for (int round = 0; round < 4; ++round) {
        if (r.wait_sync(token, sc_time(100, sc_core::SC_US))) return true;
        const uint32_t active = r.rd32(reg::kGerror) ^ r.rd32(reg::kGerrorN);
        if (!(active & 1u)) continue; // CMDQ_ERR not raised: keep waiting
        const uint32_t cons = r.rd32(reg::kCmdqCons);
        const uint32_t err = (cons >> 24) & 0x7F;
        INFO("CMDQ_CONS.ERR " << err);
        CHECK((err == 1 || err == 3)); // CERROR_ILL, CERROR_ATC_INV_SYNC (no fetch can abort here)
        if (err == 1) {
            Command sync;
            sync.opcode = op::kSync;
            sync.cs = SyncSignal::sev;
            const auto s = sync.encode();
            r.m().write_u64(Rig::kQueue + (cons & 0xFF) * 16, s[0]);
            r.m().write_u64(Rig::kQueue + (cons & 0xFF) * 16 + 8, s[1]);
        }
        r.wr32(reg::kGerrorN, r.rd32(reg::kGerror));
    }
    return false;
}

/// Half: a command as Linux writes it with one bit flipped; half: random bits
/// with a random opcode. A CMD_SYNC's MSI goes to `status_page` (an MSI into
/// the tables would be a corruption the test does not restore).
std::array<uint64_t, 2> random_command(std::mt19937_64& rng, uint64_t status_page) {
    auto cmd = [](uint8_t opcode, auto&& set) {
        Command c;
        c.opcode = opcode;
        set(c);
        return c.encode();
    };
    static const std::array<uint64_t, 2> good[] = {
        cmd(op::kCfgiSte, [](Command& c) { c.sid = kSid, c.leaf = true; }),
        cmd(op::kCfgiSteRange, [](Command& c) { c.range = 31; }),
        cmd(op::kCfgiCd, [](Command& c) { c.sid = kSid, c.leaf = true; }),
        cmd(op::kCfgiCdAll, [](Command& c) { c.sid = kSid; }),
        cmd(op::kTlbiNhAsid, [](Command& c) { c.asid = 5; }),
        cmd(op::kTlbiNhVa, [](Command& c) { c.asid = 5, c.addr = 0x4000'0000, c.leaf = true; }),
        cmd(op::kTlbiNsnhAll, [](Command&) {}),
        cmd(op::kAtcInv, [](Command& c) { c.sid = kSid, c.size = 52; }),
        cmd(op::kPrefetchConfig, [](Command& c) { c.sid = kSid; }),
        cmd(op::kResume, [](Command& c) { c.sid = kSid, c.stag = 3; }),
    };
    std::array<uint64_t, 2> w{};
    if (rng() % 2) {
        w = good[rng() % std::size(good)];
        w[rng() % 2] ^= uint64_t{1} << (rng() % 64);
    } else {
        static const uint8_t opcodes[] = {op::kPrefetchConfig, op::kPrefetchAddr, op::kCfgiSte, op::kCfgiSteRange,
                                          op::kCfgiCd, op::kCfgiCdAll, op::kTlbiNhAll, op::kTlbiNhAsid, op::kTlbiNhVa,
                                          op::kTlbiNhVaa, op::kTlbiS12Vmall, op::kTlbiS2Ipa, op::kTlbiNsnhAll,
                                          op::kAtcInv, op::kPriResp, op::kResume, op::kStallTerm, op::kSync};
        w = {rng(), rng()};
        const uint8_t opcode = rng() % 4 ? opcodes[rng() % std::size(opcodes)] : static_cast<uint8_t>(rng());
        w[0] = (w[0] & ~uint64_t{0xFF}) | opcode;
    }
    if ((w[0] & 0xFF) == op::kSync) w[1] = (w[1] & ~uint64_t{0x000F'FFFF'FFFF'FFFC}) | (status_page + 4 * (rng() % 16));
    return w;
}

} // namespace

TEST_CASE("SMMUv3 survives corrupted stream table, STEs, CDs and page tables and malformed commands with architected events",
          "[sc][property]") {
    // ATC invalidations nobody answers end quickly. Terminate-only (IDR0.STALL_MODEL
    // 0b01): a corrupted CD.S or STE.S2S is then C_BAD_CD / C_BAD_STE; with stalls
    // supported a corrupted entry could stall a DMA until a CMD_RESUME this sequence
    // never sends, leaving the sequence blocked with its later checks never run.
    Rig r(Duration::us(20), 64, [](Smmuv3Params& p) { p.stall_model = StallModel::terminate_only; });
    run([&] {
        r.enable();
        r.stream();
        constexpr uint64_t kWindow = 0x4000'0000;
        constexpr unsigned kPages = 16;
        for (unsigned k = 0; k < kPages; ++k)
            REQUIRE(r.pt->map(kWindow + k * 4096, 0x70'0000 + k * 4096, 0x1000, 12) == MapError::none);
        const uint64_t status_page = *r.tables(4096, 4096);
        // The area: stream table (L1 and L2), CD table, page tables.
        const uint64_t lo = 0x100'0000, hi = status_page;
        iommusim::test::Corruptor corrupt(r.m(), iommusim::test::Corruptor::nonzero_words(r.m(), lo, hi), lo, hi);
        uint32_t token = 100;
        auto flush_all = [&] {
            Command cfgi_all;
            cfgi_all.opcode = op::kCfgiSteRange;
            cfgi_all.range = 31;
            Command tlbi_all;
            tlbi_all.opcode = op::kTlbiNsnhAll;
            REQUIRE(submit_survives(r, cfgi_all.encode(), ++token));
            REQUIRE(submit_survives(r, tlbi_all.encode(), ++token));
        };
        corrupt.run_seeds(
            3, 250, flush_all,
            [&](std::mt19937_64& g) { REQUIRE(submit_survives(r, random_command(g, status_page), ++token)); },
            [&](std::mt19937_64& g) {
                uint64_t v = 0;
                return r.dma(kWindow + (g() % (kPages + 2)) * 4096, g() % 2, v);
            },
            [&] { return drain_events(r); },
            [&] { // the stream translates again
                uint64_t v = 0;
                CHECK(r.dma(kWindow, false, v) == tlm::TLM_OK_RESPONSE);
            });
    });
}
