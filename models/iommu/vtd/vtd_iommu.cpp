// SPDX-License-Identifier: Apache-2.0
#include "models/common/sc_time.hpp"
#include "models/iommu/vtd/vtd_iommu.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <stdexcept>
#include <string>

#include "models/pcie/ats_codec.hpp"

namespace iommusim::iommu::vtd {

using sc_core::sc_time;

namespace {

/// What a request asks for, as the context-level checks see it (PASID prefix: PMR, ER).
RequestAttrs request_attrs(const pcie::TlpExtension& ext) {
    RequestAttrs r;
    r.has_pasid = ext.pasid_present;
    r.pasid = ext.pasid;
    r.privileged = ext.privileged;
    r.execute = ext.execute;
    return r;
}

CacheKey context_key(pcie::Bdf rid) { return CacheKey{rid.raw, 1}; }
CacheKey pasid_key(pcie::Bdf rid, uint32_t pasid) { return CacheKey{rid.raw, (uint64_t{pasid} << 1) | 1}; }
} // namespace

// ---- memory adapters ------------------------------------------------------------

/// Table reads of the context/PASID resolution, as TLM reads on the mem socket.
class VtdIommu::SocketMem final : public mem::PhysMem {
public:
    SocketMem(VtdIommu& u, Duration& local) : u_(u), local_(local) {}
    void read(uint64_t pa, void* dst, size_t len) override {
        if (!u_.mem_access(tlm::TLM_READ_COMMAND, pa, dst, static_cast<unsigned>(len), local_))
            throw mem::AddressError(pa, len, 0);
        local_ += u_.p_.table_read;
        ++reads_;
    }
    void write(uint64_t pa, const void* src, size_t len) override {
        if (!u_.mem_access(tlm::TLM_WRITE_COMMAND, pa, const_cast<void*>(src), static_cast<unsigned>(len), local_))
            throw mem::AddressError(pa, len, 0);
    }
    unsigned reads() const { return reads_; }

private:
    VtdIommu& u_;
    Duration& local_;
    unsigned reads_ = 0;
};

bool VtdIommu::SocketWalkPort::access(tlm::tlm_command cmd, uint64_t pa, uint64_t& v, Duration& latency) {
    Duration at = base_ + (latency - start_);
    const Duration sent = at;
    const bool ok = u_.mem_access(cmd, pa, &v, 8, at);
    latency += (at - sent) + u_.p_.table_read;
    return ok;
}
std::optional<uint64_t> VtdIommu::SocketWalkPort::do_read_u64(uint64_t pa, Duration& latency) {
    // Descriptor reads inside a DMI region: mem_access()'s DMI branch for one 8-byte read
    // (same data, same latency), without the generic call per walk level.
    if (const DmiSlot& s = u_.dmi_[(pa >> 12) % kDmiSlots]; s.read && pa >= s.start && pa + 7 <= s.end) {
        uint64_t v;
        std::memcpy(&v, s.ptr + (pa - s.start), 8);
        latency += s.read_latency + u_.p_.table_read;
        return v;
    }
    uint64_t v = 0;
    if (!access(tlm::TLM_READ_COMMAND, pa, v, latency)) return std::nullopt;
    return v;
}
bool VtdIommu::SocketWalkPort::do_write_u64(uint64_t pa, uint64_t v, Duration& latency) {
    return access(tlm::TLM_WRITE_COMMAND, pa, v, latency);
}
std::optional<uint64_t> VtdIommu::SocketWalkPort::do_compare_exchange_u64(uint64_t pa, uint64_t expected,
                                                                          uint64_t desired, Duration& latency) {
    // A locked read-modify-write of one descriptor (A/D update): read, then write if unchanged.
    uint64_t cur = 0;
    if (!access(tlm::TLM_READ_COMMAND, pa, cur, latency)) return std::nullopt;
    if (cur == expected && !access(tlm::TLM_WRITE_COMMAND, pa, desired, latency)) return std::nullopt;
    return cur;
}

bool VtdIommu::mem_access(tlm::tlm_command cmd, uint64_t addr, void* data, unsigned len, Duration& local,
                          bool allow_dmi) {
    // Table, queue and status accesses use DMI when the memory grants it (TLM-2.0 LT
    // practice): same data and the latency the target reports, without a transport call.
    const bool write = cmd == tlm::TLM_WRITE_COMMAND;
    DmiSlot& slot = dmi_[(addr >> 12) % kDmiSlots];
    if (allow_dmi && addr >= slot.start && addr + len - 1 <= slot.end && (write ? slot.write : slot.read)) {
        unsigned char* p = slot.ptr + (addr - slot.start);
        if (write) std::memcpy(p, data, len);
        else std::memcpy(data, p, len);
        local += write ? slot.write_latency : slot.read_latency;
        return true;
    }
    tlm::tlm_generic_payload& g = scratch_; // reused: the unit's own accesses never nest
    g.set_command(cmd);
    g.set_address(addr);
    g.set_data_ptr(static_cast<unsigned char*>(data));
    g.set_data_length(len);
    g.set_streaming_width(len);
    g.set_byte_enable_ptr(nullptr);
    g.set_dmi_allowed(false);
    g.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
    sc_time d = to_sc(local);
    mem->b_transport(g, d);
    local = from_sc(d);
    if (allow_dmi && g.is_response_ok() && g.is_dmi_allowed()) {
        tlm::tlm_dmi r;
        g.set_address(addr);
        if (mem->get_direct_mem_ptr(g, r) && r.get_dmi_ptr() && addr >= r.get_start_address() &&
            addr + len - 1 <= r.get_end_address())
            slot = DmiSlot{r.get_start_address(), r.get_end_address(), r.get_dmi_ptr(), from_sc(r.get_read_latency()),
                           from_sc(r.get_write_latency()), r.is_read_allowed(), r.is_write_allowed()};
    }
    return g.is_response_ok();
}

void VtdIommu::invalidate_dmi(sc_dt::uint64 start, sc_dt::uint64 end) {
    for (DmiSlot& s : dmi_)
        if (s.start <= end && s.end >= start) s = DmiSlot{};
}

void VtdIommu::send_msi(const std::optional<Msi>& msi, Duration& local) {
    if (!msi) return;
    uint32_t data = msi->data;
    local += p_.status_write;
    // An MSI is a dword write (§5.1.6); never through DMI: it targets the interrupt range, not RAM.
    mem_access(tlm::TLM_WRITE_COMMAND, msi->address, &data, 4, local, /*allow_dmi=*/false);
    st_msis_.inc();
}

// ---- construction -----------------------------------------------------------------

VtdIommu::VtdIommu(const sc_core::sc_module_name& name, const VtdParams& p, stats::Group* parent)
    : sc_module(name), upstream("upstream"), mem("mem"), mmio("mmio"), ats_inv("ats_inv"), p_(p),
      stats_(basename(), parent), regs_(p_), reader_(p_),
      context_cache_("context_cache", p_.context_cache.geometry, &stats_),
      pasid_cache_("pasid_cache", p_.pasid_cache.geometry, &stats_),
      walk_port_(*this), core_(walk_port_, TranslationCoreParams{IotlbParams{p_.iotlb.geometry}, p_.walker}, &stats_),
      walkers_(std::max<uint32_t>(1, p_.walkers)),
      st_requests_(stats_.counter("requests", "count", "memory requests received from devices")),
      st_translated_(stats_.counter("translated_requests", "count", "translated (AT=10) requests received")),
      st_translation_requests_(stats_.counter("translation_requests", "count", "ATS translation requests answered")),
      st_blocked_translated_(stats_.counter("translated_blocked", "count",
                                            "translated requests blocked: device-TLB not enabled for the device")),
      st_faults_(stats_.counter("faults", "count", "translation faults detected")),
      st_faults_suppressed_(stats_.counter("faults_suppressed", "count", "faults not recorded because of FPD")),
      st_snoop_forced_(stats_.counter("snoop_forced", "count", "No-Snoop requests forced snooped (PGSNP / SNP)")),
      st_walk_reads_(stats_.counter("table_reads", "count", "memory reads for context/PASID entries and walks")),
      st_descriptors_(stats_.counter("descriptors", "count", "invalidation descriptors executed")),
      st_iqe_(stats_.counter("iqe", "count", "invalidation queue errors")),
      st_ite_(stats_.counter("ite", "count", "device-TLB invalidation time-outs")),
      st_ice_(stats_.counter("ice", "count", "invalidation completions with an unknown ITag")),
      st_ats_inv_sent_(stats_.counter("ats_invalidations_sent", "count", "ATS Invalidate Requests sent")),
      st_waits_(stats_.counter("waits", "count", "wait descriptors completed")),
      st_page_requests_(stats_.counter("page_requests", "count", "page requests written to the PRQ")),
      st_prq_overflow_(stats_.counter("prq_overflows", "count", "page requests dropped: queue full")),
      st_prg_responses_(stats_.counter("prg_responses", "count", "PRG Responses sent to devices")),
      st_msis_(stats_.counter("msis", "count", "interrupt messages written")),
      st_walk_queueing_(stats_.counter("walk_queueing_ns", "ns", "total time IOTLB misses waited for a free walk slot")),
      st_wait_latency_(stats_.histogram("wait_latency", "ns",
                                        "wait descriptor: the IQT write that submitted it to its status write")),
      st_devtlb_latency_(stats_.histogram("devtlb_latency", "ns", "ATS Invalidate Request to Completion")) {
    // The context and PASID caches hold the entries the data path works from: they must exist.
    if (!context_cache_.enabled() || !pasid_cache_.enabled())
        throw std::invalid_argument(std::string(name) + ": context_cache and pasid_cache need at least one entry");
    pipeline_sc_ = to_sc(p_.pipeline);
    ctx_lookup_sc_ = to_sc(p_.context_cache.lookup);
    pasid_lookup_sc_ = to_sc(p_.pasid_cache.lookup);
    iotlb_lookup_sc_ = to_sc(p_.iotlb.lookup);
    mem.register_invalidate_direct_mem_ptr(this, &VtdIommu::invalidate_dmi);
    upstream.register_b_transport(this, &VtdIommu::b_transport_upstream);
    mmio.register_b_transport(this, &VtdIommu::b_transport_mmio);
    SC_HAS_PROCESS(VtdIommu);
    SC_THREAD(queue_engine);
}

// ---- MMIO ------------------------------------------------------------------------

void VtdIommu::b_transport_mmio(tlm::tlm_generic_payload& t, sc_time& delay) {
    const unsigned len = t.get_data_length();
    const uint64_t off = t.get_address();
    if ((len != 4 && len != 8) || off % len || off + len > VtdParams::kMmioSize || t.get_byte_enable_ptr()) {
        t.set_response_status(tlm::TLM_BURST_ERROR_RESPONSE);
        return;
    }
    Duration local = from_sc(delay) + p_.mmio_access;
    if (t.is_read()) {
        uint64_t v = regs_.read(static_cast<uint32_t>(off), len);
        std::memcpy(t.get_data_ptr(), &v, len);
    } else if (t.is_write()) {
        uint64_t v = 0;
        std::memcpy(&v, t.get_data_ptr(), len);
        const uint32_t e = regs_.write(static_cast<uint32_t>(off), len, v);
        if (e & VtdRegs::qi_enabled) seq_ = 0, tail_writes_.clear(); // software counts descriptors from the enable
        if (e & (VtdRegs::iqt_written | VtdRegs::qi_enabled | VtdRegs::iqe_cleared | VtdRegs::ite_cleared)) {
            if ((e & VtdRegs::iqt_written) && regs_.iqt() != regs_.iqh()) tail_writes_.emplace_back(regs_.iqt(), now() + local);
            // The engine sees the tail at the write's local time.
            engine_kick_.notify(to_sc(local));
        }
        if (e & VtdRegs::fault_msi) send_msi(Msi{regs_.raw64(reg::FEADDR) | uint64_t{regs_.raw32(reg::FEUADDR)} << 32,
                                                 regs_.raw32(reg::FEDATA)}, local);
        if (e & VtdRegs::inv_msi) send_msi(Msi{regs_.raw32(reg::IEADDR) | uint64_t{regs_.raw32(reg::IEUADDR)} << 32,
                                               regs_.raw32(reg::IEDATA)}, local);
        if (e & VtdRegs::pr_msi) send_msi(Msi{regs_.raw32(reg::PEADDR) | uint64_t{regs_.raw32(reg::PEUADDR)} << 32,
                                              regs_.raw32(reg::PEDATA)}, local);
    }
    delay = to_sc(local);
    t.set_response_status(tlm::TLM_OK_RESPONSE);
}

// ---- upstream: DMA, ATS, messages ----------------------------------------------------

void VtdIommu::b_transport_upstream(tlm::tlm_generic_payload& t, sc_time& delay) {
    auto* ext = t.get_extension<pcie::TlpExtension>();
    if (!ext) {
        if (auto* m = t.get_extension<pcie::MessageExtension>()) {
            Duration local = from_sc(delay);
            handle_message(*m, local);
            t.set_response_status(tlm::TLM_OK_RESPONSE);
            delay = to_sc(local);
            return;
        }
        t.set_response_status(tlm::TLM_GENERIC_ERROR_RESPONSE); // every request carries its TLP fields
        SC_REPORT_ERROR(name(), "upstream request without a pcie::TlpExtension (requester ID, PASID, AT): attach one to every DMA payload");
        return;
    }
    st_requests_.inc();
    if (ext->at == pcie::AddressType::translation_request) handle_translation_request(t, *ext, delay);
    else handle_dma(t, *ext, delay);
}

VtdIommu::Resolved VtdIommu::resolve(pcie::Bdf rid, const RequestAttrs& req, sc_time& delay, bool context_only) {
    Resolved r;
    if (!regs_.root_table_set()) {
        r.fault = fr::kInvalidRootTable;
        return r;
    }
    const bool memo_able = !context_only && !req.ats && !req.page_request;
    if (memo_able && memo_.valid && memo_.rid == rid.raw && memo_.has_pasid == req.has_pasid &&
        memo_.pasid == req.pasid) {
        delay += ctx_lookup_sc_;
        delay += pasid_lookup_sc_;
        context_cache_.count_lookup(true);
        pasid_cache_.count_lookup(true);
        r.pasid = memo_.effective_pasid;
        r.fpd = memo_.pc->ctx.fault_suppress;
        if (uint8_t f = VtdTableReader::check_pasid_permissions(memo_.pc->entry, req)) {
            r.fault = f;
            return r;
        }
        r.ctx = &memo_.pc->ctx;
        r.pe = &memo_.pc->entry;
        return r;
    }
    memo_.valid = false;
    ctx_memo_.valid = false;
    delay += ctx_lookup_sc_;
    ContextCacheEntry* ce = context_cache_.lookup(context_key(rid));
    if (!ce) {
        Duration local = from_sc(delay);
        SocketMem m(*this, local);
        auto cl = reader_.read_context(m, regs_.root_table(), regs_.scalable_mode(), rid);
        st_walk_reads_.inc(m.reads());
        if (!cl.status.ok()) {
            delay = to_sc(local);
            r.fault = cl.status.fault;
            r.fpd = cl.status.fpd;
            return r;
        }
        context_cache_.insert(context_key(rid), ContextCacheEntry{cl.entry, 0, false});
        ce = context_cache_.probe(context_key(rid));
        delay = to_sc(local);
    }
    ctx_memo_ = ContextMemo{true, rid.raw, ce};
    const SmContextEntry& ctx_entry = ce->entry;
    if (context_only) {
        r.fpd = ctx_entry.fpd;
        if (req.ats && !ctx_entry.dte) r.fault = fr::kCtxDteClear;
        return r;
    }
    uint32_t pasid = 0;
    StepStatus s = reader_.check_request(ctx_entry, req, pasid);
    if (!s.ok()) {
        r.fault = s.fault;
        r.fpd = s.fpd;
        return r;
    }
    r.pasid = pasid;
    delay += pasid_lookup_sc_;
    PasidCacheEntry* pc = pasid_cache_.lookup(pasid_key(rid, pasid));
    if (pc && pc->pasid_dir != ctx_entry.pasid_dir) pc = nullptr; // context changed under it: refetch
    if (!pc) {
        Duration local = from_sc(delay);
        SocketMem m(*this, local);
        auto pl = reader_.read_pasid(m, ctx_entry, pasid);
        st_walk_reads_.inc(m.reads());
        if (!pl.status.ok()) {
            delay = to_sc(local);
            r.fault = pl.status.fault;
            r.fpd = pl.status.fpd;
            return r;
        }
        PasidCacheEntry e;
        e.pasid_dir = ctx_entry.pasid_dir;
        e.entry = pl.entry;
        StepStatus ms = reader_.make_context(ctx_entry, pl.entry, pasid, e.ctx);
        if (!ms.ok()) {
            delay = to_sc(local);
            r.fault = ms.fault;
            r.fpd = ms.fpd;
            return r;
        }
        pasid_cache_.insert(pasid_key(rid, pasid), e);
        pc = pasid_cache_.probe(pasid_key(rid, pasid));
        ce->last_did = pl.entry.did;
        ce->did_known = true;
        delay = to_sc(local);
    }
    r.fpd = pc->ctx.fault_suppress;
    if (memo_able) memo_ = ResolveMemo{true, rid.raw, req.has_pasid, req.pasid, pc, pasid};
    if (uint8_t f = VtdTableReader::check_pasid_permissions(pc->entry, req)) {
        r.fault = f;
        return r;
    }
    r.ctx = &pc->ctx;
    r.pe = &pc->entry;
    return r;
}

void VtdIommu::record_fault(pcie::Bdf rid, const RequestAttrs& req, uint64_t addr, bool write, uint8_t reason,
                            bool fpd, Duration& local) {
    st_faults_.inc();
    if (fpd) { // FPD: the fault is not recorded (§9.4, §9.6)
        st_faults_suppressed_.inc();
        return;
    }
    FaultRecord f;
    f.page_addr = addr;
    f.sid = rid.raw;
    f.pasid_present = req.has_pasid;
    f.pasid = req.pasid;
    f.reason = reason;
    f.is_read = !write;
    f.privileged = req.privileged;
    f.execute = req.execute;
    std::optional<Msi> msi;
    local += p_.status_write; // the record is written into the unit's fault recording registers
    regs_.record_fault(f, msi);
    send_msi(msi, local);
}

TranslateResult VtdIommu::translate(const TranslationContext& ctx, const AccessRequest& a, sc_time& delay) {
    delay += iotlb_lookup_sc_;
    walk_port_.begin(from_sc(delay));
    TranslateResult r = core_.translate(ctx, a);
    if (!r.iotlb_hit) account_walk(r, delay);
    return r;
}

void VtdIommu::account_walk(const TranslateResult& r, sc_time& delay) {
    // A walk: it occupies one of the walk slots (loosely-timed contention, DESIGN.md "Timing").
    // The first slot that frees up earliest (what std::min_element picks), each slot read once.
    BusyUntil* slot = &walkers_.front();
    Duration earliest = slot->busy_until();
    for (BusyUntil& w : walkers_) {
        if (const Duration b = w.busy_until(); b < earliest) {
            earliest = b;
            slot = &w;
        }
    }
    const Duration t = now();
    const Duration arrival = t + from_sc(delay);
    const Duration start = slot->reserve(arrival, r.latency);
    delay = to_sc(start + r.latency - t);
    st_walk_reads_.inc(r.reads);
    st_walk_queueing_.inc(static_cast<uint64_t>((start - arrival).as_ns()));
}

uint8_t VtdIommu::reason_for(const Translation& t, const AccessRequest& a, const TranslationContext& ctx) const {
    // Map the core's neutral fault to the scalable-mode reason (§7.1.3; Linux dmar.c table).
    const bool nested = ctx.s1.enabled && ctx.s2.enabled;
    if (t.fault_stage == 2 && nested && t.s1ptw) { // S2 fault while fetching a first-stage table
        switch (t.fault) {
        case FaultKind::memory_error: return fr::kFlPml4Access;
        case FaultKind::address_size: return fr::kFlNestedMgaw;
        case FaultKind::permission: return a.write ? fr::kFlWriteNested : fr::kFlReadNested;
        default: return fr::kFlReadNested;
        }
    }
    if (t.fault_stage == 1) {
        switch (t.fault) {
        case FaultKind::memory_error: return fr::kFlAccess;
        case FaultKind::not_present: return fr::kFlNotPresent;
        case FaultKind::reserved_bits: return fr::kFlReserved;
        case FaultKind::non_canonical: return fr::kNonCanonical;
        case FaultKind::address_size: return fr::kBeyondMgaw;
        case FaultKind::invalid_config: return fr::kPeInvalid;
        case FaultKind::permission:
            if (a.execute && !t.execute) return fr::kNoExecute;
            if (!a.privileged && t.read && !t.user) return fr::kUserNotAllowed;
            return a.write ? fr::kNoWrite : fr::kNoRead;
        default: return fr::kFlAccess;
        }
    }
    switch (t.fault) {
    case FaultKind::memory_error: return fr::kSlAccess;
    case FaultKind::not_present: return fr::kSlPermission;
    case FaultKind::reserved_bits: return fr::kSlReserved;
    case FaultKind::address_size: return t.fault_level == 0 ? fr::kBeyondMgaw : fr::kSlBeyondMax;
    case FaultKind::invalid_config: return fr::kSlInvalidPtr;
    case FaultKind::permission:
        if (a.execute && !t.execute) return fr::kNoExecute;
        return a.write ? fr::kNoWrite : fr::kNoRead;
    default: return fr::kSlAccess;
    }
}

void VtdIommu::handle_dma(tlm::tlm_generic_payload& t, pcie::TlpExtension& ext, sc_time& delay) {
    // The hit path stays in sc_time arithmetic (no conversions, no wait()).
    delay += pipeline_sc_;
    const uint64_t iova = t.get_address();
    const bool write = t.is_write();
    if (!regs_.translation_enabled()) { // DMA remapping off: addresses are physical (§3.1)
        ext.served_by = pcie::TlpExtension::Source::pass_through;
        ext.output_address = iova;
        mem->b_transport(t, delay);
        return;
    }
    // Fast path: the same (RID, PASID) as the previous untranslated request (see ResolveMemo).
    if (ext.at == pcie::AddressType::untranslated && memo_.valid && memo_.rid == ext.requester.raw &&
        memo_.has_pasid == ext.pasid_present && memo_.pasid == ext.pasid && !ext.privileged && !ext.execute &&
        regs_.root_table_set()) {
        const TranslationContext& ctx = memo_.pc->ctx;
        delay += ctx_lookup_sc_;
        delay += pasid_lookup_sc_;
        context_cache_.count_lookup(true);
        pasid_cache_.count_lookup(true);
        if (!ctx.pass_through) {
            const AccessRequest a{iova, write, false, false};
            delay += iotlb_lookup_sc_;
            walk_port_.begin(from_sc(delay));
            const TranslateResult r = core_.translate(ctx, a);
            if (!r.iotlb_hit) account_walk(r, delay);
            if (r.t.ok()) {
                ext.served_by = r.iotlb_hit ? pcie::TlpExtension::Source::iotlb : pcie::TlpExtension::Source::walk;
                const uint64_t mask = (uint64_t{1} << r.t.page_shift) - 1;
                const uint64_t pa = (r.t.output & ~mask) | (iova & mask);
                if (ext.no_snoop && (ctx.force_snoop || (p_.snoop_control && r.t.snoop))) {
                    ext.no_snoop = false;
                    st_snoop_forced_.inc();
                }
                ext.output_address = pa;
                t.set_address(pa);
                mem->b_transport(t, delay);
                t.set_address(iova);
                return;
            }
            const RequestAttrs req = request_attrs(ext);
            ext.served_by = r.iotlb_hit ? pcie::TlpExtension::Source::iotlb : pcie::TlpExtension::Source::walk;
            Duration local = from_sc(delay);
            record_fault(ext.requester, req, iova, write, reason_for(r.t, a, ctx), ctx.fault_suppress, local);
            delay = to_sc(local);
            t.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
            return;
        }
    }
    RequestAttrs req = request_attrs(ext);
    auto fail = [&](uint8_t reason, bool fpd) {
        Duration local = from_sc(delay);
        record_fault(ext.requester, req, iova, write, reason, fpd, local);
        delay = to_sc(local);
        t.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
    };
    if (ext.at == pcie::AddressType::translated) {
        st_translated_.inc();
        // Fast path: the context entry of the previous request's RID, with DTE (see ContextMemo).
        if (ctx_memo_.valid && ctx_memo_.rid == ext.requester.raw && ctx_memo_.ce->entry.dte &&
            regs_.root_table_set()) {
            delay += ctx_lookup_sc_;
            context_cache_.count_lookup(true);
            mem->b_transport(t, delay);
            return;
        }
        req.ats = true;
        Resolved r = resolve(ext.requester, req, delay, /*context_only=*/true);
        if (r.fault) { // translated requests need a present context entry with DTE (§4.2.4)
            st_blocked_translated_.inc();
            fail(r.fault, r.fpd);
            return;
        }
        // No-Snoop of translated requests was settled by the completion's N bit.
        mem->b_transport(t, delay);
        return;
    }
    Resolved r = resolve(ext.requester, req, delay);
    if (r.fault) {
        fail(r.fault, r.fpd);
        return;
    }
    uint64_t pa = iova;
    bool snoop = r.ctx->force_snoop;
    ext.served_by = pcie::TlpExtension::Source::pass_through;
    if (!r.ctx->pass_through) {
        AccessRequest a{iova, write, req.execute, req.privileged};
        const TranslateResult res = translate(*r.ctx, a, delay);
        const Translation& tr = res.t;
        ext.served_by = res.iotlb_hit ? pcie::TlpExtension::Source::iotlb : pcie::TlpExtension::Source::walk;
        if (!tr.ok()) {
            fail(reason_for(tr, a, *r.ctx), r.fpd);
            return;
        }
        const uint64_t mask = (uint64_t{1} << tr.page_shift) - 1;
        pa = (tr.output & ~mask) | (iova & mask);
        snoop = snoop || (p_.snoop_control && tr.snoop);
    }
    if (snoop && ext.no_snoop) {
        ext.no_snoop = false;
        st_snoop_forced_.inc();
    }
    ext.output_address = pa;
    t.set_address(pa);
    mem->b_transport(t, delay);
    t.set_address(iova);
}

void VtdIommu::handle_translation_request(tlm::tlm_generic_payload& t, pcie::TlpExtension& ext, sc_time& delay) {
    delay += pipeline_sc_;
    st_translation_requests_.inc();
    if (!regs_.translation_enabled() || !p_.device_tlb || t.get_data_length() < 8) {
        t.set_response_status(tlm::TLM_COMMAND_ERROR_RESPONSE); // UR: no translation service
        return;
    }
    RequestAttrs req = request_attrs(ext);
    req.ats = true;
    const uint64_t iova = t.get_address() & ~uint64_t{0xFFF};
    Resolved r = resolve(ext.requester, req, delay);
    if (r.fault) {
        // Context-level errors are non-recoverable: recorded and answered UR (§4.2.3).
        Duration local = from_sc(delay);
        record_fault(ext.requester, req, iova, false, r.fault, r.fpd, local);
        delay = to_sc(local);
        t.set_response_status(tlm::TLM_COMMAND_ERROR_RESPONSE);
        return;
    }
    pcie::AtsTranslation c;
    if (r.ctx->pass_through) {
        c = pcie::AtsTranslation::for_range(iova, 0);
        c.read = c.write = true;
        c.execute = req.execute && r.ctx->allow_execute;
        c.privileged = req.privileged;
        c.no_snoop = r.ctx->force_snoop; // N: snooping forced by PGSNP
    } else {
        // Ask for read and (if allowed) write: the completion reports the rights the walk finds.
        AccessRequest a{iova, false, req.execute, req.privileged};
        const TranslateResult res = translate(*r.ctx, a, delay);
        const Translation& tr = res.t;
        if (tr.ok()) {
            const unsigned order = tr.page_shift - 12u;
            c = pcie::AtsTranslation::for_range(tr.output & ~((uint64_t{1} << tr.page_shift) - 1), order);
            const uint8_t rd = perm::needed(false, false, req.privileged);
            const uint8_t wr = perm::needed(true, false, req.privileged);
            const uint8_t ex = perm::needed(false, true, req.privileged) & ~rd;
            c.read = (tr.perms & rd) == rd;
            c.write = (tr.perms & wr) == wr;
            c.execute = req.execute && (tr.perms & ex) == ex;
            c.privileged = req.privileged;
            c.global = tr.global;
            // N (bit 10, spec-layouts.md D.5): requests using this translation must clear No
            // Snoop — set when PGSNP or the leaf's SNP forces snooping (VT-d snoop control).
            c.no_snoop = r.ctx->force_snoop || (p_.snoop_control && tr.snoop);
        } else {
            c = pcie::AtsTranslation::for_range(iova, 0); // R=W=0: no access (not an error, §4.2.3)
            c.translated = 0;
        }
    }
    const uint64_t e = pcie::encode_translation_entry(c);
    std::memcpy(t.get_data_ptr(), &e, 8);
    t.set_response_status(tlm::TLM_OK_RESPONSE);
}

// ---- messages from devices ---------------------------------------------------------------

void VtdIommu::handle_message(const pcie::MessageExtension& m, Duration& local) {
    switch (m.code) {
    case pcie::MessageCode::ats_invalidate_completion: {
        const uint16_t sid = m.inv_cpl.requester.raw;
        auto it = devinv_.find(sid);
        uint32_t vec = m.inv_cpl.itag_vector;
        if (it == devinv_.end() || (vec & ~it->second.itags)) {
            st_ice_.inc();
            send_msi(regs_.report_ice(sid), local);
            if (it == devinv_.end()) return;
            vec &= it->second.itags;
        }
        const Duration t = now() + local;
        for (uint32_t v = vec; v; v &= v - 1) {
            const unsigned i = static_cast<unsigned>(std::countr_zero(v));
            const Duration sent = it->second.deadline[i] - p_.ite_timeout;
            st_devtlb_latency_.record((t - sent).as_ns());
            phase(it->second.seq[i], InvalPhase::devtlb_completed, t, m.inv_cpl.requester);
            --devinv_count_;
        }
        it->second.itags &= ~vec;
        devinv_done_.notify(to_sc(local));
        return;
    }
    case pcie::MessageCode::page_request: handle_page_request(m.page_req, local); return;
    default: return; // other messages are not addressed to the translation agent
    }
}

void VtdIommu::handle_page_request(const pcie::PageRequest& pr, Duration& local) {
    local += p_.pipeline;
    RequestAttrs req;
    req.has_pasid = pr.pasid_present;
    req.pasid = pr.pasid;
    req.privileged = pr.privileged;
    req.execute = pr.execute;
    req.page_request = true;
    auto respond = [&](pcie::PrgResponseCode code) {
        if (!pr.last) return; // a response is owed only for the last request of a group
        pcie::MessageExtension m;
        m.code = pcie::MessageCode::prg_response;
        m.prg_resp.destination = pr.requester;
        m.prg_resp.pasid_present = pr.pasid_present;
        m.prg_resp.pasid = pr.pasid;
        m.prg_resp.prg_index = pr.prg_index;
        m.prg_resp.code = code;
        send_message(m, 0, local);
    };
    if (!regs_.root_table_set() || !p_.page_requests) {
        respond(pcie::PrgResponseCode::invalid_request);
        return;
    }
    // Context checks (PRE, PASIDE); a failing request is answered Invalid Request and recorded.
    sc_time rd = to_sc(local);
    Resolved r = resolve(pr.requester, req, rd);
    local = from_sc(rd);
    if (r.fault && r.fault < fr::kPdAccess) {
        record_fault(pr.requester, req, pr.address, pr.write, r.fault, r.fpd, local);
        respond(pcie::PrgResponseCode::invalid_request);
        return;
    }
    if (regs_.prq_full() || regs_.pqa_base() == 0) {
        st_prq_overflow_.inc();
        send_msi(regs_.report_prq_overflow(), local);
        respond(pcie::PrgResponseCode::success); // auto-response: the device will retry (§7.5.1)
        return;
    }
    // Page request descriptor, spec-layouts.md A.10. Type value 0x1 is UNCONFIRMED (Linux ignores it).
    std::array<uint64_t, 4> d{};
    d[0] = 0x1 | uint64_t{pr.pasid_present} << 8 | uint64_t{pr.requester.raw} << 16 |
           uint64_t{pr.pasid & pcie::kPasidMask} << 32 | uint64_t{pr.execute} << 52 | uint64_t{pr.privileged} << 53;
    d[1] = uint64_t{pr.read} | uint64_t{pr.write} << 1 | uint64_t{pr.last} << 2 |
           uint64_t{pr.prg_index & 0x1FFu} << 3 | (pr.address & ~uint64_t{0xFFF});
    local += p_.status_write;
    mem_access(tlm::TLM_WRITE_COMMAND, regs_.pqa_base() + regs_.pqt(), d.data(), 32, local);
    st_page_requests_.inc();
    send_msi(regs_.advance_pqt(), local);
}

void VtdIommu::send_message(pcie::MessageExtension& m, uint64_t payload, Duration& local) {
    pcie::MessageTlp tlp(m, payload);
    sc_time d = to_sc(local);
    ats_inv->b_transport(tlp.payload(), d);
    local = from_sc(d);
    if (m.code == pcie::MessageCode::prg_response) st_prg_responses_.inc();
}

// ---- invalidation queue engine ----------------------------------------------------------

void VtdIommu::engine_wait(Duration d) {
    if (d > Duration::zero()) wait(to_sc(d));
}

uint64_t VtdIommu::invalidate_caches(const InvalidationScope& s) {
    return core_.invalidate(s);
}

void VtdIommu::queue_engine() {
    for (;;) {
        // Idle until QI is on, the queue has work and no error blocks fetching.
        while (!regs_.queue_enabled() || regs_.iqh() == regs_.iqt() ||
               (regs_.fsts() & (bits::FSTS_IQE | bits::FSTS_ITE)))
            wait(engine_kick_);
        // A tail written at a later local time is not visible yet (temporal decoupling).
        if (!tail_writes_.empty() && tail_writes_.front().second > now()) { wait(to_sc(tail_writes_.front().second - now())); continue; }
        const Duration submitted = tail_writes_.empty() ? now() : tail_writes_.front().second; // the IQT write that made it visible
        const bool wide = regs_.iq_256bit();
        const unsigned dsize = wide ? 32 : 16;
        if (wide && (regs_.iqt() & 0x10)) { // tail not 256-bit aligned (§11.4.9.2)
            st_iqe_.inc();
            Duration l;
            send_msi(regs_.report_iqe(IqeReason::invalid_tail), l);
            continue;
        }
        const uint64_t head = regs_.iqh();
        std::array<uint64_t, 4> q{};
        Duration l;
        const bool fetched = mem_access(tlm::TLM_READ_COMMAND, regs_.iqa_base() + head, q.data(), dsize, l);
        engine_wait(l + p_.descriptor_fetch);
        if (!fetched) {
            st_iqe_.inc();
            Duration l2;
            send_msi(regs_.report_iqe(IqeReason::fetch_error), l2);
            continue;
        }
        const uint64_t seq = seq_;
        DecodeResult dr = decode_descriptor(q, wide, p_);
        if (dr.ok()) phase(seq, InvalPhase::fetched, now());
        if (!dr.ok()) {
            st_iqe_.inc();
            Duration l2;
            send_msi(regs_.report_iqe(dr.error), l2); // IQH stays on the offending descriptor
            continue;
        }
        // IQH names the next descriptor to fetch: it moves past a descriptor once it is
        // fetched and valid, so on IQE it still points at the offending one (§6.5.2.10).
        regs_.set_iqh((head + dsize) % regs_.iq_bytes());
        while (!tail_writes_.empty() && tail_writes_.front().first == regs_.iqh()) tail_writes_.pop_front();
        engine_wait(p_.per_descriptor);
        if (std::holds_alternative<WaitDesc>(dr.desc)) {
            const auto& w = std::get<WaitDesc>(dr.desc);
            if (!wait_for_device_invalidations()) {
                // ITE: the pending wait is aborted (no status write, no interrupt) and skipped.
                ++seq_;
                continue;
            }
            // The status word becomes visible when the write is issued, so the engine first
            // spends the write's cost, then writes (polling software never sees it early).
            if (w.status_write) {
                engine_wait(p_.status_write);
                Duration wl;
                uint32_t data = w.status_data;
                mem_access(tlm::TLM_WRITE_COMMAND, w.status_addr, &data, 4, wl);
                phase(seq, InvalPhase::wait_done, now()); // visible to a polling driver from now on
                st_waits_.inc();
                st_wait_latency_.record((now() - submitted).as_ns());
                engine_wait(wl);
            } else {
                st_waits_.inc();
                st_wait_latency_.record((now() - submitted).as_ns());
                phase(seq, InvalPhase::wait_done, now());
            }
            if (w.interrupt) {
                Duration wl;
                send_msi(regs_.report_wait_complete(), wl);
                engine_wait(wl);
            }
        } else if (std::holds_alternative<DevTlbInv>(dr.desc)) {
            if (!issue_dev_tlb(std::get<DevTlbInv>(dr.desc))) {
                ++seq_;
                continue;
            }
            phase(seq, InvalPhase::devtlb_sent, now(), std::get<DevTlbInv>(dr.desc).request.target);
        } else {
            execute(dr.desc);
            phase(seq, InvalPhase::caches_done, now());
        }
        st_descriptors_.inc();
        ++seq_;
    }
}

void VtdIommu::execute(const QiDescriptor& d) {
    uint64_t dropped = 0;
    memo_.valid = false;
    ctx_memo_.valid = false;
    if (const auto* cc = std::get_if<ContextCacheInv>(&d)) {
        dropped = context_cache_.invalidate_if([&](const CacheKey& k, const ContextCacheEntry& e) {
            return cc->matches(pcie::Bdf(static_cast<uint16_t>(k.a)), e.did_known ? e.last_did : uint16_t{0xFFFF}) ||
                   (cc->gran == ContextCacheInv::Gran::domain && !e.did_known);
        });
    } else if (const auto* pc = std::get_if<PasidCacheInv>(&d)) {
        dropped = pasid_cache_.invalidate_if([&](const CacheKey& k, const PasidCacheEntry& e) {
            return pc->matches(e.entry.did, static_cast<uint32_t>(k.b >> 1));
        });
    } else if (const auto* io = std::get_if<IotlbInv>(&d)) {
        dropped = invalidate_caches(io->scope);
    } else if (const auto* pg = std::get_if<PageGroupResponse>(&d)) {
        pcie::MessageExtension m;
        m.code = pcie::MessageCode::prg_response;
        m.prg_resp = pg->response;
        Duration l = p_.ats_message_send;
        send_message(m, 0, l);
        engine_wait(l);
    }
    // IecInv: interrupt remapping is not modelled; the descriptor only costs its processing time.
    engine_wait(p_.per_entry_invalidate * dropped);
}

bool VtdIommu::issue_dev_tlb(const DevTlbInv& d) {
    const uint16_t sid = d.request.target.raw;
    const uint32_t depth = d.mip ? d.mip : VtdParams::kMaxInvalidationsPending;
    // Bounded by the device's invalidate queue depth: wait for a free slot (or time out).
    for (;;) {
        Outstanding& o = devinv_[sid];
        if (static_cast<uint32_t>(std::popcount(o.itags)) < depth && o.itags != 0xFFFFFFFFu) break;
        Duration earliest = o.deadline[0];
        bool any = false;
        for (unsigned i = 0; i < 32; ++i)
            if ((o.itags >> i) & 1) earliest = any ? std::min(earliest, o.deadline[i]) : o.deadline[i], any = true;
        if (now() >= earliest) {
            st_ite_.inc();
            Duration l;
            send_msi(regs_.report_ite(sid), l);
            devinv_count_ -= static_cast<uint32_t>(std::popcount(o.itags));
            o.itags = 0;
            return false;
        }
        wait(to_sc(earliest - now()), devinv_done_);
    }
    Outstanding& o = devinv_[sid];
    const unsigned itag = static_cast<unsigned>(std::countr_one(o.itags));
    o.itags |= 1u << itag;
    ++devinv_count_;
    Duration l = p_.ats_message_send;
    o.deadline[itag] = now() + l + p_.ite_timeout;
    o.seq[itag] = seq_;
    pcie::MessageExtension m;
    m.code = pcie::MessageCode::ats_invalidate_request;
    m.inv_req = d.request;
    m.inv_req.itag = static_cast<uint8_t>(itag);
    send_message(m, pcie::encode_invalidate_payload(m.inv_req), l);
    st_ats_inv_sent_.inc();
    engine_wait(l);
    return true;
}

bool VtdIommu::wait_for_device_invalidations() {
    while (devinv_count_ > 0) {
        Duration earliest;
        uint16_t who = 0;
        bool any = false;
        for (const auto& [sid, o] : devinv_)
            for (unsigned i = 0; i < 32; ++i)
                if (((o.itags >> i) & 1) && (!any || o.deadline[i] < earliest)) {
                    earliest = o.deadline[i];
                    who = sid;
                    any = true;
                }
        if (now() >= earliest) {
            st_ite_.inc();
            Duration l;
            send_msi(regs_.report_ite(who), l);
            // Everything outstanding is abandoned; software re-issues after clearing ITE.
            for (auto& [sid, o] : devinv_) o.itags = 0;
            devinv_count_ = 0;
            return false;
        }
        wait(to_sc(earliest - now()), devinv_done_);
    }
    return true;
}

} // namespace iommusim::iommu::vtd
