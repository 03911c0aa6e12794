// SPDX-License-Identifier: Apache-2.0
#pragma once
// The host's CPUs as the driver model sees them: timed MMIO to IOMMU and
// device register files, timed accesses to cacheable memory (table entries,
// queue descriptors, status words), and plain time spent in software.
//
// Fidelity: the host has topology.cpus CPUs. Each host thread runs on one of
// them (run_on; CPU 0 unless told) and keeps its own local time, ahead of the
// kernel's (TLM-2.0 temporal decoupling): stores to cacheable memory and
// software time (spend) only move that local time forward, as a CPU runs
// ahead of the rest of the system. A thread synchronises -- waits until the
// kernel reaches its local time -- only where it interacts with other agents:
// before an MMIO access (the unit or device acts at that time), before
// reading a word another agent writes (status words, write-backs), at a lock
// (HostLock) and before it sleeps on an event (callers use sync()). So a
// driver path costs one context switch per interaction, not one per access.
// Stores reach the functional memory at once, so other agents may see them
// up to the thread's lead early (bounded: its next interaction syncs); the
// times the driver reports (now(): map/unmap times for the DMA oracle,
// latencies) are local times. MMIO costs: IOMMU register files are on-die
// (mmio_read / mmio_write), device BARs are across PCIe (device_mmio_read).
// Memory accesses go to the functional store directly, as CPU caches are
// coherent with the IOMMU's snooped reads.
// Not modelled: sharing one CPU between two threads pinned to it (each runs
// as if alone), store buffers, out-of-order overlap of independent UC accesses.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <systemc>
#include <tlm>
#include <tlm_utils/multi_passthrough_initiator_socket.h>
#include <unordered_map>
#include <vector>

#include "models/common/sc_time.hpp"
#include "models/common/stats.hpp"
#include "models/host/host_params.hpp"
#include "models/mem/phys_mem.hpp"

namespace iommusim::host {

class HostCpu : public sc_core::sc_module {
public:
    /// One binding per register file (port index = binding order).
    tlm_utils::multi_passthrough_initiator_socket<HostCpu> mmio;

    HostCpu(sc_core::sc_module_name name, const HostCpuParams& params, mem::PhysMem& memory,
            stats::Group* parent_stats);

    // All of these must be called from an SC_THREAD.
    /// Runs the calling thread on CPU `core` (< topology.cpus) from now on; a
    /// thread that never calls it runs on CPU 0.
    void run_on(unsigned core);
    /// The calling thread's CPU.
    unsigned core() const;
    /// Waits until the kernel's time reaches the calling thread's local time.
    void sync();
    void mmio_write(unsigned port, uint32_t offset, uint64_t value, unsigned size);
    /// A register write the target handles at the write's time, not the kernel's: no
    /// synchronisation, the thread's lead goes with the access as its annotated delay
    /// (TLM-2.0 loosely timed). For a register whose target acts on the annotated time and
    /// that no other agent reads before then (IommuShell's queue tail registers), on a port
    /// marked so (set_posted_port); elsewhere it synchronises like mmio_write.
    void mmio_write_posted(unsigned port, uint32_t offset, uint64_t value, unsigned size);
    uint64_t mmio_read(unsigned port, uint32_t offset, unsigned size);
    void mem_write(uint64_t pa, const void* src, size_t len);
    /// Reads a word another agent writes: synchronises first.
    uint32_t mem_read_u32(uint64_t pa);
    /// Reads a completion flag: a word whose bits `mask` become `settled` when another agent
    /// writes it (in one write with the rest of the word) and stay so until this thread's
    /// side rewrites it (NIC descriptor DD, NVMe CQE phase tag). Found settled at the kernel's
    /// time it is settled at the thread's local time too, so the read returns without
    /// synchronising (same value, same local time); otherwise as mem_read_u32.
    uint32_t mem_read_flag(uint64_t pa, uint32_t mask, uint32_t settled);
    /// Whether posted writes and settled flag reads skip synchronisation (default); off, they
    /// synchronise like mmio_write / mem_read_u32 (same results: tests compare both).
    void set_decoupling(bool on) { decouple_ = on; }
    void spend(Duration d) { self().ahead += d; }
    /// The calling thread's local time.
    Duration now() const { return kernel_now() + self().ahead; }
    /// Sets the calling thread's local time to `t` (>= the kernel's): a caller that slept
    /// on an event resumes at a later point of a sequence it accounted for itself.
    void set_now(Duration t);
    /// Waits until the kernel reaches `t` (>= the kernel's time; the thread's local time becomes t).
    void wait_until(Duration t);

    /// Access counts (the stats), to account for accesses a caller proved would repeat
    /// (CmdQueueDriver's skipped polls) without performing them.
    struct Accesses {
        uint64_t mmio_reads = 0, mmio_writes = 0, mem_reads = 0, mem_writes = 0;
        Accesses operator-(const Accesses& o) const {
            return {mmio_reads - o.mmio_reads, mmio_writes - o.mmio_writes, mem_reads - o.mem_reads,
                    mem_writes - o.mem_writes};
        }
        bool operator==(const Accesses&) const = default;
    };
    Accesses accesses() const;
    /// The calling thread's share of accesses() (a handler thread's register reads).
    Accesses thread_accesses() const { return self().acc; }
    /// Counts `a` as performed (by the calling thread).
    void account(const Accesses& a);

    /// Work to do when the simulation stops (Platform::run, at the end time): `fn` accounts
    /// for what a sleeping thread has done by then. Returns an id for drop_settle.
    size_t on_settle(std::function<void()> fn);
    void drop_settle(size_t id);
    void settle();
    /// The time the run stops (Platform::run): a waiter needs no timer for a later time
    /// (a cancelled timer would stay in the kernel's queue), and a posted write or a flag
    /// read due at or after it synchronises (so a thread stops where it did before: nothing
    /// it does after the end is counted). Default: unknown (never).
    void set_run_end(Duration end) { run_end_ = end; }
    Duration run_end() const { return run_end_; }

    /// Marks `port` as a device BAR (reads cost device_mmio_read).
    void set_device_port(unsigned port);
    /// Marks `port`'s target as acting on a write at its annotated time: mmio_write_posted
    /// to it does not synchronise (on other ports it is an ordinary mmio_write).
    void set_posted_port(unsigned port);
    const HostCpuParams& params() const { return params_; }
    mem::PhysMem& memory() { return memory_; }

private:
    struct Thread {
        sc_core::sc_process_handle keep; ///< holds the process so its address is not reused
        unsigned core = 0;
        Duration ahead;                  ///< local time minus the kernel's
        Accesses acc;                    ///< this thread's accesses
        /// Its register accesses' payload, reused (a target may wait inside b_transport, so
        /// one per thread); built at the first access.
        std::unique_ptr<tlm::tlm_generic_payload> gp;
    };
    /// The calling thread's record: the last one asked for is remembered, so the common
    /// case (one thread doing a run of accesses) is a compare, inline.
    Thread& self() const {
        const sc_core::sc_process_b* p = sc_core::sc_get_current_process_b();
        if (p == last_ && last_thread_) [[likely]]
            return *last_thread_;
        return find_thread(p);
    }
    Thread& find_thread(const sc_core::sc_process_b* p) const;
    void mmio_access(unsigned port, tlm::tlm_command cmd, uint32_t offset, uint64_t& value, unsigned size,
                     bool posted = false);

    HostCpuParams params_;
    mem::PhysMem& memory_;
    stats::Group stats_;
    stats::Counter& mmio_writes_;
    stats::Counter& mmio_reads_;
    stats::Counter& mem_writes_;
    stats::Counter& mem_reads_;
    stats::Counter& mmio_errors_;
    std::vector<bool> device_port_;
    std::vector<bool> posted_port_;
    mutable std::unordered_map<const sc_core::sc_process_b*, Thread> threads_;
    mutable const sc_core::sc_process_b* last_ = nullptr; ///< lookup cache: the last thread asked for
    mutable Thread* last_thread_ = nullptr;
    std::map<size_t, std::function<void()>> settle_;
    size_t next_settle_ = 0;
    Duration run_end_ = Duration::ps(uint64_t{1} << 62);
    bool decouple_ = true;
};

/// A driver's handle on one register file.
class MmioPort {
public:
    MmioPort(HostCpu& cpu, unsigned port) : cpu_(cpu), port_(port) {}
    void write32(uint32_t off, uint32_t v) { cpu_.mmio_write(port_, off, v, 4); }
    void write64(uint32_t off, uint64_t v) { cpu_.mmio_write(port_, off, v, 8); }
    /// HostCpu::mmio_write_posted: for a register the target acts on at the write's time.
    void post32(uint32_t off, uint32_t v) { cpu_.mmio_write_posted(port_, off, v, 4); }
    void post64(uint32_t off, uint64_t v) { cpu_.mmio_write_posted(port_, off, v, 8); }
    uint32_t read32(uint32_t off) { return static_cast<uint32_t>(cpu_.mmio_read(port_, off, 4)); }
    uint64_t read64(uint32_t off) { return cpu_.mmio_read(port_, off, 8); }
    HostCpu& cpu() { return cpu_; }

private:
    HostCpu& cpu_;
    unsigned port_;
};

} // namespace iommusim::host
