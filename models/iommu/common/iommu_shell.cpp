// SPDX-License-Identifier: Apache-2.0
#include "models/iommu/common/iommu_shell.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "models/pcie/ats_codec.hpp"

namespace iommusim::iommu {

using sc_core::sc_time;


// ---- memory ---------------------------------------------------------------------------

void IommuShell::TableMem::read(uint64_t pa, void* dst, size_t len) {
    if (!u_.mem_access(tlm::TLM_READ_COMMAND, pa, dst, static_cast<unsigned>(len), local_))
        throw mem::AddressError(pa, len, 0);
    local_ += u_.sp_.table_read;
    ++reads_;
}
void IommuShell::TableMem::write(uint64_t pa, const void* src, size_t len) {
    if (!u_.mem_access(tlm::TLM_WRITE_COMMAND, pa, const_cast<void*>(src), static_cast<unsigned>(len), local_))
        throw mem::AddressError(pa, len, 0);
}

bool IommuShell::SocketWalkPort::access(tlm::tlm_command cmd, uint64_t pa, uint64_t& v, Duration& latency) {
    Duration at = base_ + (latency - start_);
    const Duration sent = at;
    const bool ok = u_.mem_access(cmd, pa, &v, 8, at);
    latency += (at - sent) + u_.sp_.table_read;
    return ok;
}
std::optional<uint64_t> IommuShell::SocketWalkPort::do_read_u64(uint64_t pa, Duration& latency) {
    // Descriptor reads inside a DMI region: mem_access()'s DMI branch for one 8-byte read
    // (same data, same latency), without the generic call per walk level.
    if (const DmiSlot& s = u_.dmi_[(pa >> 12) % kDmiSlots]; s.read && pa >= s.start && pa + 7 <= s.end) {
        uint64_t v;
        std::memcpy(&v, s.ptr + (pa - s.start), 8);
        latency += s.read_latency + u_.sp_.table_read;
        return v;
    }
    uint64_t v = 0;
    if (!access(tlm::TLM_READ_COMMAND, pa, v, latency)) return std::nullopt;
    return v;
}
bool IommuShell::SocketWalkPort::do_write_u64(uint64_t pa, uint64_t v, Duration& latency) {
    return access(tlm::TLM_WRITE_COMMAND, pa, v, latency);
}
std::optional<uint64_t> IommuShell::SocketWalkPort::do_compare_exchange_u64(uint64_t pa, uint64_t expected,
                                                                            uint64_t desired, Duration& latency) {
    // A locked read-modify-write of one descriptor (A/D update): read, then write if unchanged.
    uint64_t cur = 0;
    if (!access(tlm::TLM_READ_COMMAND, pa, cur, latency)) return std::nullopt;
    if (cur == expected && !access(tlm::TLM_WRITE_COMMAND, pa, desired, latency)) return std::nullopt;
    return cur;
}

bool IommuShell::mem_access(tlm::tlm_command cmd, uint64_t addr, void* data, unsigned len, Duration& local,
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

void IommuShell::invalidate_dmi(sc_dt::uint64 start, sc_dt::uint64 end) {
    for (DmiSlot& s : dmi_)
        if (s.start <= end && s.end >= start) s = DmiSlot{};
}

void IommuShell::send_msi(uint64_t address, uint32_t data, Duration& local) {
    local += sp_.status_write;
    mem_access(tlm::TLM_WRITE_COMMAND, address, &data, 4, local, /*allow_dmi=*/false);
    st_msis_.inc();
}

void IommuShell::send_message(pcie::MessageExtension& m, uint64_t payload, Duration& local) {
    sc_time d = to_sc(local);
    messages_.send(ats_inv, m, d, payload);
    local = from_sc(d);
    if (m.code == pcie::MessageCode::prg_response) st_prg_responses_.inc();
}

void IommuShell::respond_page_request(const pcie::PageRequest& pr, pcie::PrgResponseCode code, Duration& local) {
    if (!pr.last) return; // a response is owed only for the last request of a group
    pcie::MessageExtension m;
    m.code = pcie::MessageCode::prg_response;
    m.prg_resp.destination = pr.requester;
    m.prg_resp.pasid_present = pr.pasid_present;
    m.prg_resp.pasid = pr.pasid;
    m.prg_resp.prg_index = pr.prg_index;
    m.prg_resp.code = code;
    send_message(m, 0, local);
}

// ---- construction -----------------------------------------------------------------------

IommuShell::IommuShell(const sc_core::sc_module_name& name, const ShellParams& p, const ShellStatNames& n,
                       uint32_t queue_fetch_error, Ring::Index queue_style, stats::Group* parent)
    : sc_module(name), upstream("upstream"), mem("mem"), mmio("mmio"), ats_inv("ats_inv"), sp_(p),
      stats_(basename(), parent), walk_port_(*this), unit_port_(*this),
      walkers_(p.walkers), queue_(*this, queue_fetch_error, queue_style),
      ats_(p.ats_timeout),
      st_requests_(stats_.counter(n.requests.name, "count", n.requests.description)),
      st_translated_(stats_.counter(n.translated.name, "count", n.translated.description)),
      st_translation_requests_(stats_.counter(n.translation_requests.name, "count", n.translation_requests.description)),
      st_blocked_translated_(stats_.counter(n.translated_blocked.name, "count", n.translated_blocked.description)),
      st_faults_(stats_.counter(n.faults.name, "count", n.faults.description)),
      st_faults_suppressed_(stats_.counter(n.faults_suppressed.name, "count", n.faults_suppressed.description)),
      st_snoop_forced_(stats_.counter(n.snoop_forced.name, "count", n.snoop_forced.description)),
      st_no_snoop_to_memory_(stats_.counter(n.no_snoop_to_memory.name, "count", n.no_snoop_to_memory.description)),
      st_table_reads_(stats_.counter(n.table_reads.name, "count", n.table_reads.description)),
      st_commands_(stats_.counter(n.commands.name, "count", n.commands.description)),
      st_queue_errors_(stats_.counter(n.queue_errors.name, "count", n.queue_errors.description)),
      st_ats_timeouts_(stats_.counter(n.ats_timeouts.name, "count", n.ats_timeouts.description)),
      st_unknown_itags_(stats_.counter(n.unknown_itags.name, "count", n.unknown_itags.description)),
      st_ats_inv_sent_(stats_.counter(n.ats_inv_sent.name, "count", n.ats_inv_sent.description)),
      st_syncs_(stats_.counter(n.syncs.name, "count", n.syncs.description)),
      st_page_requests_(stats_.counter(n.page_requests.name, "count", n.page_requests.description)),
      st_page_request_overflows_(
          stats_.counter(n.page_request_overflows.name, "count", n.page_request_overflows.description)),
      st_prg_responses_(stats_.counter(n.prg_responses.name, "count", n.prg_responses.description)),
      st_msis_(stats_.counter(n.msis.name, "count", n.msis.description)),
      st_walk_queueing_(stats_.counter(n.walk_queueing.name, "ns", n.walk_queueing.description)),
      st_sync_latency_(stats_.histogram(n.sync_latency.name, "ns", n.sync_latency.description)),
      st_atc_inv_latency_(stats_.histogram(n.atc_inv_latency.name, "ns", n.atc_inv_latency.description)) {
    pipeline_sc_ = to_sc(sp_.pipeline);
    iotlb_lookup_sc_ = to_sc(sp_.iotlb_lookup);
    mem.register_invalidate_direct_mem_ptr(this, &IommuShell::invalidate_dmi);
    mmio.register_b_transport(this, &IommuShell::b_transport_mmio);
    SC_HAS_PROCESS(IommuShell);
    SC_THREAD(queue_engine);
}

void IommuShell::build_core() { core_.emplace(walk_port_, sp_.core, &stats_); }

void IommuShell::set_trace(trace::Recorder* r) {
    trace_ = r;
    if (!r) return;
    // Walk slots are consecutive tracks, so slot i is trace_walkers_ + i.
    trace_walkers_ = r->track(name(), "walker 0");
    for (size_t i = 1; i < walkers_.size(); ++i) r->track(name(), "walker " + std::to_string(i));
    trace_faults_ = r->track(name(), "faults");
    trace_pri_ = r->track(name(), "page requests");
    trace_queue_ = r->track(name(), "queue engine");
}

bool IommuShell::fail_request(tlm::tlm_generic_payload& t, pcie::TlpExtension& ext, const RequestAttrs& req,
                              uint32_t reason, bool suppress, sc_time& delay) {
    Duration local = from_sc(delay);
    holding_ = 0;
    fault_detected(ext.requester, req, t.get_address(), t.is_write(), reason, suppress, local);
    delay = to_sc(local);
    t.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
    if (!holding_) return false;
    const uint64_t ticket = holding_;
    holding_ = 0;
    if (!wait_held(ticket, delay)) return false;
    ext.held_retry_at = now(); // the requester's access is the retry, made now
    t.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
    return true;
}

bool IommuShell::can_hold() {
    const sc_core::sc_curr_proc_kind k = sc_core::sc_get_current_process_handle().proc_kind();
    return k == sc_core::SC_THREAD_PROC_ || k == sc_core::SC_CTHREAD_PROC_;
}

uint64_t IommuShell::hold_request() {
    holding_ = ++next_ticket_;
    held_.emplace(holding_, Held{});
    return holding_;
}

void IommuShell::release_held(uint64_t ticket, bool retry, Duration local) {
    const auto it = held_.find(ticket);
    if (it == held_.end() || it->second.released) return;
    it->second = Held{true, retry, now() + local};
    held_released_.notify(to_sc(local)); // the earliest pending release wins; later ones re-wait below
}

bool IommuShell::wait_held(uint64_t ticket, sc_time& delay) {
    // The requester's local time catches up first: from here on its thread is blocked.
    wait(delay);
    delay = sc_core::SC_ZERO_TIME;
    for (;;) {
        const auto it = held_.find(ticket);
        if (it == held_.end()) return false;
        const Held h = it->second;
        if (h.released && h.at <= now()) {
            held_.erase(it);
            return h.retry;
        }
        if (h.released) wait(to_sc(h.at - now()));
        else wait(held_released_);
    }
}

void IommuShell::upstream_message(tlm::tlm_generic_payload& t, sc_time& delay) {
    if (auto* m = t.get_extension<pcie::MessageExtension>()) {
        Duration local = from_sc(delay);
        handle_message(*m, local);
        t.set_response_status(tlm::TLM_OK_RESPONSE);
        delay = to_sc(local);
        return;
    }
    t.set_response_status(tlm::TLM_GENERIC_ERROR_RESPONSE); // every request carries its TLP fields
    SC_REPORT_ERROR(name(), "upstream request without a pcie::TlpExtension (requester ID, PASID, AT): attach one to every DMA payload");
}

// ---- MMIO ---------------------------------------------------------------------------------

void IommuShell::b_transport_mmio(tlm::tlm_generic_payload& t, sc_time& delay) {
    const unsigned len = t.get_data_length();
    const uint64_t off = t.get_address();
    if ((len != 4 && len != 8) || off % len || off + len > sp_.mmio_size || t.get_byte_enable_ptr()) {
        t.set_response_status(tlm::TLM_BURST_ERROR_RESPONSE);
        return;
    }
    Duration local = from_sc(delay) + sp_.mmio_access;
    // The consumer position the engine reached by now (it runs ahead in local time).
    if (!unpublished_.empty()) publish_consumed(now());
    if (t.is_read()) {
        const uint64_t v = mmio_read(static_cast<uint32_t>(off), len);
        std::memcpy(t.get_data_ptr(), &v, len);
    } else if (t.is_write()) {
        uint64_t v = 0;
        std::memcpy(&v, t.get_data_ptr(), len);
        mmio_write(static_cast<uint32_t>(off), len, v, local);
        queue_view_stale_ = true; // any register may feed the queue's view (sync_queue)
    }
    delay = to_sc(local);
    t.set_response_status(tlm::TLM_OK_RESPONSE);
}

// ---- upstream: DMA, ATS, messages ---------------------------------------------------------

void IommuShell::trace_request(const tlm::tlm_generic_payload& t, const pcie::TlpExtension& ext, Duration from,
                               Duration to) {
    const uint32_t track = trace_->track(name(), "requests from " + ext.requester.str());
    const bool translation = ext.at == pcie::AddressType::translation_request;
    if (translation && t.is_response_ok()) trace_->counter(trace_walkers_, "translation completions (ATC fills)", to, ++trace_completions_);
    if (!trace_->sample_dma(track)) return;
    using S = pcie::TlpExtension::Source;
    const char* name = translation ? "ATS translation"
                       : !t.is_response_ok() ? "DMA (error)"
                       : ext.served_by == S::iotlb ? "DMA (IOTLB hit)"
                       : ext.served_by == S::walk ? "DMA (walk)"
                       : ext.at == pcie::AddressType::translated ? "DMA (translated)"
                                                                  : "DMA (pass-through)";
    trace_->span(track, name, "dma", from, to, {"iova", t.get_address(), true}, {"pa", ext.output_address, true},
                 {"bytes", t.get_data_length(), false});
}

void IommuShell::fault_detected(pcie::Bdf rid, const RequestAttrs& req, uint64_t addr, bool write, uint32_t reason,
                       bool suppress, Duration& local) {
    st_faults_.inc();
    if (trace_)
        trace_->instant(trace_faults_, suppress ? "fault (suppressed)" : "fault", "fault", now() + local,
                        {"rid", rid.raw, true}, {"addr", addr, true}, {"reason", reason, false});
    if (suppress) {
        st_faults_suppressed_.inc();
        return;
    }
    record_fault(rid, req, addr, write, reason, local);
}

TranslateResult IommuShell::translate(const TranslationContext& ctx, const AccessRequest& a, sc_time& delay,
                                      bool stage1_only) {
    delay += iotlb_lookup_sc_;
    walk_port_.begin(from_sc(delay));
    TranslateResult r = stage1_only ? core_->translate_s1(ctx, a) : core_->translate(ctx, a);
    if (!r.iotlb_hit) account_walk(r, delay);
    return r;
}

void IommuShell::account_walk(const TranslateResult& r, sc_time& delay) {
    // A walk occupies one of the walk slots (loosely-timed contention, DESIGN.md "Timing"):
    // the slot that frees up earliest (BusyPool).
    const Duration t = now();
    const Duration arrival = t + from_sc(delay);
    const BusyPool::Use use = walkers_.reserve(arrival, r.latency);
    const Duration start = use.start;
    if (start == arrival) { // no queueing: the walk's latency adds to the request's delay
        if (r.latency != walk_latency_) walk_latency_ = r.latency, walk_latency_sc_ = to_sc(r.latency);
        delay += walk_latency_sc_;
    } else {
        delay = to_sc(start + r.latency - t);
    }
    st_table_reads_.inc(r.reads);
    if (trace_)
        trace_->slice(trace_walkers_ + use.slot, "walk", "walk", start, start + r.latency, {"reads", r.reads, false},
                      {"queued_ps", (start - arrival).as_ps(), false});
    if (trace_ && r.t.ok()) trace_->counter(trace_walkers_, "iotlb fills", start + r.latency, ++trace_fills_);
    if (start != arrival) st_walk_queueing_.inc(static_cast<uint64_t>((start - arrival).as_ns()));
}

void IommuShell::handle_translation_request(tlm::tlm_generic_payload& t, pcie::TlpExtension& ext, sc_time& delay) {
    delay += pipeline_sc_;
    st_translation_requests_.inc();
    if (!translation_enabled() || !sp_.ats || t.get_data_length() < 8) {
        t.set_response_status(tlm::TLM_COMMAND_ERROR_RESPONSE); // UR: no translation service
        return;
    }
    RequestAttrs req = attrs_of(ext);
    req.ats = true;
    const uint64_t iova = t.get_address() & ~uint64_t{0xFFF};
    const Resolution r = resolve(ext.requester, req, delay);
    if (r.fault) {
        // Context-level errors are non-recoverable: recorded and answered UR.
        Duration local = from_sc(delay);
        fault_detected(ext.requester, req, iova, false, r.fault, r.suppress, local);
        delay = to_sc(local);
        t.set_response_status(tlm::TLM_COMMAND_ERROR_RESPONSE);
        return;
    }
    pcie::AtsTranslation c;
    if (r.ctx->pass_through) {
        c = pcie::AtsTranslation::for_range(iova, 0);
        const uint8_t rd = perm::needed(false, false, req.privileged);
        const uint8_t wr = perm::needed(true, false, req.privileged);
        c.read = (r.ctx->rights & rd) == rd;
        c.write = (r.ctx->rights & wr) == wr;
        c.execute = req.execute && r.ctx->allow_execute && c.read;
        c.privileged = req.privileged;
        c.no_snoop = r.ctx->force_snoop; // N: snooping forced by the context
    } else if (r.ctx->ats_split_stage && !r.ctx->s1.enabled) {
        // Split-stage ATS with stage 1 bypassed: the IPA is the input address; stage 2 checks
        // the translated requests.
        c = pcie::AtsTranslation::for_range(iova, 0);
        c.read = c.write = true;
        c.execute = req.execute;
        c.privileged = req.privileged;
    } else {
        // Ask for read and (if allowed) write: the completion reports the rights the walk finds.
        // Split-stage ATS: stage 1 alone, the completion carries the IPA.
        AccessRequest a{iova, false, req.execute, req.privileged};
        const TranslateResult res = translate(*r.ctx, a, delay, r.ctx->ats_split_stage);
        const Translation& tr = res.t;
        if (tr.ok()) {
            const unsigned order = tr.page_shift - 12u;
            c = pcie::AtsTranslation::for_range(tr.output & ~((uint64_t{1} << tr.page_shift) - 1), order);
            const uint8_t rd = perm::needed(false, false, req.privileged);
            const uint8_t wr = perm::needed(true, false, req.privileged);
            const uint8_t ex = perm::needed(false, true, req.privileged) & ~rd;
            const uint8_t rights = tr.perms & r.ctx->rights; // the context's rights too (AMD DTE.IR/IW)
            c.read = (rights & rd) == rd;
            c.write = (rights & wr) == wr;
            c.execute = req.execute && (rights & ex) == ex;
            c.privileged = req.privileged;
            c.global = tr.global;
            c.user = tr.untranslated_only; // U: the device must use untranslated requests for it
            // N (bit 10, spec-layouts.md D.5): requests using this translation must clear No
            // Snoop — set when the context or the leaf's snoop bit forces snooping.
            c.no_snoop = r.ctx->force_snoop || (sp_.snoop_control && tr.snoop);
        } else {
            c = pcie::AtsTranslation::for_range(iova, 0); // R=W=0: no access (not an error)
            c.translated = 0;
        }
    }
    const uint64_t e = pcie::encode_translation_entry(c);
    std::memcpy(t.get_data_ptr(), &e, 8);
    t.set_response_status(tlm::TLM_OK_RESPONSE);
}

void IommuShell::handle_message(const pcie::MessageExtension& m, Duration& local) {
    switch (m.code) {
    case pcie::MessageCode::ats_invalidate_completion: {
        const pcie::Bdf from = m.inv_cpl.requester;
        if (ats_.unknown_itags(from.raw, m.inv_cpl.itag_vector)) {
            st_unknown_itags_.inc();
            report_unknown_itag(from, local);
            if (observer_) observer_->on_queue_error();
            if (!ats_.knows(from.raw)) return;
        }
        const Duration t = now() + local;
        bool unit = false, aux = false; // whose invalidations it completes
        ats_.complete(from.raw, m.inv_cpl.itag_vector, [&](const AtsInvalidationTracker::Done& d) {
            st_atc_inv_latency_.record((t - d.sent).as_ns());
            (d.issuer == 0 ? unit : aux) = true;
            if (d.issuer == 0) phase(d.cookie, InvalPhase::devtlb_completed, t, from); // (a phase of the unit's queue)
        });
        // Each engine's syncs wait for the arrival of their own completions only.
        if ((unit || !aux) && t > ats_last_completion_) ats_last_completion_ = t;
        if (aux && t > aux_last_completion_) aux_last_completion_ = t;
        notify_completion(local);
        return;
    }
    case pcie::MessageCode::page_request:
        if (trace_)
            trace_->instant(trace_pri_, "page request", "pri", now() + local, {"rid", m.page_req.requester.raw, true},
                            {"addr", m.page_req.address, true}, {"pasid", m.page_req.pasid, false});
        accept_page_request(m.page_req, local);
        return;
    default: return; // other messages are not addressed to the translation agent
    }
}

// ---- command-queue engine -------------------------------------------------------------------

void IommuShell::publish_consumed(Duration t) {
    // Positions only move forward: the latest one due is the register's value.
    size_t due = 0;
    while (due < unpublished_.size() && unpublished_[due].at <= t) ++due;
    if (due == 0) return;
    const Consumed& c = unpublished_[due - 1];
    // A position of a queue software disabled or re-based since is not published.
    if (c.generation == queue_.generation()) queue_consumed(c.cons);
    unpublished_.erase(unpublished_.begin(), unpublished_.begin() + static_cast<std::ptrdiff_t>(due));
}

void IommuShell::engine_sync() {
    if (ahead_ > Duration::zero()) {
        wait(to_sc(ahead_));
        ahead_ = Duration::zero();
    }
    kernel_ = now();
    if (!unpublished_.empty()) publish_consumed(AtsInvalidationTracker::kNever);
}

bool IommuShell::engine_sync_live() {
    engine_sync();
    // Software disabled or re-based the queue meanwhile: the command belongs to a queue that
    // no longer exists (no status write, no message, no error).
    return queue_.generation() == command_generation_;
}

void IommuShell::engine_sync_until(Duration at) {
    wait(to_sc(at - now()));
    ahead_ = Duration::zero();
    if (!unpublished_.empty()) publish_consumed(AtsInvalidationTracker::kNever);
}

void IommuShell::queue_engine() {
    // The engine runs ahead of the kernel in local time (ahead_), each step adding its cost,
    // and synchronises only where it interacts (see engine_sync's callers): a batch of
    // invalidations and its sync cost one wait(), not one or two per command.
    for (;;) {
        // Idle until the queue is enabled, has work and no error blocks fetching. The queue's
        // view of the registers is refreshed only when they may have changed (a register write,
        // a kick, a hook that reports into them): sync_queue is a function of the registers,
        // which must hold the consumer position reached first.
        if (queue_view_stale_) {
            if (!unpublished_.empty()) publish_consumed(AtsInvalidationTracker::kNever);
            queue_view_stale_ = false;
            sync_queue(queue_);
        }
        if (!queue_.has_work()) {
            if (!unpublished_.empty()) {
                engine_sync(); // publish the positions at their times, then look again
                continue;
            }
            // Idle without catching up first (no second wait per batch): work that arrives
            // before the last command's end starts at that end.
            const Duration idle_from = now() + ahead_;
            while (!queue_.has_work()) {
                wait(engine_kick_);
                queue_view_stale_ = false;
                sync_queue(queue_);
            }
            const Duration k = now();
            ahead_ = idle_from > k ? idle_from - k : Duration::zero();
        }
        const Duration kernel = kernel_ = now(); // the kernel's time until something synchronises
        // A tail written at a later local time is not visible yet (temporal decoupling).
        if (!tail_writes_.empty()) {
            if (tail_writes_.front().second > kernel + ahead_) {
                engine_sync_until(tail_writes_.front().second);
                continue;
            }
            submitted_ = tail_writes_.front().second; // the write that made it visible
        } else {
            submitted_ = kernel + ahead_;
        }
        const uint64_t seq = queue_.consumed();
        const uint64_t generation = command_generation_ = queue_.generation();
        if (trace_) trace_->counter(trace_queue_, "queue occupancy", kernel + ahead_, queue_.ring().used());
        // The read is issued at the engine's local time; its latency adds to it.
        const CommandQueue::Fetched f = queue_.fetch(unit_port_, ahead_);
        if (f.status != CommandQueue::Status::tail_error) ahead_ += sp_.queue.fetch;
        if (!f.ok()) {
            engine_sync(); // the error becomes visible when the fetch is done
            st_queue_errors_.inc();
            Duration l2;
            report_queue_error(queue_.error(), l2); // the consumer position stays on the offending command
            if (observer_) observer_->on_queue_error();
            queue_view_stale_ = true;
            continue;
        }
        phase(seq, InvalPhase::fetched, kernel + ahead_);
        // The consumer position moves past a command once it is fetched and valid (a sync of a
        // family that reports its completion by the consumer position: once it completed);
        // software sees it from the step's time on.
        command_consumed_ = !sp_.sync_consumed_at_completion || !f.command.has_sync;
        if (command_consumed_) consume_fetched();
        ahead_ += sp_.queue.per_command;
        bool aborted = false;
        for (const CommandAction& a : f.command.list())
            if (queue_.generation() != generation || !execute(a, seq)) { // reset under it, or ATS time-out
                aborted = true;
                break;
            }
        command_consumed_ = true; // (a sync consumed at its completion did so in execute())
        if (!aborted) st_commands_.inc();
    }
}

void IommuShell::consume_fetched() {
    queue_.consume();
    // Software sees the new consumer position from the step's time on.
    if (ahead_ > Duration::zero())
        unpublished_.push_back({engine_now(), queue_.ring().cons_position(), command_generation_});
    else queue_consumed(queue_.ring().cons_position());
    // Tail writes the consumer position has reached are done with (all, once the queue is empty).
    // A write stamped after the engine's time (a CPU posted it ahead of the kernel) is not in the
    // ring view yet, so an empty view does not cover it.
    const Duration t = engine_now();
    while (!tail_writes_.empty() && (tail_writes_.front().first == queue_.ring().cons_offset() ||
                                     (queue_.ring().empty() && tail_writes_.front().second <= t)))
        tail_writes_.pop_front();
}

bool IommuShell::execute(const CommandAction& a, uint64_t seq) {
    if (const auto* s = std::get_if<SyncAction>(&a)) {
        if (ats_.outstanding_of(0) > 0) {
            if (!engine_sync_live()) return false;
            if (!wait_for_atc_invalidations()) return false; // time-out: the sync is aborted, no status write
        }
        // A completion delivered with a local-time offset is done only once it has arrived.
        if (ats_last_completion_ > engine_now()) ahead_ = ats_last_completion_ - now();
        if (!command_consumed_) { // complete: a sync consumed at completion leaves the queue now
            consume_fetched();
            command_consumed_ = true;
        }
        // The status word becomes visible when the write is issued, so the engine first
        // spends the write's cost, then synchronises and writes (polling software never sees
        // it early): the one wait() of a batch.
        if (s->status_write) {
            ahead_ += sp_.queue.status_write;
            if (!engine_sync_live()) return false;
            uint64_t data = s->status_data;
            mem_access(tlm::TLM_WRITE_COMMAND, s->status_addr, &data, s->status_bytes, ahead_, !s->status_is_msi);
            if (observer_) observer_->on_phase(seq, InvalPhase::wait_done, now(), {}); // visible from now on
            st_syncs_.inc();
            st_sync_latency_.record((now() - submitted_).as_ns());
        } else {
            st_syncs_.inc();
            st_sync_latency_.record((engine_now() - submitted_).as_ns());
            phase_now(seq, InvalPhase::wait_done);
        }
        if (s->interrupt) {
            // The interrupt status bit is set when the interrupt is raised: synchronise first.
            engine_sync();
            sync_interrupt(ahead_);
            queue_view_stale_ = true;
        }
        return true;
    }
    if (const auto* d = std::get_if<InvalidateDeviceAtc>(&a)) {
        if (!issue_atc_invalidation(*d, seq)) return false;
        phase_now(seq, InvalPhase::devtlb_sent, d->request.target);
        return true;
    }
    uint64_t dropped = 0;
    if (const auto* t = std::get_if<InvalidateTranslations>(&a)) {
        dropped = core_->invalidate(t->scope);
    } else if (const auto* c = std::get_if<InvalidateConfig>(&a)) {
        dropped = invalidate_config(c->cache, c->scope);
    } else if (const auto* p = std::get_if<PageResponseAction>(&a)) {
        if (!engine_sync_live()) return false; // the response leaves for the device now
        pcie::MessageExtension m;
        m.code = pcie::MessageCode::prg_response;
        m.prg_resp = p->response;
        ahead_ = sp_.queue.ats_message_send;
        send_message(m, 0, ahead_);
    } else if (const auto* n = std::get_if<NoOpAction>(&a)) {
        ahead_ += n->cost;
    } else if (const auto* h = std::get_if<ReleaseHeldAction>(&a)) {
        if (!engine_sync_live()) return false; // the held requests go on from the command's time
        release_requests(*h);
    }
    ahead_ += sp_.queue.per_entry_invalidate * dropped;
    // (kernel_ is current: these paths wait only through engine_sync, which updates it.)
    phase(seq, InvalPhase::caches_done, kernel_ + ahead_);
    return true;
}

bool IommuShell::completion_pending() const {
    if (!ats_done_.due_valid) return false;
    if (ats_done_.due > now()) return true; // timed, still ahead
    // A delta notification (zero delay) is delivered at the end of the delta it was made in.
    return ats_done_.due == now() && ats_done_.delta && ats_done_.delta_count == sc_core::sc_delta_count();
}

void IommuShell::notify_completion(Duration local) {
    // sc_event keeps the earliest pending notification; mirror which one that is.
    const Duration due = now() + local;
    if (!completion_pending() || due < ats_done_.due) {
        ats_done_.due = due;
        ats_done_.delta = local == Duration::zero();
        ats_done_.delta_count = sc_core::sc_delta_count();
        ats_done_.due_valid = true;
    }
    ats_done_.event.notify(to_sc(local));
}

void IommuShell::wait_ats(Duration deadline) {
    // Returns when a completion notification is delivered or at `deadline`, exactly like
    // wait(deadline - now, completion event), but with ONE timer per engine instead of a kernel
    // timer per call (each leaves a cancelled timed notification behind). Deadlines only move
    // later as invalidations complete, so the timer is re-armed only for an earlier deadline; a
    // wake-up by a stale timer is not acted on: the engine must look at completions only when
    // their notification is delivered, as with the timed wait.
    if (ats_done_.due_valid && !completion_pending()) ats_done_.due_valid = false; // delivered to nobody
    for (;;) {
        if (ats_timer_armed_ && now() >= ats_timer_at_) ats_timer_armed_ = false;
        if (deadline < AtsInvalidationTracker::kNever && (!ats_timer_armed_ || deadline < ats_timer_at_)) {
            ats_timer_.notify(to_sc(deadline - now()));
            ats_timer_at_ = deadline;
            ats_timer_armed_ = true;
        }
        wait(ats_done_.event | ats_timer_);
        if (ats_done_.due_valid && !completion_pending()) { // the completion notification woke us
            ats_done_.due_valid = false;
            return;
        }
        if (now() >= deadline) return;
    }
}

bool IommuShell::issue_atc_invalidation(const InvalidateDeviceAtc& d, uint64_t seq) {
    if (!engine_sync_live()) return false; // the request leaves for the device (and its time-out runs) from now
    const pcie::Bdf dev = d.request.target;
    // Bounded by the device's invalidate queue depth: wait for a free slot (or time out).
    while (!ats_.can_issue(dev.raw, d.queue_depth)) {
        const Duration earliest = ats_.earliest(dev.raw).at;
        if (now() >= earliest) {
            st_ats_timeouts_.inc();
            Duration l;
            report_ats_timeout(dev, l);
            if (observer_) observer_->on_queue_error();
            queue_view_stale_ = true;
            ats_.abandon(dev.raw, 0);
            return false;
        }
        wait_ats(earliest);
    }
    ahead_ = sp_.queue.ats_message_send;
    send_atc_request(d.request, seq, 0, ahead_);
    return true;
}

void IommuShell::send_atc_request(const pcie::AtsInvalidateRequest& r, uint64_t cookie, uint8_t issuer, Duration& local) {
    pcie::MessageExtension m;
    m.code = pcie::MessageCode::ats_invalidate_request;
    m.inv_req = r;
    m.inv_req.itag = ats_.issue(r.target.raw, now() + local, cookie, issuer);
    send_message(m, pcie::encode_invalidate_payload(m.inv_req), local);
    st_ats_inv_sent_.inc();
}

bool IommuShell::send_aux_atc_invalidation(const InvalidateDeviceAtc& d, Duration& local) {
    if (!ats_.can_issue(d.request.target.raw, d.queue_depth)) return false;
    local += sp_.queue.ats_message_send;
    send_atc_request(d.request, 0, kAuxIssuer, local);
    return true;
}

std::optional<Duration> IommuShell::aux_atc_deadline(std::optional<uint32_t> device) const {
    const AtsInvalidationTracker::Deadline d = device ? ats_.earliest(*device) : ats_.earliest_of(kAuxIssuer);
    return d.any ? std::optional<Duration>(d.at) : std::nullopt;
}

void IommuShell::abandon_aux_atc(std::optional<uint32_t> device) {
    if (device) ats_.abandon(*device, kAuxIssuer);
    else ats_.abandon_all(kAuxIssuer);
}

bool IommuShell::wait_for_atc_invalidations() {
    while (ats_.outstanding_of(0) > 0) {
        const AtsInvalidationTracker::Deadline d = ats_.earliest_of(0);
        if (now() >= d.at) {
            st_ats_timeouts_.inc();
            Duration l;
            report_ats_timeout(pcie::Bdf(static_cast<uint16_t>(d.requester)), l);
            if (observer_) observer_->on_queue_error();
            queue_view_stale_ = true;
            // Everything outstanding is abandoned; software re-issues after clearing the error.
            ats_.abandon_all(0);
            return false;
        }
        wait_ats(d.at);
    }
    return true;
}

} // namespace iommusim::iommu
