// SPDX-License-Identifier: Apache-2.0
#pragma once
// The host: a CPU, the driver backends of every IOMMU, the iommufd-like
// object model, the PASID allocator and the DMA safety oracle, plus the
// threads that run on it (boot, the lazy flush-queue timer, and the
// scenario or workload threads the platform adds).
//
// Fidelity: host threads are SC_THREADs, each on one of HostCpu's CPUs
// (boot, the flush-queue timer and page-request handlers on CPU 0, others by
// the affinity they are added with), spending CPU time in their own local
// time; several threads may run concurrently and contend for the same
// invalidation queue (the driver's queue lock, a HostLock with hand-off
// costs, and the unit's serial engine).
// Each IOMMU's driver backend is built by the caller (the IOMMU type's
// registry row) through add_iommu; the host only knows IommuDriver. When a
// device with PRI is registered behind a unit that has PRI, boot also sets up
// that unit's page-request log and starts its handler thread
// (IommuDriver::serve_page_requests; stats under os.prq).
// Not modelled: CPU scheduling between several threads pinned to one CPU, caches.
#include <functional>
#include <memory>
#include <string>
#include <systemc>
#include <vector>

#include "models/common/stats.hpp"
#include "models/host/dma_oracle.hpp"
#include "models/host/host_cpu.hpp"
#include "models/host/host_params.hpp"
#include "models/host/iommufd.hpp"
#include "models/host/isolation.hpp"
#include "models/host/msi_decoder.hpp"
#include "models/host/pasid_allocator.hpp"
#include "models/host/iommu_driver.hpp"
#include "models/pcie/tlp.hpp"

namespace iommusim::host {

struct HostParams {
    HostCpuParams cpu;
    DriverParams driver;
    HostMemoryLayout layout;
    PasidParams pasid;
};

/// Any memory target socket (the memory, or a fan-in in front of it).
using MemoryTarget = tlm::tlm_base_target_socket_b<32, tlm::tlm_fw_transport_if<>, tlm::tlm_bw_transport_if<>>;

/// What a driver backend is built with (Host::add_iommu hands it to the builder).
struct DriverEnv {
    std::string name;                      ///< the unit's name (its stats group under the host)
    MmioPort mmio;                         ///< the CPU's port to the unit's register file
    const DriverParams& params;
    std::function<uint64_t()> alloc_page;  ///< 4 KiB table pages for the driver's structures and queues
    stats::Group* stats;                   ///< parent of the driver's stats group
    MsiDecoder* msi;                       ///< the unit's interrupts
};
using DriverBuilder = std::function<std::unique_ptr<IommuDriver>(const DriverEnv&)>;

class Host : public sc_core::sc_module {
public:
    Host(sc_core::sc_module_name name, const HostParams& params, mem::PhysMem& memory, stats::Group* parent_stats);
    ~Host() override;

    /// Adds an IOMMU: binds the CPU to its register file `mmio`, puts an MSI
    /// decoder between the unit's memory port and memory, builds its driver
    /// backend with `build` and registers it with iommufd (index = call order).
    /// `timed_registers`: the register file acts on a write at its annotated time (an
    /// IommuShell: queue tail writes), so the driver's tail writes are posted without
    /// synchronising (HostCpu::mmio_write_posted); false (a trapping vIOMMU, a test unit):
    /// every write synchronises first.
    IommuDriver& add_iommu(const std::string& name, tlm::tlm_target_socket<>& mmio,
                           tlm::tlm_initiator_socket<>& unit_mem, MemoryTarget& memory,
                           const DriverBuilder& build, uint16_t segment = 0, bool timed_registers = false);
    /// The driver of IOMMU `index` (iommufd order).
    IommuDriver& driver(unsigned index) { return *drivers_.at(index).second; }
    unsigned iommu_count() const { return static_cast<unsigned>(drivers_.size()); }

    /// Binds a device's register BAR to the CPU's MMIO initiator (the driver's
    /// doorbells and register writes); returns the CPU port to use.
    unsigned add_device_mmio(tlm::tlm_target_socket<>& regs);
    /// Binds another register BAR of an IOMMU (AMD hardware vIOMMU's VF_CNTL) to the CPU's MMIO
    /// initiator (costs as the unit's own registers); returns the CPU port to use.
    unsigned add_iommu_mmio(tlm::tlm_target_socket<>& regs);
    /// Adds a host thread on CPU `cpu` modulo the host's CPUs (a device queue's
    /// interrupt affinity, a scenario thread's CPU); it starts once every IOMMU
    /// is enabled. Must be called during elaboration.
    void add_thread(const std::string& name, std::function<void()> body, unsigned cpu = 0);
    /// Runs at the start of boot, before any driver is enabled (a VM's guest waits there for its VMM). Elaboration only.
    void set_boot_prelude(std::function<void()> f) { boot_prelude_ = std::move(f); }
    /// Whether boot (driver enable) has finished; threads added with add_thread run after it.
    bool booted() const { return booted_; }

    /// An observer for devices of PCIe segment `segment` that reports each completed DMA to the oracle.
    pcie::DmaObserver dma_observer(uint16_t segment = 0);

    HostCpu& cpu() { return cpu_; }
    IommuFd& iommufd() { return fd_; }
    DmaOracle& oracle() { return oracle_; }
    PasidAllocator& pasids() { return pasids_; }
    /// User-facing attaches: PASID ownership and IOMMU-group checks before iommufd.
    Isolation& isolation() { return isolation_; }
    const HostParams& params() const { return params_; }
    stats::Group& stats_group() { return stats_; }
    /// The index of the IOMMU named `name` in iommufd.
    unsigned iommu_index(const std::string& name) const;

private:
    void boot();
    void flush_queue_timer();

    HostParams params_;
    stats::Group stats_;
    HostCpu cpu_;
    DmaOracle oracle_;
    IommuFd fd_;
    PasidAllocator pasids_;
    Isolation isolation_;
    std::vector<std::unique_ptr<MsiDecoder>> msi_;
    PageRequestStats prq_stats_;
    std::vector<std::pair<std::string, std::unique_ptr<IommuDriver>>> drivers_; ///< iommufd order
    struct Thread {
        std::string name;
        std::function<void()> body;
        unsigned cpu;
    };
    std::vector<Thread> threads_;
    unsigned mmio_ports_ = 0;   ///< CPU MMIO ports bound so far (binding order)
    bool booted_ = false;
    std::function<void()> boot_prelude_;
    sc_core::sc_event fq_armed_;
    stats::Counter& dma_errors_;
};

} // namespace iommusim::host
