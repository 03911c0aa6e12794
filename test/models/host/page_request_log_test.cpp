// SPDX-License-Identifier: Apache-2.0
// The family-neutral page-request log driver with 16-byte records (the AMD
// PPR log / SMMUv3 PRIQ size): a small unit model exposes tail, head and a
// status register (pending, overflow: RW1C); the test plays the unit by
// writing records into the log in simulated memory, advancing the tail and,
// when the pending bit was clear, sending the page-request MSI (as VT-d's
// PRS.PPR does), which wakes the driver's handler thread.
#include <catch2/catch.hpp>
#include <cstring>
#include <systemc>
#include <tlm_utils/simple_target_socket.h>
#include <vector>

#include "models/common/sc_asan.hpp"
#include "models/host/host_cpu.hpp"
#include "models/host/msi_decoder.hpp"
#include "models/host/page_request_log.hpp"
#include "models/iommu/common/table_builder.hpp"
#include "models/mem/sparse_memory.hpp"
#include "test/models/host/msi_source.hpp"

using namespace iommusim;
using namespace iommusim::host;
using C = pcie::PrgResponseCode;

namespace {

constexpr uint32_t kTail = 0x0, kHead = 0x8, kStatus = 0x10;
constexpr uint32_t kPending = 1, kOverflow = 2;
constexpr uint32_t kVector = 0x30;

struct LogRegs : sc_core::sc_module {
    tlm_utils::simple_target_socket<LogRegs> mmio{"mmio"};
    uint64_t tail = 0, head = 0;
    uint32_t status = 0;
    explicit LogRegs(sc_core::sc_module_name n) : sc_module(n) { mmio.register_b_transport(this, &LogRegs::access); }
    void access(tlm::tlm_generic_payload& gp, sc_core::sc_time&) {
        uint64_t v = 0;
        std::memcpy(&v, gp.get_data_ptr(), gp.get_data_length());
        if (gp.is_read()) {
            v = gp.get_address() == kTail ? tail : gp.get_address() == kStatus ? status : head;
            std::memcpy(gp.get_data_ptr(), &v, gp.get_data_length());
        } else if (gp.get_address() == kHead) {
            head = v;
        } else if (gp.get_address() == kStatus) {
            status &= ~static_cast<uint32_t>(v);
        }
        if (gp.is_read()) ++reads;
        gp.set_response_status(tlm::TLM_OK_RESPONSE);
    }
    unsigned reads = 0;
};

// Record layout of the test family: word 0 = RID | PASID valid << 16 | PASID << 32,
// word 1 = page address | read << 0 | write << 1 | last << 2 | PRG index << 3.
LogRecord record(uint16_t rid, std::optional<uint32_t> pasid, uint64_t addr, bool last, uint16_t prg) {
    return LogRecord{uint64_t{rid} | (pasid ? uint64_t{1} << 16 | uint64_t{*pasid} << 32 : 0),
                     addr | 2 | (last ? 4u : 0u) | uint64_t{prg} << 3, 0, 0};
}

struct Family final : PageRequestLogHooks {
    MmioPort port;
    bool rid_only = false;
    struct Response {
        uint16_t rid;
        uint16_t prg;
        C code;
    };
    std::vector<Response> responses;
    explicit Family(MmioPort p) : port(p) {}
    LogDrain drain() const override { return {}; }
    uint64_t read_tail() override { return port.read64(kTail); }
    void write_head(uint64_t h) override { port.write64(kHead, h); }
    bool acknowledge_pending() override {
        port.write32(kStatus, kPending);
        return true;
    }
    bool handle_overflow() override {
        if (!(port.read32(kStatus) & kOverflow)) return false;
        port.write32(kStatus, kOverflow);
        return true;
    }
    PageRequestInfo decode(const LogRecord& r) override {
        PageRequestInfo i;
        i.rid = pcie::Bdf(static_cast<uint16_t>(r[0] & 0xFFFF));
        if ((r[0] >> 16) & 1) i.pasid = static_cast<uint32_t>(r[0] >> 32);
        i.read = r[1] & 1;
        i.write = (r[1] >> 1) & 1;
        i.last = (r[1] >> 2) & 1;
        i.prg_index = static_cast<uint16_t>((r[1] >> 3) & 0x1FF);
        i.address = r[1] & ~uint64_t{0xFFF};
        return i;
    }
    void respond(const PageRequestInfo& last, C code) override {
        port.cpu().spend(Duration::ns(500)); // stands for the command-queue round trip
        responses.push_back({last.rid.raw, last.prg_index, code});
    }
    bool resolvable(const LogRecord&, const PageRequestInfo& r) const override { return r.pasid || rid_only; }
    bool wrap = false; ///< positions with a wrap bit (SMMUv3): modulo twice the log's size
    bool positions_wrap() const override { return wrap; }
};

/// Grants pages below 1 MiB, refuses the rest.
struct Handler final : PageRequestHandler {
    unsigned calls = 0;
    C handle_page_request(const PageRequestInfo& r) override {
        ++calls;
        return r.address < (uint64_t{1} << 20) ? C::success : C::invalid_request;
    }
};

struct Rig {
    stats::Group root{"root"};
    mem::SparseMemory memory{uint64_t{1} << 40};
    HostCpu cpu{"cpu", HostCpuParams{}, memory, &root};
    LogRegs regs{"regs"};
    hosttest::MsiSource unit_msi{"unit_msi"};
    MsiDecoder msi{"msi", HostCpuParams{}.interrupt_latency, &root};
    Family family{MmioPort(cpu, 0)};
    PageRequestStats st{&root};
    Handler handler;
    PageRequestLogDriver log{cpu, family, IrqLines(&msi, {kVector})};
    iommu::BumpAllocator pages{uint64_t{1} << 30, uint64_t{1} << 24};
    Rig() {
        cpu.mmio.bind(regs.mmio);
        unit_msi.connect(msi);
        log.init([this] { return *pages(4096, 4096); }, 0, 16);
        sc_core::sc_spawn([this] { log.serve(handler, st); });
    }
    /// The driver's thread still waits for its next MSI: unwound, as a platform's threads are
    /// (the tests pause rather than stop the kernel so that this can run).
    ~Rig() { unwind_live_threads(); }
    /// The unit's side: appends records at the tail (the caller keeps them under the ring size)
    /// and raises the interrupt unless one is pending already (SC_THREAD only).
    void push(const std::vector<LogRecord>& rs, uint32_t extra_status = 0) {
        for (const auto& r : rs) {
            memory.write(log.base() + regs.tail % log.bytes(), r.data(), 16);
            regs.tail = (regs.tail + 16) % (family.wrap ? 2 * log.bytes() : log.bytes());
        }
        const bool was_pending = regs.status & kPending;
        regs.status |= kPending | extra_status;
        if (!was_pending) unit_msi.send(kVector);
    }
    double stat(const char* s) const { return stats::numeric_value(*root.find(s)); }
};

} // namespace

TEST_CASE("the page-request log driver answers each group once, at its last request, across the ring's wrap",
          "[sc][host][prq]") {
    Rig rig;
    sc_core::sc_spawn([&] {
        // 100 groups of 3 requests (300 x 16 bytes > the 4 KiB ring): pushed in batches of 30.
        for (uint16_t g = 0; g < 100; g += 10) {
            std::vector<LogRecord> batch;
            for (uint16_t k = g; k < g + 10; ++k)
                for (int i = 0; i < 3; ++i) // group k: odd groups ask for pages above 1 MiB, which the handler refuses
                    batch.push_back(record(0x0100, 5, (static_cast<uint64_t>(k % 2) << 20) + (uint64_t(i) << 12), i == 2, k));
            rig.push(batch);
            sc_core::wait(200, sc_core::SC_US);
        }
        sc_core::sc_pause();
    });
    sc_core::sc_start(sc_core::sc_time(10, sc_core::SC_MS));
    REQUIRE(rig.family.responses.size() == 100);
    for (uint16_t g = 0; g < 100; ++g) {
        CHECK(rig.family.responses[g].prg == g);
        CHECK(rig.family.responses[g].code == (g % 2 ? C::invalid_request : C::success));
    }
    CHECK(rig.handler.calls == 300);
    CHECK(rig.stat("prq.requests") == 300);
    CHECK(rig.stat("prq.successes") == 50);
    CHECK(rig.stat("prq.invalid") == 50);
    CHECK(rig.regs.head == (300 * 16) % 4096);
    CHECK((rig.regs.status & kPending) == 0);
}

TEST_CASE("requests without a PASID reach the host only if the family resolves them, and an overflow is cleared and counted",
          "[sc][host][prq]") {
    Rig rig;
    sc_core::sc_spawn([&] {
        rig.push({record(0x0200, std::nullopt, 0x1000, true, 1)});
        sc_core::wait(20, sc_core::SC_US);
        rig.family.rid_only = true;
        rig.push({record(0x0200, std::nullopt, 0x2000, true, 2)}, kOverflow);
        sc_core::wait(20, sc_core::SC_US);
        sc_core::sc_pause();
    });
    sc_core::sc_start(sc_core::sc_time(1, sc_core::SC_MS));
    REQUIRE(rig.family.responses.size() == 2);
    CHECK(rig.family.responses[0].code == C::invalid_request); // answered without asking the host
    CHECK(rig.family.responses[1].code == C::success);
    CHECK(rig.handler.calls == 1);
    CHECK(rig.stat("prq.overflows") == 1);
    CHECK((rig.regs.status & kOverflow) == 0);
}

TEST_CASE("with wrap-bit positions a full log (same slot, other wrap) is served, not taken for empty", "[sc][host][prq]") {
    Rig r;
    r.family.wrap = true;
    std::vector<LogRecord> all;
    for (uint16_t i = 0; i < 256; ++i) all.push_back(record(0x10, 5, 0x1000, true, static_cast<uint16_t>(i & 0x1FF)));
    sc_core::sc_spawn([&] { r.push(all); }); // 256 records of 16 bytes: the 4 KiB log is full
    sc_core::sc_start(sc_core::sc_time(1, sc_core::SC_MS));
    CHECK(r.regs.tail == 4096);               // slot 0, wrap bit set
    CHECK(r.family.responses.size() == 256);  // every request answered
    CHECK(r.regs.head == 4096);               // the head wrapped too: the log is empty again
}

TEST_CASE("the page-request log driver sleeps until the interrupt: no register read while idle, none before delivery",
          "[sc][host][prq]") {
    Rig rig;
    sc_core::sc_spawn([&] {
        sc_core::wait(50, sc_core::SC_US);
        CHECK(rig.regs.reads == 0); // idle: nothing polls
        CHECK(rig.stat("prq.wakeups") == 0);
        rig.push({record(0x0100, 5, 0x1000, true, 1)});
        sc_core::wait(HostCpuParams{}.interrupt_latency.as_ns() - 1, sc_core::SC_NS);
        CHECK(rig.regs.reads == 0); // the MSI is still being delivered
        CHECK(rig.family.responses.empty());
        sc_core::wait(50, sc_core::SC_US);
        CHECK(rig.family.responses.size() == 1);
        CHECK(rig.stat("prq.wakeups") == 1);
        CHECK(rig.stat("prq.mmio_reads") == rig.regs.reads);
        const unsigned reads = rig.regs.reads;
        sc_core::wait(50, sc_core::SC_US);
        CHECK(rig.regs.reads == reads);
        sc_core::sc_pause();
    });
    sc_core::sc_start(sc_core::sc_time(1, sc_core::SC_MS));
    CHECK(rig.family.responses.size() == 1);
}

TEST_CASE("a record logged after the handler cleared the pending bit raises a new interrupt and is served",
          "[sc][host][prq]") {
    Rig rig;
    sc_core::sc_spawn([&] {
        rig.push({record(0x0100, 5, 0x1000, true, 1)});
        // The handler wakes after delivery + wake-up, clears the pending bit, reads the tail and
        // spends 500 ns in respond(): a record pushed then is past the tail it read.
        sc_core::wait(HostCpuParams{}.interrupt_latency.as_ns() + HostCpuParams{}.irq_thread_wakeup.as_ns() + 700,
                      sc_core::SC_NS);
        CHECK((rig.regs.status & kPending) == 0);
        rig.push({record(0x0100, 5, 0x2000, true, 2)});
        sc_core::wait(50, sc_core::SC_US);
        sc_core::sc_pause();
    });
    sc_core::sc_start(sc_core::sc_time(1, sc_core::SC_MS));
    REQUIRE(rig.family.responses.size() == 2);
    CHECK(rig.family.responses[1].prg == 2);
    CHECK(rig.stat("prq.wakeups") == 2);
    CHECK(rig.regs.head == rig.regs.tail);
}
