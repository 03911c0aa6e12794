// SPDX-License-Identifier: Apache-2.0
#pragma once
// AtsEndpoint: a DMA-capable PCIe function with an Address Translation Cache.
//
// Fidelity — modelled (PCIe Base ch. 10): on an ATC miss the function sends a
// Translation Request (AT=01, PASID prefix with PMR/ER when used) and caches
// the completion's range (S-bit size), rights and Global bit unless U=1;
// hits go out as translated requests (AT=10). Invalidate Requests are queued
// and processed one after another, each taking `invalidation_processing`;
// the range is dropped for the PASID (all PASIDs without a prefix; Global
// entries too when G=1), and the Invalidate Completion (ITag vector, CC=1) is
// sent only after the translated requests already issued through a dropped
// translation (address in the range, PASID in scope) have completed; other
// requests in flight do not hold it (calibration.md, device processing of an
// ATS Invalidate Request: fixed cost plus that drain).
// Translations whose completion was still in flight when an overlapping
// invalidation was processed are dropped too (never used stale). With PRI on,
// a translation with no access triggers a Page Request and, after a Success
// response, one retry. No Snoop: a request may ask for it; a translated one
// goes out snooped when its translation's completion had N set (§10.2.3: the
// host forces snooping for that range), an untranslated one as asked (the
// IOMMU decides).
// At most `max_translation_requests` Translation Requests are in flight: a
// miss finding them all busy is issued when the oldest completes (the DMA's
// local time moves on by the wait), so slow translation slows the device; each
// also takes a tag from the device's pool of non-posted requests when it has
// one (set_tag_pool; the request it translates takes its own when the device
// issues it, not while it waits for the translation); the
// ATC itself is the kernel-free Atc (atc.hpp), shared with the traffic device.
// Not modelled: the ATS Invalidate Queue Depth as back-pressure (the TA obeys
// it, see VtdIommu), Translation Request NW bit, STU > 0, multiple completions
// per request (one 8-byte entry), No-Write-only translations, stop markers.
// Temporal decoupling: an invalidation processed at simulated time T drops
// entries whichever local time the DMA thread has reached; the DMA thread's
// quantum bounds how far ahead it may have used an entry.
#include <cstdint>
#include <deque>
#include <optional>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

#include "models/common/sc_time.hpp"
#include "models/common/stats.hpp"
#include "models/common/time.hpp"
#include "models/pcie/ats_endpoint_params.hpp"
#include "models/pcie/atc.hpp"
#include "models/pcie/tlp.hpp"

namespace iommusim::pcie {

/// The Invalidate Requests a device received, processed one after another by its
/// invalidation thread, each taking `processing` from its arrival or from the end of the
/// one before, whichever is later. Every ATS device model queues its requests this way.
class InvalidationQueue {
public:
    struct Item {
        AtsInvalidateRequest req;
        uint32_t function = 0; ///< the device's function it is for
        Duration arrival;
    };
    explicit InvalidationQueue(Duration processing) : processing_(processing), processing_sc_(to_sc(processing)) {}
    /// From b_transport: `r` arrives `delay` after the kernel's time.
    void push(const AtsInvalidateRequest& r, uint32_t function, const sc_core::sc_time& delay);
    /// From the SC_THREAD: the next request, once its processing time has passed. An idle
    /// thread is woken when that processing ends (one wait per request, not two).
    Item next();

private:
    std::deque<Item> q_;
    sc_core::sc_event arrived_; ///< notified at a pushed request's arrival + processing
    Duration processing_;
    sc_core::sc_time processing_sc_;
    Duration idle_since_;       ///< when the thread last found the queue empty
};

/// From an SC_THREAD, at the end of a request's processing (InvalidationQueue::next):
/// drops its range from `atc`, then waits until the translated requests through a dropped
/// translation completed (the drain; `Invalidated::drain_until` says until when).
Atc::Invalidated process_invalidation(Atc& atc, const AtsInvalidateRequest& r);
/// The Invalidate Completion for `r` (its ITag, CC=1) that function `requester` sends.
MessageExtension invalidate_completion(Bdf requester, const AtsInvalidateRequest& r);

class AtsEndpoint : public sc_core::sc_module {
public:
    /// Requests and messages towards the root complex (IOMMU).
    tlm_utils::simple_initiator_socket<AtsEndpoint> upstream;
    /// Messages routed to this function: Invalidate Requests, PRG Responses.
    tlm_utils::simple_target_socket<AtsEndpoint> downstream;

    AtsEndpoint(const sc_core::sc_module_name& name, const AtsEndpointParams& p, stats::Group* parent = nullptr);

    /// One DMA access within a 4 KiB page, from a caller's SC_THREAD with loosely-timed
    /// local time `delay`. Returns the TLM response status of the memory access.
    /// `no_snoop`: the request asks for the No Snoop attribute; a translated request drops
    /// it when its translation's completion had N set (PCIe Base §10.2.3).
    tlm::tlm_response_status dma(uint64_t iova, void* data, unsigned len, bool write, std::optional<uint32_t> pasid,
                                 sc_core::sc_time& delay, bool privileged = false, bool no_snoop = false);
    /// A DMA of any length: one dma() per 4 KiB page (ATS translates per page; the
    /// fabric splits each at MPS / MRRS). Returns whether every page succeeded.
    bool dma_span(uint64_t iova, void* data, uint32_t len, bool write, std::optional<uint32_t> pasid,
                  sc_core::sc_time& delay, bool no_snoop = false);
    /// Sends a Page Request (last of its group) and blocks until its PRG Response. Must be called from an SC_THREAD.
    PrgResponseCode request_page(uint64_t addr, bool write, std::optional<uint32_t> pasid, uint16_t prg_index,
                                 sc_core::sc_time& delay);

    const AtsEndpointParams& params() const { return p_; }
    /// Called after every completed dma() (e.g. the host's DMA safety oracle).
    void set_dma_observer(DmaObserver o) { observer_ = std::move(o); }
    /// The device's pool of non-posted request tags: a Translation Request (a Memory Read
    /// with AT=01) takes one besides its translation slot. None = translation slots only.
    void set_tag_pool(SlotPool* tags) { tags_ = tags; }
    uint32_t atc_size() const { return atc_.size(); }
    /// Whether the ATC holds a translation of `iova` for `pasid` (tests, oracle).
    bool atc_holds(uint64_t iova, std::optional<uint32_t> pasid);
    uint64_t invalidations_completed() const { return atc_.st.invalidations_completed.value(); }

private:
    void b_transport_downstream(tlm::tlm_generic_payload& t, sc_core::sc_time& delay);
    void invalidation_thread();
    bool translate(uint64_t iova, std::optional<uint32_t> pasid, bool privileged, sc_core::sc_time& delay);
    tlm::tlm_response_status dma_inner(uint64_t iova, void* data, unsigned len, bool write,
                                       std::optional<uint32_t> pasid, sc_core::sc_time& delay, bool privileged,
                                       bool no_snoop);
    tlm::tlm_response_status issue(uint64_t addr, void* data, unsigned len, bool write, std::optional<uint32_t> pasid,
                                   AddressType at, bool privileged, bool no_snoop, sc_core::sc_time& delay);
    static Duration now() { return kernel_now(); }

    AtsEndpointParams p_;
    sc_core::sc_time atc_lookup_sc_; ///< p_.atc_lookup, converted once (charged on every DMA access)
    tlm::tlm_generic_payload payload_;
    TlpExtension ext_;
    stats::Group stats_;
    Atc atc_;
    InvalidationQueue inv_queue_;
    MessageSender messages_; ///< Page Requests, Invalidate Completions
    sc_core::sc_event prg_arrived_;
    std::optional<PrgResponse> last_prg_;
    uint16_t tag_ = 0;
    DmaObserver observer_;
    SlotPool* tags_ = nullptr;
    TlpExtension::Source last_source_ = TlpExtension::Source::none; ///< of the last issued memory request
    uint64_t last_output_ = 0;
    Duration last_held_retry_;  ///< of the last issued memory request: when the IOMMU retried it after holding it (0 = not held)
    Duration retry_at_;                      ///< local time of the retry after a Success PRG Response

    stats::Counter& st_permission_misses_;
    stats::Counter& st_untranslated_;
    stats::Counter& st_inv_received_;
    stats::Counter& st_stale_completions_;
    stats::Counter& st_page_requests_;
    stats::Counter& st_no_snoop_cleared_;
    stats::Histogram& st_inv_latency_;
    stats::Histogram& st_page_request_latency_;
};

} // namespace iommusim::pcie
