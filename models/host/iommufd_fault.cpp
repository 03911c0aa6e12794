// SPDX-License-Identifier: Apache-2.0
// IommuFd's guest fault delivery: the fault queue object (Linux iommufd
// eventq.c, IOMMU_FAULT_QUEUE_ALLOC) that takes the I/O page faults of a
// nested HWPT to user space instead of handling them in the host, and the
// vEVENTQ (IOMMU_VEVENTQ_ALLOC) that carries a vIOMMU's other events with
// virtual IDs. Both are what a VMM reads from their files (models/host/vm).
//
// Fidelity: groups are assembled per (unit, RID, PASID, PRG index) until the
// request with Last, then queued whole (iommu_report_device_fault builds the
// iopf group before iommufd_fault_iopf_handler queues it); the queue has no
// depth limit (Linux's deliver list is unbounded: the hardware page-request
// log is what overflows). read() hands out whole groups and gives each a
// cookie; write() answers by cookie with SUCCESS or INVALID only, stopping at
// the first bad response (EINVAL), and the unit's driver sends the group's
// response (iopf_group_response -> ops->page_response). A vEVENTQ holds at
// most `depth` events; one arriving at a full queue is lost and a
// LOST_EVENTS header with the next sequence number takes the tail until any
// new event is queued (iommufd_vevent_handler), so the reader sees the gap.
// IOMMU_DESTROY: a fault queue a HWPT still names is EBUSY (the HWPT's
// reference), so it is destroyed empty (iommufd_fault_destroy). Detaching a (device, PASID) from a HWPT with a fault
// queue answers that attachment's queued and read groups INVALID
// (iommufd_auto_response_faults), so a response the VMM writes later for one
// of them is EINVAL (its cookie is gone). Destroying a vEVENTQ discards its
// events (iommufd_veventq_abort); a vIOMMU with a vEVENTQ is EBUSY.
// Not modelled: the files' poll()/blocking semantics beyond the wake-up
// callback, ESPIPE offsets.
#include <cstring>

#include "models/host/iommufd.hpp"

namespace iommusim::host {

using K = HostError::Kind;

uint32_t IommuFd::fault_queue_alloc(std::function<void()> wake) {
    cpu_.spend(cpu_.params().call_overhead);
    const uint32_t id = next_id_++;
    faults_[id].wake = std::move(wake);
    return id;
}

void IommuFd::hwpt_set_fault(uint32_t hwpt_id, uint32_t fault) {
    Hwpt& h = hwpt(hwpt_id);
    if (h.desc.kind != DomainDesc::Kind::nested)
        throw HostError(K::invalid, "HWPT " + std::to_string(hwpt_id) + " is not a nested domain: no user fault queue");
    if (!faults_.count(fault)) throw HostError(K::not_found, "no fault queue " + std::to_string(fault));
    h.fault = fault;
}

bool IommuFd::deliver_to_user(unsigned iommu, const PageRequestInfo& r) {
    auto it = attached_.find(attach_key(iommu, r.rid, r.pasid));
    std::optional<uint32_t> via = r.pasid; // the PASID of the attachment the group comes through
    if (it == attached_.end() && r.pasid) {
        via.reset();
        // A PASID with no attachment of its own: with a guest-owned PASID table (AMD GCR3 table,
        // SMMUv3 CD table: a nested domain made on a vIOMMU) its faults are the RID's nested domain's.
        it = attached_.find(attach_key(iommu, r.rid, std::nullopt));
        if (it != attached_.end() &&
            (hwpt(it->second).desc.kind != DomainDesc::Kind::nested || !hwpt(it->second).desc.viommu))
            it = attached_.end();
    }
    if (it == attached_.end()) return false;
    const Hwpt& h = hwpt(it->second);
    if (!h.fault) return false;
    FaultQueue& q = faults_.at(h.fault);
    cpu_.spend(cpu_.params().call_overhead); // the group's bookkeeping and the list add under the queue's lock
    const auto key = std::make_tuple(iommu, r.rid.raw, r.pasid ? (uint32_t{1} << 31 | *r.pasid) : 0u,
                                     static_cast<uint16_t>(r.prg_index & 0x1FF));
    FaultGroup& g = q.partial[key];
    g.iommu = iommu;
    g.hwpt = it->second;
    g.attach_pasid = via;
    g.requests.push_back(r);
    if (!r.last) return true;
    g.queued = cpu_.now();
    q.deliver.push_back(std::move(g));
    q.partial.erase(key);
    if (q.wake) q.wake(); // wake_up_interruptible: the VMM's poll() returns
    return true;
}

std::vector<uapi::HwptPgfault> IommuFd::fault_read(uint32_t fault, size_t max) {
    auto fit = faults_.find(fault);
    if (fit == faults_.end()) throw HostError(K::not_found, "no fault queue " + std::to_string(fault));
    FaultQueue& q = fit->second;
    std::vector<uapi::HwptPgfault> out;
    size_t taken = 0;
    for (; taken < q.deliver.size(); ++taken) {
        FaultGroup& g = q.deliver[taken];
        if (out.size() + g.requests.size() > max) break; // whole groups only
        const uint32_t cookie = q.next_cookie++;
        for (const PageRequestInfo& r : g.requests) {
            uapi::HwptPgfault f;
            f.flags = (r.pasid ? uapi::HwptPgfault::kFlagPasidValid : 0) | (r.last ? uapi::HwptPgfault::kFlagLastPage : 0);
            f.dev_id = device_id(g.iommu, r.rid);
            f.pasid = r.pasid.value_or(0);
            f.grpid = r.prg_index;
            f.perm = (r.read ? uapi::HwptPgfault::kPermRead : 0) | (r.write ? uapi::HwptPgfault::kPermWrite : 0) |
                     (r.execute ? uapi::HwptPgfault::kPermExec : 0) | (r.privileged ? uapi::HwptPgfault::kPermPriv : 0);
            f.addr = r.address;
            f.cookie = cookie;
            out.push_back(f);
        }
        q.response.emplace(cookie, std::move(g));
    }
    q.deliver.erase(q.deliver.begin(), q.deliver.begin() + static_cast<std::ptrdiff_t>(taken));
    return out;
}

uapi::Errno IommuFd::fault_respond(uint32_t fault, const std::vector<uapi::HwptPageResponse>& rs, size_t& done) {
    done = 0;
    auto fit = faults_.find(fault);
    if (fit == faults_.end()) return uapi::Errno::enoent;
    FaultQueue& q = fit->second;
    for (const uapi::HwptPageResponse& resp : rs) {
        if (resp.code != uapi::kPageRespSuccess && resp.code != uapi::kPageRespInvalid) return uapi::Errno::einval;
        auto g = q.response.find(resp.cookie);
        if (g == q.response.end()) return uapi::Errno::einval;
        const FaultGroup grp = std::move(g->second);
        q.response.erase(g);
        // iopf_group_response: the unit's driver answers the group's last request.
        iommus_.at(grp.iommu).driver->page_response(grp.requests.back(), resp.code == uapi::kPageRespSuccess
                                                                            ? pcie::PrgResponseCode::success
                                                                            : pcie::PrgResponseCode::invalid_request);
        ++done;
    }
    return uapi::Errno::ok;
}

void IommuFd::auto_respond_faults(uint32_t fault, uint32_t hwpt, unsigned iommu, pcie::Bdf rid,
                                  std::optional<uint32_t> pasid) {
    auto fit = faults_.find(fault);
    if (fit == faults_.end()) return;
    FaultQueue& q = fit->second;
    auto mine = [&](const FaultGroup& g) {
        return g.hwpt == hwpt && g.iommu == iommu && g.requests.front().rid == rid && g.attach_pasid == pasid;
    };
    std::vector<FaultGroup> answer; // moved out first: the responses may block (the unit's queue)
    for (auto g = q.deliver.begin(); g != q.deliver.end();) {
        if (!mine(*g)) {
            ++g;
            continue;
        }
        answer.push_back(std::move(*g));
        g = q.deliver.erase(g);
    }
    for (auto g = q.response.begin(); g != q.response.end();) {
        if (!mine(g->second)) {
            ++g;
            continue;
        }
        answer.push_back(std::move(g->second));
        g = q.response.erase(g);
    }
    std::erase_if(q.partial, [&](const auto& kv) { return mine(kv.second); });
    for (const FaultGroup& g : answer) // iopf_group_response(group, IOMMU_PAGE_RESP_INVALID)
        iommus_.at(g.iommu).driver->page_response(g.requests.back(), pcie::PrgResponseCode::invalid_request);
}

uapi::Errno IommuFd::fault_queue_destroy(uint32_t fault) {
    auto fit = faults_.find(fault);
    if (fit == faults_.end()) return uapi::Errno::enoent;
    for (const auto& [id, h] : hwpts_)
        if (h.fault == fault) return uapi::Errno::ebusy; // the HWPT's fault_id reference
    cpu_.spend(cpu_.params().call_overhead);
    // Linux answers what the queue still holds INVALID here; every group came through an
    // attachment of a HWPT naming this queue, and each detach answered its own
    // (auto_respond_faults), so with no HWPT left there is nothing to answer.
    faults_.erase(fit);
    return uapi::Errno::ok;
}

size_t IommuFd::fault_pending(uint32_t fault) const {
    auto it = faults_.find(fault);
    return it == faults_.end() ? 0 : it->second.deliver.size();
}

size_t IommuFd::fault_unanswered(uint32_t fault) const {
    auto it = faults_.find(fault);
    return it == faults_.end() ? 0 : it->second.response.size();
}

std::optional<Duration> IommuFd::fault_queued_at(uint32_t fault, uint32_t cookie) const {
    auto it = faults_.find(fault);
    if (it == faults_.end()) return std::nullopt;
    auto g = it->second.response.find(cookie);
    return g == it->second.response.end() ? std::nullopt : std::optional<Duration>(g->second.queued);
}

uapi::Errno IommuFd::veventq_alloc(uapi::VeventqAlloc& req, std::function<void()> wake) {
    if (req.flags || req.reserved || req.type == uapi::kVeventqTypeDefault) return uapi::Errno::eopnotsupp;
    if (!req.veventq_depth) return uapi::Errno::einval;
    if (!viommus_.count(req.viommu_id)) return uapi::Errno::enoent;
    for (const auto& [id, q] : veventqs_)
        if (q.viommu == req.viommu_id && q.type == req.type) return uapi::Errno::eexist;
    cpu_.spend(cpu_.params().call_overhead);
    const uint32_t id = next_id_++;
    Veventq q{req.viommu_id, req.type, req.veventq_depth, {}, false, 0, 0, std::move(wake)};
    veventqs_.emplace(id, std::move(q));
    req.out_veventq_id = id;
    req.out_veventq_fd = id;
    return uapi::Errno::ok;
}

std::optional<IommuFd::VirtualDevice> IommuFd::vmaster(unsigned iommu, pcie::Bdf rid) const {
    auto it = attached_.find(attach_key(iommu, rid, std::nullopt));
    if (it == attached_.end()) return std::nullopt;
    const Hwpt& h = hwpts_.at(it->second);
    if (h.desc.kind != DomainDesc::Kind::nested || !h.desc.viommu) return std::nullopt;
    auto v = viommus_.find(h.desc.viommu);
    if (v == viommus_.end()) return std::nullopt;
    for (const auto& [virt, dev] : v->second.vdevices)
        if (dev.rid == rid) return VirtualDevice{h.desc.viommu, virt};
    return std::nullopt; // no vDEVICE yet: nothing to report the event under
}

uapi::Errno IommuFd::report_vevent(uint32_t viommu, uint32_t type, const std::vector<uint64_t>& data) {
    for (auto& [id, q] : veventqs_) {
        if (q.viommu != viommu || q.type != type) continue;
        const bool full = q.deliver.size() == q.depth;
        q.lost_at_tail = full; // any new node takes the LOST_EVENTS header off the tail; a lost one puts it back
        if (full) q.lost_sequence = q.sequence;
        else q.deliver.push_back(Veventq::Event{uapi::VeventHeader{0, q.sequence}, data});
        q.sequence = (q.sequence + 1) & 0x7FFFFFFFu;
        if (q.wake) q.wake();
        return uapi::Errno::ok;
    }
    return uapi::Errno::eopnotsupp;
}

std::vector<uint8_t> IommuFd::veventq_read(uint32_t veventq, size_t max_bytes) {
    auto it = veventqs_.find(veventq);
    if (it == veventqs_.end()) throw HostError(K::not_found, "no vEVENTQ " + std::to_string(veventq));
    Veventq& q = it->second;
    std::vector<uint8_t> out;
    auto put = [&out](const void* p, size_t n) {
        const auto* b = static_cast<const uint8_t*>(p);
        out.insert(out.end(), b, b + n);
    };
    size_t taken = 0;
    for (; taken < q.deliver.size(); ++taken) {
        const Veventq::Event& e = q.deliver[taken];
        const size_t n = sizeof(uapi::VeventHeader) + 8 * e.data.size();
        if (out.size() + n > max_bytes) break;
        put(&e.header, sizeof e.header);
        put(e.data.data(), 8 * e.data.size());
    }
    q.deliver.erase(q.deliver.begin(), q.deliver.begin() + static_cast<std::ptrdiff_t>(taken));
    if (q.deliver.empty() && q.lost_at_tail && out.size() + sizeof(uapi::VeventHeader) <= max_bytes) {
        const uapi::VeventHeader lost{uapi::kVeventqFlagLostEvents, q.lost_sequence};
        put(&lost, sizeof lost);
        q.lost_at_tail = false;
    }
    return out;
}

uapi::Errno IommuFd::veventq_destroy(uint32_t veventq) {
    if (!veventqs_.erase(veventq)) return uapi::Errno::enoent;
    cpu_.spend(cpu_.params().call_overhead);
    return uapi::Errno::ok;
}

size_t IommuFd::veventq_pending(uint32_t veventq) const {
    auto it = veventqs_.find(veventq);
    return it == veventqs_.end() ? 0 : it->second.deliver.size() + (it->second.lost_at_tail ? 1 : 0);
}

} // namespace iommusim::host
