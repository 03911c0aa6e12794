// SPDX-License-Identifier: Apache-2.0
#include "models/common/sc_time.hpp"
#include "models/pcie/ats_endpoint.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "models/pcie/ats_codec.hpp"

namespace iommusim::pcie {

using sc_core::sc_time;

AtsEndpoint::AtsEndpoint(const sc_core::sc_module_name& name, const AtsEndpointParams& p, stats::Group* parent)
    : sc_module(name), upstream("upstream"), downstream("downstream"), p_(p), stats_(basename(), parent),
      atc_(p_, stats_), inv_queue_(p_.invalidation_processing),
      // atc.hits / atc.misses count the lookups (one per DMA access); this one the hits that could not be used.
      st_permission_misses_(stats_.counter("atc_permission_misses", "count",
                                           "DMA accesses whose cached translation lacked the permission: a Translation Request followed")),
      st_untranslated_(stats_.counter("untranslated_requests", "count", "memory requests sent with AT=00")),
      st_inv_received_(stats_.counter("invalidations_received", "count", "ATS Invalidate Requests received")),
      st_stale_completions_(stats_.counter("stale_translations_dropped", "count",
                                           "translations still in flight when an overlapping invalidation ran")),
      st_page_requests_(stats_.counter("page_requests", "count", "Page Requests sent")),
      st_no_snoop_cleared_(stats_.counter("no_snoop_cleared", "count",
                                          "translated requests asked with No Snoop, sent snooped: their translation had N set")),
      st_inv_latency_(stats_.histogram("invalidation_latency", "ns", "Invalidate Request arrival to Completion")),
      st_page_request_latency_(stats_.histogram("page_request_latency", "ns",
                                                "Page Request sent to its PRG Response received: the device's fault service time")) {
    if (p_.max_translation_requests < 1) throw std::invalid_argument(std::string(basename()) + ": max_translation_requests must be >= 1");
    atc_lookup_sc_ = to_sc(p_.atc_lookup);
    downstream.register_b_transport(this, &AtsEndpoint::b_transport_downstream);
    SC_HAS_PROCESS(AtsEndpoint);
    SC_THREAD(invalidation_thread);
}

bool AtsEndpoint::atc_holds(uint64_t iova, std::optional<uint32_t> pasid) { return atc_.find(iova, pasid).has_value(); }

tlm::tlm_response_status AtsEndpoint::issue(uint64_t addr, void* data, unsigned len, bool write,
                                            std::optional<uint32_t> pasid, AddressType at, bool privileged,
                                            bool no_snoop, sc_time& delay) {
    // One payload and extension reused for every request: issue() is never re-entered
    // (the IOMMU answers inside b_transport and sends messages on other sockets).
    tlm::tlm_generic_payload& g = payload_;
    TlpExtension& ext = ext_;
    ext.requester = p_.rid;
    // Translated requests carry no PASID (the translation already encodes it; PCIe §6.20).
    ext.pasid_present = pasid.has_value() && at != AddressType::translated;
    ext.pasid = pasid.value_or(0);
    ext.privileged = privileged && ext.pasid_present;
    ext.at = at;
    ext.no_snoop = no_snoop;
    ext.tag = tag_++ & 0x3FF;
    // Reset per request: the extension object is reused.
    ext.served_by = at == AddressType::translated ? TlpExtension::Source::atc : TlpExtension::Source::none;
    ext.output_address = at == AddressType::translated ? addr : 0; // an ATC hit is already physical
    ext.held_retry_at = Duration{};
    g.set_command(write ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND);
    g.set_address(addr);
    g.set_data_ptr(static_cast<unsigned char*>(data));
    g.set_data_length(len);
    g.set_streaming_width(len);
    g.set_byte_enable_ptr(nullptr);
    g.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
    g.set_extension(&ext);
    // Cleared on every way out: an IOMMU may hold the request (SMMUv3 stall) and the thread be
    // killed at the end of the run, unwinding through here (the payload must not own ext_ then).
    struct Detach {
        tlm::tlm_generic_payload& g;
        TlpExtension* e;
        ~Detach() { g.clear_extension(e); }
    } detach{g, &ext};
    upstream->b_transport(g, delay);
    if (at != AddressType::translation_request) {
        last_source_ = ext.served_by;
        last_output_ = ext.output_address;
        last_held_retry_ = ext.held_retry_at; // an IOMMU that held the request says when it retried
    }
    return g.get_response_status();
}

bool AtsEndpoint::translate(uint64_t iova, std::optional<uint32_t> pasid, bool privileged, sc_time& delay) {
    // A Translation Request slot: when all are in flight the miss waits for the oldest.
    bool stalled = false, tag_stalled = false;
    Duration issue_at = atc_.translation_slots().take(now() + from_sc(delay), stalled);
    if (tags_) issue_at = tags_->take(issue_at, tag_stalled);
    if (stalled || tag_stalled) {
        atc_.st.translation_stalls.inc();
        delay = from_now(issue_at);
    }
    uint64_t entry = 0;
    atc_.st.translation_requests.inc();
    const auto st = issue(iova & ~uint64_t{0xFFF}, &entry, 8, false, pasid, AddressType::translation_request,
                          privileged, false, delay);
    const Duration done = now() + from_sc(delay);
    atc_.translation_slots().hold(done);
    if (tags_) tags_->hold(done);
    atc_.st.translation_latency.record((done - issue_at).as_ns());
    if (st != tlm::TLM_OK_RESPONSE) return false;
    return atc_.fill(iova, pasid, decode_translation_entry(entry), done) != Atc::Fill::no_access;
}

tlm::tlm_response_status AtsEndpoint::dma(uint64_t iova, void* data, unsigned len, bool write,
                                          std::optional<uint32_t> pasid, sc_time& delay, bool privileged, bool no_snoop) {
    if (!observer_) return dma_inner(iova, data, len, write, pasid, delay, privileged, no_snoop);
    const Duration start = now() + from_sc(delay);
    last_source_ = TlpExtension::Source::none;
    const uint64_t page_requests_before = st_page_requests_.value();
    const auto st = dma_inner(iova, data, len, write, pasid, delay, privileged, no_snoop);
    {
        DmaRecord r;
        r.requester = p_.rid;
        r.pasid_present = pasid.has_value();
        r.pasid = pasid.value_or(0);
        r.iova = iova;
        r.pa = last_output_;
        r.write = write;
        // After a page request the access that completed is the retry, made once the host had
        // mapped the page: the oracle must judge it at that time, not at the first attempt. The
        // same for a request the IOMMU held (stalled) and retried once software resumed it.
        r.at_ps = (st_page_requests_.value() != page_requests_before ? retry_at_
                   : last_held_retry_ != Duration{}                  ? last_held_retry_
                                                                     : start)
                      .as_ps();
        r.source = last_source_;
        r.ok = st == tlm::TLM_OK_RESPONSE;
        observer_(r);
    }
    return st;
}

bool AtsEndpoint::dma_span(uint64_t iova, void* data, uint32_t len, bool write, std::optional<uint32_t> pasid,
                           sc_time& delay, bool no_snoop) {
    auto* p = static_cast<uint8_t*>(data);
    bool ok = true;
    while (len) {
        const auto chunk = static_cast<uint32_t>(std::min<uint64_t>(len, 4096 - (iova & 0xFFF)));
        if (dma(iova, p, chunk, write, pasid, delay, false, no_snoop) != tlm::TLM_OK_RESPONSE) ok = false;
        iova += chunk;
        p += chunk;
        len -= chunk;
    }
    return ok;
}

tlm::tlm_response_status AtsEndpoint::dma_inner(uint64_t iova, void* data, unsigned len, bool write,
                                                std::optional<uint32_t> pasid, sc_time& delay, bool privileged,
                                                bool no_snoop) {
    if (!p_.ats_enabled) {
        st_untranslated_.inc();
        return issue(iova, data, len, write, pasid, AddressType::untranslated, privileged, no_snoop, delay);
    }
    auto send_translated = [&](const Atc::Entry& e) {
        atc_.st.translated.inc();
        if (no_snoop && e.no_snoop) st_no_snoop_cleared_.inc(); // N: the range must be accessed snooped
        auto st = issue(e.output(iova), data, len, write, pasid, AddressType::translated, privileged,
                        no_snoop && !e.no_snoop, delay);
        const Duration t = now();
        atc_.issued(iova, pasid, t, t + from_sc(delay));
        return st;
    };
    delay += atc_lookup_sc_;
    std::optional<Atc::Entry> e = atc_.lookup(iova, pasid);
    if (e && e->allows(write)) return send_translated(*e);
    if (e) st_permission_misses_.inc();
    for (int attempt = 0; attempt < 2; ++attempt) {
        if (translate(iova, pasid, privileged, delay)) {
            e = atc_.find(iova, pasid);
            if (!e) { // U=1: the range may only be accessed untranslated (not cached)
                st_untranslated_.inc();
                return issue(iova, data, len, write, pasid, AddressType::untranslated, privileged, no_snoop, delay);
            }
            if (e->allows(write)) return send_translated(*e);
        }
        atc_.st.no_access.inc();
        if (!p_.pri_enabled || attempt > 0 || !pasid) break;
        // PRI: ask the host to make the page present, then translate once more.
        if (request_page(iova, write, pasid, 0, delay) != PrgResponseCode::success) break;
        retry_at_ = now() + from_sc(delay);
    }
    return tlm::TLM_ADDRESS_ERROR_RESPONSE;
}

PrgResponseCode AtsEndpoint::request_page(uint64_t addr, bool write, std::optional<uint32_t> pasid,
                                          uint16_t prg_index, sc_time& delay) {
    MessageExtension m;
    m.code = MessageCode::page_request;
    m.page_req.requester = p_.rid;
    m.page_req.pasid_present = pasid.has_value();
    m.page_req.pasid = pasid.value_or(0);
    m.page_req.address = addr & ~uint64_t{0xFFF};
    m.page_req.read = !write;
    m.page_req.write = write;
    m.page_req.last = true;
    m.page_req.prg_index = prg_index & 0x1FF;
    last_prg_.reset();
    st_page_requests_.inc();
    const Duration sent = now() + from_sc(delay);
    messages_.send(upstream, m, delay);
    // The response is an asynchronous message: synchronise and wait for it.
    wait(delay);
    delay = sc_core::SC_ZERO_TIME;
    while (!last_prg_ || last_prg_->prg_index != m.page_req.prg_index) wait(prg_arrived_);
    st_page_request_latency_.record((now() - sent).as_ns());
    return last_prg_->code;
}

void AtsEndpoint::b_transport_downstream(tlm::tlm_generic_payload& t, sc_time& delay) {
    const auto* m = t.get_extension<MessageExtension>();
    if (!m) {
        t.set_response_status(tlm::TLM_COMMAND_ERROR_RESPONSE);
        return;
    }
    t.set_response_status(tlm::TLM_OK_RESPONSE);
    if (m->code == MessageCode::ats_invalidate_request) {
        st_inv_received_.inc();
        if (p_.drop_invalidations) return;
        inv_queue_.push(m->inv_req, 0, delay);
    } else if (m->code == MessageCode::prg_response) {
        last_prg_ = m->prg_resp;
        prg_arrived_.notify(delay);
    }
}

void InvalidationQueue::push(const AtsInvalidateRequest& r, uint32_t function, const sc_core::sc_time& delay) {
    q_.push_back(Item{r, function, kernel_now() + from_sc(delay)});
    // An idle thread wakes when this request's processing ends (an earlier notification
    // pending for a request before it wins; next() then waits for this one's end itself).
    arrived_.notify(delay + processing_sc_);
}

InvalidationQueue::Item InvalidationQueue::next() {
    bool woken = false;
    while (q_.empty()) {
        idle_since_ = kernel_now();
        sc_core::wait(arrived_);
        woken = true;
    }
    const Item it = q_.front();
    q_.pop_front();
    // Processing starts at its arrival or when the thread was done with the one before.
    const Duration now = kernel_now();
    const Duration done = std::max(it.arrival, woken ? idle_since_ : now) + processing_;
    if (!woken || done > now) sc_core::wait(to_sc(done - now));
    return it;
}

Atc::Invalidated process_invalidation(Atc& atc, const AtsInvalidateRequest& r) {
    const Atc::Invalidated inv = atc.invalidate(r, kernel_now());
    if (inv.drain_until > kernel_now()) sc_core::wait(to_sc(inv.drain_until - kernel_now()));
    return inv;
}

MessageExtension invalidate_completion(Bdf requester, const AtsInvalidateRequest& r) {
    MessageExtension m;
    m.code = MessageCode::ats_invalidate_completion;
    m.inv_cpl.requester = requester;
    m.inv_cpl.itag_vector = 1u << (r.itag & 31);
    m.inv_cpl.cc = 1;
    return m;
}

void AtsEndpoint::invalidation_thread() {
    for (;;) {
        const InvalidationQueue::Item pi = inv_queue_.next();
        const Atc::Invalidated inv = process_invalidation(atc_, pi.req);
        st_stale_completions_.inc(inv.stale);
        atc_.st.entries_invalidated.inc(inv.dropped);
        if (inv.drain_until > inv.processed_at) atc_.st.drains.inc();
        MessageExtension m = invalidate_completion(p_.rid, pi.req);
        sc_time d = sc_core::SC_ZERO_TIME;
        messages_.send(upstream, m, d);
        atc_.st.invalidations_completed.inc();
        st_inv_latency_.record((now() - pi.arrival).as_ns());
    }
}

} // namespace iommusim::pcie
