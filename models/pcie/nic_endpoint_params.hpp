// SPDX-License-Identifier: Apache-2.0
#pragma once
// Parameters of the NIC's receive and transmit paths (NicEndpoint).
#include <cstdint>
#include <optional>

#include "models/common/time.hpp"
#include "models/pcie/ats_endpoint_params.hpp"

namespace iommusim::pcie {

struct NicParams {
    static constexpr uint32_t kDefaultPacketBytes = 1500;     // Ethernet MTU
    static constexpr double kDefaultLineRateGbps = 100;       // Gb/s: 100 GbE
    static constexpr uint32_t kDefaultQueues = 1;
    static constexpr uint32_t kDefaultFlows = 1;
    /// Descriptors read per fetch. calibration.md "NIC descriptors (82599-class)":
    /// RX reads one descriptor per packet.
    static constexpr uint32_t kDefaultDescriptorPrefetch = 1;
    /// Non-posted requests (descriptor fetches, translation requests) in flight:
    /// 256 = 8-bit tags (PCIe Base §2.2.6.2), as the traffic endpoint.
    static constexpr uint32_t kDefaultMaxOutstandingReads = 256;
    /// bytes; on-chip receive packet buffer. [estimate] 82599-class parts have
    /// 512 KB (datasheet figure, not in calibration.md).
    static constexpr uint32_t kDefaultRxBufferBytes = 512 * 1024;
    /// ns; how far the NIC's thread may run ahead of the kernel (temporal decoupling),
    /// as the traffic endpoint's quantum.
    static constexpr double kDefaultQuantumNs = 1000.0;
    /// TX descriptors read per fetch. calibration.md "NIC descriptors (82599-class)":
    /// TX prefetches up to 40 descriptors.
    static constexpr uint32_t kDefaultTxDescriptorPrefetch = 40;
    /// TX descriptors written back per write-back. calibration.md "NIC descriptors
    /// (82599-class)": write-back batches of 8 (ixgbe's WTHRESH = 8).
    static constexpr uint32_t kDefaultTxWritebackBatch = 8;
    /// bytes; on-chip transmit packet buffer: how far data reads may run ahead
    /// of the wire. [estimate] 82599-class parts have 160 KB (datasheet figure,
    /// not in calibration.md).
    static constexpr uint32_t kDefaultTxBufferBytes = 160 * 1024;

    AtsEndpointParams ats;
    uint32_t packet_bytes = kDefaultPacketBytes;
    double line_rate_gbps = kDefaultLineRateGbps;             ///< arrival rate of packets, Gb/s (network convention: 100 GbE = 100)
    uint32_t queues = kDefaultQueues;                         ///< RX queues (RSS), each with its ring and interrupt
    uint32_t flows = kDefaultFlows;                           ///< flows the arriving packets belong to (round robin)
    uint32_t descriptor_prefetch = kDefaultDescriptorPrefetch;
    uint32_t max_outstanding_reads = kDefaultMaxOutstandingReads;
    uint32_t rx_buffer_bytes = kDefaultRxBufferBytes;
    Duration quantum = Duration::ns(kDefaultQuantumNs);
    /// Packets arrive (the RX path); false = the NIC only transmits.
    bool rx = true;
    /// The TX path is in use (the host transmits): its engine thread and `tx` stats exist.
    bool tx = false;
    uint32_t tx_descriptor_prefetch = kDefaultTxDescriptorPrefetch;
    uint32_t tx_writeback_batch = kDefaultTxWritebackBatch;
    uint32_t tx_buffer_bytes = kDefaultTxBufferBytes;
    /// Packet data (RX writes, TX reads; not descriptors or write-backs) carries No Snoop
    /// (PCIe Base §2.2.6.5). Off by default: Linux NIC drivers leave it disabled.
    bool no_snoop_data = false;
};

} // namespace iommusim::pcie
