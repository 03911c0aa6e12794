// SPDX-License-Identifier: Apache-2.0
#include "models/host/nic_driver.hpp"

namespace iommusim::host {

NicDriver::NicDriver(Host& host, pcie::NicEndpoint& nic, const NicDriverParams& p, stats::Group* parent)
    : host_(host), nic_(nic), p_(p), stats_(std::string(nic.basename()) + "_driver", parent),
      interrupts_(stats_.counter("interrupts", "interrupts", "completion interrupts handled (NAPI polls)")),
      refilled_(stats_.counter("refilled", "buffers", "RX buffers mapped and posted")),
      errors_(stats_.counter("errors", "calls", "driver calls that failed (the run continues)")) {}

void NicDriver::refill(uint32_t count) {
    IommuFd& fd = host_.iommufd();
    for (uint32_t i = 0; i < count; ++i) {
        const uint64_t iova = fd.map(ioas_, mapped_bytes());
        nic_.post({iova, p_.buffer_bytes});
        refilled_.inc();
    }
    host_.cpu().spend(host_.cpu().params().mmio_write); // the RX tail doorbell
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

void NicDriver::run_sva() {
    IommuFd& fd = host_.iommufd();
    const unsigned iommu = host_.iommu_index(p_.iommu);
    const pcie::Bdf rid = nic_.function().params().rid;
    if (!nic_.params().pasid) throw HostError(HostError::Kind::invalid, "an SVA NIC needs a PASID");
    if (p_.buffer_bytes > 4096) throw HostError(HostError::Kind::invalid, "SVA NIC buffers are one page at most");
    process_ = fd.process_create();
    fd.attach(rid, nic_.params().pasid, fd.hwpt_alloc_sva(process_, iommu));
    const uint64_t ring_bytes = (uint64_t{p_.ring_entries} * nic_.params().descriptor_bytes + 4095) & ~uint64_t{4095};
    fd.mmap(process_, p_.sva_ring_va, ring_bytes);
    nic_.set_ring(p_.sva_ring_va, p_.ring_entries);
    for (uint32_t i = 0; i < p_.ring_entries; ++i) {
        nic_.post({p_.sva_buffer_va + uint64_t{i} * 4096, p_.buffer_bytes}); // not populated: first touch faults
        refilled_.inc();
    }
    host_.cpu().spend(host_.cpu().params().mmio_write);
}

void NicDriver::run() {
    IommuFd& fd = host_.iommufd();
    HostCpu& cpu = host_.cpu();
    if (p_.domain == DomainDesc::Kind::sva) {
        run_sva();
    } else {
        const unsigned iommu = host_.iommu_index(p_.iommu);
        const pcie::Bdf rid = nic_.function().params().rid;
        ioas_ = fd.ioas_alloc();
        if (p_.flush) fd.set_flush_policy(ioas_, *p_.flush);
        const uint32_t hwpt = fd.hwpt_alloc(ioas_, iommu, p_.domain);
        fd.attach(rid, nic_.params().pasid, hwpt);
        const uint64_t ring_bytes = (uint64_t{p_.ring_entries} * nic_.params().descriptor_bytes + 4095) & ~uint64_t{4095};
        nic_.set_ring(fd.map(ioas_, ring_bytes), p_.ring_entries);
        refill(p_.ring_entries);
    }
    nic_.start();
    for (;;) {
        auto b = nic_.take_completed();
        if (!b) {
            sc_core::wait(nic_.completed_event());
            cpu.spend(cpu.params().interrupt_latency);
            interrupts_.inc();
            continue;
        }
        // NAPI poll: clean up to `batch` completed buffers, then refill them.
        uint32_t cleaned = 0;
        while (b && cleaned < p_.batch) {
            release(b->iova);
            if (process_) { // SVA: the same (now unpopulated) page goes back on the ring
                nic_.post({b->iova, p_.buffer_bytes});
                refilled_.inc();
            }
            ++cleaned;
            if (cleaned < p_.batch) b = nic_.take_completed();
        }
        if (process_) cpu.spend(cpu.params().mmio_write); // the RX tail doorbell
        else refill(cleaned);
    }
}

} // namespace iommusim::host
