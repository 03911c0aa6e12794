// SPDX-License-Identifier: Apache-2.0
// The family-neutral command-queue driver against a small queue unit with
// 16-byte entries (the AMD / SMMUv3 size): the unit consumes the ring from
// simulated memory at its head, executes syncs by writing the token to the
// status word (and an MSI when asked), and reports refused commands and
// abandoned syncs through an error register that software acknowledges.
#include <catch2/catch.hpp>
#include <cstring>
#include <memory>
#include <systemc>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>
#include <vector>

#include "models/host/cmd_queue_driver.hpp"
#include "models/host/host_cpu.hpp"
#include "models/host/host_error.hpp"
#include "models/host/msi_decoder.hpp"
#include "models/iommu/common/table_builder.hpp"
#include "test/models/iommu/vtd/vtd_harness.hpp"

using namespace iommusim;
using namespace iommusim::host;

namespace {

// Entry layout of the test family: word 0 = opcode | interrupt << 8 | token << 32, word 1 = operand.
enum Op : uint64_t { nop = 0, cmd = 1, sync = 2, bad = 3, timeout = 4 };
constexpr uint32_t kHead = 0x0, kTail = 0x8, kErr = 0x10;
constexpr uint32_t kErrIllegal = 1, kErrTimeout = 2;
constexpr uint32_t kVector = 0x40;

QueueEntry entry(uint64_t op, uint64_t operand, uint32_t token = 0, bool irq = false) {
    return QueueEntry{op | (irq ? 1u << 8 : 0u) | uint64_t{token} << 32, operand, 0, 0};
}

/// A queue unit: fetches 16-byte entries from memory, 200 ns each.
struct RingUnit : sc_core::sc_module {
    tlm_utils::simple_target_socket<RingUnit> mmio{"mmio"};
    tlm_utils::simple_initiator_socket<RingUnit> msi{"msi"};
    mem::PhysMem& memory;
    uint64_t base = 0, bytes = 0, head = 0, tail = 0;
    uint32_t err = 0;
    std::vector<uint64_t> executed; ///< operands of executed commands, in order
    sc_core::sc_event kick;
    RingUnit(sc_core::sc_module_name n, mem::PhysMem& m) : sc_module(n), memory(m) {
        mmio.register_b_transport(this, &RingUnit::access);
        SC_HAS_PROCESS(RingUnit);
        SC_THREAD(run);
    }
    void access(tlm::tlm_generic_payload& gp, sc_core::sc_time&) {
        uint64_t v = 0;
        std::memcpy(&v, gp.get_data_ptr(), gp.get_data_length());
        if (gp.is_read()) {
            v = gp.get_address() == kHead ? head : gp.get_address() == kErr ? err : 0;
            std::memcpy(gp.get_data_ptr(), &v, gp.get_data_length());
        } else if (gp.get_address() == kTail) {
            tail = v;
            kick.notify(sc_core::SC_ZERO_TIME);
        } else if (gp.get_address() == kErr) {
            err &= ~static_cast<uint32_t>(v); // RW1C
            kick.notify(sc_core::SC_ZERO_TIME);
        }
        gp.set_response_status(tlm::TLM_OK_RESPONSE);
    }
    void run() {
        for (;;) {
            if (err || head == tail) {
                sc_core::wait(kick);
                continue;
            }
            sc_core::wait(200, sc_core::SC_NS);
            uint64_t w[2];
            memory.read(base + head, w, sizeof w);
            const uint64_t op = w[0] & 0xFF;
            if (op == bad) {
                err |= kErrIllegal; // the head stays on the refused entry
                continue;
            }
            head = (head + 16) % bytes;
            if (op == cmd) executed.push_back(w[1]);
            if (op == timeout) { // the next sync is abandoned: the head moves past it
                head = (head + 16) % bytes;
                err |= kErrTimeout;
            }
            if (op == sync) {
                memory.write_u32(w[1], static_cast<uint32_t>(w[0] >> 32));
                if ((w[0] >> 8) & 1) {
                    uint32_t data = kVector;
                    tlm::tlm_generic_payload gp;
                    gp.set_command(tlm::TLM_WRITE_COMMAND);
                    gp.set_address(MsiDecoder::kMsiBase);
                    gp.set_data_ptr(reinterpret_cast<unsigned char*>(&data));
                    gp.set_data_length(4);
                    gp.set_streaming_width(4);
                    sc_core::sc_time d = sc_core::SC_ZERO_TIME;
                    msi->b_transport(gp, d);
                }
            }
        }
    }
};

struct TestFamily final : CmdQueueHooks {
    MmioPort port;
    unsigned interrupt_acks = 0, error_acks = 0;
    explicit TestFamily(MmioPort p) : port(p) {}
    QueueEntry encode_sync(uint64_t status_pa, uint32_t token, bool interrupt) override {
        return entry(sync, status_pa, token, interrupt);
    }
    QueueEntry encode_nop() override { return entry(nop, 0); }
    uint64_t read_head() override { return port.read64(kHead); }
    void write_tail(uint64_t tail, uint64_t) override { port.write64(kTail, tail); }
    QueueError read_error() override {
        QueueError e;
        e.bits = port.read32(kErr);
        if (e.bits & kErrIllegal) {
            e.replace_head = true;
            e.failed_entries.push_back(0);
        }
        if (e.bits & kErrTimeout) e.failed_entries.push_back(-1);
        return e;
    }
    void acknowledge(const QueueError& e) override {
        ++error_acks;
        port.write32(kErr, e.bits);
    }
    void acknowledge_interrupt() override { ++interrupt_acks; }
    /// Commands whose operand is in [kIotlbOperands, kDevtlbOperands) invalidate the IOTLB, those above a device TLB.
    CommandKind kind_of(const QueueEntry& e) const override {
        if ((e[0] & 0xFF) != cmd || e[1] < kIotlbOperands) return CommandKind::other;
        return e[1] < kDevtlbOperands ? CommandKind::iotlb : CommandKind::devtlb;
    }
    static constexpr uint64_t kIotlbOperands = 0x1000, kDevtlbOperands = 0x2000;
};

struct Rig {
    stats::Group root{"root"};
    vtdtest::TestMemory memory{"memory"};
    HostCpu cpu;
    RingUnit unit{"unit", memory.store};
    MsiDecoder msi{"msi", Duration::ns(1500), &root};
    TestFamily family{MmioPort(cpu, 0)};
    stats::Group g{"queue", &root};
    CmdQueueDriver q;
    iommu::BumpAllocator pages{uint64_t{1} << 30, uint64_t{1} << 24};
    static HostCpuParams with_cpus(unsigned cpus) {
        HostCpuParams p;
        p.topology.cpus = cpus;
        return p;
    }
    explicit Rig(bool interrupts = false, unsigned cpus = 1)
        : cpu("cpu", with_cpus(cpus), memory.store, &root),
          q(cpu, family,
            CmdQueueDriver::Counters{g.counter("submissions", "", ""), g.counter("entries", "", ""),
                                     g.counter("polls", "", ""), g.counter("errors", "", "")},
            &msi, {kVector}, &g) {
        cpu.mmio.bind(unit.mmio);
        unit.msi.bind(msi.upstream);
        msi.mem.bind(memory.socket);
        q.init([this] { return *pages(4096, 4096); }, 0, 16);
        unit.base = q.base();
        unit.bytes = q.bytes();
        if (interrupts) q.set_wait(CmdQueueDriver::Wait::interrupt);
    }
    double stat(const char* s) const { return stats::numeric_value(*root.find(s)); }
    /// Runs `body` in a host thread to completion.
    void run(std::function<void()> body) {
        bool done = false;
        sc_core::sc_spawn([&] {
            body();
            done = true;
            sc_core::sc_stop();
        });
        sc_core::sc_start(sc_core::sc_time(100, sc_core::SC_MS));
        REQUIRE(done);
    }
};

} // namespace

TEST_CASE("the command-queue driver wraps the ring and completes every sync in order", "[sc][host][cmdq]") {
    Rig rig;
    std::vector<FlushTiming> ts;
    rig.run([&] {
        // 256 entries per 4 KiB ring of 16-byte entries; 100 x (3 commands + sync) wraps it.
        for (uint64_t i = 0; i < 100; ++i)
            ts.push_back(rig.q.submit({entry(cmd, 3 * i), entry(cmd, 3 * i + 1), entry(cmd, 3 * i + 2)}));
    });
    REQUIRE(rig.unit.executed.size() == 300);
    for (uint64_t i = 0; i < 300; ++i) CHECK(rig.unit.executed[i] == i);
    CHECK(rig.stat("queue.entries") == 400);
    CHECK(rig.stat("queue.submissions") == 100);
    CHECK(rig.stat("queue.errors") == 0);
    CHECK(rig.unit.tail == (400 * 16) % 4096);
    for (const auto& t : ts) {
        CHECK_FALSE(t.error);
        CHECK(t.descriptors == 4);
        CHECK(t.observed > t.submitted);
    }
}

TEST_CASE("a submission that does not fit the free part of the ring waits until the unit consumed enough",
          "[sc][host][cmdq]") {
    Rig rig;
    FlushTiming a, b;
    bool b_done = false;
    sc_core::sc_spawn([&] {
        std::vector<QueueEntry> big;
        for (uint64_t i = 0; i < 200; ++i) big.push_back(entry(cmd, i));
        a = rig.q.submit(big); // 201 of 256 entries
    });
    sc_core::sc_spawn([&] {
        sc_core::wait(100, sc_core::SC_NS); // after the big one took the lock
        std::vector<QueueEntry> more;
        for (uint64_t i = 200; i < 300; ++i) more.push_back(entry(cmd, i));
        b = rig.q.submit(more); // 101 more: only after the unit moved its head past ~46 entries
        b_done = true;
    });
    sc_core::sc_start(sc_core::sc_time(1, sc_core::SC_MS));
    REQUIRE(b_done);
    REQUIRE(rig.unit.executed.size() == 300);
    for (uint64_t i = 0; i < 300; ++i) CHECK(rig.unit.executed[i] == i);
    CHECK_FALSE(a.error);
    CHECK_FALSE(b.error);
    // b's entries went in only once the unit had made room: ~46 x 200 ns after a's were written.
    CHECK(b.submitted.as_ns() < 1000);
    CHECK(b.observed > a.observed);
    CHECK(rig.stat("queue.entries") == 302);
}

namespace {
/// Submits 1,024 commands (a flush of a domain with 1,024 PASIDs) with `batching`
/// through the 256-entry ring; checks they ran once each, in order, without error,
/// with `syncs` syncs, the timing spanning them all (200 ns per entry at least).
void check_long_flush(CmdQueueDriver::Batching batching, unsigned syncs) {
    Rig rig;
    rig.q.set_batching(batching);
    FlushTiming t;
    rig.run([&] {
        std::vector<QueueEntry> many;
        for (uint64_t i = 0; i < 1024; ++i) many.push_back(entry(cmd, i));
        t = rig.q.submit(many);
    });
    REQUIRE(rig.unit.executed.size() == 1024);
    for (uint64_t i = 0; i < 1024; ++i) CHECK(rig.unit.executed[i] == i);
    CHECK_FALSE(t.error);
    CHECK(t.descriptors == 1024 + syncs);
    CHECK(rig.stat("queue.entries") == 1024 + syncs);
    CHECK(rig.stat("queue.submissions") == (batching.sync_each ? syncs : 1));
    CHECK(rig.stat("queue.errors") == 0);
    CHECK((t.observed - t.submitted).as_ps() >= uint64_t{1024 + syncs} * 200'000);
}
} // namespace

TEST_CASE("a submission larger than the ring goes in ring-sized batches, each with its own sync, in order", "[sc][host][cmdq]") {
    check_long_flush({}, 5); // batches of 254 commands + sync (the ring keeps one entry free)
}

TEST_CASE("with VT-d's batching a long flush goes in batches of 16 commands each with its own sync", "[sc][host][cmdq]") {
    check_long_flush({16, true}, 64); // Linux intel/cache.c qi_batch
}

TEST_CASE("with AMD-Vi's batching a long flush streams through the ring as it has room and ends with one sync",
          "[sc][host][cmdq]") {
    check_long_flush({0, false}, 1); // Linux waits for the head to move (__iommu_queue_command_sync)
}

TEST_CASE("with SMMUv3's batching a long flush goes in batches of 64 without CMD_SYNC but the last", "[sc][host][cmdq]") {
    check_long_flush({64, false}, 1); // arm_smmu_cmdq_batch_add: CMDQ_BATCH_ENTRIES
}

TEST_CASE("a queue set to drop IOTLB invalidations leaves them out of submissions and posts, the rest and the sync go out",
          "[sc][host][cmdq]") {
    Rig rig;
    constexpr uint64_t iotlb = TestFamily::kIotlbOperands, devtlb = TestFamily::kDevtlbOperands;
    FlushTiming dropped, restored;
    rig.run([&] {
        rig.q.set_dropped(CommandKind::iotlb, true);
        dropped = rig.q.submit({entry(cmd, 1), entry(cmd, iotlb + 1), entry(cmd, devtlb + 1), entry(cmd, 2)});
        rig.q.post({entry(cmd, iotlb + 2), entry(cmd, 3)});
        rig.q.set_dropped(CommandKind::iotlb, false);
        restored = rig.q.submit({entry(cmd, iotlb + 3)});
    });
    CHECK_FALSE(dropped.error);
    CHECK(dropped.descriptors == 4); // three commands and the sync
    CHECK(rig.unit.executed == std::vector<uint64_t>{1, devtlb + 1, 2, 3, iotlb + 3});
    CHECK(rig.stat("queue.entries") == 4 + 1 + 2);
}

TEST_CASE("a refused command in an early part of a posted flush fails the flush", "[sc][host][cmdq]") {
    Rig rig;
    rig.q.set_batching({64, false});
    FlushTiming t, next;
    rig.run([&] {
        std::vector<QueueEntry> many;
        for (uint64_t i = 0; i < 300; ++i) many.push_back(entry(i == 10 ? bad : cmd, i));
        t = rig.q.submit(many);
        next = rig.q.submit({entry(cmd, 1000)});
    });
    CHECK(t.error);
    CHECK_FALSE(next.error);
    CHECK(rig.unit.executed.size() == 300); // 299 commands + the one after
    CHECK(rig.unit.executed.back() == 1000);
}

TEST_CASE("a refused command fails only its own submission, is replaced by a no-op, and the queue goes on",
          "[sc][host][cmdq]") {
    Rig rig;
    FlushTiming bad_t, good_t;
    rig.run([&] {
        bad_t = rig.q.submit({entry(cmd, 1), entry(bad, 2), entry(cmd, 3)});
        good_t = rig.q.submit({entry(cmd, 4)});
    });
    CHECK(bad_t.error);
    CHECK_FALSE(good_t.error);
    // The commands around the refused one still ran; the refused one became a no-op in memory.
    CHECK(rig.unit.executed == std::vector<uint64_t>{1, 3, 4});
    uint64_t w[2];
    rig.memory.store.read(rig.q.base() + 16, w, sizeof w);
    CHECK((w[0] & 0xFF) == nop);
    CHECK(rig.stat("queue.errors") == 1);
    CHECK(rig.family.error_acks == 1);
    CHECK(rig.unit.err == 0);
}

TEST_CASE("a sync the unit abandoned after a time-out fails its submission, the next one succeeds", "[sc][host][cmdq]") {
    Rig rig;
    FlushTiming t1, t2;
    rig.run([&] {
        t1 = rig.q.submit({entry(timeout, 1)});
        t2 = rig.q.submit({entry(cmd, 2)});
    });
    CHECK(t1.error);
    CHECK_FALSE(t2.error);
    CHECK(rig.unit.executed == std::vector<uint64_t>{2});
    CHECK(rig.stat("queue.errors") == 1);
}

TEST_CASE("poll mode spins on the status word until the sync completes", "[sc][host][cmdq]") {
    Rig rig;
    FlushTiming t;
    rig.run([&] { t = rig.q.submit({entry(cmd, 1), entry(cmd, 2), entry(cmd, 3)}); });
    // 4 entries x 200 ns in the unit; each spin = status read (90 ns) + error-register read (400 ns)
    // + relax (50 ns): the driver spins more than once and never sleeps.
    CHECK(rig.stat("queue.polls") >= 2);
    CHECK(rig.family.interrupt_acks == 0);
    CHECK((t.observed - t.submitted).as_ns() < 1500);
    CHECK_FALSE(t.error);
}

TEST_CASE("interrupt mode sleeps until the completion MSI and acknowledges it", "[sc][host][cmdq]") {
    Rig rig(true);
    FlushTiming t;
    rig.run([&] { t = rig.q.submit({entry(cmd, 1), entry(cmd, 2), entry(cmd, 3)}); });
    // One status read before sleeping, one after the wake-up; the MSI's delivery latency is paid.
    CHECK(rig.stat("queue.polls") == 2);
    CHECK(rig.family.interrupt_acks == 1);
    CHECK((t.observed - t.submitted).as_ns() > 1500);
    CHECK_FALSE(t.error);
}

TEST_CASE("N CPUs submitting through one queue contend on its lock: hand-offs and wait time grow with N",
          "[sc][host][cmdq][lock]") {
    // Three rounds in one simulation: 1, 2, then 4 CPUs each submit 20 one-command
    // flushes (what a strict unmap submits) at once; the lock's counters per round.
    Rig rig(false, 4);
    constexpr unsigned kPerCpu = 20;
    struct Round {
        double acquisitions, contended, handoffs, wait_ns;
    };
    std::vector<Round> rounds;
    rig.run([&] {
        for (unsigned cpus : {1u, 2u, 4u}) {
            const Round before{rig.stat("queue.queue_lock.acquisitions"), rig.stat("queue.queue_lock.contended"),
                               rig.stat("queue.queue_lock.handoffs"), rig.stat("queue.queue_lock.wait_ns")};
            unsigned done = 0;
            sc_core::sc_event all_done;
            for (unsigned c = 0; c < cpus; ++c)
                sc_core::sc_spawn([&, c] {
                    rig.cpu.run_on(c);
                    for (unsigned i = 0; i < kPerCpu; ++i) rig.q.submit({entry(cmd, i)});
                    if (++done == cpus) all_done.notify(sc_core::SC_ZERO_TIME);
                });
            sc_core::wait(all_done);
            rounds.push_back(Round{rig.stat("queue.queue_lock.acquisitions") - before.acquisitions,
                                   rig.stat("queue.queue_lock.contended") - before.contended,
                                   rig.stat("queue.queue_lock.handoffs") - before.handoffs,
                                   rig.stat("queue.queue_lock.wait_ns") - before.wait_ns});
        }
    });
    REQUIRE(rounds.size() == 3);
    REQUIRE(rig.unit.executed.size() == 7 * kPerCpu);
    // One CPU: the lock line stays in its cache, nobody waits.
    CHECK(rounds[0].acquisitions == kPerCpu);
    CHECK(rounds[0].handoffs == 0);
    CHECK(rounds[0].contended == 0);
    CHECK(rounds[0].wait_ns == 0);
    // More CPUs: every acquisition is counted, the line moves between them and they wait for each other.
    CHECK(rounds[1].acquisitions == 2 * kPerCpu);
    CHECK(rounds[2].acquisitions == 4 * kPerCpu);
    CHECK(rounds[1].handoffs > 0);
    CHECK(rounds[2].handoffs > rounds[1].handoffs);
    // How many acquisitions find the lock held depends on how the CPUs' polls line up;
    // the hand-offs and the total wait are what grow with N.
    CHECK(rounds[1].contended > 0);
    CHECK(rounds[2].contended > 0);
    CHECK(rounds[2].wait_ns > rounds[1].wait_ns);
    CHECK(rounds[1].wait_ns > 0);
}
