// SPDX-License-Identifier: Apache-2.0
#pragma once
#include <cstdint>

#include "models/common/time.hpp"
#include "models/pcie/tlp.hpp"

namespace iommusim::pcie {

/// A sequential stream over a buffer, the simplest DMA workload: a copy
/// engine or a NIC ring without descriptors.
struct StreamWorkloadParams {
    static constexpr uint64_t kDefaultBufferBase = uint64_t{1} << 32;  // above the 4 GiB MMIO hole
    static constexpr uint64_t kDefaultBufferBytes = uint64_t{1} << 20; // 1 MiB
    static constexpr uint64_t kDefaultRequestBytes = 256;              // PCIe MPS 256 B, common server setting
    uint64_t buffer_base = kDefaultBufferBase;
    uint64_t buffer_bytes = kDefaultBufferBytes;
    uint64_t request_bytes = kDefaultRequestBytes;
    uint32_t read_percent = 50;   ///< share of reads, in percent
    uint64_t requests = 0;        ///< 0 = until the simulation ends
    uint64_t seed = 0;            ///< read/write choice; 0 = derived from the platform seed
};

struct DmaEndpointParams {
    // Max outstanding non-posted requests: the endpoint overlaps this many
    // request latencies (PCIe 10-bit tags allow up to 768; 32 is a typical
    // DMA engine's read-request tracker).
    static constexpr uint32_t kDefaultOutstanding = 32;
    // ns; SystemC quantum for temporal decoupling of the generator thread.
    static constexpr double kDefaultQuantumNs = 1000.0;

    Bdf requester;
    bool pasid_enabled = false;
    uint32_t pasid = 0;
    uint32_t outstanding = kDefaultOutstanding;
    double rate_gbps = 0.0;        ///< issue-rate cap in GB/s (bytes/ns); 0 = unlimited
    Duration quantum = Duration::ns(kDefaultQuantumNs);
    StreamWorkloadParams workload;
};

} // namespace iommusim::pcie
