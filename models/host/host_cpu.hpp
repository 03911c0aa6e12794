// SPDX-License-Identifier: Apache-2.0
#pragma once
// The host CPU as the driver model sees it: timed MMIO to IOMMU register
// files, timed accesses to cacheable memory (table entries, queue
// descriptors, status words), and plain time spent in software.
//
// Fidelity: every operation costs its parameter and is performed in the
// calling SC_THREAD (driver paths are not the DMA hot path, so a wait() per
// operation is the honest model of a CPU that stalls on UC accesses). Memory
// accesses go to the functional store directly, as CPU caches are coherent
// with the IOMMU's snooped reads. Not modelled: store buffers, out-of-order
// overlap of independent UC accesses. Threads run on one of topology.cpus
// CPUs (run_on); locks (HostLock) charge hand-offs between them.
#include <cstdint>
#include <systemc>
#include <unordered_map>
#include <tlm>
#include <tlm_utils/multi_passthrough_initiator_socket.h>

#include "models/common/stats.hpp"
#include "models/host/host_params.hpp"
#include "models/mem/phys_mem.hpp"

namespace iommusim::host {

class HostCpu : public sc_core::sc_module {
public:
    /// One binding per IOMMU register file (port index = binding order).
    tlm_utils::multi_passthrough_initiator_socket<HostCpu> mmio;

    HostCpu(sc_core::sc_module_name name, const HostCpuParams& params, mem::PhysMem& memory,
            stats::Group* parent_stats);

    // All of these must be called from an SC_THREAD.
    /// Runs the calling thread on CPU `core` (< topology.cpus) from now on; a
    /// thread that never calls it runs on CPU 0.
    void run_on(unsigned core);
    /// The calling thread's CPU.
    unsigned core() const;
    /// Brings the calling thread's local time and the kernel's together (where
    /// CPUs interact). Every operation below waits for its cost, so there is nothing to do.
    void sync() {}
    void mmio_write(unsigned port, uint32_t offset, uint64_t value, unsigned size);
    uint64_t mmio_read(unsigned port, uint32_t offset, unsigned size);
    void mem_write(uint64_t pa, const void* src, size_t len);
    uint32_t mem_read_u32(uint64_t pa);
    void spend(Duration d);
    Duration now() const;

    const HostCpuParams& params() const { return params_; }
    mem::PhysMem& memory() { return memory_; }

private:
    void mmio_access(unsigned port, tlm::tlm_command cmd, uint32_t offset, uint64_t& value, unsigned size);

    HostCpuParams params_;
    mem::PhysMem& memory_;
    stats::Group stats_;
    stats::Counter& mmio_writes_;
    stats::Counter& mmio_reads_;
    stats::Counter& mem_writes_;
    stats::Counter& mem_reads_;
    stats::Counter& mmio_errors_;
    struct Thread {
        sc_core::sc_process_handle keep; ///< holds the process so its address is not reused
        unsigned core = 0;
    };
    std::unordered_map<const sc_core::sc_process_b*, Thread> threads_; ///< by thread; absent: CPU 0
};

/// A driver's handle on one IOMMU's register file.
class MmioPort {
public:
    MmioPort(HostCpu& cpu, unsigned port) : cpu_(cpu), port_(port) {}
    void write32(uint32_t off, uint32_t v) { cpu_.mmio_write(port_, off, v, 4); }
    void write64(uint32_t off, uint64_t v) { cpu_.mmio_write(port_, off, v, 8); }
    uint32_t read32(uint32_t off) { return static_cast<uint32_t>(cpu_.mmio_read(port_, off, 4)); }
    uint64_t read64(uint32_t off) { return cpu_.mmio_read(port_, off, 8); }
    HostCpu& cpu() { return cpu_; }

private:
    HostCpu& cpu_;
    unsigned port_;
};

} // namespace iommusim::host
