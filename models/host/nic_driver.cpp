// SPDX-License-Identifier: Apache-2.0
#include "models/host/nic_driver.hpp"

#include "models/pcie/nic_regs.hpp"

namespace iommusim::host {

namespace nic = pcie::nic;

NicDriver::NicDriver(Host& host, pcie::NicEndpoint& nic, unsigned mmio_port, const NicDriverParams& p,
                     stats::Group* parent)
    : host_(host), nic_(nic), regs_(host.cpu(), mmio_port), p_(p),
      stats_(std::string(nic.basename()) + "_driver", parent),
      interrupts_(stats_.counter("interrupts", "interrupts", "queue interrupts taken (each starts NAPI polling)")),
      polls_(stats_.counter("polls", "polls", "NAPI polls (up to napi_batch descriptors each)")),
      refilled_(stats_.counter("refilled", "buffers", "RX buffers mapped and posted")),
      doorbells_(stats_.counter("doorbells", "writes", "RX tail (RDT) writes")),
      errors_(stats_.counter("errors", "calls", "driver calls that failed (the run continues)")) {}

void NicDriver::setup() {
    IommuFd& fd = host_.iommufd();
    const unsigned iommu = host_.iommu_index(p_.iommu);
    const pcie::Bdf rid = nic_.function().params().rid;
    if (p_.domain == DomainDesc::Kind::sva) {
        if (!nic_.params().pasid) throw HostError(HostError::Kind::invalid, "an SVA NIC needs a PASID");
        if (p_.buffer_bytes > 4096) throw HostError(HostError::Kind::invalid, "SVA NIC buffers are one page at most");
        process_ = fd.process_create();
        fd.attach(rid, nic_.params().pasid, fd.hwpt_alloc_sva(process_, iommu));
    } else {
        // One domain and one IOVA space for the device, shared by all its queues (Linux DMA API).
        ioas_ = fd.ioas_alloc();
        if (p_.flush) fd.set_flush_policy(ioas_, *p_.flush);
        fd.attach(rid, nic_.params().pasid, fd.hwpt_alloc(ioas_, iommu, p_.domain));
    }
    rings_.resize(nic_.params().queues);
    for (uint32_t q = 0; q < rings_.size(); ++q) setup_ring(q);
    nic_.start();
}

void NicDriver::setup_ring(uint32_t q) {
    IommuFd& fd = host_.iommufd();
    Ring& r = rings_[q];
    r.buffers.assign(p_.ring_entries, 0);
    if (process_) {
        r.base = p_.sva_ring_va + q * ring_bytes();
        fd.mmap(process_, r.base, ring_bytes());
        r.pa = fd.process_lookup(process_, r.base).value();
    } else {
        r.base = fd.map(ioas_, ring_bytes());
        r.pa = fd.lookup(ioas_, r.base).value();
    }
    regs_.write32(nic::rx_reg(nic::kRdbal, q), static_cast<uint32_t>(r.base));
    regs_.write32(nic::rx_reg(nic::kRdbah, q), static_cast<uint32_t>(r.base >> 32));
    regs_.write32(nic::rx_reg(nic::kRdlen, q), p_.ring_entries * nic::kDescriptorBytes);
    regs_.write32(nic::rx_reg(nic::kRdh, q), 0);
    regs_.write32(nic::rx_reg(nic::kRdt, q), 0);
    // A full ring keeps one slot empty (tail == head means empty).
    for (uint32_t i = 0; i + 1 < p_.ring_entries; ++i) post(q);
    doorbell(q);
    regs_.write32(nic::kEims, 1u << q);
}

void NicDriver::post(uint32_t q) {
    Ring& r = rings_[q];
    const uint32_t slot = r.next_to_use;
    // SVA: each slot owns one page of the process heap, reposted unpopulated after every packet.
    const bool keep = p_.buffers == NicDriverParams::Buffers::recycle && r.buffers[slot];
    const uint64_t iova = process_ ? p_.sva_buffer_va + (uint64_t{q} * p_.ring_entries + slot) * 4096
                          : keep   ? r.buffers[slot]
                                   : host_.iommufd().map(ioas_, mapped_bytes());
    r.buffers[slot] = iova;
    const nic::RxReadDescriptor d{iova, 0};
    host_.cpu().mem_write(r.pa + uint64_t{slot} * nic::kDescriptorBytes, &d, sizeof d);
    r.next_to_use = slot + 1 == p_.ring_entries ? 0 : slot + 1;
    ++r.unannounced;
    refilled_.inc();
}

void NicDriver::doorbell(uint32_t q) {
    Ring& r = rings_[q];
    regs_.write32(nic::rx_reg(nic::kRdt, q), r.next_to_use);
    r.unannounced = 0;
    doorbells_.inc();
}

void NicDriver::release(uint64_t iova) {
    IommuFd& fd = host_.iommufd();
    try {
        if (process_) {
            // A page the NIC never reached (its DMA failed) was never faulted in: nothing to free.
            if (fd.process_mapped(process_, iova)) fd.munmap(process_, iova, 4096);
        } else {
            fd.unmap(ioas_, iova, mapped_bytes());
        }
    } catch (const HostError&) {
        errors_.inc();
    }
}

uint32_t NicDriver::poll(uint32_t q) {
    HostCpu& cpu = host_.cpu();
    Ring& r = rings_[q];
    polls_.inc();
    uint32_t cleaned = 0;
    while (cleaned < p_.batch) {
        const uint64_t desc = r.pa + uint64_t{r.next_to_clean} * nic::kDescriptorBytes;
        // The write-back's extended status (DD) is dword 2 (§7.1.6.2); the driver reads it first.
        if (!(cpu.mem_read_u32(desc + 8) & nic::kStatusDd)) break;
        if (p_.buffers == NicDriverParams::Buffers::map_per_packet || process_) {
            release(r.buffers[r.next_to_clean]);
            r.buffers[r.next_to_clean] = 0;
        }
        r.next_to_clean = r.next_to_clean + 1 == p_.ring_entries ? 0 : r.next_to_clean + 1;
        ++cleaned;
        post(q); // refill the freed slot
        if (r.unannounced >= p_.doorbell_batch) doorbell(q);
    }
    if (r.unannounced) doorbell(q);
    return cleaned;
}

void NicDriver::run(uint32_t q) {
    once_([this] { setup(); });
    HostCpu& cpu = host_.cpu();
    for (;;) {
        nic_.wait_interrupt(q);
        cpu.spend(cpu.params().interrupt_latency);
        interrupts_.inc();
        while (poll(q) == p_.batch) {
        }
        regs_.write32(nic::kEims, 1u << q); // napi_complete: unmask the queue's cause
    }
}

} // namespace iommusim::host
