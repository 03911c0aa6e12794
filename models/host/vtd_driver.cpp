// SPDX-License-Identifier: Apache-2.0
#include "models/host/vtd_driver.hpp"

#include <algorithm>
#include <bit>
#include <stdexcept>
#include <string>

#include "models/host/host_error.hpp"
#include "models/iommu/vtd/vtd_regs.hpp"

namespace iommusim::host {

namespace vtd = iommu::vtd;
namespace reg = iommu::vtd::reg;
namespace bits = iommu::vtd::bits;

namespace {
constexpr uint64_t kPage = 4096;
constexpr unsigned kDescBytes = 32;          // 256-bit descriptors (IQA.DW = 1)
constexpr unsigned kMaxRegisterPolls = 100000;
// Linux qi_submit_sync's status protocol (drivers/iommu/intel/iommu.h): the wait descriptor's
// status word is desc_status[wait_index], set to QI_IN_USE before the tail moves; the wait
// writes QI_DONE there (status data).
constexpr uint32_t kQiInUse = 1, kQiDone = 2;
// As Linux's DMAR vectors would be: any free vectors, one per event (invalidation completion,
// fault, page request); each unit has its own MSI path, so units may repeat them.
constexpr uint32_t kInvalidationVector = 0x40, kFaultVector = 0x41, kPageRequestVector = 0x30;
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
      errors_(stats_.counter("queue_errors", "errors", "IQE/ITE/ICE seen while waiting")),
      entry_flushes_(stats_.counter("entry_line_flushes", "lines",
                                    "root/context/PASID-table lines flushed (clflush) because the unit does not snoop them (ECAP.C = 0)")),
      queue_(cpu_, *this, CmdQueueDriver::Counters{flushes_, descriptors_, polls_, errors_}, msi,
             msi ? std::vector<uint32_t>{kInvalidationVector, kFaultVector} : std::vector<uint32_t>{}, &stats_),
      prq_(cpu_, *this, IrqLines(msi, {kPageRequestVector})), pasid_lock_(cpu_, "pasid_lock", &stats_) {
    queue_.set_dropped(CommandKind::iotlb, params.skip_iotlb_invalidation);
}

void VtdDriver::write_entries(unsigned entries) {
    cpu_.spend(cpu_.params().mem_write * entries);
    if (coherent_) return;
    entry_flushes_.inc(entries);
    cpu_.spend(cpu_.params().clflush * entries); // each entry within one 64-byte line
}

IommuCaps VtdDriver::decode_caps(uint64_t cap, uint64_t ecap) {
    auto bit = [](uint64_t r, unsigned b) { return ((r >> b) & 1) != 0; };
    IommuCaps c;
    const uint8_t mgaw = static_cast<uint8_t>(((cap >> 16) & 0x3F) + 1);
    c.s1.supported = bit(ecap, 47); // FLTS
    c.s1.formats = {iommu::PtFormat::x86_64};
    c.s1.levels = static_cast<uint8_t>((1u << 4) | (bit(cap, 60) ? 1u << 5 : 0u)); // FL5LP
    c.s1.page_sizes = page_size_bit(12) | page_size_bit(21) | (bit(cap, 56) ? page_size_bit(30) : 0); // FL1GP
    c.s1.input_bits = bit(cap, 60) ? 57 : 48;
    c.s2.supported = bit(ecap, 46); // SLTS
    c.s2.formats = {iommu::PtFormat::vtd_ss};
    const unsigned sagaw = (cap >> 8) & 0x1F; // bit 1: 3-level (39-bit), 2: 4-level, 3: 5-level
    for (unsigned l = 3; l <= 5; ++l)
        if (sagaw & (1u << (l - 2))) c.s2.levels |= static_cast<uint8_t>(1u << l);
    c.s2.page_sizes = page_size_bit(12) | (bit(cap, 34) ? page_size_bit(21) : 0) | (bit(cap, 35) ? page_size_bit(30) : 0);
    c.s2.input_bits = mgaw;
    c.pasid_bits = bit(ecap, 40) ? static_cast<uint8_t>(((ecap >> 35) & 0x1F) + 1) : 0;
    c.ats = bit(ecap, 2);
    c.pri = bit(ecap, 29);
    c.nesting = bit(ecap, 26);
    c.snoop_control = bit(ecap, 7);
    c.coherent_walks = bit(ecap, 48); // SMPWC (Linux iommu_paging_structure_coherency in scalable mode)
    c.pass_through = bit(ecap, 6);
    c.output_bits = mgaw;
    c.domain_tags = uint32_t{1} << (4 + 2 * (cap & 7)); // CAP.ND
    return c;
}

int VtdDriver::linux_agaw(uint64_t cap, uint64_t ecap) {
    const unsigned fl = (1u << 2) | (((cap >> 60) & 1) ? 1u << 3 : 0u); // 4-level, 5-level with FL5LP
    const unsigned sl = (cap >> 8) & 0x1F;                               // SAGAW
    const bool flts = (ecap >> 47) & 1, slts = (ecap >> 46) & 1;
    const unsigned sagaw = !flts ? sl : !slts ? fl : (fl & sl);
    for (int agaw = 3; agaw >= 0; --agaw) // width_to_agaw(57) = 3
        if (sagaw & (1u << agaw)) return agaw;
    return -1;
}

const IommuCaps& VtdDriver::caps() const {
    if (!caps_) throw std::logic_error("VT-d driver: capabilities read before enable()");
    return *caps_;
}

PagingFormat VtdDriver::paging_format(DomainDesc::Kind kind, std::optional<uint8_t> levels) const {
    const IommuCaps& c = caps();
    const bool s1 = kind == DomainDesc::Kind::paging_s1;
    if (!s1 && kind != DomainDesc::Kind::paging_s2)
        throw HostError(HostError::Kind::invalid, "paging domains are first or second stage");
    const StageCaps& sc = s1 ? c.s1 : c.s2;
    const char* stage = s1 ? "first-stage" : "second-stage";
    if (!sc.supported) throw HostError(HostError::Kind::invalid, std::string("the VT-d unit has no ") + stage + " translation");
    const uint8_t l = levels.value_or(4);
    if (!sc.has_levels(l))
        throw HostError(HostError::Kind::invalid, "unsupported number of page-table levels " + std::to_string(l) + " for " +
                                                      stage + " tables (" + (s1 ? "CAP.FL5LP" : "CAP.SAGAW") + ")");
    PagingFormat f;
    f.stage.enabled = true;
    f.stage.format = sc.formats.front();
    f.stage.levels = l;
    f.stage.input_bits = static_cast<uint8_t>(12 + 9 * l);
    f.page_sizes = sc.page_sizes;
    // x86 first stage: the lower canonical half; second stage: the whole width, at most MGAW.
    const unsigned bits = s1 ? f.stage.input_bits - 1u : std::min<unsigned>(f.stage.input_bits, sc.input_bits);
    f.aperture_base = 0;
    f.aperture_limit = uint64_t{1} << bits;
    return f;
}

bool VtdDriver::first_stage(const DomainDesc& d) {
    return d.kind == DomainDesc::Kind::paging_s1 || d.kind == DomainDesc::Kind::sva ||
           d.kind == DomainDesc::Kind::nested || d.kind == DomainDesc::Kind::identity;
}

uint32_t VtdDriver::domain_tag(const DomainDesc& d) {
    if (d.kind == DomainDesc::Kind::sva || d.kind == DomainDesc::Kind::identity) return 1;
    return dids_.get(d.id);
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
    caps_ = decode_caps(cap, ecap);
    mamv_ = static_cast<uint8_t>((cap >> 48) & 0x3F);
    caching_mode_ = (cap >> 7) & 1; // CAP.CM
    smpwc_ = (ecap >> 48) & 1;
    coherent_ = ecap & 1;
    dit_ = (ecap >> 41) & 1;
    const int agaw = linux_agaw(cap, ecap);
    if (agaw < 0) throw std::runtime_error("VT-d driver: the unit supports no usable address width (CAP.SAGAW, FL5LP)");
    agaw_ = static_cast<uint8_t>(agaw);
    dids_.set_range(2, caps_->domain_tags - 1);
    tables_ = std::make_unique<vtd::VtdTableWriter>(cpu_.memory(), alloc_page_);
    cpu_.spend(cpu_.params().mem_write);
    mmio_.write64(reg::RTADDR, tables_->root_table() | bits::RTADDR_SMT);
    set_gcmd(bits::GCMD_SRTP, true);

    queue_.init(alloc_page_, params_.queue_order, kDescBytes);
    queue_.set_sync_status_per_slot(alloc_page_, kQiInUse, kQiDone);
    // A long flush: qi_submit_sync per 16 descriptors (Linux intel/cache.c qi_batch,
    // QI_MAX_BATCHED_DESC_COUNT), each with its wait descriptor.
    queue_.set_batching({16, true});
    mmio_.write64(reg::IQT, 0);
    mmio_.write64(reg::IQA, queue_.base() | bits::IQA_DW | params_.queue_order);
    if (params_.wait == WaitMode::interrupt) {
        queue_.set_wait(CmdQueueDriver::Wait::interrupt);
        // Invalidation completion and fault events as MSIs (§5.1.6, §11.4.9.5),
        // unmasked; each unit has its own MSI path, so the vectors may repeat.
        mmio_.write32(reg::IEDATA, kInvalidationVector);
        mmio_.write32(reg::IEADDR, static_cast<uint32_t>(MsiDecoder::kMsiBase));
        mmio_.write32(reg::IEUADDR, 0);
        mmio_.write32(reg::IECTL, 0);
        mmio_.write32(reg::FEDATA, kFaultVector);
        mmio_.write32(reg::FEADDR, static_cast<uint32_t>(MsiDecoder::kMsiBase));
        mmio_.write32(reg::FEUADDR, 0);
        mmio_.write32(reg::FECTL, 0);
    }
    set_gcmd(bits::GCMD_QIE, true);
    set_gcmd(bits::GCMD_TE, true);
}

void VtdDriver::acknowledge_interrupt() {
    // The handler acknowledges the wait-completion status (ICS.IWC is RW1C).
    mmio_.write32(reg::ICS, bits::ICS_IWC);
}

bool VtdDriver::enforce_cache_coherency(const DomainDesc& d) const {
    return caps().snoop_control && d.kind != DomainDesc::Kind::sva;
}

vtd::PasidEntry VtdDriver::pasid_entry_for(const DomainDesc& d, uint16_t did) const {
    vtd::PasidEntry pe;
    pe.present = true;
    pe.did = did;
    pe.pgsnp = d.force_snoop; // Page Snoop: every access through this entry is snooped (spec-layouts PASID entry bit 88)
    // Linux: pasid_set_page_snoop(pte, !!ecap_smpwc(iommu->ecap)) for every type (a domain's
    // walks are coherent exactly when the unit's are), and AW = iommu->agaw for first-stage
    // and pass-through entries, the table's own depth where a second stage is walked.
    pe.pwsnp = smpwc_;
    pe.aw = agaw_;
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
        break;
    }
    return pe;
}

void VtdDriver::attach(const Attachment& a, const DomainDesc& domain) {
    if (a.pasid && !caps().pasid_bits) throw HostError(HostError::Kind::invalid, "the IOMMU does not support PASID (ECAP.PASID)");
    cpu_.spend(cpu_.params().call_overhead);
    const uint16_t did = did_of(domain);
    HostLock::Guard held(pasid_lock_);
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
        write_entries(2); // root entry half + 32-byte context entry
        if (caching_mode_) // context_present_cache_flush: the unit may have cached the non-present entry
            queue_.submit({vtd::encode_context_cache(vtd::ContextCacheInv::Gran::device, 0, a.device.rid.raw),
                           vtd::encode_iotlb_domain(0)},
                          /*counted=*/false);
    }
    const uint32_t pasid = a.pasid.value_or(0);
    tables_->set_pasid_entry(it->second, pasid, pasid_entry_for(domain, did));
    write_entries(2); // one 64-byte PASID entry (+ directory entry when new)
    held.release();
    if (caching_mode_) // pasid_flush_caches
        queue_.submit({vtd::encode_pasid_cache(vtd::PasidCacheInv::Gran::pasid, did, pasid),
                       vtd::encode_pasid_iotlb_all(did, pasid)},
                      /*counted=*/false);
}

void VtdDriver::mapped(const DomainDesc& d, const std::vector<Attachment>& as, uint64_t iova, uint64_t size) {
    // cache_tag_flush_range_np: only second-stage IOTLB tags under caching mode (first-stage
    // domains are never shadowed); device TLBs hold no non-present entries.
    if (!caching_mode_ || first_stage(d) || as.empty()) return;
    const uint16_t did = did_of(d);
    const uint64_t first = iova >> 12, last = (iova + size - 1) >> 12;
    unsigned order = 0;
    while ((first >> order) != (last >> order)) ++order;
    const bool whole = (last - first + 1) > params_.range_threshold_pages || order > mamv_;
    std::vector<RawDesc> descs;
    iotlb_descs(d, did, as.front(), whole, (first >> order) << (order + 12), order, false, descs);
    queue_.submit(std::move(descs), /*counted=*/false);
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
    if (!a.device.ats || !caps().ats || params_.skip_devtlb_invalidation) return;
    const unsigned o = whole ? 52 : order; // 52: the whole address space (Linux MAX_AGAW_PFN_WIDTH)
    const uint64_t b = whole ? 0 : base;
    const uint8_t mip = a.device.inv_queue_depth >= 32 ? 0 : a.device.inv_queue_depth;
    // Linux info->pfsid: the PF's RID (its own for a PF) with ECAP.DIT; without it the
    // field is reserved and Linux writes 0 (iommu_enable_pci_caps).
    const uint16_t pfsid = dit_ ? a.device.pf.value_or(a.device.rid).raw : 0;
    out.push_back(a.pasid ? vtd::encode_pasid_dev_tlb(a.device.rid.raw, *a.pasid, b, o, false, mip, pfsid)
                          : vtd::encode_dev_tlb(a.device.rid.raw, b, o, mip, pfsid));
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
    descs.reserve(2 * r.attachments.size() + 3); // IOTLB + device-TLB per attachment, the queue's sync
    std::vector<uint32_t> pasids;                 // flushed once each (few per domain: a scan)
    bool domain_done = false;
    for (const auto& a : r.attachments) {
        if (first_stage(d)) {
            const uint32_t pasid = a.pasid.value_or(0);
            if (std::find(pasids.begin(), pasids.end(), pasid) != pasids.end()) continue;
            pasids.push_back(pasid);
            iotlb_descs(d, did, a, whole, base, order, r.leaf_only, descs);
        } else if (!domain_done) {
            iotlb_descs(d, did, a, whole, base, order, r.leaf_only, descs);
            domain_done = true;
        }
    }
    if (descs.empty()) iotlb_descs(d, did, Attachment{}, whole, base, order, r.leaf_only, descs);
    for (const auto& a : r.attachments) devtlb_desc(a, whole, base, order, descs);
    (whole ? domain_wide_ : ranged_).inc();
    FlushTiming t = queue_.submit(std::move(descs));
    t.ranged = !whole;
    return t;
}

FlushTiming VtdDriver::detach(const Attachment& a, const DomainDesc& domain) {
    cpu_.spend(cpu_.params().call_overhead);
    const uint16_t did = did_of(domain);
    auto it = contexts_.find(a.device.rid.raw);
    if (it == contexts_.end()) throw std::runtime_error("VT-d driver: detach of a device that was never attached");
    const uint32_t pasid = a.pasid.value_or(0);
    // Architected teardown (§6.5.2.x; Linux intel_pasid_tear_down_entry): the entry is cleared
    // under iommu->lock, the invalidations run after it is dropped.
    {
        HostLock::Guard held(pasid_lock_);
        tables_->clear_pasid_entry(it->second, pasid);
        write_entries(1);
    }
    std::vector<RawDesc> descs;
    descs.push_back(vtd::encode_pasid_cache(vtd::PasidCacheInv::Gran::pasid, did, pasid));
    if (first_stage(domain)) descs.push_back(vtd::encode_pasid_iotlb_all(did, pasid));
    else descs.push_back(vtd::encode_iotlb_domain(did));
    devtlb_desc(a, true, 0, 52, descs);
    return queue_.submit(std::move(descs));
}

QueueEntry VtdDriver::encode_sync(uint64_t status_pa, uint32_t token, bool interrupt) {
    return vtd::encode_wait(true, status_pa, token, interrupt);
}

CommandKind VtdDriver::kind_of(const QueueEntry& e) const {
    switch (vtd::descriptor_type(e[0])) {
    case vtd::desc_type::kIotlb:
    case vtd::desc_type::kPasidIotlb: return CommandKind::iotlb;
    case vtd::desc_type::kDevTlb:
    case vtd::desc_type::kPasidDevTlb: return CommandKind::devtlb;
    default: return CommandKind::other;
    }
}

QueueEntry VtdDriver::encode_nop() { return vtd::encode_wait(false, 0, 0); }

uint64_t VtdDriver::read_head() { return mmio_.read64(reg::IQH); }

WaitLoop VtdDriver::wait_loop() {
    WaitLoop w;
    w.hold_lock = true; // raw_spin_unlock; cpu_relax(); raw_spin_lock around each iteration
    return w;           // relax: one cpu_relax; Intel spins without a time-out (calibration.md "driver wait limits")
}

void VtdDriver::write_tail(uint64_t tail, uint64_t) { mmio_.post64(reg::IQT, tail); } // the unit acts at its time

QueueError VtdDriver::read_error() {
    const uint32_t fsts = mmio_.read32(reg::FSTS);
    QueueError e;
    e.bits = fsts & (bits::FSTS_IQE | bits::FSTS_ITE | bits::FSTS_ICE);
    // As Linux qi_check_fault(): IQE leaves IQH on the bad descriptor, which
    // is replaced by a no-op wait so the queue can go on, and its submission
    // fails; ITE skipped the wait descriptor just before IQH, whose
    // submission fails; ICE only reports a stray completion.
    if (e.bits & bits::FSTS_IQE) {
        e.replace_head = true;
        e.failed_entries.push_back(0);
    }
    if (e.bits & bits::FSTS_ITE) e.failed_entries.push_back(-1);
    return e;
}

void VtdDriver::acknowledge(const QueueError& e) { mmio_.write32(reg::FSTS, e.bits); }

void VtdDriver::enable_page_requests() {
    prq_.init(alloc_page_, params_.prq_order, kDescBytes);
    // Linux intel_iommu_enable_prq: the page request event's IRQ first (dmar_alloc_hwirq writes
    // PEDATA/PEADDR/PEUADDR; request_threaded_irq unmasks: PECTL = 0, §11.4.11), then
    // PQH = PQT = 0 and PQA with the queue size (§11.4.11).
    mmio_.write32(reg::PEDATA, kPageRequestVector);
    mmio_.write32(reg::PEADDR, static_cast<uint32_t>(MsiDecoder::kMsiBase));
    mmio_.write32(reg::PEUADDR, 0);
    mmio_.write32(reg::PECTL, 0);
    mmio_.write64(reg::PQH, 0);
    mmio_.write64(reg::PQT, 0);
    mmio_.write64(reg::PQA, prq_.base() | params_.prq_order);
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
    prq_.serve(handler, st);
}

// prq_event_thread: clear PPR before reading PQT/PQH, so a request written after those reads
// sets it again and raises a new page request event (PRS is RW1C, §11.4.11).
bool VtdDriver::acknowledge_pending() {
    mmio_.write32(reg::PRS, bits::PRS_PPR);
    return true;
}

uint64_t VtdDriver::read_tail() { return mmio_.read64(reg::PQT); }

uint64_t VtdDriver::read_log_head() { return mmio_.read64(reg::PQH); }

void VtdDriver::write_head(uint64_t head) { mmio_.write64(reg::PQH, head); }

bool VtdDriver::handle_overflow() {
    // An overflow auto-responded what did not fit (§7.5.1). prq_event_thread clears PRO only
    // once the queue is empty (PQH == PQT), else leaves it for the next run.
    if (!(mmio_.read32(reg::PRS) & bits::PRS_PRO)) return false;
    const uint64_t head = mmio_.read64(reg::PQH), tail = mmio_.read64(reg::PQT);
    if (head != tail) return false;
    mmio_.write32(reg::PRS, bits::PRS_PRO);
    return true;
}

PageRequestInfo VtdDriver::decode(const LogRecord& r) { return decode_page_request(r); }

void VtdDriver::respond(const PageRequestInfo& r, pcie::PrgResponseCode code) {
    // Page group response (type 9) + wait, Linux intel_iommu_page_response -> qi_submit_sync.
    queue_.submit({vtd::encode_page_group_response(r.rid.raw, r.pasid.has_value(), r.pasid.value_or(0), r.prg_index, code)},
                  /*counted=*/false);
}

} // namespace iommusim::host
