// SPDX-License-Identifier: Apache-2.0
// HostCpu's temporal decoupling where an access cannot depend on what the rest
// of the system does before the thread's local time: a posted register write
// reaches its target at the thread's local time (as the annotated delay)
// without a thread switch, and a completion flag already set is read at the
// local time without one; each gives what the synchronising access gives.
#include <catch2/catch.hpp>
#include <cstring>
#include <functional>
#include <systemc>
#include <tlm_utils/simple_target_socket.h>
#include <vector>

#include "models/common/sc_time.hpp"
#include "models/host/host_cpu.hpp"
#include "models/mem/sparse_memory.hpp"

using namespace iommusim;
using namespace iommusim::host;

namespace {

/// A register file that records, per write, the kernel time it was called at and the time
/// the write takes effect (kernel time + annotated delay), as an IOMMU's tail register does.
struct TimedRegisters : sc_core::sc_module {
    tlm_utils::simple_target_socket<TimedRegisters> mmio{"mmio"};
    struct Write {
        Duration kernel, at;
        uint64_t value;
    };
    std::vector<Write> writes;
    explicit TimedRegisters(sc_core::sc_module_name n) : sc_module(n) {
        mmio.register_b_transport(this, &TimedRegisters::bt);
    }
    void bt(tlm::tlm_generic_payload& gp, sc_core::sc_time& delay) {
        uint64_t v = 0;
        std::memcpy(&v, gp.get_data_ptr(), gp.get_data_length());
        if (gp.is_write()) writes.push_back({kernel_now(), kernel_now() + from_sc(delay), v});
        gp.set_response_status(tlm::TLM_OK_RESPONSE);
    }
};

struct Rig {
    stats::Group root{"root"};
    mem::SparseMemory memory{uint64_t{1} << 32};
    HostCpuParams params;
    HostCpu cpu;
    TimedRegisters regs{"regs"};
    TimedRegisters plain{"plain"};
    Rig() : cpu("cpu", params, memory, &root) {
        cpu.mmio.bind(regs.mmio);  // port 0: acts on the annotated time
        cpu.mmio.bind(plain.mmio); // port 1: not marked
        cpu.set_posted_port(0);
    }
};

struct Seen {
    Duration kernel_after, local_after;
    uint64_t deltas = 0; ///< delta cycles the access took (0: no thread switch)
};

/// From a thread at kernel time `at` that has run `ahead` ahead of it: `access`, and what it took.
Seen timed_access(sc_core::sc_time at, Duration ahead, Rig& rig, const std::function<void()>& access) {
    Seen s;
    sc_core::sc_spawn([&, at, ahead] {
        sc_core::wait(at);
        rig.cpu.spend(ahead);
        const uint64_t d0 = sc_core::sc_delta_count();
        access();
        s.deltas = sc_core::sc_delta_count() - d0;
        s.kernel_after = kernel_now();
        s.local_after = rig.cpu.now();
    });
    sc_core::sc_start(sc_core::sc_time(10, sc_core::SC_US));
    return s;
}

/// From a thread 300 ns ahead of the kernel at 1 us: one write to `port`, posted or not.
Seen write_once(Rig& rig, unsigned port, bool posted) {
    return timed_access(sc_core::sc_time(1, sc_core::SC_US), Duration::ns(300), rig, [&] {
        if (posted) rig.cpu.mmio_write_posted(port, 0x8, 0x40, 8);
        else rig.cpu.mmio_write(port, 0x8, 0x40, 8);
    });
}

} // namespace

TEST_CASE("the host CPU's posted register write reaches the unit at its local time without a switch",
          "[sc][host][cpu][decoupling]") {
    Rig rig;
    const Seen s = write_once(rig, 0, true);
    REQUIRE(rig.regs.writes.size() == 1);
    const Duration local = Duration::us(1) + Duration::ns(300);
    CHECK(rig.regs.writes[0].kernel == Duration::us(1));                    // called before the local time
    CHECK(rig.regs.writes[0].at == local + rig.params.mmio_write);           // stamped with it
    CHECK(rig.regs.writes[0].value == 0x40);
    CHECK(s.deltas == 0);                                                    // no thread switch
    CHECK(s.kernel_after == Duration::us(1));
    CHECK(s.local_after == local + rig.params.mmio_write);                   // the write's cost is paid
    CHECK(stats::numeric_value(*rig.root.find("cpu.mmio_writes")) == 1);
}

TEST_CASE("a synchronising register write takes effect at the same time as the posted one",
          "[sc][host][cpu][decoupling]") {
    Rig rig;
    const Seen s = write_once(rig, 0, false);
    REQUIRE(rig.regs.writes.size() == 1);
    const Duration local = Duration::us(1) + Duration::ns(300);
    CHECK(rig.regs.writes[0].kernel == local); // the thread waited for its local time first
    CHECK(rig.regs.writes[0].at == local + rig.params.mmio_write);
    CHECK(s.deltas > 0);
    CHECK(s.local_after == local + rig.params.mmio_write);
}

TEST_CASE("a posted write to a port not marked for it synchronises first", "[sc][host][cpu][decoupling]") {
    Rig rig;
    const Seen s = write_once(rig, 1, true);
    REQUIRE(rig.plain.writes.size() == 1);
    CHECK(rig.plain.writes[0].kernel == Duration::us(1) + Duration::ns(300));
    CHECK(s.deltas > 0);
}

TEST_CASE("with decoupling off a posted write synchronises like an ordinary one", "[sc][host][cpu][decoupling]") {
    Rig rig;
    rig.cpu.set_decoupling(false);
    const Seen s = write_once(rig, 0, true);
    REQUIRE(rig.regs.writes.size() == 1);
    CHECK(rig.regs.writes[0].kernel == Duration::us(1) + Duration::ns(300));
    CHECK(s.deltas > 0);
}

namespace {
/// An agent writes `word` to the flag at `written_at`; the thread, at kernel time 1 us and
/// 2 us ahead of it, reads the flag (bit 0 settled when set).
Seen read_flag(Rig& rig, sc_core::sc_time written_at, uint32_t word, uint32_t& v) {
    constexpr uint64_t kWord = 0x1000;
    sc_core::sc_spawn([&, written_at, word] {
        sc_core::wait(written_at);
        rig.memory.write(kWord, &word, 4);
    });
    return timed_access(sc_core::sc_time(1, sc_core::SC_US), Duration::us(2), rig,
                        [&] { v = rig.cpu.mem_read_flag(kWord, 1, 1); });
}
} // namespace

TEST_CASE("a completion flag already set is read at the thread's local time without a switch",
          "[sc][host][cpu][decoupling]") {
    // Set at 500 ns, before the kernel's time: the read returns at once with the whole word,
    // the local time as a synchronising read would leave it.
    Rig rig;
    uint32_t v = 0;
    const Seen s = read_flag(rig, sc_core::sc_time(500, sc_core::SC_NS), 0xAB0001, v);
    CHECK(v == 0xAB0001);
    CHECK(s.deltas == 0);
    CHECK(s.kernel_after == Duration::us(1));
    CHECK(s.local_after == Duration::us(3) + rig.params.mem_read);
    CHECK(stats::numeric_value(*rig.root.find("cpu.mem_reads")) == 1);
}

TEST_CASE("a completion flag not yet set is read after synchronising and sees a write made before the local time",
          "[sc][host][cpu][decoupling]") {
    // Set at 2 us, between the kernel's time (1 us) and the thread's local time (3 us): not set
    // yet at 1 us, so the read waits until its end and sees it.
    Rig rig;
    uint32_t v = 0;
    const Seen s = read_flag(rig, sc_core::sc_time(2, sc_core::SC_US), 1, v);
    CHECK(v == 1);
    CHECK(s.deltas > 0);
    CHECK(s.kernel_after == Duration::us(3) + rig.params.mem_read);
    CHECK(s.local_after == s.kernel_after);
}

TEST_CASE("a completion flag read that would end at or after the run's end synchronises",
          "[sc][host][cpu][decoupling]") {
    // Already set, but the read's end (3 us + mem_read) is past the run's end: the thread stops
    // there as before, and nothing after the read happens.
    Rig rig;
    rig.cpu.set_run_end(Duration::us(2));
    uint32_t v = 0;
    const Seen s = read_flag(rig, sc_core::sc_time(500, sc_core::SC_NS), 1, v);
    CHECK(s.deltas > 0);
    CHECK(s.kernel_after == Duration::us(3) + rig.params.mem_read);
}

TEST_CASE("a flag whose settled value is clear (a flipped phase tag) is recognised as settled",
          "[sc][host][cpu][decoupling]") {
    Rig rig;
    constexpr uint64_t kWord = 0x2000;
    const uint32_t w = 0x0007; // phase bit 16 clear: settled for a queue in its second lap
    rig.memory.write(kWord, &w, 4);
    uint32_t v = 1;
    uint64_t deltas = 1;
    sc_core::sc_spawn([&] {
        rig.cpu.spend(Duration::us(1));
        const uint64_t d0 = sc_core::sc_delta_count();
        v = rig.cpu.mem_read_flag(kWord, 1u << 16, 0);
        deltas = sc_core::sc_delta_count() - d0;
    });
    sc_core::sc_start(sc_core::sc_time(10, sc_core::SC_US));
    CHECK(v == 7);
    CHECK(deltas == 0);
}
