// SPDX-License-Identifier: Apache-2.0
#pragma once
// A virtual IOMMU: the guest-visible unit of one family, emulated by the
// VMM. The guest's CPU reaches its registers through `mmio`; every access
// traps (VM exit to the user-space VMM, emulation, VM entry; costs from
// VmmCosts). A write that publishes the guest's queue tail makes the VMM
// read and decode the guest's commands from guest memory, translate the
// guest's keys (virtual domain IDs, virtual RIDs) and call the host's
// iommufd objects, which program and invalidate the physical unit; the
// VMM's completion (status write, MSI) reaches guest memory through `mem`.
//
// The family-neutral part here: the trap (b_transport), the VMM context
// (the host, the nesting parent, the vDEVICE table), the phase breakdown
// of each trapped submission as stats (guest write, exit, VMM decode, host
// submit, hardware, completion back to the guest), and what every family's
// VMM does with the host's iommufd: the vIOMMU object with a vDEVICE per
// passed-through device (made on first use), attaching a physical device
// for a guest (vRID, PASID) with the oracle's composed view of the VM, the
// VM's PASID set, and invalidation arrays (IOMMU_HWPT_INVALIDATE). Attaches
// go through the host's isolation checks as the VM (host::Isolation: the
// VM's own PASIDs, an IOMMU group held by the VM alone); the VM's count of
// non-coherent domains is what KVM would be told.
// Family units derive and implement the register file and the decode.
#include <array>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>
#include <vector>

#include "models/common/stats.hpp"
#include "models/host/host.hpp"
#include "models/host/vm/guest_memory.hpp"
#include "models/host/vm/vm_params.hpp"

namespace iommusim::host::vm {

/// What the VMM side of a virtual IOMMU works with (the VM owns it).
struct VmmContext {
    VmmContext(Host& h, unsigned unit, GuestMemory& r, const VmParams& p) : host(h), iommu(unit), ram(r), params(p) {}
    Host& host;                  ///< the physical host: its CPU runs the VMM, its iommufd is the kernel side
    unsigned iommu;              ///< the physical IOMMU the VM's devices sit behind
    GuestMemory& ram;
    const VmParams& params;
    std::string vm_name;         ///< owner of the VM's PASID set
    DmaOracle* guest_oracle = nullptr;  ///< the guest's own ground truth (its IOVA -> GPA history)
    HostCpu* guest_cpu = nullptr;       ///< the guest's vCPU (its local time is when a trap happens)
    uint32_t parent_ioas = 0;    ///< GPA -> HPA (set when the VMM created the VM)
    uint32_t parent_hwpt = 0;    ///< the nesting parent (host stage 2)
    std::map<uint16_t, DeviceInfo> vdevices; ///< vDEVICE table: virtual RID -> the physical device
    /// The physical unit's model: a hardware-accelerated vIOMMU (ViommuMode::accelerated) binds
    /// the guest's doorbell page to it. Set by whoever builds the VM.
    sc_core::sc_module* unit_model = nullptr;
    /// The physical device behind a virtual RID (nullptr: unknown virtual ID).
    const DeviceInfo* vdevice(pcie::Bdf vrid) const {
        auto it = vdevices.find(vrid.raw);
        return it == vdevices.end() ? nullptr : &it->second;
    }
};

class VirtualIommu : public sc_core::sc_module {
public:
    tlm_utils::simple_target_socket<VirtualIommu> mmio{"mmio"};   ///< the guest CPU's register accesses
    tlm_utils::simple_initiator_socket<VirtualIommu> mem{"mem"};  ///< status writes / MSIs into guest memory

    VirtualIommu(sc_core::sc_module_name name, VmmContext& vmm, stats::Group* parent);
    ~VirtualIommu() override;
    /// The guest's driver backend for this unit: the family's own driver code.
    virtual std::unique_ptr<IommuDriver> guest_driver(const DriverEnv& env) = 0;
    /// Whether the guest's unit offers PRI (page requests delivered to the guest; VmParams::page_requests).
    virtual bool offers_pri() const { return false; }
    /// Where the unit reports the phases of the guest's commands (the guest driver's queue).
    void set_observer(iommu::InvalidationObserver* o) { observer_ = o; }
    stats::Group& stats_group() { return stats_; }
    /// Host HWPTs the VM's devices are attached to that do not enforce cache coherency (a
    /// nested one is coherent as its parent): KVM's per-VM non-coherent DMA, WBINVD must be
    /// emulated while it is above 0 (shared/reference/threads 001).
    unsigned noncoherent_domains() const;

protected:
    /// An access the family maps straight to hardware, without an exit (a hardware-accelerated
    /// guest queue's doorbell page); true when it was handled so.
    virtual bool direct(tlm::tlm_generic_payload& t, sc_core::sc_time& delay) {
        (void)t, (void)delay;
        return false;
    }
    /// A trapped register read / write (SC_THREAD context; a write may run the queue emulation).
    virtual uint64_t reg_read(uint32_t offset, unsigned size) = 0;
    virtual void reg_write(uint32_t offset, unsigned size, uint64_t value) = 0;

    /// Writes into guest memory as the VMM (status words, records).
    void write_guest(uint64_t gpa, const void* src, unsigned len);
    /// Spends VMM CPU time decoding `n` guest commands.
    void decode(unsigned n);
    /// One iommufd ioctl's syscall cost (the work inside is the host's own).
    void ioctl();
    void report(uint64_t seq, iommu::InvalPhase p, Duration at) {
        if (observer_) observer_->on_phase(seq, p, at, pcie::Bdf{});
    }

    /// The breakdown of one trapped submission; the family fills it while emulating.
    struct Trap {
        std::optional<Duration> guest_start; ///< first write into the guest's queue since the last trap
        Duration arrived, handler;           ///< the tail write reached the unit / the VMM started
        Duration decode;                     ///< VMM time decoding
        Duration host_submit, hardware, host_return; ///< summed over the host calls
        bool invalidation = false;           ///< carried at least one forwarded invalidation
    };
    /// Adds one host flush to the trap: call start -> fetched -> wait done -> call end.
    static void add_host_call(Trap& t, Duration start, Duration end, const std::vector<FlushTiming>& flushes);
    /// Marks the start of the guest's next queue writes (GuestMemory watch on the ring).
    void watch_queue(uint64_t gpa, uint64_t bytes);
    Trap* current_trap() { return trap_ ? &*trap_ : nullptr; }
    /// VMM CPU time counted as decode (table re-reads, emulation).
    void vmm_work(Duration d);

    /// Guest PASID key of requests without PASID.
    static constexpr uint32_t kNoPasid = 0;
    /// Whether the guest's PASIDs live in the guest table a nested domain points at (AMD-Vi GCR3
    /// table, SMMUv3 CD table: the guest's own PASID space) rather than being bound one by one
    /// at host PASIDs (VT-d).
    virtual bool guest_pasid_tables() const { return false; }
    /// Attaches the physical device behind `vrid` for guest PASID `guest_pasid` to host HWPT `hwpt`
    /// (a no-op when it already is) and tells the host oracle the VM's composed view: the guest's
    /// IOVA -> GPA history, then GPA -> HPA in the parent IOAS (or in `stage2_by_iova`: IOVA -> HPA,
    /// a shadow). A guest PASID beyond the VM's quota is refused (counted).
    void bind(pcie::Bdf vrid, uint32_t guest_pasid, const DeviceInfo& dev, uint32_t hwpt,
              std::optional<uint32_t> stage2_by_iova = std::nullopt);
    void unbind(pcie::Bdf vrid, uint32_t guest_pasid, const DeviceInfo& dev);
    /// The host HWPT the (vRID, guest PASID) is attached to, if any.
    std::optional<uint32_t> bound(pcie::Bdf vrid, uint32_t guest_pasid) const;
    /// The host PASID of a guest PASID (nullopt: requests without PASID), from the VM's PASID set.
    std::optional<uint32_t> host_pasid(uint32_t guest_pasid);
    /// IOMMU_HWPT_INVALIDATE of `n` entries of `entry_len` bytes at `data` to `target` (a nested
    /// HWPT or the vIOMMU): the host's flushes join the trap's phases; a failure or a partial
    /// batch is counted in host_errors.
    void invalidate_array(uint32_t target, uint32_t data_type, const void* data, uint32_t entry_len, uint32_t n);
    /// The VM's vIOMMU (IOMMU_VIOMMU_ALLOC on the nesting parent, of the hardware-accelerated kind
    /// under ViommuMode::accelerated, then IOMMU_VDEVICE_ALLOC with each device's virtual RID as
    /// its virtual ID), made on first use.
    uint32_t viommu_object();
    /// The hypervisor's handling of one guest command the unit trapped (a hardware-accelerated
    /// queue in guest buffer trap mode): the notification and `emulate` on the VMM's CPU, then
    /// the caller waits it out.
    void hardware_trap(const std::function<void()>& emulate);
    /// An iommufd call that failed (counted in host_errors).
    void host_error() { host_errors_.inc(); }
    /// IOMMU_HWPT_ALLOC of a nested domain on the vIOMMU with the family's data (AMD guest DTE,
    /// SMMUv3 vSTE); nullopt when the kernel refused it (counted in refused).
    std::optional<uint32_t> alloc_nested(uint32_t data_type, const std::array<uint64_t, 4>& entry);
    /// IOMMU_DESTROY of a nested HWPT no (vRID, PASID) is bound to any more (a guest table the guest
    /// replaced or dropped); true if it was destroyed. The kernel flushes it and frees its tag.
    bool destroy_if_unused(uint32_t hwpt);
    /// Adds one raw guest command to the vIOMMU invalidation array being built (counted forwarded).
    void forward_raw(const std::array<uint64_t, 2>& cmd);
    /// The guest's own ATC invalidation for `vrid` (AMD and Arm forward it, threads/003): refused
    /// for an unknown virtual ID, dropped by a deliberately broken VMM (VmParams::drop_forwarded_atc,
    /// counted in `dropped`), else forwarded raw.
    void forward_atc(pcie::Bdf vrid, const std::array<uint64_t, 2>& cmd, stats::Counter& dropped);
    /// Sends the array built by forward_raw() to the vIOMMU (entries of `data_type`), if any.
    void flush_raw(uint32_t data_type);

    // ---- guest fault delivery (iommufd fault queue and vEVENTQ; viommu_faults.cpp) ----
    /// The family's guest unit takes page requests / stalls: the VMM allocates a fault queue for
    /// its nested HWPTs and runs its event thread (host thread `<vm>_vmm_events`, on the VMM's
    /// CPU). Elaboration only (the family's constructor).
    void enable_fault_delivery();
    bool fault_delivery() const { return fault_delivery_; }
    /// The fault queue (IOMMU_FAULT_QUEUE_ALLOC on first use), 0 when fault delivery is off.
    uint32_t fault_object();
    /// One page request group the VMM read, as the guest should see it.
    struct GuestFault {
        pcie::Bdf vrid;                       ///< the vDEVICE's virtual ID
        std::optional<uint32_t> guest_pasid;  ///< the guest's PASID (nullopt: none)
        std::vector<uapi::HwptPgfault> requests; ///< the group, last one last
    };
    /// Writes the group into the guest's page-request (or event) queue and raises the guest's
    /// interrupt as the family's hardware would; returns the key the guest's response will carry
    /// (family-defined: SMMUv3 stall vSID + STAG, PRI vRID + PASID + PRG index), or nullopt when
    /// the guest's queue could not take it (full or disabled: the VMM answers INVALID).
    virtual std::optional<uint64_t> inject_page_request(const GuestFault& f) {
        (void)f;
        return std::nullopt;
    }
    /// A group the guest's queue could not take is answered Success (VT-d §7.5.1: a full page request
    /// queue auto-responds Success, the device retries) rather than INVALID.
    virtual bool unqueued_success() const { return false; }
    /// The family's vEVENTQ type and depth (nullopt: the family has no vEVENTQ in Linux).
    virtual std::optional<uint32_t> vevent_type() const { return std::nullopt; }
    virtual uint32_t vevent_depth() const { return 0; }
    /// 64-bit words of one vEVENT's data (SMMUv3: the 256-bit event record).
    virtual size_t vevent_words() const { return 0; }
    /// Writes one vEVENT's data (virtual ID already in it) into the guest's event queue; false when lost.
    virtual bool inject_event(const std::vector<uint64_t>& data) {
        (void)data;
        return false;
    }
    /// The guest answered the group `key` (a trapped response command): the VMM writes the page
    /// response to the fault queue. An unknown key (never delivered, or answered already) is
    /// refused (counted in page_requests.unknown_responses).
    void guest_page_response(uint64_t key, bool success);
    /// The host PASID -> guest PASID of a request (VT-d: the VM's PASID set; default: the same).
    virtual std::optional<uint32_t> guest_pasid_of(std::optional<uint32_t> hw_pasid) { return hw_pasid; }

    VmmContext& vmm_;
    HostCpu& cpu_; ///< the host CPU the VMM runs on
    stats::Group stats_;
    stats::Counter& traps_;
    stats::Counter& commands_;
    stats::Counter& forwarded_;
    stats::Counter& discarded_devtlb_;
    stats::Counter& refused_;
    stats::Counter& ioctls_;
    stats::Counter& attach_refused_;
    /// (vRID, guest PASID) -> the host HWPT attached.
    std::map<std::pair<uint16_t, uint32_t>, uint32_t> bound_;

private:
    std::optional<PasidAllocator::SetId> pasid_set_; ///< the VM's PASID set (created on first use)
    void event_thread();
    void deliver_faults();
    void deliver_events();
    bool fault_delivery_ = false;
    uint32_t fault_id_ = 0, veventq_id_ = 0;
    bool have_sequence_ = false;
    uint32_t next_sequence_ = 0; ///< the vEVENT sequence number expected next (a gap: events lost)
    sc_core::sc_event events_ready_; ///< the fault queue's / vEVENTQ's file became readable (poll)
    struct Outstanding {
        uint32_t cookie;
        Duration queued, read, injected;
    };
    std::map<uint64_t, Outstanding> outstanding_; ///< guest key -> the group it answers
    struct FaultStats {
        explicit FaultStats(stats::Group* parent);
        stats::Group group, phases;
        stats::Counter &groups, &requests, &responses, &unknown_responses, &refused_by_host, &guest_queue_full,
            &unknown_devices, &vevents, &vevents_lost;
        stats::Histogram &vmm_read, &injection, &guest, &trap, &host_response, &total;
    };
    std::unique_ptr<FaultStats> fst_; ///< page_requests stats group (fault delivery on only)
    uint32_t viommu_id_ = 0;
    std::vector<std::array<uint64_t, 2>> raw_; ///< the vIOMMU invalidation array being built
    void b_transport(tlm::tlm_generic_payload& t, sc_core::sc_time& delay);
    void finish_trap(Duration resumed);

    sc_core::sc_mutex lock_; ///< the VMM emulates one access at a time (QEMU's big lock)
    iommu::InvalidationObserver* observer_ = nullptr;
    std::optional<Trap> trap_;
    std::optional<Duration> queue_write_start_;
    stats::Group phases_;
    stats::Histogram& guest_write_;
    stats::Histogram& exit_;
    stats::Histogram& decode_;
    stats::Histogram& host_submit_;
    stats::Histogram& hardware_;
    stats::Histogram& completion_;
    stats::Histogram& total_;
    stats::Counter& host_errors_;
    stats::Counter* hw_traps_ = nullptr; ///< (ViommuMode::accelerated only)
};

} // namespace iommusim::host::vm
