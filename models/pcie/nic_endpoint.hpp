// SPDX-License-Identifier: Apache-2.0
#pragma once
// A NIC on an ATS-capable function (AtsEndpoint), driven through memory as
// an 82599-class NIC is: the host driver (models/host/nic_driver) writes
// 16-byte descriptors holding buffer IOVAs into per-queue RX and TX rings in
// simulated memory and writes each queue's tail register (RDT / TDT) in
// BAR0; the NIC fetches descriptors by DMA, writes each received packet into
// the buffer its descriptor names (or reads each packet to send from it),
// writes the descriptors back (DD) and raises the queue's interrupt. Every
// fetch, data access and write-back is a DMA through the ATC / IOMMU, seen
// by the oracle.
//
// Fidelity
//  Modelled (RX): packets arriving at line rate, round robin over `flows` flows;
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
//   driver's EIMS write (NAPI); interrupt throttling per queue vector (EITR,
//   §7.3.2.1): an interrupt due less than the EITR interval after the
//   vector's last one is held until the interval has passed.
//  Modelled (TX, §7.2): queues served round robin per descriptor; up to
//   `tx_descriptor_prefetch` advanced descriptors fetched by one non-posted
//   read; a packet is one or more data descriptors up to EOP, each
//   descriptor's data read by DMA (a non-posted read
//   holding a tag from the same pool as the fetches, so translation latency
//   throttles transmission once the tags run out); the packet leaves on the
//   wire at line rate once all its data arrived; TSO (§7.2.4): a context
//   descriptor sets MSS and the header length (MACLEN + IPLEN + L4LEN), and a
//   packet whose data descriptors have TSE leaves as ceil(payload / MSS)
//   packets, each carrying a copy of the header; data reads run ahead of the wire
//   by at most the on-chip TX buffer (`tx_buffer_bytes`); descriptors written
//   back (DD) in batches of `tx_writeback_batch` (WTHRESH), or when the
//   queue has nothing more posted, at the time the batch's last packet left
//   (a descriptor before its packet's EOP once its data arrived);
//   the write-back raises the queue's interrupt, shared by the queue's RX and
//   TX rings as ixgbe maps a queue pair to one vector.
//  Threads: one RX engine thread that runs ahead by up to a quantum and never
//   wakes per packet, let alone per dropped packet (drops are counted from
//   the arrival times when it next runs); one TX engine thread (only with
//   `tx`) that runs ahead the same way and sleeps on an empty ring until a
//   TDT doorbell; one write-back thread for both directions that wakes per
//   write-back, in time order.
//  No Snoop on packet data with `no_snoop_data` (a translated request as
//   the translation's N bit allows); the PASID of every DMA from the driver-
//   written nic::kPasidCtl.
//  Not modelled: header split, RSC/LRO, VLANs, checksum offload (the
//   context's TUCMD is not read), several contexts per queue (IDX), TX
//   arbitration per packet (queues take turns per descriptor, each gathering
//   its own packet), the Toeplitz hash (a multiplicative flow hash instead),
//   adaptive ITR (the driver writes one fixed EITR), the write-back of several
//   RX descriptors in one burst, the TX head write-back mode, MSI-X as a
//   memory write (the queue's interrupt is an event; the host pays interrupt
//   latency), a packet leaving the RX buffer before its descriptor was
//   fetched, per-queue tag pools (RX and TX share one thread-safe pool whose
//   release times each engine reads at its own local time).
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
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
    /// The PASID its DMA carries (nic::kPasidCtl, written by the driver).
    std::optional<uint32_t> pasid() const { return pasid_; }
    /// Packets start arriving now.
    void start();
    /// The RX queue of a flow (RSS).
    uint32_t queue_of_flow(uint32_t flow) const;

private:
    /// The registers every ring has (RX: RDBAL..RDT, TX: TDBAL..TDT, same layout).
    struct Ring {
        uint64_t ring = 0;        ///< xDBAH:xDBAL
        uint32_t ring_bytes = 0;  ///< xDLEN
        uint32_t head = 0;        ///< next descriptor to fetch (xDH)
        uint32_t tail = 0;        ///< xDT
        uint32_t entries() const { return ring_bytes / 16; }
        uint32_t posted() const { return entries() ? (tail + entries() - head) % entries() : 0; }
    };
    struct Fetched {
        uint32_t slot;
        uint64_t buffer;          ///< packet buffer IOVA from the descriptor
        Duration ready;           ///< when the fetch completed
    };
    struct Queue : Ring {
        std::deque<Fetched> fetched;
        QueueInterrupt irq;       ///< the queue pair's vector (RX and TX)
        uint32_t eitr = 0;        ///< EITR: the vector's throttle interval
        sc_core::sc_event doorbell;
    };
    struct TxFetched {
        uint32_t slot;
        uint64_t buffer;          ///< qword 0: data IOVA (data) or the MAC/IP lengths (context)
        uint32_t cmd_type_len;    ///< dword 2: DTALEN, DTYP, DCMD
        uint32_t dword3;          ///< olinfo_status (data) or mss_l4len_idx (context)
        Duration ready;
    };
    struct TxQueue : Ring {
        std::deque<TxFetched> fetched;
        uint32_t wb_first = 0, wb_count = 0;  ///< done descriptors not yet written back
        Duration wb_at;                       ///< when the last of them left
        uint32_t ctx_mss = 0, ctx_header = 0; ///< the TSO context (last context descriptor)
        // The packet being gathered (its data descriptors up to EOP).
        uint32_t pkt_descriptors = 0;
        uint64_t pkt_bytes = 0;
        bool pkt_tse = false, pkt_failed = false;
        Duration pkt_ready;                   ///< when its last data arrived
    };
    struct WriteBack {
        uint32_t queue, slot, length; ///< TX: `length` descriptors from `slot`
        Duration at;
        Duration arrival;         ///< of the packet (RX)
        bool delivered;           ///< its data write succeeded (RX)
        bool tx;
    };
    struct TxStats {
        explicit TxStats(stats::Group* parent);
        stats::Group group;
        stats::Counter& packets;
        stats::Counter& bytes;
        stats::Counter& fetches;
        stats::Counter& writebacks;
        stats::Counter& bad_descriptors;
        stats::Counter& buffer_stalls;
        stats::Histogram& read_latency;
        stats::Counter& tso_sends;
        sc_core::sc_time rate_start;
    };
    void b_transport_regs(tlm::tlm_generic_payload& gp, sc_core::sc_time& delay);
    /// A register access within one ring's register block; false for an unknown offset.
    static bool ring_reg(Ring& r, uint32_t reg, bool write, uint32_t v, uint32_t& out);
    /// The interrupt cause whose EITR register is at `off`, if any.
    static std::optional<uint32_t> eitr_cause(uint64_t off);
    void engine_thread();
    void tx_engine_thread();
    void writeback_thread();
    /// Takes a tag for a non-posted request issued at `t`; returns when it may be issued.
    Duration take_tag(Duration t);
    /// Reads `count` descriptors of `r` from its head into `buf` as one non-posted
    /// read issued at `t` (after a free tag); returns when the data arrived.
    Duration read_descriptors(const Ring& r, uint32_t count, Duration t, uint8_t* buf);
    void tx_fetch(TxQueue& q);
    /// Hands the done descriptors of TX queue `qi` to the write-back thread.
    void tx_flush_writeback(uint32_t qi);
    bool tx_has_work(const TxQueue& q) const { return !q.fetched.empty() || q.posted() != 0; }
    Duration arrival(uint64_t k) const { return start_ + gap_ * k; }
    /// Packets that arrived up to `t` enter the buffer or are dropped.
    void admit(Duration t);
    bool has_descriptor(const Queue& q) const { return !q.fetched.empty() || q.head != q.tail; }
    /// Fetches up to descriptor_prefetch posted descriptors of `q` with one read, issued at t_.
    void fetch(Queue& q);
    bool dma(uint64_t iova, void* data, uint32_t len, bool write, sc_core::sc_time& delay, bool no_snoop = false);
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
    SlotPool tags_{1};                                  ///< non-posted requests in flight (max_outstanding_reads)
    std::deque<WriteBack> writebacks_;
    Duration last_writeback_;
    sc_core::sc_event writeback_ready_;
    sc_core::sc_event start_event_;
    bool started_ = false;
    std::optional<uint32_t> pasid_;                  ///< nic::kPasidCtl: the PASID of every DMA (none = RID only)
    std::vector<uint8_t> scratch_;
    // TX
    std::vector<std::unique_ptr<TxQueue>> tx_queues_;
    sc_core::sc_event tx_doorbell_;
    Duration tt_;                                    ///< the TX engine's local time
    Duration wire_free_;                             ///< the TX wire is busy until then
    Duration tx_buffer_time_;                        ///< the TX buffer drains in this long at line rate
    uint32_t tx_next_queue_ = 0;                     ///< round robin
    std::deque<WriteBack> tx_writebacks_;
    std::vector<uint8_t> tx_scratch_;
    std::vector<uint8_t> tx_scratch_wb_;               ///< the write-back thread's (it may run while the engine waits)
    std::unique_ptr<TxStats> tx_stats_;

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
    stats::Counter& interrupts_throttled_;
};

} // namespace iommusim::pcie
