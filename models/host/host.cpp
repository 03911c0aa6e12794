// SPDX-License-Identifier: Apache-2.0
#include "models/host/host.hpp"

#include <sysc/kernel/sc_dynamic_processes.h>

#include "models/common/sc_time.hpp"
#include "models/host/host_error.hpp"

namespace iommusim::host {

Host::Host(sc_core::sc_module_name name, const HostParams& params, mem::PhysMem& memory, stats::Group* parent)
    : sc_module(name), params_(params), stats_(basename(), parent), cpu_("cpu", params.cpu, memory, &stats_),
      oracle_(&stats_), fd_(cpu_, oracle_, params.driver, params.layout, &stats_),
      pasids_(PasidAllocator::kPasidBits, params.pasid), isolation_(fd_, pasids_, &stats_),
      prq_stats_(&stats_), dma_errors_(stats_.counter("dma_errors", "requests", "device DMAs that completed with an error (faults)")) {
    fd_.set_queue_listener([this] { fq_armed_.notify(sc_core::SC_ZERO_TIME); });
    SC_HAS_PROCESS(Host);
    SC_THREAD(boot);
    SC_THREAD(flush_queue_timer);
}

Host::~Host() = default;

IommuDriver& Host::add_iommu(const std::string& name, tlm::tlm_target_socket<>& mmio,
                             tlm::tlm_initiator_socket<>& unit_mem, MemoryTarget& memory,
                             const DriverBuilder& build, uint16_t segment, bool timed_registers) {
    const unsigned port = mmio_ports_++;
    cpu_.mmio.bind(mmio);
    if (timed_registers) cpu_.set_posted_port(port);
    msi_.push_back(std::make_unique<MsiDecoder>((name + "_msi").c_str(), params_.cpu.interrupt_latency, &stats_));
    unit_mem.bind(msi_.back()->upstream);
    msi_.back()->mem.bind(memory);
    DriverEnv env{name, MmioPort(cpu_, port), params_.driver, fd_.table_page_allocator(), &stats_, msi_.back().get()};
    auto drv = build(env);
    if (!drv) throw std::logic_error("IOMMU \"" + name + "\": the driver builder returned nothing");
    IommuDriver& d = *drv;
    drivers_.emplace_back(name, std::move(drv));
    fd_.add_iommu(name, d, segment);
    return d;
}

unsigned Host::add_device_mmio(tlm::tlm_target_socket<>& regs) {
    cpu_.mmio.bind(regs);
    cpu_.set_device_port(mmio_ports_);
    return mmio_ports_++;
}

unsigned Host::add_iommu_mmio(tlm::tlm_target_socket<>& regs) {
    cpu_.mmio.bind(regs);
    return mmio_ports_++;
}

unsigned Host::iommu_index(const std::string& name) const {
    for (unsigned i = 0; i < drivers_.size(); ++i)
        if (drivers_[i].first == name) return i;
    throw HostError(HostError::Kind::not_found, "no IOMMU named \"" + name + "\"");
}

void Host::add_thread(const std::string& name, std::function<void()> body, unsigned cpu) {
    threads_.push_back(Thread{name, std::move(body), cpu % params_.cpu.topology.cpus});
}

void Host::boot() {
    if (boot_prelude_) boot_prelude_();
    for (auto& [name, d] : drivers_) d->enable();
    // Page-request logs only where a PRI device can use them (Linux enables the VT-d PRQ per
    // IOMMU with ECAP.PRS when a device first enables IOPF; boot time is the simple equivalent);
    // the same thread serves stalled faults of devices that may stall (SMMUv3 EVTQ).
    for (unsigned index = 0; index < drivers_.size(); ++index) {
        IommuDriver* drv = drivers_[index].second.get();
        if (!(drv->caps().pri || drv->caps().stall) || !fd_.has_pri_device(index)) {
            if (auto body = drv->irq_thread()) threads_.push_back(Thread{drivers_[index].first + "_irq", std::move(body), 0});
            continue;
        }
        drv->enable_page_requests();
        threads_.push_back(Thread{drivers_[index].first + "_prq",
                                  [this, drv, index] { drv->serve_page_requests(fd_.page_request_handler(index), prq_stats_); },
                                  0});
    }
    cpu_.sync(); // the threads start when boot has finished
    booted_ = true;
    for (auto& t : threads_) {
        sc_core::sc_spawn_options o;
        sc_core::sc_spawn(
            [this, cpu = t.cpu, body = t.body] {
                cpu_.run_on(cpu);
                body();
            },
            t.name.c_str(), &o);
    }
}

void Host::flush_queue_timer() {
    // The lazy policy's timer (Linux fq_flush_timeout): flush what has waited too long.
    for (;;) {
        cpu_.sync(); // sleeps below: local time first
        auto deadline = fd_.flush_queue_deadline();
        if (!deadline) {
            wait(fq_armed_);
            continue;
        }
        const Duration now = cpu_.now();
        if (*deadline > now) {
            wait(to_sc(*deadline - now), fq_armed_);
            continue;
        }
        fd_.flush_queue_now();
    }
}

pcie::DmaObserver Host::dma_observer(uint16_t segment) {
    return [this, segment](const pcie::DmaRecord& r) {
        if (!r.ok) {
            dma_errors_.inc();
            return;
        }
        oracle_.check(r.requester, r.pasid_present ? std::optional<uint32_t>(r.pasid) : std::nullopt, r.iova, r.pa,
                      Duration::ps(r.at_ps), r.source, segment);
    };
}

} // namespace iommusim::host
