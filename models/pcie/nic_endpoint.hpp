// SPDX-License-Identifier: Apache-2.0
#pragma once
// A NIC receive path on an ATS-capable function (AtsEndpoint): packets
// arrive at line rate; for each, the NIC reads the next RX descriptor from
// the ring the host posted, DMA-writes the packet into the buffer that
// descriptor names, writes the descriptor back and signals completion. The
// host driver (models/host/nic_driver) maps buffers, posts them, and unmaps
// each completed buffer, so every packet exercises map -> DMA -> unmap ->
// invalidation, and a slow host shows up as dropped packets.
//
// Fidelity: one thread per NIC that waits once per packet arrival (not per
// TLP); the DMAs of successive packets overlap (a NIC pipelines them), each
// loosely timed through the ATC / IOMMU / fabric, and a packet completes
// when its descriptor write-back does. Packets
// that find no posted buffer are dropped (counted), like a NIC whose RX ring
// is empty. Not modelled: RSS / multiple queues, interrupt moderation
// beyond one completion event per packet, TX.
#include <cstdint>
#include <deque>
#include <optional>
#include <queue>
#include <vector>
#include <systemc>

#include "models/common/stats.hpp"
#include "models/pcie/ats_endpoint.hpp"

namespace iommusim::pcie {

struct NicParams {
    static constexpr uint32_t kDefaultPacketBytes = 1500;     // Ethernet MTU
    static constexpr double kDefaultLineRateGbps = 100;       // Gb/s: 100 GbE
    static constexpr uint32_t kDefaultDescriptorBytes = 16;   // Intel ice/ixgbe legacy RX descriptor
    AtsEndpointParams ats;
    std::optional<uint32_t> pasid;                            ///< PASID of its DMA; none = DMA API (RID only)
    uint32_t packet_bytes = kDefaultPacketBytes;
    double line_rate_gbps = kDefaultLineRateGbps;             ///< arrival rate of packets, Gb/s (network convention: 100 GbE = 100)
    uint32_t descriptor_bytes = kDefaultDescriptorBytes;
};

class NicEndpoint : public sc_core::sc_module {
public:
    struct Buffer {
        uint64_t iova;
        uint32_t size;
    };

    NicEndpoint(sc_core::sc_module_name name, const NicParams& p, stats::Group* parent_stats);

    AtsEndpoint& function() { return ats_; }
    const NicParams& params() const { return p_; }

    // ---- host side -----------------------------------------------------------
    /// Where the descriptor ring is (IOVA) and how many slots it has.
    void set_ring(uint64_t ring_iova, uint32_t entries);
    /// Posts an RX buffer (the host wrote its descriptor and rang the doorbell).
    void post(const Buffer& b);
    /// Starts receiving at the current time.
    void start();
    /// Completed buffers, oldest first; `completed_event` fires when one is added.
    std::optional<Buffer> take_completed();
    const sc_core::sc_event& completed_event() const { return completed_event_.default_event(); }

private:
    void rx_thread();
    bool dma(uint64_t iova, uint32_t len, bool write, sc_core::sc_time& delay);

    NicParams p_;
    stats::Group stats_;
    AtsEndpoint ats_;
    uint64_t ring_iova_ = 0;
    uint32_t ring_entries_ = 0, next_slot_ = 0;
    struct Done {
        Duration at;
        uint64_t order;
        Buffer buffer;
        bool operator>(const Done& o) const { return at != o.at ? at > o.at : order > o.order; }
    };
    std::deque<Buffer> posted_;
    std::priority_queue<Done, std::vector<Done>, std::greater<>> completed_; ///< by completion time
    uint64_t done_order_ = 0;
    sc_core::sc_event start_event_;
    sc_core::sc_event_queue completed_event_; ///< one notification per completion (they overlap in time)
    bool started_ = false;
    std::vector<uint8_t> scratch_;

    stats::Counter& packets_;
    stats::Counter& bytes_;
    sc_core::sc_time rate_start_; ///< rx_throughput counts from here (0, or the last stats reset)
    stats::Counter& dropped_;
    stats::Counter& dma_errors_;
    stats::Histogram& packet_latency_;
};

} // namespace iommusim::pcie
