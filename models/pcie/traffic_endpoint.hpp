// SPDX-License-Identifier: Apache-2.0
#pragma once
// A PCIe endpoint device driven by workload streams (workload.hpp): the base
// for DMA devices. Extensible: ATS/ATC and PRI endpoints override the
// translate step and the message handler.
//
// Fidelity
//  Modelled: one or more functions (PF, VFs) each issuing with its own RID and
//   PASID mix; requests split into TLPs at MPS (writes) / MRRS (reads);
//   posted writes release the issuer when the link (and flow control) lets
//   it; non-posted reads overlap up to max_outstanding_reads tags, the thread
//   blocking only on the oldest completion when tags run out; per-stream rate
//   limits; trace timestamps; loosely-timed b_transport with a
//   tlm_quantumkeeper (no wait() per request); BARs served from a sparse
//   store (peer-to-peer and MMIO targets).
//   Same requester ID (shared/reference/threads 004): a function's request to
//   one of its own BARs is decoded inside the device and never reaches the
//   link or the IOMMU: served from the BAR store after bar_latency, counted
//   as unmediated_accesses and reported to the BAR observer. Isolation is
//   per requester ID, so no IOMMU can stop it.
//   No-Snoop, Privileged-Mode-Requested and Execute-Requested on a
//   configured share of each stream's requests (PMR/ER only with a PASID and
//   the PASID capability's Supported bits; ER on reads only).
//  Not modelled: ordering between a device's own posted and non-posted
//   requests, completion timeouts, relaxed ordering, interrupts.
#include <memory>
#include <queue>
#include <random>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>
#include <tlm_utils/tlm_quantumkeeper.h>
#include <vector>

#include "models/common/stats.hpp"
#include "models/mem/sparse_memory.hpp"
#include "models/pcie/link.hpp"
#include "models/pcie/traffic_endpoint_params.hpp"
#include "models/pcie/workload.hpp"

namespace iommusim::pcie {

class TrafficEndpoint : public sc_core::sc_module {
public:
    /// Requests and upstream messages towards the port above.
    tlm_utils::simple_initiator_socket<TrafficEndpoint> upstream;
    /// Requests to our BARs and messages routed to us (from the port above).
    tlm_utils::simple_target_socket<TrafficEndpoint> downstream;

    TrafficEndpoint(sc_core::sc_module_name name, const TrafficEndpointParams& params, stats::Group* parent_stats);
    const TrafficEndpointParams& params() const { return params_; }
    const stats::Group& stats() const { return stats_; }
    mem::SparseMemory& bar_store() { return bar_store_; }
    /// Starts the streams now (with start_on_request) / stops issuing now.
    void start() { start_event_.notify(sc_core::SC_ZERO_TIME); }
    void stop() { stop_requested_ = true; }
    /// Called for every completed request that left the device (untranslated, or translated
    /// by an ATC) (e.g. the host's DMA safety oracle).
    void set_dma_observer(DmaObserver o) { observer_ = std::move(o); }
    /// Called for every access that reached this device's BARs: from a peer through the fabric,
    /// or from one of its own functions to its own BAR (same requester ID, never seen by the
    /// IOMMU; `source` none). `iova` and `pa` are the BAR address.
    void set_bar_observer(DmaObserver o) { bar_observer_ = std::move(o); }

protected:
    /// Called for every TLP of function `function` (index into params().functions) before
    /// it is sent at absolute time `at`. An ATS endpoint looks up its ATC here and rewrites
    /// the address / AT (translated) or sends a translation request, advancing `at` by what
    /// that costs; it may block on an event after sync_to(at). Returns false to drop the
    /// TLP (counted as an error). Default: untranslated request, no cost.
    virtual bool translate(unsigned function, TlpExtension& tlp, uint64_t& addr, bool write, Duration& at);
    /// Called after a TLP that translate() let through was sent: `iova` is its untranslated
    /// address, `done` its completion (non-posted) or release (posted). Default: nothing.
    virtual void sent(unsigned function, std::optional<uint32_t> pasid, const TlpExtension& tlp, uint64_t iova,
                      Duration done);
    /// Messages routed to this device: ATS Invalidate Requests, PRG
    /// Responses. Default: the device has no ATS/PRI capability, so the
    /// message is an Unsupported Request.
    virtual void on_message(MessageExtension& msg, tlm::tlm_generic_payload& gp, sc_core::sc_time& delay);

    /// Sends `gp` upstream at absolute time `at`; returns the absolute time of
    /// its completion (non-posted) or release (posted).
    Duration send_upstream(tlm::tlm_generic_payload& gp, Duration at);
    /// Synchronizes the generator thread's local time to `at` (so a
    /// subclass may wait on an event). Only from the generator thread.
    void sync_to(Duration at);
    stats::Group& stats_group() { return stats_; }

private:
    struct Stream {
        std::unique_ptr<Workload> gen;
        double rate = 0;
        Duration next_issue;
        std::optional<DmaOp> pending;
        bool done = false;
        const WorkloadParams* params = nullptr;
        std::mt19937_64 attr_rng;       ///< draws the No-Snoop / PMR / ER attributes per request
    };
    /// The TLP attributes of one operation of stream `s` (its workload's shares).
    struct Attrs {
        bool no_snoop = false, privileged = false, execute = false;
    };
    Attrs draw_attrs(Stream& s, const DmaOp& op);
    void run();
    void issue(const DmaOp& op, const Attrs& attrs, Duration& t);
    void b_transport_in(tlm::tlm_generic_payload& gp, sc_core::sc_time& delay);
    bool in_bar(uint64_t addr, uint64_t len) const;
    /// Whether [addr, addr+len) lies in a BAR of function `function` itself.
    bool own_bar(size_t function, uint64_t addr, uint64_t len) const;
    /// Reads or writes the BAR store and counts it; reports it to the BAR observer.
    void access_bar(Bdf requester, uint64_t addr, unsigned char* data, unsigned len, bool write, Duration at);

    TrafficEndpointParams params_;
    DmaObserver observer_;
    DmaObserver bar_observer_;
    LinkTiming link_;
    std::vector<Stream> streams_;
    std::priority_queue<Duration, std::vector<Duration>, std::greater<>> outstanding_;
    tlm_utils::tlm_quantumkeeper qk_;
    mem::SparseMemory bar_store_;
    std::vector<unsigned char> buf_;
    tlm::tlm_generic_payload gp_; ///< the payload of every request issue() sends
    stats::Group stats_;
    stats::Counter& reads_;
    stats::Counter& writes_;
    stats::Counter& read_bytes_;
    stats::Counter& write_bytes_;
    stats::Counter& read_tlps_;
    stats::Counter& write_tlps_;
    stats::Counter& errors_;
    stats::Counter& tag_stalls_;
    stats::Histogram& read_latency_;
    stats::Value& first_issue_ns_;
    stats::Value& last_done_ns_;
    stats::Counter& bar_reads_;
    stats::Counter& bar_writes_;
    stats::Counter& bar_bytes_;
    stats::Counter& bar_errors_;
    stats::Counter& unmediated_;
    stats::Counter& messages_unsupported_;
    bool started_ = false;
    bool stop_requested_ = false;
    sc_core::sc_event start_event_;
};

} // namespace iommusim::pcie
