// SPDX-License-Identifier: Apache-2.0
#include "models/iommu/smmuv3/smmuv3_faults.hpp"

#include <algorithm>

namespace iommusim::iommu::smmuv3 {

uint8_t walk_event_id(FaultKind f, unsigned stage) {
    switch (f) {
    case FaultKind::address_size: return evt::kAddrSize;
    case FaultKind::access_flag: return evt::kAccess;
    case FaultKind::permission: return evt::kPermission;
    case FaultKind::memory_error: return evt::kWalkEabt;
    case FaultKind::invalid_config: return stage == 2 ? evt::kBadSte : evt::kBadCd;
    default: return evt::kTranslation; // not present, reserved encodings, outside both VA ranges
    }
}

FaultDisposition translation_fault(const StreamContext& sc, const Transaction& t, const Translation& tr,
                                   bool can_stall) {
    FaultDisposition d;
    Event& e = d.event;
    e.id = walk_event_id(tr.fault, tr.fault_stage);
    e.sid = t.sid;
    e.ssv = t.ssv;
    e.ssid = t.ssv ? t.ssid : 0;
    e.input_addr = t.addr;
    e.rnw = !t.write;
    e.ind = t.execute;
    e.pnu = t.privileged;
    e.s2 = tr.fault_stage == 2;
    e.cls = tr.s1ptw || tr.fault == FaultKind::memory_error ? EventClass::tt : EventClass::in;
    if (e.s2) e.ipa = tr.fault_addr;
    if (e.id == evt::kBadSte || e.id == evt::kBadCd) { // configuration errors: always recorded, never stall
        d.record = true;
        return d;
    }
    const bool may_stall = can_stall && !t.ats_request && (e.s2 ? sc.stall_s2 : sc.stall_s1 && !sc.s1stalld);
    d.stall = may_stall;
    d.record = d.stall || (e.s2 ? sc.record_s2 : sc.record_s1);
    d.abort = e.s2 || sc.abort_s1;
    return d;
}

std::optional<uint16_t> StallTable::stall(uint32_t sid, uint64_t cookie) {
    if (held_.size() >= max_) return std::nullopt;
    while (held_.count(next_)) ++next_; // a free STAG exists: fewer than 2^16 are held
    const uint16_t stag = next_++;
    held_.emplace(stag, Held{sid, cookie});
    return stag;
}

std::optional<uint64_t> StallTable::resume(uint32_t sid, uint16_t stag) {
    auto it = held_.find(stag);
    if (it == held_.end() || it->second.sid != sid) return std::nullopt;
    const uint64_t cookie = it->second.cookie;
    held_.erase(it);
    return cookie;
}

template <class Pred>
std::vector<uint64_t> StallTable::release_if(Pred pred) {
    std::vector<std::pair<uint16_t, uint64_t>> found;
    for (const auto& [stag, h] : held_)
        if (pred(h)) found.emplace_back(stag, h.cookie);
    std::sort(found.begin(), found.end());
    std::vector<uint64_t> out;
    for (const auto& [stag, cookie] : found) {
        held_.erase(stag);
        out.push_back(cookie);
    }
    return out;
}

std::vector<uint64_t> StallTable::terminate(uint32_t sid) {
    return release_if([sid](const Held& h) { return h.sid == sid; });
}

std::vector<uint64_t> StallTable::terminate_all() {
    return release_if([](const Held&) { return true; });
}

} // namespace iommusim::iommu::smmuv3
