// SPDX-License-Identifier: Apache-2.0
#pragma once
// A virtual machine: guest RAM backed by a host stage-2 domain (the nesting
// parent), a guest OS (a host::Host over guest memory: its own CPU costs,
// iommufd object model, DMA oracle, and the same family driver backend the
// host runs, bound to a virtual IOMMU instead of the physical one), the
// virtual IOMMU the VMM emulates, and the vDEVICE table of passed-through
// devices (virtual RID -> physical device).
//
// Fidelity: at start the VMM (a host thread) allocates the parent IOAS, a
// second-stage paging domain on the physical unit and maps all of guest RAM
// into it in stage2_page_shift pages (one fresh host block: GPA -> HPA is
// linear); only then does the guest boot (its driver's register accesses
// trap). The guest's DMAs are judged by the host oracle through the VM's
// composed view (DmaOracle::bind_nested): the guest's history for IOVA ->
// GPA, the host's for GPA -> HPA. Not modelled: guest vCPU scheduling and
// several vCPUs' contention, guest interrupts (the guest driver polls),
// memory ballooning / migration, more than one vIOMMU per VM.
// A guest WBINVD exits to KVM (in-kernel); while the VM has non-coherent DMA
// (its vIOMMU's noncoherent_domains() > 0: kvm_arch_has_noncoherent_dma) the
// host writes back and invalidates the caches of the CPU that ran the vCPU
// (the one vCPU runs on one CPU: no IPIs to other CPUs), else it is skipped
// (Linux arch/x86/kvm/x86.c kvm_emulate_wbinvd_noskip). The flush is a cost
// charged to the vCPU; no CPU cache contents are modelled.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <systemc>

#include "models/host/host.hpp"
#include "models/host/vm/guest_memory.hpp"
#include "models/host/vm/viommu.hpp"
#include "models/host/vm/vm_params.hpp"

namespace iommusim::host::vm {

class Vm {
public:
    using ViommuBuilder =
        std::function<std::unique_ptr<VirtualIommu>(const std::string& name, VmmContext& vmm, stats::Group* parent)>;

    /// Elaboration only. `iommu`: the physical unit (host iommufd index) the VM's devices sit behind.
    Vm(const std::string& name, const VmParams& params, Host& host, unsigned iommu, mem::PhysMem& host_memory,
       stats::Group* parent_stats, const ViommuBuilder& build_viommu);
    ~Vm();

    /// Passes a host device through; the guest sees it at `vrid` (iommufd vDEVICE). Elaboration only.
    /// Errors: a duplicate virtual RID (EEXIST in iommufd).
    void add_device(const DeviceInfo& physical, pcie::Bdf vrid);

    const std::string& name() const { return name_; }
    /// The guest OS: add guest threads with guest().add_thread (they run after the guest booted).
    Host& guest() { return *guest_; }
    VirtualIommu& viommu() { return *viommu_; }
    GuestMemory& memory() { return ram_; }
    const VmmContext& vmm() const { return ctx_; }
    const VmParams& params() const { return params_; }
    /// Whether the VMM has created the VM (guest RAM backed and mapped).
    bool created() const { return ram_.backed(); }

    /// Adds the guest thread that, once booted, puts every passed-through device into one
    /// guest DMA domain (an IOAS and a domain of guest_domain_kind()). Elaboration only.
    void boot_guest_dma();
    /// The guest DMA IOAS of boot_guest_dma(); waits (SC_THREAD) until the guest attached its devices.
    uint32_t guest_dma_ioas();
    /// The guest kernel maps / unmaps in its DMA IOAS (SC_THREAD; waits for the guest's boot);
    /// the latency of each call is recorded (guest_map_latency, guest_unmap_latency).
    uint64_t guest_map(uint64_t size, std::optional<uint64_t> iova, unsigned page_shift);
    void guest_unmap(uint64_t iova, uint64_t size);
    /// The guest kernel binds a process of its own to the passed-through device at virtual RID
    /// `vrid` with guest PASID `pasid` (iommu_sva_bind_device): a new process (an empty address
    /// space: its pages are faulted in on first touch, by the CPU or by the device's page
    /// requests), an SVA domain on the guest's IOMMU sharing its page tables, and the attach at
    /// the PASID, whose PASID-entry write and cache invalidation the vIOMMU traps (VT-d: a nested
    /// HWPT per (vDID, PASID) at the guest PASID's host PASID of the VM's set). SC_THREAD; waits
    /// for the guest's boot. Returns the guest's process. Errors: an unknown virtual RID
    /// (not_found), the guest driver's own (a PASID bound already: busy).
    uint32_t guest_bind_sva(pcie::Bdf vrid, uint32_t pasid);
    /// A guest vCPU executes WBINVD (SC_THREAD; waits until the VMM created the VM): one in-kernel
    /// exit + entry, plus the host's cache flush while the VM is non-coherent; the vCPU's time.
    /// Returns whether the host flushed (counted in wbinvd_flushes / wbinvd_skipped).
    bool guest_wbinvd();

    /// The guest-side domain kind its driver should use for DMA domains in this mode
    /// (nested and accelerated: first stage over the host's second; caching mode: second stage, shadowed).
    DomainDesc::Kind guest_domain_kind() const {
        return params_.mode == ViommuMode::caching_mode ? DomainDesc::Kind::paging_s2 : DomainDesc::Kind::paging_s1;
    }

private:
    static HostParams guest_host_params(const VmParams& p, const HostParams& host);
    void create();

    std::string name_;
    VmParams params_;
    GuestMemory ram_;
    GuestMemoryTarget ram_target_;
    VmmContext ctx_;
    stats::Group stats_;
    std::unique_ptr<Host> guest_;
    std::unique_ptr<VirtualIommu> viommu_;
    sc_core::sc_event created_;
    std::optional<uint32_t> dma_ioas_;
    sc_core::sc_event dma_ready_;
    stats::Histogram& map_latency_;
    stats::Histogram& unmap_latency_;
    stats::Counter& wbinvd_flushes_;
    stats::Counter& wbinvd_skipped_;
};

} // namespace iommusim::host::vm
