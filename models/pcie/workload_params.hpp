// SPDX-License-Identifier: Apache-2.0
#pragma once
// Typed parameters of the DMA address-stream generators (workload.hpp).
#include <cstdint>
#include <string>
#include <vector>

#include "models/common/time.hpp"

namespace iommusim::pcie {

enum class WorkloadKind : uint8_t { sequential, random_uniform, zipf, strided, nic_ring, accel_queue, trace };

/// PASIDs a stream tags its requests with. Empty = requests without PASID.
/// Weights (same length) pick a PASID per request; empty = uniform.
struct PasidMix {
    std::vector<uint32_t> pasids;
    std::vector<double> weights;
};

/// One record of a trace file (`time_ns,device,pasid,addr,size,rw`).
struct TraceRecord {
    uint64_t time_ns = 0;
    std::string device;
    bool pasid_present = false;
    uint32_t pasid = 0;
    uint64_t addr = 0;
    uint32_t size = 0;
    bool write = false;
    unsigned line = 0;   ///< source line, for messages
};

struct WorkloadParams {
    static constexpr uint64_t kDefaultBase = uint64_t{1} << 32;          // IOVA above the 4 GiB hole
    static constexpr uint64_t kDefaultRegionBytes = uint64_t{1} << 20;   // 1 MiB working set
    static constexpr uint32_t kDefaultRequestBytes = 256;                // = default MPS
    static constexpr uint64_t kDefaultStrideBytes = 4096;                // one page: worst case for the IOTLB
    static constexpr double kDefaultZipfS = 0.99;                        // YCSB's default skew
    static constexpr uint64_t kDefaultItemBytes = 4096;                  // zipf item = one page
    static constexpr uint32_t kDefaultRingEntries = 256;                 // typical NIC RX ring
    static constexpr uint32_t kDefaultDescriptorBytes = 16;              // e.g. Intel ixgbe/ice legacy descriptors
    static constexpr uint32_t kDefaultPacketBytes = 1500;                // Ethernet MTU payload
    static constexpr uint32_t kDefaultBufferBytes = 2048;                // Linux NIC RX buffer (half page)
    static constexpr uint32_t kDefaultRemapWindowPackets = 65536;        // IOVA window the allocator walks before reuse
    static constexpr uint32_t kDefaultJobBytes = 64 * 1024;              // accelerator job (e.g. DSA memmove)
    static constexpr uint32_t kDefaultJobDescriptorBytes = 64;           // Intel DSA descriptor size

    WorkloadKind kind = WorkloadKind::sequential;
    unsigned function = 0;          ///< 0 = PF (first function), n = n-th further function / VF of the endpoint
    uint64_t seed = 1;
    uint64_t requests = 0;          ///< DMA operations to issue; 0 = unlimited
    double rate_bytes_per_ns = 0;   ///< GB/s cap on this stream; 0 = unlimited
    PasidMix pasid;
    uint32_t read_percent = 50;     ///< sequential / random / zipf / strided
    /// TLP attributes the device sets on a share of its requests (PCIe Base
    /// §2.2.6.5 No Snoop; §6.20 PASID prefix PMR / ER, execute on reads only).
    uint32_t no_snoop_percent = 0;
    uint32_t privileged_percent = 0;  ///< needs a PASID and the capability's Privileged Mode Supported
    uint32_t execute_percent = 0;     ///< of reads; needs a PASID and Execute Permission Supported

    uint64_t base = kDefaultBase;
    uint64_t region_bytes = kDefaultRegionBytes;
    uint32_t request_bytes = kDefaultRequestBytes;
    uint64_t stride_bytes = kDefaultStrideBytes;     ///< strided
    double zipf_s = kDefaultZipfS;                   ///< zipf exponent
    uint64_t item_bytes = kDefaultItemBytes;         ///< zipf item size

    // nic_ring: descriptor ring at `base`, buffers at `buffer_base`.
    bool tx = false;                                 ///< TX ring: device reads buffers instead of writing them
    uint32_t ring_entries = kDefaultRingEntries;
    uint32_t descriptor_bytes = kDefaultDescriptorBytes;
    uint32_t packet_bytes = kDefaultPacketBytes;
    uint32_t buffer_bytes = kDefaultBufferBytes;
    uint64_t buffer_base = kDefaultBase + (uint64_t{1} << 30);
    bool remap_per_packet = false;   ///< strict host: each packet's buffer gets a fresh IOVA
    uint32_t remap_window_packets = kDefaultRemapWindowPackets;

    // accel_queue: job descriptors at `base`, source at `buffer_base`, destination after it.
    uint32_t job_bytes = kDefaultJobBytes;
    uint32_t job_descriptor_bytes = kDefaultJobDescriptorBytes;

    // trace
    std::vector<TraceRecord> trace;  ///< records for this device (see load_trace_csv)
};

} // namespace iommusim::pcie
