// SPDX-License-Identifier: Apache-2.0
#pragma once
// The host side of a NIC's RX ring, as a Linux network driver using the DMA
// API does it: a DMA domain for the NIC, a descriptor ring mapped once, and
// per packet: the completed buffer is unmapped (dma_unmap_single: strict
// flush or flush queue) and a fresh buffer is mapped and posted in its
// place (refill), with a doorbell MMIO write per refill batch and an
// interrupt per completion batch (NAPI). One host thread per NIC.
//
// SVA mode (domain = sva, needs the NIC's PASID): the NIC's PASID is bound to
// a process (a user-space packet stack sharing its page tables with the
// device). The ring is mmapped up front; each buffer is one page of the
// process's heap that is NOT populated when posted, so the NIC's first touch
// of it is an I/O page fault served through PRI. When a packet completes the
// application consumes the buffer and releases its page (munmap: the mm
// notifier flushes the IOTLB and the device TLB) and reposts the same
// address, so every packet faults again.
#include <cstdint>
#include <optional>
#include <string>

#include "models/common/stats.hpp"
#include "models/host/host.hpp"
#include "models/pcie/nic_endpoint.hpp"

namespace iommusim::host {

struct NicDriverParams {
    static constexpr uint32_t kDefaultRingEntries = 256;   // common RX ring size (ethtool -g defaults)
    static constexpr uint32_t kDefaultBufferBytes = 2048;  // Linux RX buffer (half page)
    static constexpr uint32_t kDefaultBatch = 64;          // NAPI budget (Linux default weight 64)
    std::string iommu;                                     ///< IOMMU the NIC is behind
    uint32_t ring_entries = kDefaultRingEntries;
    uint32_t buffer_bytes = kDefaultBufferBytes;
    uint32_t batch = kDefaultBatch;                        ///< completions handled per interrupt / refills per doorbell
    DomainDesc::Kind domain = DomainDesc::Kind::paging_s1; ///< scalable-mode Linux uses first-stage DMA domains (or sva)
    std::optional<FlushPolicy> flush;                      ///< this NIC's DMA domain's unmap policy; unset = the host's
    /// SVA mode: process virtual addresses of the ring and of the (unpopulated) buffer pages.
    static constexpr uint64_t kDefaultSvaRingVa = uint64_t{1} << 28;   // 256 MiB
    static constexpr uint64_t kDefaultSvaBufferVa = uint64_t{1} << 32; // 4 GiB
    uint64_t sva_ring_va = kDefaultSvaRingVa;
    uint64_t sva_buffer_va = kDefaultSvaBufferVa;
};

class NicDriver {
public:
    NicDriver(Host& host, pcie::NicEndpoint& nic, const NicDriverParams& p, stats::Group* parent_stats);
    /// The host thread body (added with Host::add_thread).
    void run();

private:
    void refill(uint32_t count);
    void run_sva();
    /// Releases a completed buffer: unmap (DMA API) or munmap of its page (SVA).
    void release(uint64_t iova);
    /// A buffer is mapped in whole pages.
    uint64_t mapped_bytes() const { return (uint64_t{p_.buffer_bytes} + 4095) & ~uint64_t{4095}; }
    Host& host_;
    pcie::NicEndpoint& nic_;
    NicDriverParams p_;
    uint32_t ioas_ = 0;
    uint32_t process_ = 0;
    stats::Group stats_;
    stats::Counter& interrupts_;
    stats::Counter& refilled_;
    stats::Counter& errors_;
};

} // namespace iommusim::host
