// SPDX-License-Identifier: Apache-2.0
#include "models/host/vm/viommu.hpp"

#include <cstring>
#include <set>
#include <utility>

#include "models/common/sc_time.hpp"
#include "models/host/host_error.hpp"

namespace iommusim::host::vm {

VirtualIommu::VirtualIommu(sc_core::sc_module_name name, VmmContext& vmm, stats::Group* parent)
    : sc_module(name), vmm_(vmm), cpu_(vmm.host.cpu()), stats_(basename(), parent),
      traps_(stats_.counter("traps", "exits", "guest register accesses that exited to the VMM")),
      commands_(stats_.counter("guest_commands", "commands", "guest queue entries the VMM decoded")),
      forwarded_(stats_.counter("forwarded", "entries", "guest invalidations forwarded to the host (iommufd entries)")),
      discarded_devtlb_(stats_.counter("discarded_devtlb", "commands",
                                       "guest device-TLB invalidations discarded (the host synthesizes its own)")),
      refused_(stats_.counter("refused", "commands", "guest commands naming an unknown virtual ID (not forwarded)")),
      ioctls_(stats_.counter("ioctls", "calls", "iommufd calls the VMM made")),
      attach_refused_(stats_.counter("attach_refused", "calls",
                                     "attaches of a passed-through device the host refused (os.isolation: its IOMMU group "
                                     "belongs to another owner or domain); the guest's context stays unbound")),

      phases_("invalidation_phases", &stats_),
      guest_write_(phases_.histogram("guest_write", "ns", "guest driver: first queue write to the tail write reaching the unit")),
      exit_(phases_.histogram("exit", "ns", "VM exit to the VMM's handler")),
      decode_(phases_.histogram("vmm_decode", "ns", "VMM decoding the guest's commands (and reading its tables)")),
      host_submit_(phases_.histogram("host_submit", "ns", "iommufd call to the physical unit fetching the host's first command")),
      hardware_(phases_.histogram("hardware", "ns", "physical unit: first fetch to its wait/sync completing")),
      completion_(phases_.histogram("completion", "ns",
                                    "host driver noticing completion, return to the VMM, status write into guest memory, VM entry")),
      total_(phases_.histogram("total", "ns", "guest's first queue write to the guest resuming after the tail write")),
      host_errors_(stats_.counter("host_errors", "calls", "iommufd calls that failed or handled fewer entries than sent")) {
    if (vmm.params.mode == ViommuMode::accelerated)
        hw_traps_ = &stats_.counter("hardware_traps", "commands",
                                    "guest commands a hardware-accelerated queue handed to the VMM (guest buffer trap mode)");
    mmio.register_b_transport(this, &VirtualIommu::b_transport);
    stats_.derived("noncoherent_domains", "domains",
                   "host domains the VM's devices are attached to that do not enforce cache coherency (KVM's per-VM "
                   "non-coherent DMA: WBINVD emulated while above 0)",
                   [this] { return static_cast<double>(noncoherent_domains()); });
}

void VirtualIommu::b_transport(tlm::tlm_generic_payload& t, sc_core::sc_time& delay) {
    // The exit happens at the vCPU's local time (its lead over the kernel first), after the
    // access's own cost; then the trap (SC_THREAD: the vCPU's thread).
    if (direct(t, delay)) return;
    if (vmm_.guest_cpu) vmm_.guest_cpu->sync();
    sc_core::wait(delay);
    delay = sc_core::SC_ZERO_TIME;
    const unsigned size = t.get_data_length();
    const auto off = static_cast<uint32_t>(t.get_address());
    traps_.inc();
    lock_.lock();
    trap_ = Trap{};
    trap_->guest_start = std::exchange(queue_write_start_, std::nullopt);
    trap_->arrived = cpu_.now();
    cpu_.spend(vmm_.params.vmm.exit);
    trap_->handler = cpu_.now();
    uint64_t v = 0;
    if (t.is_read()) {
        v = reg_read(off, size);
        std::memcpy(t.get_data_ptr(), &v, size);
    } else {
        std::memcpy(&v, t.get_data_ptr(), size);
        reg_write(off, size, v);
    }
    cpu_.spend(vmm_.params.vmm.entry);
    finish_trap(cpu_.now());
    cpu_.sync(); // the vCPU stays stopped for the whole exit: the VMM's time elapses before it resumes
    vmm_.ram.rearm_watch();
    lock_.unlock();
    // The vCPU resumes when the VMM's work ends: its time is in the VMM thread's local time,
    // which the guest's clock does not see, so it is waited out here. Otherwise the guest
    // resumes early and may read a status word the VMM wrote "later" (the VMM's own costs
    // after a host flush, e.g. freeing the host IOVA, ran ahead of the guest).
    cpu_.sync();
    t.set_response_status(tlm::TLM_OK_RESPONSE);
}

void VirtualIommu::finish_trap(Duration resumed) {
    Trap tr = *trap_;
    trap_.reset();
    if (!tr.invalidation) return;
    const Duration start = tr.guest_start.value_or(tr.arrived);
    const Duration after_exit = resumed - tr.handler;
    const Duration accounted = tr.decode + tr.host_submit + tr.hardware;
    guest_write_.record((tr.arrived - start).as_ns());
    exit_.record((tr.handler - tr.arrived).as_ns());
    decode_.record(tr.decode.as_ns());
    host_submit_.record(tr.host_submit.as_ns());
    hardware_.record(tr.hardware.as_ns());
    completion_.record((after_exit > accounted ? after_exit - accounted : Duration::zero()).as_ns());
    total_.record((resumed - start).as_ns());
}

void VirtualIommu::write_guest(uint64_t gpa, const void* src, unsigned len) {
    tlm::tlm_generic_payload gp;
    std::vector<unsigned char> buf(static_cast<const unsigned char*>(src), static_cast<const unsigned char*>(src) + len);
    gp.set_command(tlm::TLM_WRITE_COMMAND);
    gp.set_address(gpa);
    gp.set_data_ptr(buf.data());
    gp.set_data_length(len);
    gp.set_streaming_width(len);
    sc_core::sc_time d = to_sc(cpu_.params().mem_write);
    mem->b_transport(gp, d);
    sc_core::wait(d);
    if (!gp.is_response_ok()) refused_.inc(); // a status address outside guest RAM: dropped, as hardware would abort
}

void VirtualIommu::decode(unsigned n) {
    commands_.inc(n);
    const Duration d = vmm_.params.vmm.decode * n;
    cpu_.spend(d);
    if (trap_) trap_->decode += d;
}

void VirtualIommu::ioctl() {
    ioctls_.inc();
    cpu_.spend(vmm_.params.vmm.ioctl);
}

void VirtualIommu::add_host_call(Trap& t, Duration start, Duration end, const std::vector<FlushTiming>& flushes) {
    // Host flushes run one after the other inside the call: submit = call start to the
    // first fetch, hardware = each flush's fetch to its wait completing, the rest is return.
    Duration at = start;
    for (const FlushTiming& f : flushes) {
        const Duration fetched = f.fetched.value_or(f.submitted);
        const Duration done = f.wait_done.value_or(f.observed);
        if (fetched > at) t.host_submit += fetched - at;
        if (done > fetched) t.hardware += done - fetched;
        at = f.observed;
    }
    if (flushes.empty()) t.host_submit += end - start;
    t.invalidation = true;
}

void VirtualIommu::vmm_work(Duration d) {
    cpu_.spend(d);
    if (trap_) trap_->decode += d;
}

std::optional<uint32_t> VirtualIommu::host_pasid(uint32_t guest_pasid) {
    if (guest_pasid == kNoPasid) return std::nullopt;
    // The VM's PASID set: a guest PASID is a set-private ID mapped to a host PASID the
    // VM owns (the IOASID design, threads 000/002); the quota bounds how many it binds.
    PasidAllocator& a = vmm_.host.pasids();
    if (!pasid_set_) pasid_set_ = a.find_set(vmm_.vm_name).value_or(0);
    if (!*pasid_set_) pasid_set_ = a.create_set(vmm_.vm_name, vmm_.params.pasid_quota);
    try {
        return a.host_pasid(*pasid_set_, guest_pasid);
    } catch (const HostError&) {
        return a.alloc(*pasid_set_, vmm_.vm_name, guest_pasid);
    }
}

std::optional<uint32_t> VirtualIommu::bound(pcie::Bdf vrid, uint32_t guest_pasid) const {
    auto it = bound_.find({vrid.raw, guest_pasid});
    return it == bound_.end() ? std::nullopt : std::optional<uint32_t>(it->second);
}

void VirtualIommu::bind(pcie::Bdf vrid, uint32_t guest_pasid, const DeviceInfo& dev, uint32_t hwpt,
                        std::optional<uint32_t> stage2_by_iova) {
    auto it = bound_.find({vrid.raw, guest_pasid});
    if (it != bound_.end() && it->second == hwpt) return;
    if (it != bound_.end()) unbind(vrid, guest_pasid, dev);
    std::optional<uint32_t> hp;
    try {
        hp = host_pasid(guest_pasid);
    } catch (const HostError&) { // over the VM's quota: the guest's PASID is not bound
        refused_.inc();
        return;
    }
    ioctl();
    const Duration start = cpu_.now();
    try {
        // As the VM (issue 18): its PASIDs are its set's, and the device's IOMMU group must be
        // the VM's alone (a group shared with a kernel driver or another VM is busy).
        vmm_.host.isolation().attach(vmm_.vm_name, vmm_.iommu, dev.rid, hp, hwpt);
    } catch (const HostError&) { // the VMM's ioctl failed: the guest's context stays unbound
        attach_refused_.inc();
        if (trap_) add_host_call(*trap_, start, cpu_.now(), {});
        return;
    }
    if (trap_) add_host_call(*trap_, start, cpu_.now(), {});
    bound_[{vrid.raw, guest_pasid}] = hwpt;
    DmaOracle::NestedView v;
    v.guest = vmm_.guest_oracle;
    v.guest_device = vrid;
    if (guest_pasid != kNoPasid) v.guest_pasid = guest_pasid;
    v.parent_space = stage2_by_iova.value_or(vmm_.parent_ioas);
    v.stage2_by_iova = stage2_by_iova.has_value();
    v.any_pasid = guest_pasid == kNoPasid && guest_pasid_tables();
    GuestMemory* ram = &vmm_.ram;
    v.gpa_of = [ram](uint64_t hpa) { return ram->gpa_of(hpa); };
    vmm_.host.oracle().bind_nested(dev.rid, hp, std::move(v), vmm_.host.iommufd().iommu_segment(vmm_.iommu));
}

void VirtualIommu::unbind(pcie::Bdf vrid, uint32_t guest_pasid, const DeviceInfo& dev) {
    auto it = bound_.find({vrid.raw, guest_pasid});
    if (it == bound_.end()) return;
    ioctl();
    const Duration start = cpu_.now();
    vmm_.host.isolation().detach(vmm_.iommu, dev.rid, host_pasid(guest_pasid));
    if (trap_) add_host_call(*trap_, start, cpu_.now(), {});
    bound_.erase(it);
}

unsigned VirtualIommu::noncoherent_domains() const {
    std::set<uint32_t> off;
    for (const auto& [key, hwpt] : bound_)
        if (!vmm_.host.iommufd().enforces_coherency(hwpt)) off.insert(hwpt);
    return static_cast<unsigned>(off.size());
}

void VirtualIommu::invalidate_array(uint32_t target, uint32_t data_type, const void* data, uint32_t entry_len,
                                    uint32_t n) {
    if (n == 0) return;
    uapi::HwptInvalidate req;
    req.hwpt_id = target;
    req.data_uptr = reinterpret_cast<uintptr_t>(data);
    req.data_type = data_type;
    req.entry_len = entry_len;
    req.entry_num = n;
    const Duration start = cpu_.now();
    ioctl();
    std::vector<FlushTiming> ts;
    const uapi::Errno e = vmm_.host.iommufd().hwpt_invalidate(req, &ts);
    if (trap_) add_host_call(*trap_, start, cpu_.now(), ts);
    if (e != uapi::Errno::ok || req.entry_num != n) host_errors_.inc();
}

uint32_t VirtualIommu::viommu_object() {
    if (viommu_id_) return viommu_id_;
    IommuFd& fd = vmm_.host.iommufd();
    ioctl();
    viommu_id_ = vmm_.params.mode == ViommuMode::accelerated
                     ? fd.viommu_alloc_hw(vmm_.parent_hwpt, vmm_.ram.ram_gpa(), vmm_.ram.ram_bytes())
                     : fd.viommu_alloc(vmm_.parent_hwpt);
    for (const auto& [vrid, dev] : vmm_.vdevices) {
        ioctl();
        fd.vdevice_alloc(viommu_id_, dev.rid, vrid);
    }
    if (fault_delivery_ && vevent_type()) { // IOMMU_VEVENTQ_ALLOC: the guest's stage-1 events
        uapi::VeventqAlloc req;
        req.viommu_id = viommu_id_;
        req.type = *vevent_type();
        req.veventq_depth = vevent_depth();
        ioctl();
        if (fd.veventq_alloc(req, [this] {
                cpu_.sync();
                events_ready_.notify(sc_core::SC_ZERO_TIME);
            }) == uapi::Errno::ok)
            veventq_id_ = req.out_veventq_id;
        else
            host_error();
    }
    return viommu_id_;
}

std::optional<uint32_t> VirtualIommu::alloc_nested(uint32_t data_type, const std::array<uint64_t, 4>& entry) {
    const uint32_t viommu = viommu_object();
    ioctl();
    try {
        const uint32_t h = vmm_.host.iommufd().hwpt_alloc_nested_viommu(viommu, data_type, entry);
        if (const uint32_t f = fault_object()) vmm_.host.iommufd().hwpt_set_fault(h, f); // fault_id of the same HWPT_ALLOC
        return h;
    } catch (const HostError&) { // the kernel's check of the guest entry refused it
        refused_.inc();
        return std::nullopt;
    }
}

bool VirtualIommu::destroy_if_unused(uint32_t hwpt) {
    for (const auto& [key, h] : bound_)
        if (h == hwpt) return false;
    ioctl();
    const Duration start = cpu_.now();
    try {
        vmm_.host.iommufd().hwpt_free(hwpt);
    } catch (const HostError&) {
        host_errors_.inc();
        return false;
    }
    if (trap_) add_host_call(*trap_, start, cpu_.now(), {});
    return true;
}

void VirtualIommu::forward_raw(const std::array<uint64_t, 2>& cmd) {
    raw_.push_back(cmd);
    forwarded_.inc();
}

void VirtualIommu::forward_atc(pcie::Bdf vrid, const std::array<uint64_t, 2>& cmd, stats::Counter& dropped) {
    if (!vmm_.vdevice(vrid)) refused_.inc();
    else if (vmm_.params.drop_forwarded_atc) dropped.inc();
    else forward_raw(cmd);
}

void VirtualIommu::flush_raw(uint32_t data_type) {
    if (raw_.empty()) return;
    invalidate_array(viommu_object(), data_type, raw_.data(), 16, static_cast<uint32_t>(raw_.size()));
    raw_.clear();
}

void VirtualIommu::hardware_trap(const std::function<void()>& emulate) {
    lock_.lock(); // one emulation at a time, as for the guest's own exits
    if (hw_traps_) hw_traps_->inc();
    cpu_.spend(vmm_.params.vmm.exit); // the unit's notification reaching the VMM [estimate: as one exit]
    decode(1);
    emulate();
    cpu_.sync(); // the unit's buffer waits until the hypervisor is done
    lock_.unlock();
}

void VirtualIommu::watch_queue(uint64_t gpa, uint64_t bytes) {
    vmm_.ram.watch(gpa, bytes, [this] { queue_write_start_ = vmm_.guest_cpu ? vmm_.guest_cpu->now() : cpu_.now(); });
}

} // namespace iommusim::host::vm
