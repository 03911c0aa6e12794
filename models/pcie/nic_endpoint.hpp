// SPDX-License-Identifier: Apache-2.0
#pragma once
// A NIC receive path on an ATS-capable function (AtsEndpoint), driven
// through memory as an 82599-class NIC is: the host driver
// (models/host/nic_driver) writes 16-byte RX descriptors holding buffer
// IOVAs into per-queue rings in simulated memory and writes each queue's
// tail register (RDT) in BAR0; the NIC fetches descriptors by DMA, writes
// each packet into the buffer its descriptor names, writes the descriptor
// back (DD, length) and raises the queue's interrupt. Every fetch, data
// write and write-back is a DMA through the ATC / IOMMU, seen by the oracle.
//
// Fidelity
//  Modelled: packets arriving at line rate, round robin over `flows` flows;
//   RSS: a flow hash picks the queue (one ring, one interrupt per queue);
//   an on-chip packet buffer (FIFO over all queues) that absorbs packets
//   while the NIC waits, and drops only when it overflows; the NIC stalls
//   (head of line) when the queue of the next packet has no descriptor, and
//   resumes on that queue's doorbell; descriptor fetches of up to
//   `descriptor_prefetch` descriptors as one non-posted read holding a tag
//   (stalls when all tags are in flight, so translation latency costs
//   throughput); packet data as posted writes split at MPS by the fabric;
//   in-order write-backs at their exact time (so the driver never sees a
//   descriptor done early); auto-masked interrupts re-enabled by the
//   driver's EIMS write (NAPI).
//  Threads: one engine thread that runs ahead by up to a quantum and never
//   wakes per packet, let alone per dropped packet (drops are counted from
//   the arrival times when it next runs); one write-back thread that wakes
//   per write-back.
//  Not modelled: TX, header split, RSC/LRO, VLANs, the Toeplitz hash (a
//   multiplicative flow hash instead), interrupt throttling (ITR), the
//   write-back of several descriptors in one burst, MSI-X as a memory write
//   (the queue's interrupt is an event; the host pays interrupt latency),
//   a packet leaving the buffer before its descriptor was fetched.
#include <cstdint>
#include <deque>
#include <memory>
#include <queue>
#include <vector>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_target_socket.h>

#include "models/common/stats.hpp"
#include "models/pcie/ats_endpoint.hpp"
#include "models/pcie/nic_endpoint_params.hpp"
#include "models/pcie/queue_interrupt.hpp"

namespace iommusim::pcie {

class NicEndpoint : public sc_core::sc_module {
public:
    /// BAR0 registers (nic_regs.hpp), written by the host CPU.
    tlm_utils::simple_target_socket<NicEndpoint> regs;

    NicEndpoint(sc_core::sc_module_name name, const NicParams& p, stats::Group* parent_stats);

    AtsEndpoint& function() { return ats_; }
    const NicParams& params() const { return p_; }
    /// Blocks the calling host thread until RX queue `q`'s interrupt (raised
    /// when a write-back completes while the queue's cause is enabled by
    /// EIMS; the cause then masks itself) and takes it.
    void wait_interrupt(uint32_t q);
    /// Packets start arriving now.
    void start();
    /// The RX queue of a flow (RSS).
    uint32_t queue_of_flow(uint32_t flow) const;

private:
    struct Fetched {
        uint32_t slot;
        uint64_t buffer;          ///< packet buffer IOVA from the descriptor
        Duration ready;           ///< when the fetch completed
    };
    struct Queue {
        uint64_t ring = 0;        ///< RDBAH:RDBAL
        uint32_t ring_bytes = 0;  ///< RDLEN
        uint32_t head = 0;        ///< next descriptor to fetch (RDH)
        uint32_t tail = 0;        ///< RDT
        std::deque<Fetched> fetched;
        QueueInterrupt irq;
        sc_core::sc_event doorbell;
        uint32_t entries() const { return ring_bytes / 16; }
    };
    struct WriteBack {
        uint32_t queue, slot, length;
        Duration at;
        Duration arrival;         ///< of the packet
        bool delivered;           ///< its data write succeeded
    };
    void b_transport_regs(tlm::tlm_generic_payload& gp, sc_core::sc_time& delay);
    void engine_thread();
    void writeback_thread();
    Duration arrival(uint64_t k) const { return start_ + gap_ * k; }
    /// Packets that arrived up to `t` enter the buffer or are dropped.
    void admit(Duration t);
    bool has_descriptor(const Queue& q) const { return !q.fetched.empty() || q.head != q.tail; }
    /// Fetches up to descriptor_prefetch posted descriptors of `q` with one read, issued at t_.
    void fetch(Queue& q);
    bool dma(uint64_t iova, void* data, uint32_t len, bool write, sc_core::sc_time& delay);
    void sync_to(Duration t);

    NicParams p_;
    stats::Group stats_;
    AtsEndpoint ats_;
    std::vector<std::unique_ptr<Queue>> queues_;
    std::vector<uint32_t> flow_queue_;               ///< RSS: queue of each flow
    Duration gap_;                                   ///< between packet arrivals
    Duration start_;
    Duration t_;                                     ///< the engine's local time
    Duration tx_free_;                               ///< latest release of a packet's data writes
    uint64_t next_arrival_ = 0;                      ///< index of the next packet not yet arrived
    uint32_t buffer_packets_ = 0;                    ///< on-chip buffer capacity in packets
    std::deque<uint64_t> buffer_;                    ///< packets waiting on chip, oldest first
    std::priority_queue<Duration, std::vector<Duration>, std::greater<>> outstanding_; ///< tag release times
    std::deque<WriteBack> writebacks_;
    Duration last_writeback_;
    sc_core::sc_event writeback_ready_;
    sc_core::sc_event start_event_;
    bool started_ = false;
    std::vector<uint8_t> scratch_;

    stats::Counter& packets_;
    stats::Counter& bytes_;
    sc_core::sc_time rate_start_; ///< rx_throughput counts from here (0, or the last stats reset)
    stats::Counter& dropped_;
    stats::Counter& ring_empty_stalls_;
    stats::Counter& tag_stalls_;
    stats::Counter& fetches_;
    stats::Counter& writebacks_done_;
    stats::Counter& interrupts_;
    stats::Counter& dma_errors_;
    stats::Histogram& packet_latency_;
    std::vector<stats::Counter*> queue_packets_;
};

} // namespace iommusim::pcie
