// SPDX-License-Identifier: Apache-2.0
#include "models/host/vtd_driver.hpp"

#include <algorithm>
#include <bit>
#include <set>
#include <stdexcept>

#include "models/host/host_error.hpp"
#include "models/iommu/vtd/vtd_regs.hpp"

namespace iommusim::host {

namespace vtd = iommu::vtd;
namespace reg = iommu::vtd::reg;
namespace bits = iommu::vtd::bits;

namespace {
constexpr uint64_t kPage = 4096;
constexpr unsigned kDescBytes = 32;          // 256-bit descriptors (IQA.DW = 1)
constexpr unsigned kStatusSlots = kPage / 4; // one status dword per in-flight wait
constexpr unsigned kMaxRegisterPolls = 100000;
constexpr uint32_t kInvalidationVector = 0x40, kFaultVector = 0x41; // as Linux's DMAR vectors would be: any free pair
} // namespace

VtdDriver::VtdDriver(const std::string& name, MmioPort mmio, const DriverParams& params,
                     std::function<uint64_t()> alloc_page, stats::Group* parent, MsiDecoder* msi)
    : mmio_(mmio), cpu_(mmio.cpu()), msi_(msi), params_(params), alloc_page_(std::move(alloc_page)), stats_(name, parent),
      flushes_(stats_.counter("flushes", "flushes", "invalidation submissions waited for")),
      descriptors_(stats_.counter("descriptors", "descriptors", "descriptors written to the invalidation queue")),
      devtlb_invalidations_(stats_.counter("devtlb_invalidations", "descriptors", "device-TLB invalidation descriptors")),
      ranged_(stats_.counter("ranged_flushes", "flushes", "page-selective (AM) flushes")),
      domain_wide_(stats_.counter("domain_wide_flushes", "flushes", "flushes that fell back to domain/PASID-wide")),
      polls_(stats_.counter("status_polls", "polls", "status-word polls while waiting")),
      errors_(stats_.counter("queue_errors", "errors", "IQE/ITE/ICE seen while waiting")) {
    if (msi_) { // register the interrupt lines now: events are created during elaboration
        (void)msi_->event(kInvalidationVector);
        (void)msi_->event(kFaultVector);
    }}


bool VtdDriver::first_stage(const DomainDesc& d) {
    return d.kind == DomainDesc::Kind::paging_s1 || d.kind == DomainDesc::Kind::sva ||
           d.kind == DomainDesc::Kind::nested || d.kind == DomainDesc::Kind::identity;
}

uint16_t VtdDriver::did_of(const DomainDesc& d) {
    // SVA and pass-through share DID 1 (Linux FLPT_DEFAULT_DID); paging domains get their own.
    if (d.kind == DomainDesc::Kind::sva || d.kind == DomainDesc::Kind::identity) return 1;
    auto it = dids_.find(d.id);
    if (it == dids_.end()) {
        if (next_did_ > max_did_)
            throw HostError(HostError::Kind::no_space, "VT-d driver: out of Domain-IDs (CAP.ND allows " +
                                                           std::to_string(max_did_ + 1) + ")");
        it = dids_.emplace(d.id, static_cast<uint16_t>(next_did_++)).first;
    }
    return it->second;
}

void VtdDriver::set_gcmd(uint32_t bit, bool on) {
    // GCMD is write-only; software writes its shadow with one bit changed and
    // waits for GSTS to follow (§10.4.4, Linux iommu_enable_translation).
    const bool one_shot = bit == bits::GCMD_SRTP;
    uint32_t v = one_shot ? (gcmd_ | bit) : (on ? gcmd_ | bit : gcmd_ & ~bit);
    if (!one_shot) gcmd_ = v;
    mmio_.write32(reg::GCMD, v);
    for (unsigned i = 0; i < kMaxRegisterPolls; ++i) {
        const bool set = mmio_.read32(reg::GSTS) & bit;
        if (set == on) return;
    }
    throw std::runtime_error("VT-d driver: GSTS did not follow GCMD");
}

void VtdDriver::enable() {
    const uint64_t cap = mmio_.read64(reg::CAP);
    const uint64_t ecap = mmio_.read64(reg::ECAP);
    mamv_ = static_cast<uint8_t>((cap >> 48) & 0x3F);
    max_did_ = static_cast<uint32_t>(1u << (4 + 2 * (cap & 7))) - 1; // CAP.ND
    device_tlb_ = ecap & (uint64_t{1} << 2);                          // ECAP.DT
    pasid_ = ecap & (uint64_t{1} << 40);                              // ECAP.PASID
    tables_ = std::make_unique<vtd::VtdTableWriter>(cpu_.memory(), alloc_page_);
    cpu_.spend(cpu_.params().mem_write);
    mmio_.write64(reg::RTADDR, tables_->root_table() | bits::RTADDR_SMT);
    set_gcmd(bits::GCMD_SRTP, true);

    const uint64_t pages = uint64_t{1} << params_.queue_order;
    queue_base_ = alloc_page_();
    for (uint64_t i = 1; i < pages; ++i)
        if (alloc_page_() != queue_base_ + i * kPage)
            throw std::runtime_error("VT-d driver: the invalidation queue needs contiguous pages");
    queue_bytes_ = pages * kPage;
    status_pa_ = alloc_page_();
    mmio_.write64(reg::IQT, 0);
    mmio_.write64(reg::IQA, queue_base_ | bits::IQA_DW | params_.queue_order);
    tail_ = 0;
    seq_ = 0;
    if (params_.wait == WaitMode::interrupt) {
        if (!msi_) throw std::runtime_error("VT-d driver: interrupt wait mode needs an MSI path");
        // Invalidation completion and fault events as MSIs (§5.1.6, §11.4.9.5),
        // unmasked; each unit has its own MSI path, so the vectors may repeat.
        inv_vector_ = kInvalidationVector;
        fault_vector_ = kFaultVector;
        mmio_.write32(reg::IEDATA, inv_vector_);
        mmio_.write32(reg::IEADDR, static_cast<uint32_t>(MsiDecoder::kMsiBase));
        mmio_.write32(reg::IEUADDR, 0);
        mmio_.write32(reg::IECTL, 0);
        mmio_.write32(reg::FEDATA, fault_vector_);
        mmio_.write32(reg::FEADDR, static_cast<uint32_t>(MsiDecoder::kMsiBase));
        mmio_.write32(reg::FEUADDR, 0);
        mmio_.write32(reg::FECTL, 0);
    }
    set_gcmd(bits::GCMD_QIE, true);
    set_gcmd(bits::GCMD_TE, true);
}

uint64_t VtdDriver::interrupts_seen() const { return msi_->count(inv_vector_) + msi_->count(fault_vector_); }

void VtdDriver::wait_for_interrupt(uint64_t seen) {
    if (interrupts_seen() == seen)
        sc_core::wait(msi_->event(inv_vector_) | msi_->event(fault_vector_));
    // The handler acknowledges the wait-completion status (ICS.IWC is RW1C).
    mmio_.write32(reg::ICS, bits::ICS_IWC);
}

vtd::PasidEntry VtdDriver::pasid_entry_for(const DomainDesc& d, uint16_t did) const {
    vtd::PasidEntry pe;
    pe.present = true;
    pe.did = did;
    auto aw_of = [](const iommu::StageConfig& s) { return static_cast<uint8_t>(s.levels - 2); }; // 3/4/5 levels -> 1/2/3
    switch (d.kind) {
    case DomainDesc::Kind::paging_s1:
    case DomainDesc::Kind::sva:
        pe.pgtt = static_cast<uint8_t>(vtd::Pgtt::first_stage);
        pe.flptptr = d.s1.root;
        pe.flpm = d.s1.levels == 5 ? 1 : 0;
        pe.wpe = d.s1.write_protect;
        break;
    case DomainDesc::Kind::paging_s2:
        pe.pgtt = static_cast<uint8_t>(vtd::Pgtt::second_stage);
        pe.slptptr = d.s2.root;
        pe.aw = aw_of(d.s2);
        pe.slade = d.s2.hw_access_dirty;
        break;
    case DomainDesc::Kind::nested:
        pe.pgtt = static_cast<uint8_t>(vtd::Pgtt::nested);
        pe.flptptr = d.s1.root;
        pe.flpm = d.s1.levels == 5 ? 1 : 0;
        pe.slptptr = d.s2.root;
        pe.aw = aw_of(d.s2);
        break;
    case DomainDesc::Kind::identity:
        pe.pgtt = static_cast<uint8_t>(vtd::Pgtt::pass_through);
        pe.aw = 3;
        break;
    }
    return pe;
}

void VtdDriver::attach(const Attachment& a, const DomainDesc& domain) {
    if (a.pasid && !pasid_) throw HostError(HostError::Kind::invalid, "the IOMMU does not support PASID (ECAP.PASID)");
    cpu_.spend(cpu_.params().call_overhead);
    const uint16_t did = did_of(domain);
    auto it = contexts_.find(a.device.rid.raw);
    if (it == contexts_.end()) {
        // PASID directory sized for the device's PASID width: 2^(PDTS+7) entries
        // of 64 PASIDs each (spec-layouts.md A.2/A.3).
        const uint8_t pdts = static_cast<uint8_t>(std::clamp<int>(a.device.pasid_bits - 13, 0, 7));
        // Recorded before any time passes, so a concurrent attach of another
        // PASID of this device finds the same PASID directory.
        it = contexts_.emplace(a.device.rid.raw,
                               tables_->make_context(a.device.rid, pdts, a.device.ats, a.device.pasid, a.device.pri, 0))
                 .first;
        cpu_.spend(cpu_.params().mem_write * 2); // root entry half + 32-byte context entry
    }
    tables_->set_pasid_entry(it->second, a.pasid.value_or(0), pasid_entry_for(domain, did));
    cpu_.spend(cpu_.params().mem_write * 2); // one 64-byte PASID entry (+ directory entry when new)
}

void VtdDriver::iotlb_descs(const DomainDesc& d, uint16_t did, const Attachment& a, bool whole, uint64_t base,
                            unsigned order, bool leaf_only, std::vector<RawDesc>& out) {
    const uint32_t pasid = a.pasid.value_or(0); // requests without PASID are tagged with RID_PASID
    if (first_stage(d)) {
        out.push_back(whole ? vtd::encode_pasid_iotlb_all(did, pasid)
                            : vtd::encode_pasid_iotlb_page(did, pasid, base, static_cast<uint8_t>(order), leaf_only));
    } else {
        out.push_back(whole ? vtd::encode_iotlb_domain(did)
                            : vtd::encode_iotlb_page(did, base, static_cast<uint8_t>(order), leaf_only));
    }
}

void VtdDriver::devtlb_desc(const Attachment& a, bool whole, uint64_t base, unsigned order,
                            std::vector<RawDesc>& out) {
    if (!a.device.ats || !device_tlb_ || params_.skip_devtlb_invalidation) return;
    const unsigned o = whole ? 52 : order; // 52: the whole address space (Linux MAX_AGAW_PFN_WIDTH)
    const uint64_t b = whole ? 0 : base;
    const uint8_t mip = a.device.inv_queue_depth >= 32 ? 0 : a.device.inv_queue_depth;
    out.push_back(a.pasid ? vtd::encode_pasid_dev_tlb(a.device.rid.raw, *a.pasid, b, o, false, mip)
                          : vtd::encode_dev_tlb(a.device.rid.raw, b, o, mip));
    devtlb_invalidations_.inc();
}

FlushTiming VtdDriver::flush(const FlushRequest& r) {
    cpu_.spend(cpu_.params().call_overhead);
    const DomainDesc& d = *r.domain;
    const uint16_t did = did_of(d);
    // Smallest naturally aligned 2^order-page block covering the range
    // (Linux calculate_psi_aligned_address).
    bool whole = r.size == 0;
    unsigned order = 0;
    uint64_t base = r.iova & ~(kPage - 1);
    if (!whole) {
        const uint64_t first = r.iova >> 12, last = (r.iova + r.size - 1) >> 12;
        while ((first >> order) != (last >> order)) ++order;
        whole = (last - first + 1) > params_.range_threshold_pages || order > mamv_;
        if (!whole) base = (first >> order) << (order + 12); // order <= MAMV < 52: no overflow
    }
    std::vector<RawDesc> descs;
    std::set<uint32_t> pasids;
    bool domain_done = false;
    for (const auto& a : r.attachments) {
        if (first_stage(d)) {
            if (pasids.insert(a.pasid.value_or(0)).second) iotlb_descs(d, did, a, whole, base, order, r.leaf_only, descs);
        } else if (!domain_done) {
            iotlb_descs(d, did, a, whole, base, order, r.leaf_only, descs);
            domain_done = true;
        }
    }
    if (descs.empty()) iotlb_descs(d, did, Attachment{}, whole, base, order, r.leaf_only, descs);
    for (const auto& a : r.attachments) devtlb_desc(a, whole, base, order, descs);
    (whole ? domain_wide_ : ranged_).inc();
    FlushTiming t = submit(std::move(descs));
    t.ranged = !whole;
    return t;
}

FlushTiming VtdDriver::detach(const Attachment& a, const DomainDesc& domain) {
    cpu_.spend(cpu_.params().call_overhead);
    const uint16_t did = did_of(domain);
    auto it = contexts_.find(a.device.rid.raw);
    if (it == contexts_.end()) throw std::runtime_error("VT-d driver: detach of a device that was never attached");
    const uint32_t pasid = a.pasid.value_or(0);
    // Architected teardown (§6.5.2.x; Linux intel_pasid_tear_down_entry).
    tables_->clear_pasid_entry(it->second, pasid);
    cpu_.spend(cpu_.params().mem_write);
    std::vector<RawDesc> descs;
    descs.push_back(vtd::encode_pasid_cache(vtd::PasidCacheInv::Gran::pasid, did, pasid));
    if (first_stage(domain)) descs.push_back(vtd::encode_pasid_iotlb_all(did, pasid));
    else descs.push_back(vtd::encode_iotlb_domain(did));
    devtlb_desc(a, true, 0, 52, descs);
    return submit(std::move(descs));
}

uint64_t VtdDriver::seq_at(uint64_t byte_offset) const {
    // Descriptors between a queue offset and the tail were the last ones written.
    const uint64_t behind = ((tail_ + queue_bytes_ - byte_offset % queue_bytes_) % queue_bytes_) / kDescBytes;
    return seq_ - behind;
}

void VtdDriver::abort_owner_of(uint64_t seq) {
    auto it = open_.upper_bound(seq);
    if (it == open_.begin()) return;
    --it;
    if (seq < it->second.end) aborted_.insert(it->second.token);
}

void VtdDriver::check_queue_errors() {
    const uint32_t fsts = mmio_.read32(reg::FSTS);
    const uint32_t err = fsts & (bits::FSTS_IQE | bits::FSTS_ITE | bits::FSTS_ICE);
    if (!err) return;
    errors_.inc();
    // As Linux qi_check_fault(): IQE leaves IQH on the bad descriptor, which
    // is replaced by a no-op wait so the queue can go on, and its submission
    // fails; ITE skipped the wait descriptor just before IQH, whose
    // submission fails; ICE only reports a stray completion.
    if (fsts & (bits::FSTS_IQE | bits::FSTS_ITE)) {
        const uint64_t head = mmio_.read64(reg::IQH) % queue_bytes_;
        const uint64_t seq = seq_at(head);
        if (fsts & bits::FSTS_IQE) {
            const RawDesc nop = vtd::encode_wait(false, 0, 0);
            cpu_.mem_write(queue_base_ + head, nop.data(), kDescBytes);
            abort_owner_of(seq);
        }
        if ((fsts & bits::FSTS_ITE) && seq > 0) abort_owner_of(seq - 1);
    }
    mmio_.write32(reg::FSTS, err);
}


void VtdDriver::enable_page_requests() {
    const uint64_t pages = uint64_t{1} << params_.prq_order;
    prq_base_ = alloc_page_();
    for (uint64_t i = 1; i < pages; ++i)
        if (alloc_page_() != prq_base_ + i * kPage)
            throw std::runtime_error("VT-d driver: the page request queue needs contiguous pages");
    prq_bytes_ = pages * kPage;
    prq_head_ = 0;
    // Linux intel_iommu_enable_prq: PQH = PQT = 0, then PQA with the queue size (§11.4.11).
    mmio_.write64(reg::PQH, 0);
    mmio_.write64(reg::PQT, 0);
    mmio_.write64(reg::PQA, prq_base_ | params_.prq_order);
    // The page request event: the MSI address/data a real driver gets from its irq domain
    // (0xFEE0_0000: the x86 interrupt range; vector 0x30 is illustrative). Left masked: the
    // handler polls (no interrupt controller is modelled).
    mmio_.write32(reg::PEDATA, 0x30);
    mmio_.write32(reg::PEADDR, 0xFEE0'0000u);
    mmio_.write32(reg::PEUADDR, 0);
    mmio_.write32(reg::PECTL, bits::ECTL_IM);
}

PageRequestInfo VtdDriver::decode_page_request(const std::array<uint64_t, 4>& q) {
    PageRequestInfo r;
    r.rid = pcie::Bdf(static_cast<uint16_t>((q[0] >> 16) & 0xFFFF));
    if ((q[0] >> 8) & 1) r.pasid = static_cast<uint32_t>((q[0] >> 32) & 0xFFFFF);
    r.execute = (q[0] >> 52) & 1;
    r.privileged = (q[0] >> 53) & 1;
    r.read = q[1] & 1;
    r.write = (q[1] >> 1) & 1;
    r.last = (q[1] >> 2) & 1;
    r.prg_index = static_cast<uint16_t>((q[1] >> 3) & 0x1FF);
    r.address = q[1] & ~uint64_t{0xFFF};
    return r;
}

void VtdDriver::serve_page_requests(PageRequestHandler& handler, PageRequestStats& st) {
    PageRequestGroups groups;
    const uint64_t mask = prq_bytes_ - 1;
    for (;;) {
        cpu_.spend(params_.prq_poll_interval);
        st.polls.inc();
        if ((mmio_.read64(reg::PQT) & mask) == prq_head_) continue;
        // prq_event_thread: clear PPR first so a request arriving meanwhile sets it again.
        mmio_.write32(reg::PRS, bits::PRS_PPR);
        const uint64_t tail = mmio_.read64(reg::PQT) & mask;
        while (prq_head_ != tail) {
            std::array<uint64_t, 4> q{};
            cpu_.spend(cpu_.params().mem_read);
            cpu_.memory().read(prq_base_ + prq_head_, q.data(), sizeof q);
            const Duration read_at = cpu_.now();
            prq_head_ = (prq_head_ + kDescBytes) & mask;
            const PageRequestInfo r = decode_page_request(q);
            st.requests.inc();
            if (r.stop_marker()) {
                st.stop_markers.inc();
                continue;
            }
            // Requests without PASID are rejected (Linux prq_event_thread); the rest go to the host.
            const pcie::PrgResponseCode code =
                r.pasid ? handler.handle_page_request(r) : pcie::PrgResponseCode::invalid_request;
            auto closed = groups.add(r, code, read_at);
            if (!closed) continue; // the group is still open: no response owed yet
            // Page group response (type 9) + wait, Linux intel_iommu_page_response -> qi_submit_sync.
            std::vector<RawDesc> d{vtd::encode_page_group_response(r.rid.raw, r.pasid.has_value(), r.pasid.value_or(0),
                                                                   r.prg_index, closed->code)};
            submit(std::move(d), /*is_flush=*/false);
            st.responses.inc();
            (closed->code == pcie::PrgResponseCode::success ? st.successes : st.invalid).inc();
            st.service_latency.record((cpu_.now() - closed->first_read).as_ns());
        }
        mmio_.write64(reg::PQH, prq_head_);
        // An overflow auto-responded what did not fit; clearing PRO re-arms the queue (§7.5.1).
        if (const uint32_t prs = mmio_.read32(reg::PRS); prs & bits::PRS_PRO) {
            st.overflows.inc();
            mmio_.write32(reg::PRS, bits::PRS_PRO);
        }
    }
}

FlushTiming VtdDriver::submit(std::vector<RawDesc> descs, bool is_flush) {
    FlushTiming t;
    t.submitted = cpu_.now();
    const uint32_t token = ++token_;
    const uint64_t status = status_pa_ + 4 * (token % kStatusSlots);
    cpu_.memory().write_u32(status, 0);
    const bool irq = params_.wait == WaitMode::interrupt;
    descs.push_back(vtd::encode_wait(true, status, token, /*interrupt=*/irq));
    if ((descs.size() + 1) * kDescBytes > queue_bytes_)
        throw HostError(HostError::Kind::invalid, "VT-d driver: " + std::to_string(descs.size()) +
                                                      " descriptors do not fit the invalidation queue");
    q_lock_.lock();
    // Wait for room: the queue is full when tail + 1 slot == head (§6.5.2).
    const uint64_t need = descs.size() * kDescBytes;
    auto used = [&] { return (tail_ + queue_bytes_ - head_) % queue_bytes_; };
    while (used() + need >= queue_bytes_) {
        head_ = mmio_.read64(reg::IQH) % queue_bytes_;
        if (used() + need >= queue_bytes_) {
            q_lock_.unlock(); // let a waiter clear a queue error meanwhile
            cpu_.spend(cpu_.params().poll_interval);
            check_queue_errors();
            q_lock_.lock();
        }
    }
    const uint64_t first_seq = seq_;
    const uint64_t last_seq = seq_ + descs.size();
    // Known before the unit can see the tail: its phase reports are kept.
    open_[first_seq] = Submission{last_seq, token};
    for (const auto& dsc : descs) {
        const uint64_t slot = tail_;
        tail_ = (tail_ + kDescBytes) % queue_bytes_;
        ++seq_;
        cpu_.mem_write(queue_base_ + slot, dsc.data(), kDescBytes);
    }
    descriptors_.inc(descs.size());
    t.descriptors = static_cast<unsigned>(descs.size());
    mmio_.write64(reg::IQT, tail_);
    q_lock_.unlock();
    // Spin like qi_submit_sync(): read the status word, check FSTS for
    // queue errors (qi_check_fault), relax, repeat.
    for (;;) {
        const uint64_t seen = irq ? interrupts_seen() : 0;
        polls_.inc();
        if (cpu_.mem_read_u32(status) == token) break;
        check_queue_errors();
        if (aborted_.erase(token)) {
            t.error = true;
            break;
        }
        if (irq) wait_for_interrupt(seen); // sleep until the unit signals (completion or error)
        else cpu_.spend(cpu_.params().poll_interval);
    }
    t.observed = cpu_.now();
    open_.erase(first_seq);
    if (is_flush) flushes_.inc();
    // Assemble the phases the unit reported for these descriptors.
    for (uint64_t s = first_seq; s < last_seq; ++s) {
        auto it = phases_.find(s);
        if (it == phases_.end()) continue;
        const Phases& p = it->second;
        auto min_of = [](std::optional<Duration>& dst, const std::optional<Duration>& v) {
            if (v && (!dst || *v < *dst)) dst = v;
        };
        auto max_of = [](std::optional<Duration>& dst, const std::optional<Duration>& v) {
            if (v && (!dst || *v > *dst)) dst = v;
        };
        min_of(t.fetched, p.fetched);
        max_of(t.caches_done, p.caches_done);
        min_of(t.devtlb_sent, p.devtlb_sent);
        max_of(t.devtlb_done, p.devtlb_done);
        max_of(t.wait_done, p.wait_done);
        if (p.devtlb_sent) ++t.devtlb_requests;
        phases_.erase(it);
    }
    return t;
}

void VtdDriver::on_phase(uint64_t seq, iommu::InvalPhase phase, Duration at, pcie::Bdf) {
    // Only descriptors of a submission still being waited for are of interest
    // (a late report for a finished one would otherwise accumulate).
    auto it = open_.upper_bound(seq);
    if (it == open_.begin() || seq >= std::prev(it)->second.end) return;
    Phases& p = phases_[seq];
    switch (phase) {
    case iommu::InvalPhase::fetched: p.fetched = at; break;
    case iommu::InvalPhase::caches_done: p.caches_done = at; break;
    case iommu::InvalPhase::devtlb_sent:
        if (!p.devtlb_sent) p.devtlb_sent = at;
        break;
    case iommu::InvalPhase::devtlb_completed:
        if (!p.devtlb_done || at > *p.devtlb_done) p.devtlb_done = at;
        break;
    case iommu::InvalPhase::wait_done: p.wait_done = at; break;
    }
}

} // namespace iommusim::host
