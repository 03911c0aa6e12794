// SPDX-License-Identifier: Apache-2.0
#pragma once
// An NVMe-like storage controller on an ATS-capable function: submission and
// completion queues in host memory, doorbells in BAR0, commands fetched by
// DMA, data described by PRPs (PRP lists read by DMA), every access through
// the ATC / IOMMU and seen by the DMA oracle. NVM Express Base 1.4.
//
// Fidelity
//  Modelled: the admin queue (AQA/ASQ/ACQ, CC.EN -> CSTS.RDY) with Create
//   I/O Completion / Submission Queue; I/O Read and Write with PRP1/PRP2 and
//   PRP lists (one list page, up to 513 pages per command); round-robin
//   arbitration over submission queues; 64-byte SQE fetches holding a tag;
//   a media service time per command with `parallelism` commands served at
//   once; Read data written to the host and Write data read from it in
//   Max_Payload_Size / MRRS TLPs (the fabric splits them); 16-byte CQEs with
//   the phase tag and SQ head; one interrupt vector per completion queue,
//   re-armed when the host writes that queue's head doorbell; Set Features
//   Interrupt Coalescing (FID 08h: THR, TIME) for the I/O queues' vectors.
//  Threads: an engine thread (fetch, PRP list, Write data, media scheduling)
//   that runs ahead by up to a quantum; a completion thread that posts Read
//   data, the CQE and the interrupt at their exact time.
//  No Snoop on the commands' data transfers with `no_snoop_data` (a
//   translated one as the translation's N bit allows).
//  Not modelled: stored data (reads return zeros), SGLs, namespaces other
//   than 1 and their formats (4 KiB LBAs), chained PRP lists, fused commands,
//   weighted arbitration, per-vector coalescing disable (FID 09h),
//   other features (Set Features of any other FID is Invalid Field), controller reset, errors
//   other than a failed DMA (Data Transfer Error) and an unknown opcode.
#include <cstdint>
#include <memory>
#include <queue>
#include <vector>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_target_socket.h>

#include "models/common/stats.hpp"
#include "models/pcie/ats_endpoint.hpp"
#include "models/pcie/nvme_endpoint_params.hpp"
#include "models/pcie/nvme_regs.hpp"
#include "models/pcie/queue_interrupt.hpp"

namespace iommusim::pcie {

class NvmeEndpoint : public sc_core::sc_module {
public:
    /// BAR0: controller registers and doorbells (nvme_regs.hpp).
    tlm_utils::simple_target_socket<NvmeEndpoint> regs;

    NvmeEndpoint(sc_core::sc_module_name name, const NvmeParams& p, stats::Group* parent_stats);
    AtsEndpoint& function() { return ats_; }
    const NvmeParams& params() const { return p_; }
    /// Blocks the calling host thread until completion queue `cqid`'s vector is raised, and takes it.
    void wait_interrupt(uint32_t cqid);

private:
    struct Sq {
        uint64_t base = 0;
        uint32_t entries = 0, head = 0, tail = 0, cqid = 0;
        bool live = false;
    };
    struct Cq {
        uint64_t base = 0;
        uint32_t entries = 0, tail = 0, head = 0;
        bool phase = true;      ///< phase tag of the next entry (1 on the first pass)
        bool interrupts = false;
        bool live = false;
        QueueInterrupt irq;
    };
    void b_transport_regs(tlm::tlm_generic_payload& gp, sc_core::sc_time& delay);
    void engine_thread();
    void completion_thread();
    bool dma(uint64_t iova, void* data, uint32_t len, bool write, sc_core::sc_time& delay, bool no_snoop = false);
    /// Holds a tag for a read issued at t_ (waits for the oldest when all are in flight).
    void take_tag();
    void execute_admin(const nvme::Sqe& c, uint32_t& status);
    /// The pages of an I/O command's data, from PRP1 / PRP2 / the PRP list (read by DMA).
    bool data_pages(const nvme::Sqe& c, uint32_t bytes, std::vector<std::pair<uint64_t, uint32_t>>& pages);
    void post(uint32_t sqid, uint16_t cid, uint32_t status);

    NvmeParams p_;
    stats::Group stats_;
    AtsEndpoint ats_;
    uint64_t asq_ = 0, acq_ = 0;
    uint32_t aqa_ = 0, cc_ = 0, csts_ = 0;
    std::vector<Sq> sqs_;
    std::vector<std::unique_ptr<Cq>> cqs_;
    uint32_t next_sq_ = 0;
    uint32_t coalescing_threshold_ = 1;           ///< Interrupt Coalescing THR + 1 (1: off)
    Duration coalescing_time_;
    sc_core::sc_event doorbell_;
    Duration t_;
    SlotPool tags_{1};                               ///< non-posted requests in flight (max_outstanding_reads)
    std::vector<Duration> media_free_;            ///< per media unit: busy until
    struct Done {
        Duration at;
        uint64_t order;
        uint32_t sqid;
        uint16_t cid;
        uint32_t sq_head;
        bool read;
        std::vector<std::pair<uint64_t, uint32_t>> pages; ///< Read: where the data goes
        uint32_t status;
        bool operator>(const Done& o) const { return at != o.at ? at > o.at : order > o.order; }
    };
    std::priority_queue<Done, std::vector<Done>, std::greater<>> done_;
    uint64_t order_ = 0;
    sc_core::sc_event done_ready_;
    std::vector<uint8_t> buf_;

    stats::Counter& commands_;
    stats::Counter& reads_;
    stats::Counter& writes_;
    stats::Counter& bytes_;
    stats::Counter& prp_list_reads_;
    stats::Counter& tag_stalls_;
    stats::Counter& errors_;
    stats::Counter& interrupts_;
    stats::Histogram& media_wait_;
};

} // namespace iommusim::pcie
