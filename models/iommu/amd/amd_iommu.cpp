// SPDX-License-Identifier: Apache-2.0
#include "models/iommu/amd/amd_iommu.hpp"

#include <algorithm>

namespace iommusim::iommu::amd {

namespace {
// A fault travels from resolve()/fault_reason() to record_fault() as the event code,
// the event flags the unit knows at that point, and whether record_fault() must use
// the table address resolve() remembered.
constexpr uint32_t kHwAddr = 1u << 16;
constexpr uint32_t reason_of(EventCode c, uint16_t flags) {
    return static_cast<uint32_t>(c) | (uint32_t{flags & 0xFFFu} << 4);
}
constexpr EventCode code_of(uint32_t r) { return static_cast<EventCode>(r & 0xF); }
constexpr uint16_t flags_of(uint32_t r) { return static_cast<uint16_t>((r >> 4) & 0xFFF); }

ShellStatNames stat_names() {
    ShellStatNames n;
    n.faults = {"faults", "translation faults detected (IO_PAGE_FAULT, ILLEGAL_DEV_TABLE_ENTRY, ...)"};
    n.faults_suppressed = {"faults_suppressed", "IO_PAGE_FAULT events not logged: DTE.SA"};
    n.queue_errors = {"command_errors", "ILLEGAL_COMMAND_ERROR / COMMAND_HARDWARE_ERROR: command buffer stopped"};
    n.ats_timeouts = {"iotlb_inv_timeouts", "IOTLB_INV_TIMEOUT: ATS invalidations without completion"};
    n.syncs = {"completion_waits", "COMPLETION_WAIT commands completed"};
    n.page_requests = {"ppr_requests", "peripheral page requests logged in the PPR log"};
    n.page_request_overflows = {"ppr_dropped", "peripheral page requests dropped: PPR log full or stopped"};
    n.sync_latency = {"completion_wait_latency", "COMPLETION_WAIT: the tail write that submitted it to its completion"};
    return n;
}
} // namespace

ShellParams AmdIommu::shell_params(const AmdParams& p) {
    // Control.InvTimeOut resets to 0: no ATS time-out until software programs one.
    ShellParams s = ShellParams::of(p.iotlb.geometry, p.iotlb.lookup, p.walker, p.walkers,
                                    {p.pipeline, p.mmio_access, p.table_read, p.status_write, p.command_fetch,
                                     p.per_command, p.per_entry_invalidate, p.ats_message_send},
                                    AtsInvalidationTracker::kNever, AmdParams::kMmioSize);
    s.snoop_control = true; // v1 PTE.FC forces coherent accesses
    return s;
}

AmdIommu::AmdIommu(const sc_core::sc_module_name& name, const AmdParams& p, stats::Group* parent)
    : IommuShell(name, shell_params(p), stat_names(), kCommandHwError, Ring::Index::one_slot_free, parent),
      p_(p), regs_(p_), reader_(p_), dte_cache_("dte_cache", p_.dte_cache.geometry, &stats_group()),
      ctx_cache_("gcr3_cache", p_.gcr3_cache.geometry, &stats_group()),
      st_events_(stats_group().counter("events", "count", "records written to the event log")),
      st_events_dropped_(stats_group().counter("events_dropped", "count", "events dropped: log off, stopped or full")) {
    ctx_lookup_sc_ = to_sc(p_.gcr3_cache.lookup);
    dte_lookup_sc_ = to_sc(p_.dte_cache.lookup);
    start<AmdIommu>();
    if (p_.viommu_guests > 0)
        hwv_ = std::make_unique<AmdHwViommu>(
            "hw_viommu", p_, unit_port(),
            AmdHwViommuCore::Hooks{[this](const CommandAction& a) { return execute_guest_action(a); }, {}},
            &stats_group());
}

uint64_t AmdIommu::execute_guest_action(const CommandAction& a) {
    if (const auto* t = std::get_if<InvalidateTranslations>(&a)) return core().invalidate(t->scope);
    if (const auto* c = std::get_if<InvalidateConfig>(&a)) return invalidate_config(c->cache, c->scope);
    return 0; // INVALIDATE_IOMMU_PAGES decodes to nothing else
}

const AmdTableReader::DteRead& AmdIommu::dte(uint16_t devid, Duration& local) {
    local += p_.dte_cache.lookup;
    if (auto* e = dte_cache_.lookup(devid)) {
        dte_memo_ = &e->value.read, dte_memo_dev_ = devid;
        return e->value.read;
    }
    dte_memo_ = nullptr;
    TableMem m(*this, local);
    DteSlot slot{reader_.read_dte(m, regs_.dev_table(), devid)};
    count_table_reads(m.reads());
    if (slot.read.status != AmdTableReader::DteRead::Status::ok) {
        dte_miss_ = slot.read; // not cached: a read error or a DeviceID beyond the table
        return dte_miss_;
    }
    const AmdTableReader::DteRead& r = dte_cache_.insert(devid, 0, slot, slot.read.dte.domain_id)->value.read;
    dte_memo_ = &r, dte_memo_dev_ = devid;
    return r;
}

const Resolved& AmdIommu::context(uint16_t devid, const RequestAttrs& req, Duration& local) {
    const uint32_t key = req.has_pasid ? req.pasid : kNoPasid;
    local += p_.gcr3_cache.lookup;
    if (auto* e = ctx_cache_.lookup(devid, key)) {
        memo_ = &e->value.res, memo_dev_ = devid, memo_key_ = key;
        return e->value.res;
    }
    memo_ = nullptr;
    const AmdTableReader::DteRead d = dte(devid, local);
    TableMem m(*this, local);
    RequestInfo ri;
    ri.device_id = devid;
    ri.has_pasid = req.has_pasid;
    ri.pasid = req.pasid;
    ri.privileged = req.privileged;
    ri.execute = req.execute;
    const AmdTableReader::Stage2Fn s2 = [this](const TranslationContext& c, uint64_t gpa) {
        return core().check_s2(c, AccessRequest{gpa, false, false, false}).t;
    };
    CtxSlot slot{reader_.resolve(m, d, ri, regs_.gt_en(), &s2)};
    count_table_reads(m.reads());
    if (slot.res.kind == Resolved::Kind::event) {
        ctx_miss_ = slot.res; // events are not cached: software fixes the tables and retries
        return ctx_miss_;
    }
    const Resolved& r = ctx_cache_.insert(devid, key, slot, slot.res.dte.domain_id)->value.res;
    memo_ = &r, memo_dev_ = devid, memo_key_ = key;
    return r;
}

IommuShell::Resolution AmdIommu::resolve_tables(pcie::Bdf rid, const RequestAttrs& req, sc_core::sc_time& delay) {
    Duration local = from_sc(delay);
    const Resolved& res = context(rid.raw, req, local);
    delay = to_sc(local);
    if (res.kind == Resolved::Kind::event) {
        const Event& e = *res.event;
        const bool hw = e.code == EventCode::dev_tab_hardware_error || e.code == EventCode::page_tab_hardware_error;
        pending_hw_addr_ = e.address;
        return {reason_of(e.code, e.flags) | (hw ? kHwAddr : 0), res.suppressed};
    }
    if (req.ats && res.check_ir_iw && !res.dte.i) // ATS translation request, DTE.I = 0
        return {reason_of(EventCode::invalid_device_request,
                          static_cast<uint16_t>(evf::TR | static_cast<unsigned>(InvalidRequestType::translation_not_allowed)
                                                              << evf::kTypeShift))};
    if (res.check_ir_iw && !res.dte.ir && !res.dte.iw) // Linux's blocked domain: no access at all
        return {reason_of(EventCode::io_page_fault, evf::PR | evf::PE), res.dte.sa};
    return {0, false, &res.ctx};
}

IommuShell::Resolution AmdIommu::check_translated(pcie::Bdf rid, const RequestAttrs&, sc_core::sc_time& delay) {
    if (dte_memo_ && dte_memo_dev_ == rid.raw && (dte_memo_->dte.i || !dte_memo_->dte.v || !dte_memo_->dte.tv)) {
        dte_cache_.count_lookup(true); // the device's cached DTE allows ATS (or does not translate)
        delay += dte_lookup_sc_;
        return {0, false, nullptr};
    }
    Duration local = from_sc(delay);
    const AmdTableReader::DteRead& d = dte(rid.raw, local);
    delay = to_sc(local);
    using S = AmdTableReader::DteRead::Status;
    if (d.status == S::bus_error) {
        pending_hw_addr_ = d.addr;
        return {reason_of(EventCode::dev_tab_hardware_error, 0) | kHwAddr};
    }
    if (d.status == S::out_of_range) return {reason_of(EventCode::illegal_dev_table_entry, 0)};
    if (d.dte.v && d.dte.tv && !d.dte.i)
        return {reason_of(EventCode::invalid_device_request,
                          static_cast<uint16_t>(static_cast<unsigned>(InvalidRequestType::translated_not_allowed)
                                                << evf::kTypeShift))};
    return {0, false, nullptr};
}

uint32_t AmdIommu::fault_reason(const Translation& t, const AccessRequest&, const TranslationContext&) const {
    const AmdTableReader::WalkFault w = AmdTableReader::walk_fault(t.fault);
    return reason_of(w.code, w.flags);
}

void AmdIommu::record_fault(pcie::Bdf rid, const RequestAttrs& req, uint64_t addr, bool write, uint32_t reason,
                            Duration& local) {
    const EventCode code = code_of(reason);
    RequestInfo ri;
    ri.device_id = rid.raw;
    ri.has_pasid = req.has_pasid;
    ri.pasid = req.pasid;
    ri.addr = addr;
    ri.write = write;
    ri.execute = req.execute;
    ri.privileged = req.privileged;
    if (req.ats && code != EventCode::invalid_device_request) ri.type = RequestInfo::Type::translation_request;
    const uint16_t flags = static_cast<uint16_t>(flags_of(reason) | request_flags(ri));
    const auto* d = dte_cache_.probe(rid.raw);
    const uint16_t domain = d ? d->value.read.dte.domain_id : 0;
    const uint64_t hw_addr = (reason & kHwAddr) ? pending_hw_addr_ : addr;
    Event e;
    switch (code) {
    case EventCode::illegal_dev_table_entry: e = make_illegal_dte(rid.raw, req.pasid, addr, flags); break;
    case EventCode::dev_tab_hardware_error:
        e = make_dev_tab_hw_error(rid.raw, hw_addr, flags, HwErrorType::master_abort);
        break;
    case EventCode::page_tab_hardware_error:
        e = make_page_tab_hw_error(rid.raw, domain, req.pasid, hw_addr, flags, HwErrorType::master_abort);
        break;
    case EventCode::invalid_device_request:
        e = make_invalid_device_request(rid.raw, req.pasid, addr, flags,
                                        static_cast<InvalidRequestType>(flags >> evf::kTypeShift));
        break;
    default: e = make_io_page_fault(rid.raw, domain, req.pasid, addr, flags); break;
    }
    log_event(e, local);
}

void AmdIommu::log_event(const Event& e, Duration& local) {
    local += p_.status_write;
    const AmdLog::Logged r = events_.log(unit_port(), e.encode(), regs_, local);
    if (r.written) st_events_.inc();
    else st_events_dropped_.inc();
    if (r.interrupt) msi(local);
}

void AmdIommu::msi(Duration& local) {
    if (regs_.msi_address() != 0) send_msi(regs_.msi_address(), regs_.msi_data(), local);
}

void AmdIommu::accept_page_request(const pcie::PageRequest& pr, Duration& local) {
    RequestAttrs req;
    req.has_pasid = pr.pasid_present;
    req.pasid = pr.pasid;
    req.privileged = pr.privileged;
    req.execute = pr.execute;
    req.page_request = true;
    const Resolved& res = context(pr.requester.raw, req, local);
    RequestInfo ri;
    ri.device_id = pr.requester.raw;
    ri.has_pasid = pr.pasid_present;
    ri.pasid = pr.pasid;
    ri.addr = pr.address;
    ri.execute = pr.execute;
    ri.privileged = pr.privileged;
    ri.type = RequestInfo::Type::page_request;
    const bool ppr_on = regs_.iommu_en() && regs_.control(ctl::PPR_EN);
    const AmdTableReader::PprOutcome o =
        AmdTableReader::page_request(res, ri, pr.read, pr.write, pr.last, pr.prg_index, ppr_on);
    if (o.event) {
        log_event(*o.event, local);
        respond_page_request(pr, pcie::PrgResponseCode::invalid_request, local);
        return;
    }
    local += p_.status_write;
    const AmdLog::Logged r = ppr_.log(unit_port(), o.entry->encode(), regs_, local);
    if (r.written) {
        count_page_request();
    } else {
        // Dropped (log full or stopped): the group cannot be serviced; fail it so the device
        // does not wait forever (the spec's device-side outcome is UNCONFIRMED).
        count_page_request_overflow();
        respond_page_request(pr, pcie::PrgResponseCode::response_failure, local);
    }
    if (r.interrupt) msi(local);
}

uint64_t AmdIommu::mmio_read(uint32_t offset, unsigned len) { return regs_.read(offset, len); }

void AmdIommu::mmio_write(uint32_t offset, unsigned len, uint64_t value, Duration& local) {
    switch (regs_.write(offset, value, len)) {
    case AmdRegs::Effect::evt_base: events_.on_base(regs_); break;
    case AmdRegs::Effect::ppr_base: ppr_.on_base(regs_); break;
    case AmdRegs::Effect::evt_head: events_.on_head(regs_); break;
    case AmdRegs::Effect::ppr_head: ppr_.on_head(regs_); break;
    case AmdRegs::Effect::status:
        events_.on_status(regs_);
        ppr_.on_status(regs_);
        break;
    case AmdRegs::Effect::cmd_tail:
        note_tail_write(now() + local, regs_.cmd_ring().tail);
        kick_queue(local);
        break;
    case AmdRegs::Effect::control: {
        set_translation_enabled(regs_.iommu_en()); // IommuEn: DMA is remapped
        // InvTimeOut (Control 7:5) times ATS invalidations; 0 (and the reserved 7) never time out.
        const Duration to = regs_.inv_timeout();
        set_ats_timeout(to == Duration::zero() ? AtsInvalidationTracker::kNever : to);
        kick_queue(local);
        break;
    }
    case AmdRegs::Effect::cmd_base:
    case AmdRegs::Effect::cmd_head: kick_queue(local); break;
    default: break;
    }
}

DecodedCommand AmdIommu::decode(std::span<const uint64_t> words) {
    DecodedCommand d = decode_actions(words, p_);
    // INVALIDATE_IOTLB_PAGES (the one command that decodes to an ATS invalidation): remember
    // where it is for an IOTLB_INV_TIMEOUT record.
    if (d.count == 1)
        if (const auto* a = std::get_if<InvalidateDeviceAtc>(&d.list()[0]))
            note_iotlb_command(a->request.target.raw, queue().ring().cons_address());
    return d;
}

void AmdIommu::note_iotlb_command(uint16_t devid, uint64_t at) {
    const auto it = std::lower_bound(iotlb_cmd_addr_.begin(), iotlb_cmd_addr_.end(), devid,
                                     [](const auto& e, uint16_t d) { return e.first < d; });
    if (it != iotlb_cmd_addr_.end() && it->first == devid) it->second = at;
    else iotlb_cmd_addr_.insert(it, {devid, at});
}

void AmdIommu::sync_queue(CommandQueue& q) {
    const RingRegs c = regs_.cmd_ring();
    q.ring().configure(c.base, c.entries, 16);
    q.ring().set_cons_offset(c.head);
    q.ring().set_prod_offset(c.tail);
    q.set_enabled(regs_.cmdbuf_running());
    if (regs_.cmdbuf_running() && q.halted()) q.acknowledge(); // software toggled CmdBufEn
}

void AmdIommu::report_queue_error(uint32_t code, Duration& local) {
    const RingRegs c = regs_.cmd_ring();
    const uint64_t at = c.base + c.head; // the head stays on the offending command
    regs_.hw_stop(st::CMDBUF_RUN);
    log_event(code == kIllegalCommand ? make_illegal_command(at) : make_command_hw_error(at, HwErrorType::master_abort),
              local);
}

uint64_t AmdIommu::invalidate_config(uint8_t cache, const ConfigScope& s) {
    memo_ = nullptr;
    dte_memo_ = nullptr;
    return cache == kDteCache ? dte_cache_.invalidate(s) : ctx_cache_.invalidate(s);
}

void AmdIommu::sync_interrupt(Duration& local) {
    regs_.hw_set_status(st::COM_WAIT_INT);
    if (regs_.control(ctl::COMWAIT_EN)) msi(local);
}

void AmdIommu::report_ats_timeout(pcie::Bdf rid, Duration& local) {
    const auto it = std::lower_bound(iotlb_cmd_addr_.begin(), iotlb_cmd_addr_.end(), rid.raw,
                                     [](const auto& e, uint16_t d) { return e.first < d; });
    const bool known = it != iotlb_cmd_addr_.end() && it->first == rid.raw;
    log_event(make_iotlb_inv_timeout(rid.raw, known ? it->second : 0), local);
}

} // namespace iommusim::iommu::amd
