// SPDX-License-Identifier: Apache-2.0
#include "models/host/vm/vm.hpp"

#include "models/host/host_error.hpp"

namespace iommusim::host::vm {

HostParams Vm::guest_host_params(const VmParams& p, const HostParams& host) {
    HostParams g = host; // the guest's vCPU costs what the host's CPU does (no nested-paging overhead modelled)
    // The guest kernel's own driver settings: Linux defaults (its flush policy is its own), polling
    // waits (no virtual interrupt controller is modelled).
    g.driver = DriverParams{};
    g.driver.flush = host.driver.flush;
    // The guest kernel's IOMMU tables and queues, then its DMA memory, inside guest RAM (GPAs).
    g.layout.table_base = p.ram_gpa;
    g.layout.table_bytes = p.guest_table_bytes;
    g.layout.data_base = p.ram_gpa + p.guest_table_bytes;
    g.layout.data_bytes = p.ram_bytes - p.guest_table_bytes;
    return g;
}

Vm::Vm(const std::string& name, const VmParams& params, Host& host, unsigned iommu, mem::PhysMem& host_memory,
       stats::Group* parent, const ViommuBuilder& build_viommu)
    : name_(name), params_(params), ram_(host_memory, params.ram_gpa, params.ram_bytes),
      ram_target_((name + "_ram").c_str(), ram_), ctx_{host, iommu, ram_, params_}, stats_(name, parent),
      map_latency_(stats_.histogram("guest_map_latency", "ns", "guest kernel map call to return (a trapped flush under caching mode)")),
      unmap_latency_(stats_.histogram("guest_unmap_latency", "ns", "guest kernel unmap call to return (its strict flush traps to the VMM)")),
      wbinvd_flushes_(stats_.counter("wbinvd_flushes", "instructions",
                                     "guest WBINVDs the host emulated with a cache flush (the VM had non-coherent DMA)")),
      wbinvd_skipped_(stats_.counter("wbinvd_skipped", "instructions",
                                     "guest WBINVDs skipped after the exit (every attached domain enforces coherency)")) {
    if (params.guest_table_bytes >= params.ram_bytes)
        throw HostError(HostError::Kind::invalid, "VM " + name + ": guest_table_bytes must be below ram_bytes");
    ctx_.vm_name = name;
    guest_ = std::make_unique<Host>((name + "_guest").c_str(), guest_host_params(params_, host.params()), ram_, &stats_);
    ctx_.guest_oracle = &guest_->oracle();
    ctx_.guest_cpu = &guest_->cpu();
    viommu_ = build_viommu(name + "_viommu", ctx_, &stats_);
    VirtualIommu* v = viommu_.get();
    IommuDriver& drv = guest_->add_iommu(name + "_iommu", v->mmio, v->mem, ram_target_.socket,
                                         [v](const DriverEnv& env) { return v->guest_driver(env); });
    v->set_observer(&drv.invalidation_observer());
    // The guest boots once the VMM created the VM (its RAM exists).
    guest_->set_boot_prelude([this] {
        if (!ram_.backed()) sc_core::wait(created_);
    });
    host.add_thread(name + "_vmm", [this] { create(); });
}

Vm::~Vm() = default;

void Vm::create() {
    IommuFd& fd = ctx_.host.iommufd();
    ctx_.parent_ioas = fd.ioas_alloc();
    ctx_.parent_hwpt = fd.hwpt_alloc(ctx_.parent_ioas, ctx_.iommu, DomainDesc::Kind::paging_s2);
    // Guest RAM: fresh host memory mapped at its GPAs in the nesting parent.
    fd.map(ctx_.parent_ioas, params_.ram_bytes, params_.ram_gpa, params_.stage2_page_shift);
    const std::optional<uint64_t> hpa = fd.lookup(ctx_.parent_ioas, params_.ram_gpa);
    if (!hpa) throw std::logic_error("VM: guest RAM was mapped but is not found");
    ram_.back(*hpa);
    created_.notify(sc_core::SC_ZERO_TIME);
}

void Vm::add_device(const DeviceInfo& physical, pcie::Bdf vrid) {
    if (!ctx_.vdevices.emplace(vrid.raw, physical).second)
        throw HostError(HostError::Kind::busy, "virtual RID " + vrid.str() + " is already assigned (EEXIST)");
    DeviceInfo guest_view = physical;
    guest_view.rid = vrid;
    // The guest sees PRI only where its vIOMMU delivers page requests (VmParams::page_requests
    // and a family whose vIOMMU offers PRI); stall-capable masters stay so (firmware's word).
    guest_view.pri = physical.pri && viommu_->offers_pri();
    guest_->iommufd().add_device(guest_view, 0);
}

} // namespace iommusim::host::vm

namespace iommusim::host::vm {

void Vm::boot_guest_dma() {
    guest_->add_thread("dma_setup", [this] {
        IommuFd& g = guest_->iommufd();
        const uint32_t ioas = g.ioas_alloc();
        const uint32_t hwpt = g.hwpt_alloc(ioas, 0, guest_domain_kind());
        for (const auto& [vrid, dev] : ctx_.vdevices) g.attach(pcie::Bdf(vrid), std::nullopt, hwpt);
        dma_ioas_ = ioas;
        dma_ready_.notify(sc_core::SC_ZERO_TIME);
    });
}

uint32_t Vm::guest_dma_ioas() {
    while (!dma_ioas_) sc_core::wait(dma_ready_);
    return *dma_ioas_;
}

} // namespace iommusim::host::vm

namespace iommusim::host::vm {

uint32_t Vm::guest_bind_sva(pcie::Bdf vrid, uint32_t pasid) {
    (void)guest_dma_ioas(); // the guest has booted and set up its DMA domain
    if (!ctx_.vdevice(vrid))
        throw HostError(HostError::Kind::not_found, "VM " + name_ + " has no device at virtual RID " + vrid.str());
    IommuFd& g = guest_->iommufd();
    const uint32_t process = g.process_create();
    const uint32_t hwpt = g.hwpt_alloc_sva(process, 0);
    g.attach(vrid, pasid, hwpt);
    return process;
}

uint64_t Vm::guest_map(uint64_t size, std::optional<uint64_t> iova, unsigned page_shift) {
    const uint32_t ioas = guest_dma_ioas();
    const Duration start = guest_->cpu().now();
    const uint64_t v = guest_->iommufd().map(ioas, size, iova, page_shift);
    map_latency_.record((guest_->cpu().now() - start).as_ns());
    return v;
}

void Vm::guest_unmap(uint64_t iova, uint64_t size) {
    const uint32_t ioas = guest_dma_ioas();
    const Duration start = guest_->cpu().now();
    guest_->iommufd().unmap(ioas, iova, size);
    unmap_latency_.record((guest_->cpu().now() - start).as_ns());
}

} // namespace iommusim::host::vm

namespace iommusim::host::vm {

bool Vm::guest_wbinvd() {
    if (!ram_.backed()) sc_core::wait(created_);
    // WBINVD exits unconditionally; KVM flushes only for a VM with non-coherent DMA, whose
    // devices may have written memory without snooping the CPU caches (threads/001).
    const bool flush = viommu_->noncoherent_domains() > 0;
    HostCpu& vcpu = guest_->cpu();
    vcpu.spend(params_.vmm.kernel_exit + (flush ? params_.vmm.wbinvd_flush : Duration::zero()));
    (flush ? wbinvd_flushes_ : wbinvd_skipped_).inc();
    vcpu.sync(); // the vCPU is stopped until the host's flush completes
    return flush;
}

} // namespace iommusim::host::vm
