// SPDX-License-Identifier: Apache-2.0
#pragma once
// The host: a CPU, the driver backends of every IOMMU, the iommufd-like
// object model, the PASID allocator and the DMA safety oracle, plus the
// threads that run on it (boot, the lazy flush-queue timer, and the
// scenario or workload threads the platform adds).
//
// Fidelity: host threads are SC_THREADs that spend CPU time through
// HostCpu; several threads may run concurrently and contend for the same
// invalidation queue (the driver's queue lock and the unit's serial engine).
// When a device with PRI is registered behind a VT-d unit, boot also sets up
// that unit's page request queue and starts its page request handler thread
// (VtdDriver::serve_page_requests; stats under os.prq).
// Not modelled: CPU scheduling between more threads than cores, caches.
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
#include "models/host/msi_decoder.hpp"
#include "models/host/pasid_allocator.hpp"
#include "models/host/vtd_driver.hpp"
#include "models/pcie/tlp.hpp"

namespace iommusim::host {

struct HostParams {
    HostCpuParams cpu;
    DriverParams driver;
    HostMemoryLayout layout;
};

class Host : public sc_core::sc_module {
public:
    Host(sc_core::sc_module_name name, const HostParams& params, mem::PhysMem& memory, stats::Group* parent_stats);
    ~Host() override;

    /// Creates the VT-d driver for a unit whose register file is `mmio` (binds
    /// the CPU to it) and puts the host's MSI decoder between the unit's
    /// memory port and memory.
    VtdDriver& add_vtd(const std::string& name, tlm::tlm_target_socket<>& mmio, tlm::tlm_initiator_socket<>& unit_mem,
                       tlm::tlm_target_socket<>& memory);

    /// Binds a device's register BAR to the CPU's MMIO initiator (the driver's
    /// doorbells and register writes); returns the CPU port to use.
    unsigned add_device_mmio(tlm::tlm_target_socket<>& regs);
    /// Adds a host thread; it starts once every IOMMU is enabled. Must be called during elaboration.
    void add_thread(const std::string& name, std::function<void()> body);
    /// Whether boot (driver enable) has finished; threads added with add_thread run after it.
    bool booted() const { return booted_; }

    /// An observer for devices that reports each completed DMA to the oracle.
    pcie::DmaObserver dma_observer();

    HostCpu& cpu() { return cpu_; }
    IommuFd& iommufd() { return fd_; }
    DmaOracle& oracle() { return oracle_; }
    PasidAllocator& pasids() { return pasids_; }
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
    std::vector<std::unique_ptr<VtdDriver>> vtd_drivers_;
    std::vector<std::unique_ptr<MsiDecoder>> msi_;
    std::vector<std::pair<unsigned, VtdDriver*>> vtd_index_; ///< iommufd index of each VT-d driver
    PageRequestStats prq_stats_;
    std::vector<std::pair<std::string, IommuDriver*>> drivers_;
    std::vector<std::pair<std::string, std::function<void()>>> threads_;
    unsigned mmio_ports_ = 0;   ///< CPU MMIO ports bound so far (binding order)
    bool booted_ = false;
    sc_core::sc_event fq_armed_;
    stats::Counter& dma_errors_;
};

} // namespace iommusim::host
