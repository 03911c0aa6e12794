// SPDX-License-Identifier: Apache-2.0
#pragma once
// AtsTrafficEndpoint: a workload-driven device (TrafficEndpoint) whose
// functions — PFs and SR-IOV VFs alike — each have the ATS capability enabled
// and their own Address Translation Cache (Atc, PCIe Base §10; a VF's ATS
// capability is its own, §9.3.7.x).
//
// Fidelity — modelled: per function, every TLP looks its page up in the ATC
// (`atc_lookup`); a miss (or a hit lacking the permission) sends a Translation
// Request (AT=01, the request's PASID and PMR) once one of the function's
// `max_translation_requests` slots is free, and the TLP waits for the
// completion, so a slow translation delays it and, once the slots run out,
// every later miss; hits go out translated (AT=10, no PASID prefix, No Snoop
// dropped when the completion had N set). A completion with U=1 sends the
// TLP untranslated; R=W=0 drops it (counted as an error). Invalidate Requests
// (ID-routed to the function's RID) are processed one after another per
// device, each taking `invalidation_processing`, then the Invalidate
// Completion waits for the function's translated requests through a dropped
// translation (Atc::invalidate) before it is sent with the function's RID.
// PRI (`pri_enabled`, PCIe Base §10.4): a PASID request whose Translation
// Completion grants no access sends a Page Request (the page, R or W, Last,
// the function's next PRG index) and the TLP waits for the PRG Response
// routed back to the function; after Success the translation is requested
// once more, any other response (or a second failure) drops the TLP. The
// generator thread synchronizes to the request's time and blocks meanwhile
// (its other streams wait too: one engine). Requests without PASID send no
// Page Request (as the host drivers require one: Linux intel-iommu prq).
// Not modelled: Translation Requests holding one of the device's read tags
// (their own slot pool bounds them), Execute-Requested on Translation
// Requests, several outstanding page request groups per function, Stop
// Marker messages.
#include <deque>
#include <memory>
#include <unordered_map>
#include <vector>

#include "models/pcie/atc.hpp"
#include "models/pcie/ats_endpoint.hpp"
#include "models/pcie/traffic_endpoint.hpp"

namespace iommusim::pcie {

class AtsTrafficEndpoint : public TrafficEndpoint {
public:
    /// `ats` applies to every function (its `rid` is ignored: each function's own RID is used).
    AtsTrafficEndpoint(sc_core::sc_module_name name, const TrafficEndpointParams& params, const AtsEndpointParams& ats,
                       stats::Group* parent_stats);
    /// Whether function `function`'s ATC holds a translation of `iova` for `pasid` (tests).
    bool atc_holds(unsigned function, uint64_t iova, std::optional<uint32_t> pasid);

protected:
    bool translate(unsigned function, TlpExtension& tlp, uint64_t& addr, bool write, Duration& at) override;
    void sent(unsigned function, std::optional<uint32_t> pasid, const TlpExtension& tlp, uint64_t iova,
              Duration done) override;
    void on_message(MessageExtension& msg, tlm::tlm_generic_payload& gp, sc_core::sc_time& delay) override;

private:
    /// One function's ATC and its stats (group "fn<i>" under the device; `atc.st`).
    struct Function {
        Function(const AtsEndpointParams& p, const std::string& name, stats::Group* parent);
        stats::Group group;
        Atc atc;
        stats::Counter& page_requests;
        stats::Counter& page_request_failures;
        stats::Histogram& page_request_latency;
        uint16_t next_prg = 0; ///< PRG index of the next Page Request (9 bits)
    };
    /// PRI: sends one Page Request for `addr` at `at` and waits for its PRG Response (SC_THREAD:
    /// the generator); `at` becomes the response's arrival.
    PrgResponseCode request_page(unsigned function, const TlpExtension& tlp, uint64_t addr, bool write, Duration& at);
    void invalidation_thread();

    AtsEndpointParams ats_;
    std::vector<std::unique_ptr<Function>> fns_;
    std::unordered_map<uint16_t, unsigned> fn_of_rid_;
    tlm::tlm_generic_payload translation_gp_; ///< the payload of every Translation Request
    InvalidationQueue inv_queue_;
    MessageSender messages_; ///< Invalidate Completions, Page Requests
    std::optional<PrgResponse> prg_; ///< the PRG Response the generator waits for
    Duration prg_at_;                ///< when it arrives
    sc_core::sc_event prg_arrived_;
    stats::Counter& inv_received_;
    stats::Counter& inv_unknown_;
};

} // namespace iommusim::pcie
