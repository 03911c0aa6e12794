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

void NicDriver::run() {
    IommuFd& fd = host_.iommufd();
    HostCpu& cpu = host_.cpu();
    const unsigned iommu = host_.iommu_index(p_.iommu);
    const pcie::Bdf rid = nic_.function().params().rid;
    ioas_ = fd.ioas_alloc();
    const uint32_t hwpt = fd.hwpt_alloc(ioas_, iommu, p_.domain, 4);
    fd.attach(rid, nic_.params().pasid, hwpt);
    const uint64_t ring_bytes = (uint64_t{p_.ring_entries} * nic_.params().descriptor_bytes + 4095) & ~uint64_t{4095};
    nic_.set_ring(fd.map(ioas_, ring_bytes), p_.ring_entries);
    refill(p_.ring_entries);
    nic_.start();
    const uint64_t buf = mapped_bytes();
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
            try {
                fd.unmap(ioas_, b->iova, buf);
            } catch (const HostError&) {
                errors_.inc();
            }
            ++cleaned;
            if (cleaned < p_.batch) b = nic_.take_completed();
        }
        refill(cleaned);
    }
}

} // namespace iommusim::host
