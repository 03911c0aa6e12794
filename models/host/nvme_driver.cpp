// SPDX-License-Identifier: Apache-2.0
#include "models/host/nvme_driver.hpp"

#include "models/common/sc_time.hpp"
#include "models/pcie/nvme_regs.hpp"

namespace iommusim::host {

namespace nvme = pcie::nvme;

namespace {
constexpr uint32_t kAdminEntries = 32;
uint64_t pages_of(uint64_t bytes) { return (bytes + nvme::kPageBytes - 1) / nvme::kPageBytes * nvme::kPageBytes; }
} // namespace

NvmeDriver::NvmeDriver(Host& host, pcie::NvmeEndpoint& dev, unsigned mmio_port, const NvmeDriverParams& p,
                       stats::Group* parent)
    : host_(host), dev_(dev), regs_(host.cpu(), mmio_port), p_(p),
      stats_(std::string(dev.basename()) + "_driver", parent),
      completed_(stats_.counter("completed", "commands", "I/O commands completed")),
      bytes_(stats_.counter("bytes", "bytes", "data bytes of completed I/O commands")),
      errors_(stats_.counter("errors", "commands", "commands completed with an error status, or failed driver calls")),
      interrupts_(stats_.counter("interrupts", "interrupts", "completion queue interrupts taken")),
      latency_(stats_.histogram("io_latency", "ns", "SQE written to its CQE read by the driver")) {
    stats_.derived("iops", "commands/s", "completed I/O commands per simulated second", [this] {
        const double s = sc_core::sc_time_stamp().to_seconds();
        return s > 0 ? static_cast<double>(completed_.value()) / s : 0.0;
    });
    stats_.derived("throughput", "GB/s", "completed I/O bytes per simulated ns", [this] {
        const double ns = sc_core::sc_time_stamp().to_seconds() * 1e9;
        return ns > 0 ? static_cast<double>(bytes_.value()) / ns : 0.0;
    });
}

std::pair<uint64_t, uint64_t> NvmeDriver::map(uint64_t bytes) {
    IommuFd& fd = host_.iommufd();
    const uint64_t iova = fd.map(ioas_, pages_of(bytes));
    return {iova, fd.lookup(ioas_, iova).value()};
}

void NvmeDriver::admin(nvme::Sqe c) {
    HostCpu& cpu = host_.cpu();
    Queue& a = queues_[0];
    c.cdw0 |= a.sq_tail << 16; // CID
    cpu.mem_write(a.sq_pa + uint64_t{a.sq_tail} * sizeof c, &c, sizeof c);
    a.sq_tail = (a.sq_tail + 1) % a.entries;
    regs_.write32(nvme::sq_tail_doorbell(0), a.sq_tail);
    // Admin completions are polled here (setup), by the phase tag.
    uint32_t dw3 = 0;
    do dw3 = cpu.mem_read_flag(a.cq_pa + uint64_t{a.cq_head} * sizeof(nvme::Cqe) + 12, nvme::kPhase,
                               a.phase ? nvme::kPhase : 0);
    while (((dw3 & nvme::kPhase) != 0) != a.phase);
    if (dw3 >> 17) errors_.inc();
    if (++a.cq_head == a.entries) {
        a.cq_head = 0;
        a.phase = !a.phase;
    }
    regs_.write32(nvme::cq_head_doorbell(0), a.cq_head);
}

void NvmeDriver::setup() {
    IommuFd& fd = host_.iommufd();
    ioas_ = fd.ioas_alloc();
    // As the kernel: the device's IOMMU group is the kernel's while nvme-pci is bound (issue 18).
    const unsigned iommu = host_.iommu_index(p_.iommu);
    try {
        host_.isolation().attach(Isolation::kKernel, iommu, dev_.function().params().rid, std::nullopt,
                                 fd.hwpt_alloc(ioas_, iommu, p_.domain));
    } catch (const HostError& e) { // the run stops: name the device and the refusal
        throw HostError(e.kind(), std::string(dev_.basename()) + " driver setup: " + to_string(e.kind()) + ": " + e.what());
    }
    queues_.resize(p_.jobs + 1);
    Queue& a = queues_[0];
    a.entries = kAdminEntries;
    std::tie(a.sq, a.sq_pa) = map(a.entries * sizeof(nvme::Sqe));
    std::tie(a.cq, a.cq_pa) = map(a.entries * sizeof(nvme::Cqe));
    regs_.write32(nvme::kAqa, (a.entries - 1) | (a.entries - 1) << 16);
    regs_.write64(nvme::kAsq, a.sq);
    regs_.write64(nvme::kAcq, a.cq);
    regs_.write32(nvme::kCc, 1u | 6u << 16 | 4u << 20); // EN, IOSQES = 2^6, IOCQES = 2^4, MPS = 4 KiB
    while (!(regs_.read32(nvme::kCsts) & 1)) {
    }
    if (p_.coalescing_entries > 1 || p_.coalescing_time_us) {
        nvme::Sqe f;
        f.cdw0 = nvme::kAdminSetFeatures;
        f.cdw10 = nvme::kFeatureInterruptCoalescing;
        f.cdw11 = (p_.coalescing_entries - 1) | static_cast<uint32_t>(p_.coalescing_time_us / nvme::kCoalescingTimeUnitUs) << 8;
        admin(f);
    }
    for (uint32_t qid = 1; qid <= p_.jobs; ++qid) {
        Queue& q = queues_[qid];
        q.entries = p_.queue_depth + 1; // room for queue_depth commands (a full queue keeps one slot free)
        std::tie(q.sq, q.sq_pa) = map(q.entries * sizeof(nvme::Sqe));
        std::tie(q.cq, q.cq_pa) = map(q.entries * sizeof(nvme::Cqe));
        q.rng.seed(p_.seed * 1000003 + qid);
        q.next_offset = (p_.capacity_bytes / p_.jobs) * (qid - 1) / p_.block_bytes * p_.block_bytes;
        q.buffers.assign(p_.queue_depth, 0);
        q.submitted.assign(p_.queue_depth, Duration::zero());
        if (p_.block_bytes > 2 * nvme::kPageBytes) // a PRP list page per command slot, mapped once
            for (uint32_t cid = 0; cid < p_.queue_depth; ++cid) {
                auto [iova, pa] = map(nvme::kPageBytes);
                q.lists.push_back(iova);
                q.lists_pa.push_back(pa);
            }
        nvme::Sqe cq;
        cq.cdw0 = nvme::kAdminCreateIoCq;
        cq.prp1 = q.cq;
        cq.cdw10 = qid | (q.entries - 1) << 16;
        cq.cdw11 = 1u | 2u | qid << 16; // PC, IEN, interrupt vector = qid
        admin(cq);
        nvme::Sqe sq;
        sq.cdw0 = nvme::kAdminCreateIoSq;
        sq.prp1 = q.sq;
        sq.cdw10 = qid | (q.entries - 1) << 16;
        sq.cdw11 = 1u | qid << 16; // PC, CQID = qid
        admin(sq);
    }
}

void NvmeDriver::submit(uint32_t qid, uint16_t cid) {
    HostCpu& cpu = host_.cpu();
    Queue& q = queues_[qid];
    const auto [iova, pa] = map(p_.block_bytes); // dma_map of the request's pages
    (void)pa;
    q.buffers[cid] = iova;
    nvme::Sqe c;
    const bool read = q.rng() % 100 < p_.read_percent;
    c.cdw0 = (read ? nvme::kNvmRead : nvme::kNvmWrite) | uint32_t{cid} << 16;
    c.nsid = 1;
    c.prp1 = iova;
    const uint32_t pages = p_.block_bytes / nvme::kPageBytes;
    if (pages == 2) {
        c.prp2 = iova + nvme::kPageBytes;
    } else if (pages > 2) { // the rest of the pages in this slot's PRP list
        std::vector<uint64_t> list(pages - 1);
        for (uint32_t i = 1; i < pages; ++i) list[i - 1] = iova + uint64_t{i} * nvme::kPageBytes;
        cpu.mem_write(q.lists_pa[cid], list.data(), list.size() * 8);
        c.prp2 = q.lists[cid];
    }
    const uint64_t blocks = p_.capacity_bytes / p_.block_bytes;
    uint64_t offset;
    if (p_.random) {
        offset = (q.rng() % blocks) * p_.block_bytes;
    } else {
        offset = q.next_offset;
        q.next_offset = (q.next_offset + p_.block_bytes) % (blocks * p_.block_bytes);
    }
    const uint64_t slba = offset / nvme::kPageBytes; // 4 KiB LBAs
    c.cdw10 = static_cast<uint32_t>(slba);
    c.cdw11 = static_cast<uint32_t>(slba >> 32);
    c.cdw12 = pages - 1; // NLB, 0-based
    cpu.mem_write(q.sq_pa + uint64_t{q.sq_tail} * sizeof c, &c, sizeof c);
    q.sq_tail = (q.sq_tail + 1) % q.entries;
    q.submitted[cid] = cpu.now();
    regs_.write32(nvme::sq_tail_doorbell(qid), q.sq_tail);
}

void NvmeDriver::run(uint32_t job) {
    HostCpu& cpu = host_.cpu();
    once_([&] {
        setup();
        cpu.sync(); // the other jobs' threads go on from here
    });
    IommuFd& fd = host_.iommufd();
    const uint32_t qid = job + 1;
    Queue& q = queues_[qid];
    for (uint32_t cid = 0; cid < p_.queue_depth; ++cid) submit(qid, static_cast<uint16_t>(cid));
    for (;;) {
        cpu.sync(); // sleeps until the queue's interrupt
        dev_.wait_interrupt(qid);
        cpu.spend(cpu.params().interrupt_latency);
        interrupts_.inc();
        for (;;) {
            // The phase tag of the CQE at the head flips when the controller posts it and stays
            // until this thread has consumed the slot (the CQ never holds more than the queue
            // depth): a posted CQE is read without synchronising (HostCpu::mem_read_flag).
            const uint32_t dw3 = cpu.mem_read_flag(q.cq_pa + uint64_t{q.cq_head} * sizeof(nvme::Cqe) + 12,
                                                   nvme::kPhase, q.phase ? nvme::kPhase : 0);
            if (((dw3 & nvme::kPhase) != 0) != q.phase) break;
            const auto cid = static_cast<uint16_t>(dw3 & 0xFFFF);
            if (cid >= p_.queue_depth) {
                errors_.inc();
                break;
            }
            if (dw3 >> 17) errors_.inc();
            completed_.inc();
            bytes_.inc(p_.block_bytes);
            latency_.record((cpu.now() - q.submitted[cid]).as_ns());
            try {
                fd.unmap(ioas_, q.buffers[cid], pages_of(p_.block_bytes));
            } catch (const HostError&) {
                errors_.inc();
            }
            if (++q.cq_head == q.entries) {
                q.cq_head = 0;
                q.phase = !q.phase;
            }
            submit(qid, cid);
        }
        regs_.write32(nvme::cq_head_doorbell(qid), q.cq_head); // also re-arms the vector
    }
}

} // namespace iommusim::host
