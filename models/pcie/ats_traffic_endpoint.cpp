// SPDX-License-Identifier: Apache-2.0
#include "models/pcie/ats_traffic_endpoint.hpp"

#include <stdexcept>
#include <string>

#include "models/common/sc_time.hpp"
#include "models/pcie/ats_codec.hpp"

namespace iommusim::pcie {

AtsTrafficEndpoint::Function::Function(const AtsEndpointParams& p, const std::string& name, stats::Group* parent)
    : group(name, parent), atc(p, group),
      page_requests(group.counter("page_requests", "count", "PRI Page Requests sent (a Translation Completion granted no access)")),
      page_request_failures(group.counter("page_request_failures", "count",
                                          "PRG Responses other than Success (the TLP is dropped)")),
      page_request_latency(group.histogram("page_request_latency", "ns", "Page Request sent to its PRG Response")) {}

AtsTrafficEndpoint::AtsTrafficEndpoint(sc_core::sc_module_name name, const TrafficEndpointParams& params,
                                       const AtsEndpointParams& ats, stats::Group* parent_stats)
    : TrafficEndpoint(name, params, parent_stats), ats_(ats), inv_queue_(ats_.invalidation_processing),
      inv_received_(stats_group().counter("invalidations_received", "count", "ATS Invalidate Requests received (any function)")),
      inv_unknown_(stats_group().counter("invalidations_unknown_function", "count",
                                         "Invalidate Requests for a RID that is none of this device's functions (UR)")) {
    if (ats_.max_translation_requests < 1)
        throw std::invalid_argument(std::string(basename()) + ": max_translation_requests must be >= 1");
    if (const char* why = ats_.atc.check()) throw std::invalid_argument(std::string(basename()) + ": ATC geometry: " + why);
    for (unsigned i = 0; i < params.functions.size(); ++i) {
        fns_.push_back(std::make_unique<Function>(ats_, "fn" + std::to_string(i), &stats_group()));
        fn_of_rid_[params.functions[i].raw] = i;
    }
    SC_HAS_PROCESS(AtsTrafficEndpoint);
    SC_THREAD(invalidation_thread);
}

bool AtsTrafficEndpoint::atc_holds(unsigned function, uint64_t iova, std::optional<uint32_t> pasid) {
    return fns_.at(function)->atc.find(iova, pasid).has_value();
}

bool AtsTrafficEndpoint::translate(unsigned function, TlpExtension& tlp, uint64_t& addr, bool write, Duration& at) {
    Function& f = *fns_[function];
    const std::optional<uint32_t> pasid = tlp.pasid_present ? std::optional<uint32_t>(tlp.pasid) : std::nullopt;
    at += ats_.atc_lookup;
    std::optional<Atc::Entry> e = f.atc.lookup(addr, pasid);
    for (int attempt = 0; !e || !e->allows(write); ++attempt) {
        if (attempt > 0) { // PRI: a page made present after a Page Request's Success (§10.4)
            if (!ats_.pri_enabled || attempt > 1 || !pasid ||
                request_page(function, tlp, addr, write, at) != PrgResponseCode::success)
                return false;
        }
        // Translation Request (PCIe Base §10.2.2): a read of one 8-byte completion entry.
        bool stalled = false;
        at = f.atc.translation_slots().take(at, stalled);
        if (stalled) f.atc.st.translation_stalls.inc();
        uint64_t entry = 0;
        tlm::tlm_generic_payload& gp = translation_gp_; // reused: translate() is never re-entered
        gp.set_command(tlm::TLM_READ_COMMAND);
        gp.set_address(addr & ~uint64_t{0xFFF});
        gp.set_data_ptr(reinterpret_cast<unsigned char*>(&entry));
        gp.set_data_length(8);
        gp.set_streaming_width(8);
        gp.set_byte_enable_ptr(nullptr);
        gp.set_dmi_allowed(false);
        gp.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
        TlpExtension tr;
        tr.requester = tlp.requester;
        tr.pasid_present = tlp.pasid_present;
        tr.pasid = tlp.pasid;
        tr.privileged = tlp.privileged;
        tr.at = AddressType::translation_request;
        f.atc.st.translation_requests.inc();
        const Duration done = [&] {
            gp.set_extension(&tr);
            struct Detach { // on every way out, unwinding included (see TrafficEndpoint::issue)
                tlm::tlm_generic_payload& gp;
                ~Detach() { gp.clear_extension<TlpExtension>(); }
            } detach{gp};
            return send_upstream(gp, at);
        }();
        f.atc.translation_slots().hold(done);
        f.atc.st.translation_latency.record((done - at).as_ns());
        at = done; // the TLP waits for its translation
        const Atc::Fill fill = gp.is_response_ok() ? f.atc.fill(addr, pasid, decode_translation_entry(entry), done)
                                                   : Atc::Fill::no_access;
        if (fill == Atc::Fill::uncached) return true; // U=1: this range only untranslated
        e = fill == Atc::Fill::cached ? f.atc.find(addr, pasid) : std::nullopt;
        if (!e || !e->allows(write)) f.atc.st.no_access.inc();
    }
    // Translated request (AT=10): no PASID prefix (the translation encodes it, §6.20).
    addr = e->output(addr);
    tlp.at = AddressType::translated;
    tlp.pasid_present = false;
    tlp.privileged = false;
    tlp.execute = false;
    tlp.no_snoop = tlp.no_snoop && !e->no_snoop; // N: the range must be accessed snooped (§10.2.3)
    tlp.served_by = TlpExtension::Source::atc;
    tlp.output_address = addr;
    f.atc.st.translated.inc();
    return true;
}

void AtsTrafficEndpoint::sent(unsigned function, std::optional<uint32_t> pasid, const TlpExtension& tlp, uint64_t iova,
                              Duration done) {
    if (tlp.at == AddressType::translated) fns_[function]->atc.issued(iova, pasid, kernel_now(), done);
}

PrgResponseCode AtsTrafficEndpoint::request_page(unsigned function, const TlpExtension& tlp, uint64_t addr, bool write,
                                                 Duration& at) {
    Function& f = *fns_[function];
    MessageExtension m;
    m.code = MessageCode::page_request;
    m.page_req.requester = tlp.requester;
    m.page_req.pasid_present = tlp.pasid_present;
    m.page_req.pasid = tlp.pasid;
    m.page_req.privileged = tlp.privileged;
    m.page_req.address = addr & ~uint64_t{0xFFF};
    m.page_req.read = !write;
    m.page_req.write = write;
    m.page_req.last = true; // one page per group
    m.page_req.prg_index = f.next_prg;
    f.next_prg = (f.next_prg + 1) & 0x1FF;
    f.page_requests.inc();
    sync_to(at); // the response is a message: the generator waits for it in simulated time
    prg_.reset();
    sc_core::sc_time d = sc_core::SC_ZERO_TIME;
    messages_.send(upstream, m, d);
    sc_core::wait(d);
    while (!prg_ || prg_->destination != tlp.requester || prg_->prg_index != m.page_req.prg_index) wait(prg_arrived_);
    if (prg_at_ > kernel_now()) sc_core::wait(from_now(prg_at_)); // the message's own arrival time
    const Duration done = kernel_now();
    f.page_request_latency.record((done - at).as_ns());
    at = done;
    if (prg_->code != PrgResponseCode::success) f.page_request_failures.inc();
    return prg_->code;
}

void AtsTrafficEndpoint::on_message(MessageExtension& msg, tlm::tlm_generic_payload& gp, sc_core::sc_time& delay) {
    if (msg.code == MessageCode::prg_response && ats_.pri_enabled && fn_of_rid_.count(msg.prg_resp.destination.raw)) {
        gp.set_response_status(tlm::TLM_OK_RESPONSE);
        prg_ = msg.prg_resp;
        prg_at_ = kernel_now() + from_sc(delay);
        prg_arrived_.notify(delay);
        return;
    }
    if (msg.code != MessageCode::ats_invalidate_request) { // without PRI a PRG Response is unexpected
        TrafficEndpoint::on_message(msg, gp, delay);
        return;
    }
    inv_received_.inc();
    const auto it = fn_of_rid_.find(msg.inv_req.target.raw);
    if (it == fn_of_rid_.end()) {
        inv_unknown_.inc();
        gp.set_response_status(tlm::TLM_COMMAND_ERROR_RESPONSE);
        return;
    }
    gp.set_response_status(tlm::TLM_OK_RESPONSE);
    if (ats_.drop_invalidations) return;
    inv_queue_.push(msg.inv_req, it->second, delay);
}

void AtsTrafficEndpoint::invalidation_thread() {
    for (;;) {
        const InvalidationQueue::Item pi = inv_queue_.next();
        Function& f = *fns_[pi.function];
        const Atc::Invalidated inv = process_invalidation(f.atc, pi.req);
        f.atc.st.entries_invalidated.inc(inv.dropped);
        if (inv.drain_until > inv.processed_at) f.atc.st.drains.inc();
        MessageExtension m = invalidate_completion(params().functions[pi.function], pi.req);
        sc_core::sc_time d = sc_core::SC_ZERO_TIME;
        messages_.send(upstream, m, d);
        f.atc.st.invalidations_completed.inc();
    }
}

} // namespace iommusim::pcie
