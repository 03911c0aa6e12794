// SPDX-License-Identifier: Apache-2.0
#pragma once
#include <cstdint>
#include <vector>

#include "models/common/time.hpp"
#include "models/pcie/link_params.hpp"
#include "models/pcie/routing.hpp"
#include "models/pcie/tlp.hpp"
#include "models/pcie/workload_params.hpp"

namespace iommusim::pcie {

/// PASID extended capability (PCIe Base §7.8.9; spec-layouts D.8).
struct PasidCapability {
    static constexpr unsigned kDefaultMaxWidth = 20;   // full 20-bit PASID space
    bool supported = true;
    unsigned max_width = kDefaultMaxWidth;             ///< Max PASID Width, 0..20 bits
    bool execute_supported = false;                    ///< Execute Permission Supported
    bool privileged_supported = false;                 ///< Privileged Mode Supported
};

struct TrafficEndpointParams {
    /// Non-posted requests in flight (tags). 256 = 8-bit tags (PCIe Base
    /// §2.2.6.2); 10-bit tags allow 768.
    static constexpr uint32_t kDefaultMaxOutstandingReads = 256;
    /// ns; temporal-decoupling quantum of the generator thread.
    static constexpr double kDefaultQuantumNs = 1000.0;
    /// ns; device-internal latency to serve a request to one of its BARs
    /// (P2P or MMIO target). Order of magnitude for on-chip SRAM/registers (UNCONFIRMED).
    static constexpr double kDefaultBarLatencyNs = 50.0;

    std::vector<Bdf> functions;        ///< RIDs, [0] = function 0, then other PFs / VFs (topology order)
    LinkParams link;                   ///< this device's link: MPS / MRRS used to split requests
    uint32_t max_outstanding_reads = kDefaultMaxOutstandingReads;
    Duration quantum = Duration::ns(kDefaultQuantumNs);
    Duration start_at;                 ///< start issuing at this time (e.g. after the host attached the device)
    bool start_on_request = false;     ///< wait for start() (a scenario step) instead of start_at
    Duration stop_at;                  ///< stop issuing at this time; zero = when every stream ends
    std::vector<AddrRange> bars;       ///< memory BARs this device answers (all functions)
    /// The function (index into `functions`) each entry of `bars` belongs to: a function's
    /// request to its own BAR stays inside the device. Empty = no internal decode.
    std::vector<size_t> bar_functions;
    Duration bar_latency = Duration::ns(kDefaultBarLatencyNs);
    PasidCapability pasid;             ///< every PASID a workload uses must fit max_width
    std::vector<WorkloadParams> workloads;
};

} // namespace iommusim::pcie
