// SPDX-License-Identifier: Apache-2.0
#include "models/iommu/smmuv3/smmuv3.hpp"

namespace iommusim::iommu::smmuv3 {

ShellParams Smmuv3::shell_params(const Smmuv3Params& p) {
    ShellParams s = ShellParams::of(p.iotlb.geometry, p.iotlb.lookup, p.walker, p.walkers,
                                    {p.pipeline, p.mmio_access, p.table_read, p.record_write, p.command_fetch,
                                     p.per_command, p.per_entry_invalidate, p.ats_message_send},
                                    p.atc_inv_timeout, Smmuv3Params::kMmioSize);
    s.snoop_control = false; // no snoop-forcing bit in Arm tables
    s.sync_consumed_at_completion = true; // CONS passes a CMD_SYNC only once it completed
    s.ats = p.ats;
    return s;
}

Smmuv3::Smmuv3(const sc_core::sc_module_name& name, const Smmuv3Params& p, stats::Group* parent)
    : IommuShell(name, shell_params(p), ShellStatNames{}, static_cast<uint32_t>(CmdError::abt), Ring::Index::wrap_bit,
                 parent),
      p_(p), regs_(p_), reader_(p_), decoder_(p_), ste_cache_("ste_cache", p_.ste_cache.geometry, &stats_group()),
      cd_cache_("cd_cache", p_.cd_cache.geometry, &stats_group()), stalls_(p_.stall_max),
      st_events_(stats_group().counter("events", "count", "event records written to the EVTQ")),
      st_events_dropped_(stats_group().counter("events_dropped", "count", "event records dropped: EVTQ full")),
      st_stalls_(stats_group().counter("stalls", "transactions", "faulting transactions stalled (event with Stall = 1)")),
      st_stall_retries_(stats_group().counter("stall_retries", "transactions", "stalled transactions retried by CMD_RESUME")) {
    bypass_.bypass = true;
    bypass_.ctx.pass_through = true;
    set_translation_enabled(true); // SMMUEN = 0 is GBPA's business, decided per request
    ste_lookup_sc_ = to_sc(p_.ste_cache.lookup);
    ste_cd_lookup_sc_ = to_sc(p_.ste_cache.lookup + p_.cd_cache.lookup);
    start<Smmuv3>();
    if (p_.cmdqv_vintfs > 0)
        cmdqv_ = std::make_unique<Smmuv3Cmdqv>(
            "cmdqv", p_, unit_port(),
            Smmuv3CmdqvCore::Hooks{[this](const CommandAction& a) -> uint64_t {
                                       // A VCMDQ's TLBIs drop the unit's translations.
                                       const auto* t = std::get_if<InvalidateTranslations>(&a);
                                       return t ? core().invalidate(t->scope) : 0;
                                   },
                                   [this](const InvalidateDeviceAtc& a, Duration& local) {
                                       return send_aux_atc_invalidation(a, local); // the SMMU's ATS path
                                   },
                                   [this] { return aux_atc_outstanding(); }, [this] { return atc_settled_in(); }},
            Smmuv3Cmdqv::AtcWait{&atc_completion_event(),
                                 [this](std::optional<uint32_t> d) { return aux_atc_deadline(d); },
                                 [this](std::optional<uint32_t> d) { abandon_aux_atc(d); }},
            &stats_group());
}

IommuShell::Resolution Smmuv3::event_fault(const Event& e, bool record) const {
    pending_ = e;
    pending_record_ = record;
    return {e.id, !record, nullptr};
}

Smmuv3::Lookup Smmuv3::lookup_ste(uint32_t sid, const RequestAttrs& req, Duration& local) {
    Lookup l;
    local += p_.ste_cache.lookup;
    if (ste_memo_ && ste_memo_sid_ == sid) { // the cache's most recent hit: same entry, same recency
        ste_cache_.count_lookup(true);
        l.ste = ste_memo_;
        return l;
    }
    ste_memo_ = nullptr;
    rmemo_.sc = nullptr; // another STE lookup: the last resolution's entries may not be the latest
    if (auto* e = ste_cache_.lookup(sid)) {
        l.ste = ste_memo_ = &e->value;
        ste_memo_sid_ = sid;
        return l;
    }
    TableMem m(*this, local);
    const auto r = reader_.read_ste(m, regs_.strtab(), sid);
    count_table_reads(m.reads());
    if (r.event) {
        Event e = *r.event;
        e.ssv = req.has_pasid;
        e.ssid = req.has_pasid ? req.pasid : 0;
        // C_BAD_STREAMID is recorded only with CR2.RECINVSID (IHI 0070 7.3.3, 6.3.12).
        l.fault = event_fault(e, e.id != evt::kBadStreamId || regs_.cr2(bit::kCr2RecInvSid));
        return l;
    }
    SteEntry v{r.ste, reader_.make_context(r.ste, nullptr)};
    l.ste = ste_memo_ = &ste_cache_.insert(sid, 0, v, v.no_cd.vmid)->value;
    ste_memo_sid_ = sid;
    cd_memo_ = nullptr; // a new STE: its CDs are looked up afresh
    return l;
}

IommuShell::Resolution Smmuv3::resolve_tables(uint32_t sid, const RequestAttrs& req, sc_core::sc_time& delay) {
    if (!regs_.enabled(bit::kSmmuEn)) {
        if (regs_.gbpa_abort()) return {kTerminate, true, nullptr};
        current_ = &bypass_;
        return {0, false, &bypass_.ctx};
    }
    rmemo_.sc = nullptr;
    Duration local = from_sc(delay);
    const Lookup l = lookup_ste(sid, req, local);
    delay = to_sc(local);
    if (!l.ste) return l.fault;
    const Ste& ste = l.ste->ste;
    if (ste.config == ste_cfg::kAbort) return {kTerminate, true, nullptr};
    const auto sel = reader_.select_cd(ste, sid, req.has_pasid, req.pasid);
    if (sel.event) return event_fault(*sel.event);
    if (!sel.cd) {
        current_ = &l.ste->no_cd;
        rmemo_ = ResolveMemo{sid, req.has_pasid, req.has_pasid ? req.pasid : 0, current_, ste_memo_, nullptr};
        return {0, false, &current_->ctx};
    }
    local += p_.cd_cache.lookup;
    if (cd_memo_ && cd_memo_sid_ == sid && cd_memo_ssid_ == sel.ssid) {
        cd_cache_.count_lookup(true);
        delay = to_sc(local);
        current_ = cd_memo_;
        rmemo_ = ResolveMemo{sid, req.has_pasid, req.has_pasid ? req.pasid : 0, current_, ste_memo_, cd_memo_};
        return {0, false, &current_->ctx};
    }
    cd_memo_ = nullptr;
    auto* ce = cd_cache_.lookup(sid, sel.ssid);
    if (!ce) {
        TableMem m(*this, local);
        const Smmuv3TableReader::Stage2Fn s2 = [this](const TranslationContext& c, uint64_t ipa) {
            return core().check_s2(c, AccessRequest{ipa, false, false, false}).t;
        };
        const auto r = reader_.read_cd(m, ste, sid, req.has_pasid, sel.ssid, &s2);
        count_table_reads(m.reads());
        delay = to_sc(local);
        if (r.event) return event_fault(*r.event);
        const StreamContext sc = reader_.make_context(ste, &r.cd);
        ce = cd_cache_.insert(sid, sel.ssid, sc, sc.vmid);
    }
    delay = to_sc(local);
    current_ = cd_memo_ = &ce->value;
    cd_memo_sid_ = sid;
    cd_memo_ssid_ = sel.ssid;
    rmemo_ = ResolveMemo{sid, req.has_pasid, req.has_pasid ? req.pasid : 0, current_, ste_memo_, cd_memo_};
    return {0, false, &current_->ctx};
}

namespace {
/// The event refusing an ATS request (F_BAD_ATS_TREQ, F_TRANSL_FORBIDDEN) with its attributes.
Event ats_refusal(uint8_t id, uint32_t sid, const RequestAttrs& req) {
    Event e;
    e.id = id;
    e.sid = sid;
    e.ssv = req.has_pasid;
    e.ssid = req.has_pasid ? req.pasid : 0;
    e.pnu = req.privileged;
    e.ind = req.execute;
    return e;
}
} // namespace

IommuShell::Resolution Smmuv3::check_translated(pcie::Bdf rid, const RequestAttrs& req, sc_core::sc_time& delay) {
    const uint32_t sid = rid.raw;
    // built only when refused (the hit path stays short)
    auto forbidden = [&] { return event_fault(ats_refusal(evt::kTranslForbidden, sid, req)); };
    if (!regs_.enabled(bit::kSmmuEn)) return forbidden();
    // CR0.ATSCHK = 0 (fast mode, IHI 0070 6.3.9): translated traffic passes without a
    // Stream table lookup (software that uses split-stage ATS must set ATSCHK).
    if (!regs_.enabled(bit::kAtsChk)) return {};
    const Lookup l = lookup_ste(sid, req, delay);
    if (!l.ste) return gate_ats_config_error(l.fault, true);
    const Ste& ste = l.ste->ste;
    if (ste.config == ste_cfg::kAbort) return {kTerminate, true, nullptr};
    // Config bypass: effective EATS = 0, F_TRANSL_FORBIDDEN (IHI 0070 3.9.1.3, 7.3.8).
    if (ste.config == ste_cfg::kBypass) return forbidden();
    if (ste.eats == 1) return {}; // full ATS: the address is a PA
    if (ste.eats != 2) return forbidden();
    // Split-stage ATS (EATS = 2): the address is an IPA; the shell translates it by the STE's
    // stage 2, a fault there being a stage-2 fault of this transaction (recorded per S2R).
    tx_ = Transaction{sid, req.has_pasid, req.has_pasid ? req.pasid : 0, 0, false, req.execute, req.privileged, false};
    current_ = &l.ste->no_cd;
    return {0, false, &current_->ctx};
}

IommuShell::Resolution Smmuv3::resolve_translation_request(pcie::Bdf rid, const RequestAttrs& req,
                                                           sc_core::sc_time& delay) {
    // ATS disabled for the stream: F_BAD_ATS_TREQ, answered UR (IHI 0070 3.9.1.2, 7.3.6).
    auto refused = [&] { return event_fault(ats_refusal(evt::kBadAtsTreq, rid.raw, req)); };
    // SMMUEN = 0: no translation service whatever GBPA says (GBPA governs untranslated traffic).
    if (!regs_.enabled(bit::kSmmuEn)) return refused();
    RequestAttrs plain = req;
    plain.ats = false;
    const Resolution r = resolve(rid, plain, delay);
    tx_.ats_request = true;
    if (r.fault) return gate_ats_config_error(r, false);
    // Effective EATS = 0: EATS = 0, Config bypass, or split-stage EATS = 2 with CR0.ATSCHK = 0
    // (3.9.1.2). ste_memo_ is the STE this resolution used. An S1-only stream whose stage 1
    // S1DSS skips is answered with the identity (3.9.1.2).
    const bool config_bypass = ste_memo_ && ste_memo_->ste.config == ste_cfg::kBypass;
    const bool eats = current_->eats == 1 || (current_->eats == 2 && regs_.enabled(bit::kAtsChk));
    if (config_bypass || !eats) return refused();
    return r;
}

IommuShell::Resolution Smmuv3::gate_ats_config_error(const Resolution& r, bool translated) const {
    switch (r.fault == pending_.id ? pending_.id : 0) {
    case evt::kBadStreamId:
    case evt::kSteFetch:
    case evt::kBadSte:
    case evt::kBadSubstreamId:
    case evt::kStreamDisabled:
    case evt::kCdFetch:
    case evt::kBadCd:
    case evt::kWalkEabt:
        // lookup_ste's CR2.RECINVSID gate is the ordinary transactions'; ATS has its own rule.
        pending_record_ = (pending_record_ || pending_.id == evt::kBadStreamId) &&
                          records_ats_config_error(pending_.id, translated);
        return {r.fault, !pending_record_, r.ctx};
    default: return r; // not a configuration error (F_BAD_ATS_TREQ, F_TRANSL_FORBIDDEN, ...)
    }
}

uint32_t Smmuv3::fault_reason(const Translation& t, const AccessRequest& a, const TranslationContext&) const {
    Transaction tx = tx_;
    tx.addr = a.iova;
    tx.write = a.write;
    const bool room = stalls_.size() < stalls_.capacity() && can_hold();
    const FaultDisposition d = translation_fault(current_ ? *current_ : bypass_, tx, t, room);
    pending_ = d.event;
    pending_record_ = d.record;
    pending_stall_ = d.stall;
    // An ATS Translation Request's walk abort is a configuration error (IHI 0070 3.9.1.2).
    if (tx.ats_request && d.event.id == evt::kWalkEabt) pending_record_ = d.record && records_ats_config_error(d.event.id);
    return d.event.id;
}

void Smmuv3::record_fault(pcie::Bdf rid, const RequestAttrs& req, uint64_t addr, bool write, uint32_t reason,
                          Duration& local) {
    if (reason == kTerminate) return;
    Event e = pending_;
    const bool stall = pending_stall_ && e.id == reason && e.sid == rid.raw;
    if (e.id != reason || e.sid != rid.raw) { // not the event resolve / fault_reason prepared
        e = Event{};
        e.id = static_cast<uint8_t>(reason);
        e.sid = rid.raw;
        e.ssv = req.has_pasid;
        e.ssid = req.has_pasid ? req.pasid : 0;
    }
    pending_ = Event{};
    pending_stall_ = false;
    if (!pending_record_) return;
    e.input_addr = addr;
    e.rnw = !write;
    uint64_t ticket = 0;
    if (stall) { // held in the unit until CMD_RESUME / CMD_STALL_TERM (room checked in fault_reason)
        ticket = hold_request();
        e.stall = true;
        e.stag = *stalls_.stall(rid.raw, ticket);
        st_stalls_.inc();
    }
    const auto w = e.encode();
    local += p_.record_write;
    const RecordRing::PushResult r = regs_.push(Queue::evtq, unit_port(), w.data(), local);
    if (stall && !r.written()) { // nobody will learn of it: terminated at once
        (void)stalls_.resume(rid.raw, e.stag);
        release_held(ticket, false, local);
    }
    if (r.written()) st_events_.inc();
    if (r.outcome == RecordRing::Outcome::overflow) st_events_dropped_.inc();
    if (r.interrupt_needed()) send_irq(regs_.msi(Queue::evtq), bit::kEvtqIrqEn, local);
}

void Smmuv3::accept_page_request(const pcie::PageRequest& pr, Duration& local) {
    PriRecord rec;
    rec.sid = pr.requester.raw;
    rec.ssv = pr.pasid_present;
    rec.ssid = pr.pasid_present ? pr.pasid : 0;
    rec.priv = pr.privileged;
    rec.exec = pr.execute;
    rec.read = pr.read;
    rec.write = pr.write;
    rec.last = pr.last;
    rec.prg_index = pr.prg_index;
    rec.addr = pr.address;
    const auto w = rec.encode();
    local += p_.record_write;
    const RecordRing::PushResult r = p_.pri ? regs_.push(Queue::priq, unit_port(), w.data(), local)
                                            : RecordRing::PushResult{};
    if (r.written()) {
        count_page_request();
    } else {
        count_page_request_overflow();
        auto_respond(pr, r.outcome == RecordRing::Outcome::overflow, local);
    }
    if (r.interrupt_needed()) send_irq(regs_.msi(Queue::priq), bit::kPriqIrqEn, local);
}

void Smmuv3::auto_respond(const pcie::PageRequest& pr, bool overflow, Duration& local) {
    if (pr.pasid_present && !pr.read && !pr.write && pr.last) return; // a Stop Marker: no response
    pcie::PageRequest to = pr;
    to.pasid_present = false;
    pcie::PrgResponseCode code = pcie::PrgResponseCode::response_failure;
    // IHI 0070 8.2: with the PRIQ disabled (effective PRIQEN = 0, also when SMMUEN = 0) or
    // after a PRIQ write error, every Page Request gets Failure without PASID.
    if (!overflow || !regs_.enabled(bit::kSmmuEn) || !p_.pri) return respond_page_request(to, code, local);
    // 8.1, overflow: Last = 0 is ignored; Last = 1 gets Success without PASID when it had none
    // (no STE check); with a PASID, IDR3.PPS = 1 answers Success with it unchecked, else the
    // STE decides: its PPAR, or Failure without PASID when it cannot be checked.
    if (!pr.last) return;
    code = pcie::PrgResponseCode::success;
    if (pr.pasid_present && p_.pps) {
        to.pasid_present = true;
    } else if (pr.pasid_present) {
        RequestAttrs req;
        req.has_pasid = true;
        req.pasid = pr.pasid;
        const Lookup l = lookup_ste(pr.requester.raw, req, local);
        if (l.ste) {
            to.pasid_present = l.ste->ste.ppar;
        } else {
            code = pcie::PrgResponseCode::response_failure;
            // The lookup prepared its event: recorded only with CR2.REC_CFG_ATS (RnW UNKNOWN: 0).
            pending_record_ = records_ats_config_error(pending_.id);
            record_fault(pr.requester, req, pr.address, true, pending_.id, local);
        }
    }
    respond_page_request(to, code, local);
}

void Smmuv3::send_irq(const MsiConfig& m, uint32_t irq_bit, Duration& local) {
    if (regs_.irq_enabled(irq_bit) && p_.msi && m.addr) send_msi(m.addr, m.data, local);
}

void Smmuv3::raise_gerror(Gerror e, Duration& local) {
    if (regs_.raise(e)) send_irq(regs_.gerror_msi(), bit::kGerrorIrqEn, local);
}

void Smmuv3::mmio_write(uint32_t offset, unsigned len, uint64_t value, Duration& local) {
    const bool was_enabled = regs_.enabled(bit::kSmmuEn);
    const uint32_t fx = regs_.write(offset, len, value);
    // SMMUEN 1 -> 0 marks every stalled transaction to be terminated with an abort and frees
    // its STAG (IHI 0070 6.3.9.6); no new transaction can stall while translation is off.
    if (was_enabled && !regs_.enabled(bit::kSmmuEn))
        for (const uint64_t ticket : stalls_.terminate_all()) release_held(ticket, false, local);
    if (fx & Smmuv3Regs::kCmdqProdWritten) note_tail_write(now() + local, uint64_t{regs_.cmdq_prod().index} * 16);
    if (fx & (Smmuv3Regs::kCr0Written | Smmuv3Regs::kCmdqProdWritten | Smmuv3Regs::kGerrorNWritten)) kick_queue(local);
}

void Smmuv3::sync_queue(CommandQueue& q) {
    q.ring().configure(regs_.queue_base(Queue::cmdq), uint32_t{1} << regs_.queue_log2size(Queue::cmdq), 16);
    const QueuePos prod = regs_.cmdq_prod(), cons = regs_.cmdq_cons();
    q.ring().set_prod(prod.index, prod.wrap);
    q.ring().set_cons(cons.index, cons.wrap);
    q.set_enabled(regs_.enabled(bit::kCmdqEn));
    if (regs_.active_errors() & static_cast<uint32_t>(Gerror::cmdq_err)) q.halt(static_cast<uint32_t>(regs_.cmdq_error()));
    else q.acknowledge();
}

void Smmuv3::queue_consumed(const Ring::Position& cons) { regs_.set_cmdq_cons({cons.index, cons.wrap}); }

void Smmuv3::report_queue_error(uint32_t code, Duration& local) {
    // CONS stays on the offending command (IHI 0070 4.7): the engine has not consumed it.
    regs_.set_cmdq_cons({queue().ring().cons(), queue().ring().cons_wrap()}, static_cast<CmdError>(code));
    raise_gerror(Gerror::cmdq_err, local);
}

void Smmuv3::report_ats_timeout(pcie::Bdf, Duration& local) {
    // CONS stays on (CMD_SYNC, not consumed before it completes) or goes back to (an ATC_INV
    // that waited for a free invalidation slot) the command that waited, as
    // CERROR_ATC_INV_SYNC requires.
    const Ring& r = queue().ring();
    QueuePos back{r.cons(), r.cons_wrap()};
    if (command_consumed()) {
        if (back.index == 0) back = {r.entries() - 1, !back.wrap};
        else --back.index;
    }
    regs_.set_cmdq_cons(back, CmdError::atc_inv_sync);
    raise_gerror(Gerror::cmdq_err, local);
}

void Smmuv3::release_requests(const ReleaseHeldAction& a) {
    if (a.all) { // CMD_STALL_TERM: every stalled transaction of the StreamID, terminated
        for (const uint64_t ticket : stalls_.terminate(a.requester)) release_held(ticket, false);
        return;
    }
    // CMD_RESUME: the transaction the StreamID and STAG name (none: ignored, IHI 0070 4.6.2).
    if (const auto ticket = stalls_.resume(a.requester, static_cast<uint16_t>(a.tag))) {
        if (a.retry) st_stall_retries_.inc();
        release_held(*ticket, a.retry);
    }
}

uint64_t Smmuv3::invalidate_config(uint8_t cache, const ConfigScope& s) {
    ste_memo_ = nullptr;
    cd_memo_ = nullptr;
    rmemo_.sc = nullptr;
    return cache == config_cache::kSte ? ste_cache_.invalidate(s) : cd_cache_.invalidate(s);
}

} // namespace iommusim::iommu::smmuv3
