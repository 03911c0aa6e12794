// SPDX-License-Identifier: Apache-2.0
#pragma once
// The host side of the NVMe-like device, as Linux nvme-pci does it with the
// DMA API: one DMA domain and IOVA space for the controller, attached as the
// kernel through host::Isolation (the IOMMU group is the kernel's while the
// driver is bound; requests carry no PASID); the admin queue
// (AQA/ASQ/ACQ, CC.EN, wait for CSTS.RDY); per job one I/O queue pair created
// with admin commands (Create I/O CQ with interrupts, then Create I/O SQ);
// per command a data buffer mapped (dma_map) and described by PRP1/PRP2 or a
// PRP list page (mapped once per command slot, written by the CPU); the SQE
// written into the submission queue in memory and the SQ tail doorbell
// written per command; on the queue's interrupt the completion entries are
// read by their phase tag, each buffer unmapped (strict flush or flush
// queue) and a new command submitted in its place (a block workload at a
// fixed queue depth, as fio --iodepth); the CQ head doorbell re-arms the
// vector. One host thread per job.
// Not modelled: the block layer and file system, merging, polling queues.
#include <cstdint>
#include <random>
#include <string>
#include <vector>
#include <systemc>

#include "models/common/stats.hpp"
#include "models/host/host.hpp"
#include "models/host/run_once.hpp"
#include "models/pcie/nvme_endpoint.hpp"

namespace iommusim::host {

struct NvmeDriverParams {
    static constexpr uint32_t kDefaultBlockBytes = 4096;
    static constexpr uint32_t kDefaultQueueDepth = 32;
    static constexpr uint32_t kDefaultJobs = 1;
    static constexpr uint64_t kDefaultCapacityBytes = uint64_t{1} << 40;  // 1 TiB namespace
    std::string iommu;
    DomainDesc::Kind domain = DomainDesc::Kind::paging_s1;
    bool random = true;                      ///< random offsets (else sequential per job)
    uint32_t read_percent = 100;
    uint32_t block_bytes = kDefaultBlockBytes;  ///< multiple of 4 KiB, up to 2 MiB (one PRP list page)
    uint32_t queue_depth = kDefaultQueueDepth;  ///< commands outstanding per job (<= 1023)
    uint32_t jobs = kDefaultJobs;               ///< I/O queue pairs, one host thread each
    uint64_t capacity_bytes = kDefaultCapacityBytes;
    uint64_t seed = 1;
    /// Interrupt Coalescing (Set Features FID 08h at bring-up, as nvme-cli set-feature -f 8):
    /// completions per interrupt (THR + 1) and aggregation time in us (TIME, 100 us units).
    /// 1 and 0 = not set (Linux leaves the controller's default, no coalescing).
    uint32_t coalescing_entries = 1;
    uint32_t coalescing_time_us = 0;
};

class NvmeDriver {
public:
    NvmeDriver(Host& host, pcie::NvmeEndpoint& dev, unsigned mmio_port, const NvmeDriverParams& p,
               stats::Group* parent_stats);
    /// The host thread of job `job` (I/O queue pair job + 1).
    void run(uint32_t job);

private:
    struct Queue {
        uint64_t sq = 0, sq_pa = 0, cq = 0, cq_pa = 0;
        uint32_t entries = 0, sq_tail = 0, cq_head = 0;
        bool phase = true;
        std::vector<uint64_t> buffers;     ///< data buffer IOVA per command id
        std::vector<uint64_t> lists;       ///< PRP list page per command id (IOVA)
        std::vector<uint64_t> lists_pa;
        std::vector<Duration> submitted;
        uint64_t next_offset = 0;
        std::mt19937_64 rng;
    };
    void setup();
    /// Maps `bytes` in the device's IOVA space and returns IOVA and physical address.
    std::pair<uint64_t, uint64_t> map(uint64_t bytes);
    /// Submits one admin command and polls its completion (setup only).
    void admin(pcie::nvme::Sqe c);
    void submit(uint32_t qid, uint16_t cid);
    Host& host_;
    pcie::NvmeEndpoint& dev_;
    MmioPort regs_;
    NvmeDriverParams p_;
    uint32_t ioas_ = 0;
    std::vector<Queue> queues_;   ///< [0] = admin
    RunOnce once_;
    stats::Group stats_;
    stats::Counter& completed_;
    stats::Counter& bytes_;
    stats::Counter& errors_;
    stats::Counter& interrupts_;
    stats::Histogram& latency_;
};

} // namespace iommusim::host
