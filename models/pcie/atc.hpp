// SPDX-License-Identifier: Apache-2.0
#pragma once
// Atc: the Address Translation Cache of one PCIe function, kernel-free, shared
// by every ATS-capable device model (AtsEndpoint for the NIC and NVMe, the
// traffic endpoint's functions and SR-IOV VFs).
//
// Fidelity — modelled (PCIe Base ch. 10): entries filled from Translation
// Completions (range from the S bit, R/W/Exe/Priv/Global/N), tagged by PASID
// (global entries match every PASID); an Invalidate Request drops its range
// for its PASID (every PASID without a prefix; global entries too with G=1)
// and its Completion may leave only once the translated requests already
// issued through a dropped translation completed (§10.3.1); a bounded number
// of Translation Requests in flight (`max_translation_requests`): an ATC miss
// finding every slot busy waits for the oldest to complete, so slow
// translation throttles the device.
// Not modelled: multiple completions per request, STU > 0, a miss merging
// with a Translation Request already in flight for the same page (each miss
// sends its own).
// Time is the caller's (local, loosely timed) Duration; the shells decide when
// to call.
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <queue>
#include <vector>

#include "models/common/set_assoc_cache.hpp"
#include "models/common/stats.hpp"
#include "models/common/time.hpp"
#include "models/pcie/ats_endpoint_params.hpp"
#include "models/pcie/tlp.hpp"

namespace iommusim::pcie {

/// Requests in flight bounded to `limit`: each holds a slot until its completion time.
/// Callers at different local times share one pool (each reads release times at its own time).
class SlotPool {
public:
    explicit SlotPool(uint32_t limit) : limit_(limit) {}
    /// The time, at or after `t`, at which a request may take a slot; `stalled` when it had to wait.
    Duration take(Duration t, bool& stalled);
    /// The request issued with the slot completes at `done` (the slot is free from then).
    void hold(Duration done) { busy_.push(done); }
    uint32_t limit() const { return limit_; }

private:
    uint32_t limit_;
    std::priority_queue<Duration, std::vector<Duration>, std::greater<>> busy_;
};

class Atc {
public:
    struct Entry {
        uint64_t translated = 0;   ///< range base
        uint8_t shift = 12;        ///< range size
        bool read = false, write = false, execute = false, privileged = false, global = false, no_snoop = false;
        Duration ready_at;         ///< local time the completion arrived
        /// The physical address of `iova` (inside this entry's range).
        uint64_t output(uint64_t iova) const { return translated | (iova & ((uint64_t{1} << shift) - 1)); }
        bool allows(bool for_write) const { return for_write ? write : read; }
    };
    /// What a Translation Completion did to the cache.
    enum class Fill : uint8_t {
        no_access, ///< R=W=0: no translation
        uncached,  ///< U=1: the range may only be accessed untranslated
        cached,
    };
    /// What processing an Invalidate Request did.
    struct Invalidated {
        uint64_t dropped = 0;      ///< entries dropped
        uint64_t stale = 0;        ///< of them, translations whose completion was still in flight
        Duration processed_at;     ///< the `now` it was processed at
        Duration drain_until;      ///< the Completion may leave from then (>= processed_at)
    };

    /// What every ATS function counts about its Translation Requests, translated requests and
    /// invalidations (the device models count, the Atc only declares them once for all).
    struct Stats {
        explicit Stats(stats::Group& g);
        stats::Counter& translation_requests;
        stats::Counter& translation_stalls;
        stats::Counter& no_access;
        stats::Counter& translated;
        stats::Counter& invalidations_completed;
        stats::Counter& entries_invalidated;
        stats::Counter& drains;
        stats::Histogram& translation_latency;
    };

    /// The cache's own stats (hits, misses) are the child group "atc" of `parent`; `st` is
    /// registered in `parent` itself (the function's group).
    Atc(const AtsEndpointParams& p, stats::Group& parent);

    Stats st;

    /// Probes every range size present (no stats).
    std::optional<Entry> find(uint64_t iova, std::optional<uint32_t> pasid);
    /// One lookup of a DMA access: find() counted as a hit or miss of the cache.
    std::optional<Entry> lookup(uint64_t iova, std::optional<uint32_t> pasid);
    /// Caches a Translation Completion entry for `iova`, arrived at `ready_at`.
    Fill fill(uint64_t iova, std::optional<uint32_t> pasid, const AtsTranslation& c, Duration ready_at);
    /// A translated request through a cached translation of `iova` completes at `done`
    /// (an invalidation of its range waits for it). `now` lets completed ones go.
    void issued(uint64_t iova, std::optional<uint32_t> pasid, Duration now, Duration done);
    /// Processes an Invalidate Request at `now`.
    Invalidated invalidate(const AtsInvalidateRequest& r, Duration now);
    /// Translation Request slots.
    SlotPool& translation_slots() { return slots_; }
    uint32_t size() const { return cache_.size(); }

private:
    /// Sets when the Completion may leave: after the translated requests through dropped translations.
    Invalidated& drain(Invalidated& out, const AtsInvalidateRequest& r, uint64_t base, uint64_t end, uint64_t pf,
                       Duration now) const;
    /// b: PASID+1 (0 = requests without PASID; global entries match every PASID) | G | shift (never 0).
    static iommu::CacheKey key(std::optional<uint32_t> pasid, bool global, uint64_t iova, unsigned shift) {
        const uint64_t pf = global ? 0 : (pasid ? uint64_t{*pasid & kPasidMask} + 1 : 0);
        return iommu::CacheKey{iova >> shift, pf << 16 | uint64_t{global} << 8 | shift};
    }
    struct InFlight {
        uint64_t iova;
        uint64_t pasid_key;        ///< PASID + 1; 0 = no PASID
        Duration done;             ///< local completion time
    };
    iommu::SetAssocCache<Entry> cache_;
    uint64_t shifts_present_ = 0;  ///< range sizes with entries (probe only those)
    bool tagged_ = false;          ///< an entry with a PASID or G was ever filled
    std::deque<InFlight> in_flight_; ///< translated requests, oldest first, until they completed
    SlotPool slots_;
};

} // namespace iommusim::pcie
