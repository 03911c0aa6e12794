// SPDX-License-Identifier: Apache-2.0
#pragma once
// Parameters of the NVMe-like device (NvmeEndpoint).
#include <cstdint>

#include "models/common/time.hpp"
#include "models/pcie/ats_endpoint_params.hpp"

namespace iommusim::pcie {

struct NvmeParams {
    /// ns; media service time of one command. calibration.md "NVMe service time, 4 KiB
    /// random read": NAND ~75 us device-internal (Optane-class ~6.5 us). Writes use the
    /// same figure [estimate]: no published write row.
    static constexpr double kDefaultServiceNs = 75000.0;
    /// Commands the media serves at once (dies / channels). [estimate]: enough that the
    /// host's queue depth, not the device, bounds a default job.
    static constexpr uint32_t kDefaultParallelism = 64;
    /// Entries per queue the controller supports (CAP.MQES + 1).
    static constexpr uint32_t kDefaultMaxQueueEntries = 1024;
    /// Non-posted requests in flight (SQE and PRP-list fetches, data reads, ATS Translation Requests): 8-bit tags.
    static constexpr uint32_t kDefaultMaxOutstandingReads = 256;
    static constexpr double kDefaultQuantumNs = 1000.0;

    AtsEndpointParams ats;
    Duration service = Duration::ns(kDefaultServiceNs);
    uint32_t parallelism = kDefaultParallelism;
    uint32_t max_queue_entries = kDefaultMaxQueueEntries;
    uint32_t max_outstanding_reads = kDefaultMaxOutstandingReads;
    Duration quantum = Duration::ns(kDefaultQuantumNs);
    /// The data transfers of commands (not SQE / PRP-list fetches or completions) carry No
    /// Snoop (PCIe Base §2.2.6.5: a device may set it where it knows coherency is not needed).
    bool no_snoop_data = false;
};

} // namespace iommusim::pcie
