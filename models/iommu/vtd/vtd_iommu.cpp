// SPDX-License-Identifier: Apache-2.0
#include "models/iommu/vtd/vtd_iommu.hpp"

#include <array>
#include <stdexcept>
#include <string>

namespace iommusim::iommu::vtd {

using sc_core::sc_time;

namespace {

ShellParams shell_params(const VtdParams& p) {
    ShellParams s = ShellParams::of(p.iotlb.geometry, p.iotlb.lookup, p.walker, p.walkers,
                                    {p.pipeline, p.mmio_access, p.table_read, p.status_write, p.descriptor_fetch,
                                     p.per_descriptor, p.per_entry_invalidate, p.ats_message_send},
                                    p.ite_timeout, VtdParams::kMmioSize);
    s.snoop_control = p.snoop_control;
    s.ats = p.device_tlb;
    return s;
}

/// VT-d's names for the shell's statistics (stats.json keeps its layout).
ShellStatNames stat_names() {
    ShellStatNames n;
    n.translated_blocked.description = "translated requests blocked: device-TLB not enabled for the device";
    n.faults_suppressed.description = "faults not recorded because of FPD";
    n.snoop_forced.description = "No-Snoop requests forced snooped (PGSNP / SNP)";
    n.table_reads.description = "memory reads for context/PASID entries and walks";
    n.commands = {"descriptors", "invalidation descriptors executed"};
    n.queue_errors = {"iqe", "invalidation queue errors"};
    n.ats_timeouts = {"ite", "device-TLB invalidation time-outs"};
    n.unknown_itags = {"ice", "invalidation completions with an unknown ITag"};
    n.syncs = {"waits", "wait descriptors completed"};
    n.page_requests = {"page_requests", "page requests written to the PRQ"};
    n.page_request_overflows = {"prq_overflows", "page requests dropped: queue full"};
    n.sync_latency = {"wait_latency", "wait descriptor: the IQT write that submitted it to its status write"};
    n.atc_inv_latency = {"devtlb_latency", "ATS Invalidate Request to Completion"};
    return n;
}

ConfigScope context_scope(const ContextCacheInv& c) {
    switch (c.gran) {
    case ContextCacheInv::Gran::domain: return ConfigScope::of_domain(c.did);
    case ContextCacheInv::Gran::device: return ConfigScope::of_requester(c.sid, ((1u << c.fm) - 1u) & 7u); // FM
    case ContextCacheInv::Gran::global: break;
    }
    return ConfigScope::all();
}

ConfigScope pasid_scope(const PasidCacheInv& c) {
    switch (c.gran) {
    case PasidCacheInv::Gran::domain: return ConfigScope::of_domain(c.did);
    case PasidCacheInv::Gran::pasid: return ConfigScope::of_domain_pasid(c.did, c.pasid);
    case PasidCacheInv::Gran::global: break;
    }
    return ConfigScope::all();
}

} // namespace

VtdIommu::VtdIommu(const sc_core::sc_module_name& name, const VtdParams& p, stats::Group* parent)
    : IommuShell(name, shell_params(p), stat_names(), static_cast<uint32_t>(IqeReason::fetch_error),
                 Ring::Index::one_slot_free, parent),
      p_(p), regs_(p_), reader_(p_), context_cache_("context_cache", p_.context_cache.geometry, &stats_group()),
      pasid_cache_("pasid_cache", p_.pasid_cache.geometry, &stats_group()) {
    // The context and PASID caches hold the entries the data path works from: they must exist.
    if (!context_cache_.enabled() || !pasid_cache_.enabled())
        throw std::invalid_argument(std::string(name) + ": context_cache and pasid_cache need at least one entry");
    ctx_lookup_sc_ = to_sc(p_.context_cache.lookup);
    pasid_lookup_sc_ = to_sc(p_.pasid_cache.lookup);
    start<VtdIommu>();
}

// ---- registers -------------------------------------------------------------------------

void VtdIommu::mmio_write(uint32_t offset, unsigned len, uint64_t value, Duration& local) {
    const uint32_t e = regs_.write(offset, len, value);
    set_translation_enabled(regs_.translation_enabled());
    if (e & VtdRegs::qi_enabled) queue().reset_consumed(), forget_tail_writes(); // software counts descriptors from the enable
    if (e & (VtdRegs::qi_enabled | VtdRegs::qi_disabled)) queue().restart(); // IQH reset: a fetch in flight is void
    if (e & (VtdRegs::iqt_written | VtdRegs::qi_enabled | VtdRegs::iqe_cleared | VtdRegs::ite_cleared)) {
        if (e & VtdRegs::iqt_written) note_tail_write(now() + local, regs_.iqt());
        kick_queue(local); // the engine sees the tail at the write's local time
    }
    if (e & VtdRegs::fault_msi)
        send_msi(regs_.raw64(reg::FEADDR) | uint64_t{regs_.raw32(reg::FEUADDR)} << 32, regs_.raw32(reg::FEDATA), local);
    if (e & VtdRegs::inv_msi)
        send_msi(regs_.raw32(reg::IEADDR) | uint64_t{regs_.raw32(reg::IEUADDR)} << 32, regs_.raw32(reg::IEDATA), local);
    if (e & VtdRegs::pr_msi)
        send_msi(regs_.raw32(reg::PEADDR) | uint64_t{regs_.raw32(reg::PEUADDR)} << 32, regs_.raw32(reg::PEDATA), local);
}

// ---- context resolution ------------------------------------------------------------------

VtdIommu::Resolved VtdIommu::resolve_entries(pcie::Bdf rid, const RequestAttrs& req, sc_time& delay,
                                             bool context_only) {
    Resolved r;
    auto failed = [&r](const StepStatus& s) {
        r.fault = s.fault;
        r.fpd = s.fpd;
        return r;
    };
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
        r.fpd = memo_.pc->value.ctx.fault_suppress;
        if (uint8_t f = VtdTableReader::check_pasid_permissions(memo_.pc->value.entry, req)) {
            r.fault = f;
            return r;
        }
        r.ctx = &memo_.pc->value.ctx;
        return r;
    }
    memo_.valid = false;
    ctx_memo_.valid = false;
    delay += ctx_lookup_sc_;
    ContextCache::Entry* ce = context_cache_.lookup(rid.raw);
    if (!ce) {
        Duration local = from_sc(delay);
        TableMem m(*this, local);
        auto cl = reader_.read_context(m, regs_.root_table(), regs_.scalable_mode(), rid);
        count_table_reads(m.reads());
        delay = to_sc(local);
        if (!cl.status.ok()) return failed(cl.status);
        ce = context_cache_.insert(rid.raw, 0, cl.entry); // its DID is learnt from the PASID entry
    }
    ctx_memo_ = ContextMemo{true, rid.raw, ce};
    const SmContextEntry& ctx_entry = ce->value;
    if (context_only) {
        r.fpd = ctx_entry.fpd;
        if (req.ats && !ctx_entry.dte) r.fault = fr::kCtxDteClear;
        return r;
    }
    uint32_t pasid = 0;
    if (const StepStatus s = reader_.check_request(ctx_entry, req, pasid); !s.ok()) return failed(s);
    delay += pasid_lookup_sc_;
    PasidCache::Entry* pc = pasid_cache_.lookup(rid.raw, pasid);
    if (pc && pc->value.pasid_dir != ctx_entry.pasid_dir) pc = nullptr; // context changed under it: refetch
    if (!pc) {
        Duration local = from_sc(delay);
        TableMem m(*this, local);
        auto pl = reader_.read_pasid(m, ctx_entry, pasid);
        count_table_reads(m.reads());
        delay = to_sc(local);
        if (!pl.status.ok()) return failed(pl.status);
        PasidCacheEntry e;
        e.pasid_dir = ctx_entry.pasid_dir;
        e.entry = pl.entry;
        const StepStatus ms = reader_.make_context(ctx_entry, pl.entry, pasid, e.ctx);
        if (!ms.ok()) return failed(ms);
        pc = pasid_cache_.insert(rid.raw, pasid, e, pl.entry.did);
        ce->set_domain(pl.entry.did);
    }
    r.fpd = pc->value.ctx.fault_suppress;
    if (memo_able) memo_ = ResolveMemo{true, rid.raw, req.has_pasid, req.pasid, pc};
    if (uint8_t f = VtdTableReader::check_pasid_permissions(pc->value.entry, req)) {
        r.fault = f;
        return r;
    }
    r.ctx = &pc->value.ctx;
    return r;
}

IommuShell::Resolution VtdIommu::check_translated(pcie::Bdf rid, const RequestAttrs& req, sc_time& delay) {
    // Fast path: the context entry of the previous request's RID, with DTE (see ContextMemo).
    if (ctx_memo_.valid && ctx_memo_.rid == rid.raw && ctx_memo_.ce->value.dte && regs_.root_table_set()) {
        delay += ctx_lookup_sc_;
        context_cache_.count_lookup(true);
        return {};
    }
    // Translated requests need a present context entry with DTE (§4.2.4).
    const Resolved r = resolve_entries(rid, req, delay, /*context_only=*/true);
    return Resolution{r.fault, r.fpd, nullptr};
}

uint32_t VtdIommu::fault_reason(const Translation& t, const AccessRequest& a, const TranslationContext& ctx) const {
    // Map the core's neutral fault to the scalable-mode reason (§7.1.3; Linux dmar.c table).
    const bool nested = ctx.s1.enabled && ctx.s2.enabled;
    if (t.fault_stage == 2 && nested && t.s1ptw) { // S2 fault while fetching a first-stage table
        switch (t.fault) {
        case FaultKind::memory_error: return fr::kFlPml4Access;
        case FaultKind::address_size:
        case FaultKind::input_size: return fr::kFlNestedMgaw;
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
    case FaultKind::input_size: return fr::kBeyondMgaw;
    case FaultKind::address_size: return t.fault_level == 0 ? fr::kBeyondMgaw : fr::kSlBeyondMax;
    case FaultKind::invalid_config: return fr::kSlInvalidPtr;
    case FaultKind::permission:
        if (a.execute && !t.execute) return fr::kNoExecute;
        return a.write ? fr::kNoWrite : fr::kNoRead;
    default: return fr::kSlAccess;
    }
}

void VtdIommu::record_fault(pcie::Bdf rid, const RequestAttrs& req, uint64_t addr, bool write, uint32_t reason,
                            Duration& local) {
    FaultRecord f;
    f.page_addr = addr;
    f.sid = rid.raw;
    f.pasid_present = req.has_pasid;
    f.pasid = req.pasid;
    f.reason = static_cast<uint8_t>(reason);
    f.is_read = !write;
    f.privileged = req.privileged;
    f.execute = req.execute;
    std::optional<Msi> m;
    local += p_.status_write; // the record is written into the unit's fault recording registers
    regs_.record_fault(f, m);
    msi(m, local);
}

// ---- page requests ----------------------------------------------------------------------

void VtdIommu::accept_page_request(const pcie::PageRequest& pr, Duration& local) {
    local += p_.pipeline;
    RequestAttrs req;
    req.has_pasid = pr.pasid_present;
    req.pasid = pr.pasid;
    req.privileged = pr.privileged;
    req.execute = pr.execute;
    req.page_request = true;
    if (!regs_.root_table_set() || !p_.page_requests) {
        respond_page_request(pr, pcie::PrgResponseCode::invalid_request, local);
        return;
    }
    // Context checks (PRE, PASIDE); a failing request is answered Invalid Request and recorded.
    sc_time rd = to_sc(local);
    const Resolved r = resolve_entries(pr.requester, req, rd, false);
    local = from_sc(rd);
    if (r.fault && r.fault < fr::kPdAccess) {
        fault_detected(pr.requester, req, pr.address, pr.write, r.fault, r.fpd, local);
        respond_page_request(pr, pcie::PrgResponseCode::invalid_request, local);
        return;
    }
    // The queue as a ring of 32-byte descriptors at PQA; PQH/PQT are byte offsets (§11.4.11).
    prq_.ring().configure(regs_.pqa_base(), static_cast<uint32_t>(regs_.pq_bytes() / 32), 32);
    prq_.ring().set_prod_offset(regs_.pqt());
    prq_.ring().set_cons_offset(regs_.pqh());
    if (prq_.ring().full() || regs_.pqa_base() == 0) {
        count_page_request_overflow();
        msi(regs_.report_prq_overflow(), local);
        respond_page_request(pr, pcie::PrgResponseCode::success, local); // auto-response: the device retries (§7.5.1)
        return;
    }
    const RawDesc d = encode_page_request(pr); // spec-layouts.md A.10
    local += p_.status_write;
    prq_.push(unit_port(), d.data(), local);
    count_page_request();
    msi(regs_.advance_pqt(), local); // PQT is the register the ring was read from
}

// ---- invalidation queue --------------------------------------------------------------------

void VtdIommu::sync_queue(CommandQueue& q) {
    // IQA/IQH/IQT are the truth (software reads them); the engine works on a view (§11.4.9).
    const bool wide = regs_.iq_256bit();
    const unsigned shift = wide ? 5 : 4; // 256- or 128-bit descriptors
    Ring& r = q.ring();
    if (r.base() != regs_.iqa_base() || r.entry_bytes() != 1u << shift || r.size_bytes() != regs_.iq_bytes())
        r.configure(regs_.iqa_base(), static_cast<uint32_t>(regs_.iq_bytes() >> shift), 1u << shift);
    r.set_cons(static_cast<uint32_t>(regs_.iqh() >> shift));
    r.set_prod(static_cast<uint32_t>(regs_.iqt() >> shift));
    // With 256-bit descriptors the tail must be 256-bit aligned (§11.4.9.2), and it must lie
    // inside the queue (QEMU raises IQE for a tail beyond the size, vtd_fetch_inv_desc).
    const bool bad_tail = (wide && (regs_.iqt() & 0x10)) || regs_.iqt() >= regs_.iq_bytes();
    q.set_tail_error(bad_tail ? static_cast<uint32_t>(IqeReason::invalid_tail) : 0);
    q.set_enabled(regs_.queue_enabled());
    if (regs_.fsts() & (bits::FSTS_IQE | bits::FSTS_ITE)) q.halt(q.error());
    else q.acknowledge();
}

DecodedCommand VtdIommu::decode(std::span<const uint64_t> words) {
    std::array<uint64_t, 4> q{};
    for (size_t i = 0; i < words.size() && i < q.size(); ++i) q[i] = words[i];
    const DecodeResult dr = decode_descriptor(q, words.size() == 4, p_);
    DecodedCommand c; // the one object returned (NRVO)
    if (!dr.ok()) {
        c.error = static_cast<uint32_t>(dr.error);
        return c;
    }
    if (const auto* cc = std::get_if<ContextCacheInv>(&dr.desc)) {
        c.add(InvalidateConfig{kContextCache, context_scope(*cc)});
    } else if (const auto* pc = std::get_if<PasidCacheInv>(&dr.desc)) {
        c.add(InvalidateConfig{kPasidCache, pasid_scope(*pc)});
    } else if (const auto* io = std::get_if<IotlbInv>(&dr.desc)) {
        c.add(InvalidateTranslations{io->scope});
    } else if (const auto* dev = std::get_if<DevTlbInv>(&dr.desc)) {
        c.add(InvalidateDeviceAtc{dev->request, dev->mip ? dev->mip : VtdParams::kMaxInvalidationsPending});
    } else if (const auto* w = std::get_if<WaitDesc>(&dr.desc)) {
        SyncAction s;
        s.status_write = w->status_write;
        s.status_addr = w->status_addr;
        s.status_data = w->status_data;
        s.status_bytes = 4;
        s.interrupt = w->interrupt;
        s.fence = w->fence;
        c.add(s);
    } else if (const auto* pg = std::get_if<PageGroupResponse>(&dr.desc)) {
        c.add(PageResponseAction{pg->response});
    } else {
        c.add(NoOpAction{}); // IEC: interrupt remapping is not modelled; only the processing time
    }
    return c;
}

uint64_t VtdIommu::invalidate_config(uint8_t cache, const ConfigScope& s) {
    memo_.valid = false;
    ctx_memo_.valid = false;
    return cache == kContextCache ? context_cache_.invalidate(s) : pasid_cache_.invalidate(s);
}

} // namespace iommusim::iommu::vtd
