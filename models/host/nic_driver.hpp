// SPDX-License-Identifier: Apache-2.0
#pragma once
// The host side of a NIC's RX queues, as a Linux network driver (ixgbe-like,
// DMA API) does it: one DMA domain and IOVA space for the whole device,
// shared by its queues; per queue a descriptor ring mapped once, programmed
// through the queue's registers (RDBAL/RDBAH/RDLEN/RDH/RDT), filled with
// 16-byte read descriptors holding mapped buffer IOVAs, written in memory by
// the CPU. The tail (RDT) is written -- an MMIO write to the NIC's BAR --
// once per `doorbell_batch` refilled buffers and at the end of each poll.
// Per queue one host thread (a NAPI context): it sleeps until the queue's
// interrupt, pays the interrupt latency, then polls: reads each descriptor's
// write-back status (DD) from memory, unmaps the completed buffer
// (dma_unmap_single: strict flush or flush queue), maps and posts a fresh
// one in its place, up to `batch` per poll; a full batch polls again, a
// short one re-enables the interrupt (EIMS).
//
// Ownership (issue 18): the driver attaches through host::Isolation as the
// kernel, so the NIC's IOMMU group is the kernel's while it is bound (a user's
// attach to that group is busy). With `pasid` the NIC's DMA carries a PASID
// the host's allocator hands out at setup -- the kernel's set for DMA-API
// DMA, the process's set for SVA (iommu_sva_bind_device: the mm's PASID) --
// and the driver writes it to the NIC (nic::kPasidCtl) before any ring is
// programmed.
// SVA mode (domain = sva, needs `pasid`): the NIC's PASID is bound to
// a process (a user-space packet stack sharing its page tables with the
// device). The rings are mmapped up front; each buffer is one page of the
// process's heap that is NOT populated when posted, so the NIC's first touch
// of it is an I/O page fault served through PRI. When a packet completes the
// application consumes the buffer and releases its page (munmap: the mm
// notifier flushes the IOTLB and the device TLB) and reposts the same
// address, so every packet faults again.
//
// With `buffers = recycle` each slot's buffer stays mapped and is reposted
// (page_pool-style recycling): no unmap, no invalidation, and the IOTLB sees
// the whole posted working set.
// TX (with `tx_rate_gbps` > 0), as ixgbe's ndo_start_xmit and TX clean: per
// queue a sender thread offers packets of the NIC's packet size at
// tx_rate_gbps / queues; each packet's buffer is mapped (dma_map_single),
// described by one advanced data descriptor (EOP, IFCS, RS) written into the
// queue's TX ring in memory, and the tail (TDT) is written when no further
// packet is due (xmit_more false) or after `tx_doorbell_batch` packets; a
// full ring stops the queue until the NAPI poll frees descriptors. The NAPI
// poll of the queue's vector (shared by the RX and TX rings) first cleans up
// to `tx_work_limit` TX descriptors whose DD the NIC wrote back, unmapping
// each buffer, then polls RX; an unfinished TX clean polls again.
// Per cleaned RX packet the queue's CPU pays the receive stack (HostCpuParams
// rx_stack, calibration.md's per-packet cost up to an early drop) and the
// application's copy of its PKT_LEN bytes (copy_bytes_per_ns). Queue q's
// threads (NAPI and sender) run on CPU q (interrupt affinity, XPS).
// TSO (`tso_bytes`): each send is a TCP/IPv4 super-packet of tso_bytes: a
// context descriptor (MSS = packet_bytes minus the 54 header bytes, header
// lengths) then data descriptors with TSE, one for the headers and one per
// 4 KiB payload page, each buffer mapped on its own (ixgbe_tx_map:
// dma_map_single of the headers, skb_frag_dma_map per page frag) and
// unmapped when its descriptor is cleaned; the NIC segments it on the wire.
// TX in SVA mode: the TX rings are mmapped in the process like the RX rings;
// each TX slot sends from one page of the application's own memory, which it
// writes before describing it (a CPU page fault populates the page on first
// use) and keeps afterwards: no dma_map / unmap per packet, so TX costs the
// IOMMU only the translations of the NIC's reads under the PASID.
// Not modelled: half-page splitting, GRO, TX stack costs, BQL,
// the qdisc beyond an unbounded backlog of offered packets.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>
#include <systemc>

#include "models/common/stats.hpp"
#include "models/host/host.hpp"
#include "models/host/run_once.hpp"
#include "models/pcie/nic_endpoint.hpp"

namespace iommusim::host {

struct NicDriverParams {
    static constexpr uint32_t kDefaultRingEntries = 256;   // common RX ring size (ethtool -g defaults)
    static constexpr uint32_t kDefaultBufferBytes = 2048;  // Linux RX buffer (half page)
    static constexpr uint32_t kDefaultBatch = 64;          // NAPI budget (Linux default weight 64)
    /// calibration.md "NIC descriptors (82599-class)": tail doorbell per 32 refilled buffers.
    static constexpr uint32_t kDefaultDoorbellBatch = 32;
    std::string iommu;                                     ///< IOMMU the NIC is behind
    /// us; minimum interval between two interrupts of a queue (ethtool -C rx-usecs), written
    /// to each queue's EITR at bring-up; 0 = no throttling. Default 0: ixgbe's default is its
    /// adaptive ITR (rx-usecs 1), which is not modelled; a fixed value models a static setting.
    uint32_t itr_us = 0;
    uint32_t ring_entries = kDefaultRingEntries;           ///< per queue; a multiple of 8 (RDLEN is in 128-byte units)
    uint32_t buffer_bytes = kDefaultBufferBytes;
    uint32_t batch = kDefaultBatch;                        ///< completions handled per NAPI poll
    uint32_t doorbell_batch = kDefaultDoorbellBatch;       ///< refilled buffers per tail write
    DomainDesc::Kind domain = DomainDesc::Kind::paging_s1; ///< scalable-mode Linux uses first-stage DMA domains (or sva)
    /// DMA-API buffers: map_per_packet = dma_map/dma_unmap around every packet
    /// (the IOMMU's worst case); recycle = each slot's buffer is mapped once and
    /// reposted after its packet is consumed, as page_pool drivers do, so the
    /// IOTLB sees a working set of queues x ring_entries pages.
    enum class Buffers : uint8_t { map_per_packet, recycle };
    Buffers buffers = Buffers::map_per_packet;
    std::optional<FlushPolicy> flush;                      ///< this NIC's DMA domain's unmap policy; unset = the host's
    /// DMA with a PASID from the host's PASID allocator (none = requests without PASID).
    bool pasid = false;
    /// Ask the allocator for exactly this PASID (the IOASID range allocation with
    /// min = max; busy if taken); unset = the lowest free one, as Linux allocates.
    std::optional<uint32_t> pasid_value;
    /// SVA: the process the NIC's PASID is bound for (its PASID set pays); empty = "<nic>.app".
    std::string sva_owner;
    /// SVA mode: process virtual addresses of the rings and of the (unpopulated) buffer pages.
    static constexpr uint64_t kDefaultSvaRingVa = uint64_t{1} << 28;   // 256 MiB
    static constexpr uint64_t kDefaultSvaBufferVa = uint64_t{1} << 32; // 4 GiB
    uint64_t sva_ring_va = kDefaultSvaRingVa;
    uint64_t sva_buffer_va = kDefaultSvaBufferVa;
    /// TX: offered load in Gb/s over all queues; 0 = the host does not transmit.
    double tx_rate_gbps = 0;
    static constexpr uint32_t kDefaultTxRingEntries = 256;  // as the RX ring (ethtool -g default)
    uint32_t tx_ring_entries = kDefaultTxRingEntries;       ///< per queue; a multiple of 8
    /// [estimate] packets per TX tail write while a backlog lasts: Linux's
    /// dev_tx_weight (64 packets per qdisc run) bounds an xmit_more batch.
    static constexpr uint32_t kDefaultTxDoorbellBatch = 64;
    uint32_t tx_doorbell_batch = kDefaultTxDoorbellBatch;
    /// TX descriptors cleaned per NAPI poll: ixgbe's IXGBE_DEFAULT_TX_WORK (256).
    static constexpr uint32_t kDefaultTxWorkLimit = 256;
    uint32_t tx_work_limit = kDefaultTxWorkLimit;
    /// bytes; TSO: the sender hands the NIC sends of this many bytes (TCP/IPv4 headers
    /// plus payload, GSO up to 64 KiB) that it segments into packet_bytes frames; 0 = off
    /// (one descriptor per packet). Default 0.
    uint32_t tso_bytes = 0;
};

class NicDriver {
public:
    /// `mmio_port`: the host CPU's MMIO port bound to the NIC's BAR0.
    NicDriver(Host& host, pcie::NicEndpoint& nic, unsigned mmio_port, const NicDriverParams& p,
              stats::Group* parent_stats);
    /// The PASID the allocator gave the NIC (set once its setup ran).
    std::optional<uint32_t> pasid() const { return pasid_; }
    /// The host thread of RX queue `queue` (one per queue, added with Host::add_thread).
    void run(uint32_t queue);
    /// The sender thread of TX queue `queue` (one per queue when tx_rate_gbps > 0).
    void run_tx(uint32_t queue);

private:
    struct Ring {
        uint64_t base = 0;                 ///< IOVA (or process VA) of the descriptors
        uint64_t pa = 0;                   ///< physical address the CPU writes them at
        uint32_t next_to_clean = 0, next_to_use = 0;
        uint32_t unannounced = 0;          ///< posted since the last tail write
        std::vector<uint64_t> buffers;     ///< buffer IOVA per slot (the driver's rx_buffer_info)
    };
    struct TxRing {
        uint64_t base = 0, pa = 0;
        uint32_t next_to_clean = 0, next_to_use = 0;
        uint32_t unannounced = 0;
        std::vector<uint64_t> buffers;     ///< mapped buffer IOVA per slot (tx_buffer_info)
        sc_core::sc_event space;           ///< the poll freed descriptors (netif_wake_queue)
        bool stopped = false;
    };
    struct TxStats {
        explicit TxStats(stats::Group& parent);
        stats::Counter& sent;
        stats::Counter& doorbells;
        stats::Counter& cleaned;
        stats::Counter& ring_full;
    };
    /// Device-wide setup, once (by whichever queue thread runs first).
    void setup();
    /// Takes the device's domain (and PASID) and attaches it as the kernel; writes the PASID to the NIC.
    void attach();
    void setup_ring(uint32_t q);
    /// Maps (or, SVA, picks) a buffer and writes its descriptor at next_to_use.
    void post(uint32_t q);
    void doorbell(uint32_t q);
    /// Releases a completed buffer: unmap (DMA API) or munmap of its page (SVA).
    void release(uint64_t iova);
    /// One NAPI poll; returns the descriptors cleaned.
    uint32_t poll(uint32_t q);
    void setup_tx_ring(uint32_t q);
    /// Writes a queue's ring registers (base, length, head = tail = 0) from its block at `bal`.
    void program_ring(uint32_t bal, uint64_t base, uint32_t entries);
    void tx_doorbell(uint32_t q);
    /// Cleans written-back TX descriptors; returns whether it finished within tx_work_limit.
    bool clean_tx(uint32_t q);
    uint64_t tx_ring_bytes() const { return (uint64_t{p_.tx_ring_entries} * 16 + 4095) & ~uint64_t{4095}; }
    /// SVA: the process page slot `slot` of TX queue `q` sends from (after every RX buffer page).
    uint64_t tx_sva_buffer(uint32_t q, uint32_t slot) const {
        return p_.sva_buffer_va +
               (uint64_t{nic_.params().queues} * p_.ring_entries + uint64_t{q} * p_.tx_ring_entries + slot) * 4096;
    }
    /// Bytes each TX buffer maps: a packet, or (TSO) one page (the headers, or a page frag).
    uint64_t tx_mapped_bytes() const {
        return p_.tso_bytes ? 4096 : (uint64_t{nic_.params().packet_bytes} + 4095) & ~uint64_t{4095};
    }
    /// TSO headers: Ethernet, IPv4 and TCP without options.
    static constexpr uint32_t kTsoMacHeaderBytes = 14, kTsoIpHeaderBytes = 20, kTsoTcpHeaderBytes = 20;
    static constexpr uint32_t kTsoHeaderBytes = kTsoMacHeaderBytes + kTsoIpHeaderBytes + kTsoTcpHeaderBytes;
    /// TX descriptors one send takes: one, or (TSO) a context, the headers and one per payload page.
    uint32_t tx_descriptors_per_send() const {
        return p_.tso_bytes ? 2 + (p_.tso_bytes - kTsoHeaderBytes + 4095) / 4096 : 1;
    }
    /// TSO: maps one send's headers and payload pages and writes its context and data descriptors.
    bool post_tso(uint32_t q);
    /// A buffer is mapped in whole pages.
    uint64_t mapped_bytes() const { return (uint64_t{p_.buffer_bytes} + 4095) & ~uint64_t{4095}; }
    uint64_t ring_bytes() const { return (uint64_t{p_.ring_entries} * 16 + 4095) & ~uint64_t{4095}; }
    Host& host_;
    pcie::NicEndpoint& nic_;
    host::MmioPort regs_;
    NicDriverParams p_;
    uint32_t ioas_ = 0;
    uint32_t process_ = 0;
    std::optional<uint32_t> pasid_;        ///< the allocated PASID the NIC's DMA carries
    RunOnce once_;
    std::vector<Ring> rings_;
    std::vector<std::unique_ptr<TxRing>> tx_rings_;
    uint64_t next_sva_buffer_ = 0;
    stats::Group stats_;
    stats::Counter& interrupts_;
    stats::Counter& polls_;
    stats::Counter& refilled_;
    stats::Counter& doorbells_;
    stats::Counter& errors_;
    std::unique_ptr<TxStats> tx_stats_;
};

} // namespace iommusim::host
