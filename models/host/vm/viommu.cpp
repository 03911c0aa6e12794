// SPDX-License-Identifier: Apache-2.0
#include "models/host/vm/viommu.hpp"

#include <cstring>
#include <utility>

#include "models/common/sc_time.hpp"

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
      phases_("invalidation_phases", &stats_),
      guest_write_(phases_.histogram("guest_write", "ns", "guest driver: first queue write to the tail write reaching the unit")),
      exit_(phases_.histogram("exit", "ns", "VM exit to the VMM's handler")),
      decode_(phases_.histogram("vmm_decode", "ns", "VMM decoding the guest's commands (and reading its tables)")),
      host_submit_(phases_.histogram("host_submit", "ns", "iommufd call to the physical unit fetching the host's first command")),
      hardware_(phases_.histogram("hardware", "ns", "physical unit: first fetch to its wait/sync completing")),
      completion_(phases_.histogram("completion", "ns",
                                    "host driver noticing completion, return to the VMM, status write into guest memory, VM entry")),
      total_(phases_.histogram("total", "ns", "guest's first queue write to the guest resuming after the tail write")) {
    mmio.register_b_transport(this, &VirtualIommu::b_transport);
}

void VirtualIommu::b_transport(tlm::tlm_generic_payload& t, sc_core::sc_time& delay) {
    // The guest CPU's own access cost first, then the trap (SC_THREAD: the vCPU's thread).
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

void VirtualIommu::watch_queue(uint64_t gpa, uint64_t bytes) {
    vmm_.ram.watch(gpa, bytes, [this] { queue_write_start_ = cpu_.now(); });
}

} // namespace iommusim::host::vm
