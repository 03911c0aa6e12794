// SPDX-License-Identifier: Apache-2.0
// IrqLines: a driver thread sleeps until an MSI of one of its vectors has been
// delivered and pays the IRQ thread's wake-up; an interrupt that arrived while
// it ran makes its next wait return at once, without a wake-up.
#include <catch2/catch.hpp>
#include <systemc>
#include <tlm_utils/simple_target_socket.h>

#include "models/host/host_cpu.hpp"
#include "models/host/irq_thread.hpp"
#include "models/host/msi_decoder.hpp"
#include "models/mem/sparse_memory.hpp"
#include "test/models/host/msi_source.hpp"

using namespace iommusim;
using namespace iommusim::host;

namespace {

/// The CPU's register port needs a target; these tests make no register access.
struct NoRegisters : sc_core::sc_module {
    tlm_utils::simple_target_socket<NoRegisters> mmio{"mmio"};
    explicit NoRegisters(sc_core::sc_module_name n) : sc_module(n) { mmio.register_b_transport(this, &NoRegisters::bt); }
    void bt(tlm::tlm_generic_payload& gp, sc_core::sc_time&) { gp.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE); }
};

struct Rig {
    stats::Group root{"root"};
    mem::SparseMemory memory{uint64_t{1} << 32};
    HostCpuParams params;
    HostCpu cpu;
    NoRegisters regs{"regs"};
    hosttest::MsiSource unit{"unit"};
    MsiDecoder msi;
    IrqLines lines{&msi, {0x30, 0x31}};
    Rig() : cpu("cpu", params, memory, &root), msi("msi", params.interrupt_latency, &root) {
        cpu.mmio.bind(regs.mmio);
        unit.connect(msi);
    }
};

} // namespace

TEST_CASE("a thread waiting on its vectors runs after delivery plus the IRQ thread wake-up", "[sc][host][irq]") {
    Rig rig;
    Duration woke;
    uint64_t seen = 0;
    sc_core::sc_spawn([&] {
        seen = rig.lines.wait(rig.cpu, 0);
        woke = rig.cpu.now();
    });
    sc_core::sc_spawn([&] {
        sc_core::wait(10, sc_core::SC_US);
        rig.unit.send(0x29); // another vector: not ours
        sc_core::wait(10, sc_core::SC_US);
        rig.unit.send(0x31);
    });
    sc_core::sc_start(sc_core::sc_time(100, sc_core::SC_US));
    CHECK(seen == 1);
    CHECK(woke == Duration::us(20) + rig.params.interrupt_latency + rig.params.irq_thread_wakeup);
}

TEST_CASE("an interrupt delivered while the thread ran makes its next wait return at once, without a wake-up",
          "[sc][host][irq]") {
    Rig rig;
    Duration second;
    uint64_t seen = 0;
    sc_core::sc_spawn([&] {
        seen = rig.lines.wait(rig.cpu, seen);                     // the first interrupt
        rig.cpu.spend(Duration::us(10));                          // the handler's work...
        rig.cpu.sync();                                           // ...during which the second arrives
        const Duration before = rig.cpu.now();
        seen = rig.lines.wait(rig.cpu, seen);
        second = rig.cpu.now() - before;
    });
    sc_core::sc_spawn([&] {
        rig.unit.send(0x30);
        sc_core::wait(3, sc_core::SC_US); // delivered at 1.5 us; the handler runs until ~12 us
        rig.unit.send(0x30);
    });
    sc_core::sc_start(sc_core::sc_time(100, sc_core::SC_US));
    CHECK(seen == 2);
    CHECK(second == Duration::zero());
}
