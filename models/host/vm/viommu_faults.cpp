// SPDX-License-Identifier: Apache-2.0
// The VMM's guest fault delivery, family-neutral (QEMU's iommufd fault queue
// and vEVENTQ handlers): the VMM allocates an iommufd fault queue that every
// nested HWPT of the VM names (IOMMU_HWPT_FAULT_ID_VALID) and, where Linux has
// one for the family, a vEVENTQ on its vIOMMU. Its event thread sleeps in
// poll() on both files; when the host queues a page request group (or an
// event), the thread wakes (VmmCosts::event_wakeup), read()s the records (one
// syscall, VmmCosts::ioctl), translates the device ID to the vDEVICE's virtual
// ID and the PASID to the guest's, and lets the family write them into the
// guest's own queue in guest memory and raise the guest's interrupt. The
// guest's driver services the request and answers on its command queue; the
// trapped response command comes back through guest_page_response(), which
// write()s the iommufd page response (one syscall) so the host answers the
// device. A group the guest's queue cannot take, or from a device with no
// vDEVICE, is answered INVALID at once.
// Phases (stats <vm>_viommu.page_requests.phases): vmm_read (queued by the
// host driver -> the VMM read it), injection (-> record and interrupt in the
// guest), guest_handler (-> the guest's response command trapped), response_trap
// (-> the VMM's write() starts: exit and decode), host_response (the write():
// the host driver's page response), total (queued -> host response done).
// Not modelled: the unit writing the request and the host driver's reading it
// (the host's os.prq stats / the device's own), QEMU's main-loop scheduling
// beyond the wake-up, the guest's drain of outstanding groups on detach.
#include <cstring>

#include "models/host/host_error.hpp"
#include "models/host/vm/viommu.hpp"

namespace iommusim::host::vm {

VirtualIommu::FaultStats::FaultStats(stats::Group* parent)
        : group("page_requests", parent), phases("phases", &group),
          groups(group.counter("groups_delivered", "groups", "page request groups the VMM injected into the guest's queue")),
          requests(group.counter("requests_delivered", "requests", "page requests the VMM injected")),
          responses(group.counter("responses", "groups", "guest page responses the VMM wrote back to the fault queue")),
          unknown_responses(group.counter("unknown_responses", "commands",
                                          "guest page responses naming no outstanding group (refused, not forwarded)")),
          refused_by_host(group.counter("refused_by_host", "responses", "page responses the fault queue's write() refused")),
          guest_queue_full(group.counter("guest_queue_full", "groups",
                                         "groups the guest's queue could not take (full or disabled): answered INVALID")),
          unknown_devices(group.counter("unknown_devices", "groups",
                                        "groups from a device with no vDEVICE in this VM: answered INVALID")),
          vevents(group.counter("vevents", "events", "vEVENTs injected into the guest's event queue")),
          vevents_lost(group.counter("vevents_lost", "events",
                                     "vEVENTs the host's vEVENTQ lost to an overflow (sequence gaps / LOST_EVENTS header) "
                                     "or the guest's event queue dropped")),
          vmm_read(phases.histogram("vmm_read", "ns", "host driver queued the group -> the VMM read it (wake-up + read())")),
          injection(phases.histogram("injection", "ns", "VMM read -> record in the guest's queue and the guest's interrupt sent")),
          guest(phases.histogram("guest_handler", "ns", "injected -> the guest's response command trapped (guest driver and handler)")),
          trap(phases.histogram("response_trap", "ns", "response trap -> the VMM's write() (VM exit, decode)")),
          host_response(phases.histogram("host_response", "ns", "write() of the page response -> the host driver's response sent")),
          total(phases.histogram("total", "ns", "host driver queued the group -> its response sent to the device")) {}

VirtualIommu::~VirtualIommu() = default;

void VirtualIommu::enable_fault_delivery() {
    if (fault_delivery_) return;
    fault_delivery_ = true;
    fst_ = std::make_unique<FaultStats>(&stats_);
    vmm_.host.add_thread(vmm_.vm_name + "_vmm_events", [this] { event_thread(); });
}

uint32_t VirtualIommu::fault_object() {
    if (!fault_delivery_) return 0;
    if (fault_id_) return fault_id_;
    ioctl(); // IOMMU_FAULT_QUEUE_ALLOC
    // The kernel's wake_up: the notifier (the host's page-request thread) synchronises so the
    // VMM's thread wakes at the notifier's time.
    fault_id_ = vmm_.host.iommufd().fault_queue_alloc([this] {
        cpu_.sync();
        events_ready_.notify(sc_core::SC_ZERO_TIME);
    });
    return fault_id_;
}

void VirtualIommu::event_thread() {
    IommuFd& fd = vmm_.host.iommufd();
    for (;;) {
        while ((!fault_id_ || fd.fault_pending(fault_id_) == 0) && (!veventq_id_ || fd.veventq_pending(veventq_id_) == 0)) {
            cpu_.sync();
            sc_core::wait(events_ready_);
        }
        cpu_.spend(vmm_.params.vmm.event_wakeup); // poll() returns in the VMM's event thread
        cpu_.sync();
        lock_.lock(); // the VMM's emulation lock (QEMU's BQL): the guest's queue registers
        if (fault_id_ && fd.fault_pending(fault_id_)) deliver_faults();
        if (veventq_id_ && fd.veventq_pending(veventq_id_)) deliver_events();
        cpu_.sync();
        lock_.unlock();
    }
}

void VirtualIommu::deliver_faults() {
    IommuFd& fd = vmm_.host.iommufd();
    ioctl(); // read() of the fault queue's file
    constexpr size_t kReadRecords = 64; // QEMU reads a page's worth at a time [estimate]
    const std::vector<uapi::HwptPgfault> recs = fd.fault_read(fault_id_, kReadRecords);
    const Duration read_at = cpu_.now();
    for (size_t i = 0; i < recs.size();) {
        size_t j = i;
        while (j < recs.size() && recs[j].cookie == recs[i].cookie) ++j;
        GuestFault f;
        f.requests.assign(recs.begin() + static_cast<std::ptrdiff_t>(i), recs.begin() + static_cast<std::ptrdiff_t>(j));
        const uint32_t cookie = recs[i].cookie;
        const Duration queued = fd.fault_queued_at(fault_id_, cookie).value_or(read_at);
        i = j;
        decode(static_cast<unsigned>(f.requests.size()));
        // dev_id -> the vDEVICE's virtual ID (the VMM's own table); the hardware PASID -> the guest's.
        const DeviceInfo* dev = fd.device_by_id(f.requests.front().dev_id);
        std::optional<pcie::Bdf> vrid;
        for (const auto& [v, d] : vmm_.vdevices)
            if (dev && d.rid == dev->rid) vrid = pcie::Bdf(v);
        std::optional<uint64_t> key;
        if (!vrid) {
            fst_->unknown_devices.inc();
        } else {
            f.vrid = *vrid;
            const auto& last = f.requests.back();
            f.guest_pasid = guest_pasid_of(last.flags & uapi::HwptPgfault::kFlagPasidValid
                                               ? std::optional<uint32_t>(last.pasid)
                                               : std::nullopt);
            key = inject_page_request(f);
            if (!key) fst_->guest_queue_full.inc();
        }
        if (!key) { // nobody in the guest will answer: INVALID now (or the family's queue-full Success)
            ioctl();
            size_t done = 0;
            const uint32_t code = vrid && unqueued_success() ? uapi::kPageRespSuccess : uapi::kPageRespInvalid;
            (void)fd.fault_respond(fault_id_, {uapi::HwptPageResponse{cookie, code}}, done);
            continue;
        }
        fst_->groups.inc();
        fst_->requests.inc(f.requests.size());
        fst_->vmm_read.record((read_at - queued).as_ns());
        fst_->injection.record((cpu_.now() - read_at).as_ns());
        if (outstanding_.count(*key)) fst_->unknown_responses.inc(); // the guest reused a key still outstanding
        outstanding_[*key] = Outstanding{cookie, queued, read_at, cpu_.now()};
    }
}

void VirtualIommu::deliver_events() {
    IommuFd& fd = vmm_.host.iommufd();
    ioctl(); // read() of the vEVENTQ's file
    const std::vector<uint8_t> buf = fd.veventq_read(veventq_id_, 4096);
    for (size_t at = 0; at + sizeof(uapi::VeventHeader) <= buf.size();) {
        uapi::VeventHeader h;
        std::memcpy(&h, buf.data() + at, sizeof h);
        at += sizeof h;
        if (h.flags & uapi::kVeventqFlagLostEvents) {
            fst_->vevents_lost.inc(); // at least one (the header says only that some were)
            continue;
        }
        if (have_sequence_ && h.sequence != ((next_sequence_) & 0x7FFFFFFFu))
            fst_->vevents_lost.inc((h.sequence - next_sequence_) & 0x7FFFFFFFu);
        have_sequence_ = true;
        next_sequence_ = h.sequence + 1;
        const size_t words = vevent_words();
        std::vector<uint64_t> data(words);
        std::memcpy(data.data(), buf.data() + at, 8 * words);
        at += 8 * words;
        decode(1);
        (inject_event(data) ? fst_->vevents : fst_->vevents_lost).inc();
    }
}

void VirtualIommu::guest_page_response(uint64_t key, bool success) {
    auto it = outstanding_.find(key);
    if (!fst_ || it == outstanding_.end()) {
        (fst_ ? fst_->unknown_responses : refused_).inc();
        return;
    }
    const Outstanding o = it->second;
    outstanding_.erase(it);
    const Duration trapped = trap_ ? trap_->arrived : cpu_.now();
    const Duration start = cpu_.now();
    ioctl(); // write() of the iommu_hwpt_page_response
    size_t done = 0;
    const uapi::Errno e = vmm_.host.iommufd().fault_respond(
        fault_id_, {uapi::HwptPageResponse{o.cookie, success ? uapi::kPageRespSuccess : uapi::kPageRespInvalid}}, done);
    if (e != uapi::Errno::ok || done != 1) fst_->refused_by_host.inc();
    else fst_->responses.inc();
    const Duration end = cpu_.now();
    fst_->guest.record((trapped > o.injected ? trapped - o.injected : Duration::zero()).as_ns());
    fst_->trap.record((start - trapped).as_ns());
    fst_->host_response.record((end - start).as_ns());
    fst_->total.record((end - o.queued).as_ns());
}

} // namespace iommusim::host::vm
