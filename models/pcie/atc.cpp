// SPDX-License-Identifier: Apache-2.0
#include "models/pcie/atc.hpp"

#include <bit>

namespace iommusim::pcie {

namespace {
constexpr uint64_t kShiftMask = 0x7F;
} // namespace

Duration SlotPool::take(Duration t, bool& stalled) {
    while (!busy_.empty() && busy_.top() <= t) busy_.pop();
    stalled = busy_.size() >= limit_;
    if (stalled) { // every slot in flight: wait for the oldest
        t = busy_.top();
        busy_.pop();
    }
    return t;
}

Atc::Stats::Stats(stats::Group& g)
    : translation_requests(g.counter("translation_requests", "count", "ATS Translation Requests sent")),
      translation_stalls(g.counter("translation_request_stalls", "count",
                                   "ATC misses that waited for a Translation Request slot (all max_translation_requests in flight) or a tag")),
      no_access(g.counter("translation_no_access", "count", "Translation Completions with R=W=0 or errors")),
      translated(g.counter("translated_requests", "count", "memory requests sent with AT=10")),
      invalidations_completed(g.counter("invalidations_completed", "count", "Invalidate Completions sent")),
      entries_invalidated(g.counter("atc_entries_invalidated", "count", "ATC entries dropped")),
      drains(g.counter("invalidation_drains", "count",
                       "Invalidate Completions held until requests through a dropped translation completed")),
      translation_latency(g.histogram("translation_latency", "ns", "Translation Request issue to its completion (slot wait excluded)")) {}

Atc::Atc(const AtsEndpointParams& p, stats::Group& parent)
    : st(parent), cache_("atc", p.atc, &parent), slots_(p.max_translation_requests) {}

std::optional<Atc::Entry> Atc::find(uint64_t iova, std::optional<uint32_t> pasid) {
    for (uint64_t m = shifts_present_; m; m &= m - 1) {
        const unsigned shift = static_cast<unsigned>(std::countr_zero(m));
        if (Entry* e = cache_.probe(key(pasid, false, iova, shift))) return *e;
        if (pasid)
            if (Entry* e = cache_.probe(key(pasid, true, iova, shift))) return *e;
    }
    return std::nullopt;
}

std::optional<Atc::Entry> Atc::lookup(uint64_t iova, std::optional<uint32_t> pasid) {
    std::optional<Entry> e = find(iova, pasid);
    cache_.count_lookup(e.has_value());
    return e;
}

Atc::Fill Atc::fill(uint64_t iova, std::optional<uint32_t> pasid, const AtsTranslation& c, Duration ready_at) {
    if (!c.read && !c.write) return Fill::no_access;
    if (c.user) return Fill::uncached; // U=1: use untranslated requests only, do not cache
    const unsigned shift = static_cast<unsigned>(std::countr_zero(c.range_size()));
    Entry e;
    e.translated = c.range_base();
    e.shift = static_cast<uint8_t>(shift);
    e.read = c.read;
    e.write = c.write;
    e.execute = c.execute;
    e.privileged = c.privileged;
    e.global = c.global && pasid.has_value();
    e.no_snoop = c.no_snoop;
    e.ready_at = ready_at;
    cache_.insert(key(pasid, e.global, iova, shift), e);
    shifts_present_ |= uint64_t{1} << shift;
    if (pasid || e.global) tagged_ = true;
    return Fill::cached;
}

void Atc::issued(uint64_t iova, std::optional<uint32_t> pasid, Duration now, Duration done) {
    // Remembered until it completed: an Invalidate Completion waits for the
    // requests that used a translation it drops (PCIe Base §10.3.1).
    while (!in_flight_.empty() && in_flight_.front().done <= now) in_flight_.pop_front();
    in_flight_.push_back(InFlight{iova, pasid ? uint64_t{*pasid & kPasidMask} + 1 : 0, done});
}

Atc::Invalidated Atc::invalidate(const AtsInvalidateRequest& r, Duration now) {
    Invalidated out;
    const uint64_t base = r.range_base(), size = r.range_size();
    const uint64_t end = size >= (uint64_t{1} << 63) ? ~uint64_t{0} : base + size - 1;
    const uint64_t pf = r.pasid_present ? uint64_t{r.pasid & kPasidMask} + 1 : 0;
    auto drop = [&](const Entry& e) {
        if (e.ready_at > now) ++out.stale; // completion was still in flight
    };
    // A short range is dropped by probing the keys it covers at each range size present, when
    // those keys name every entry in scope: with a PASID prefix, that PASID's entries (and
    // global ones when G=1); without, every PASID's, which are the untagged keys as long as
    // no entry with a PASID or G was ever filled. Otherwise (or when probing would cost more
    // than a scan of the valid entries) the whole cache is scanned. Same entries either way.
    if (r.pasid_present || !tagged_) {
        const bool globals = r.pasid_present && r.global && tagged_;
        const uint64_t per_page = globals ? 2 : 1;
        uint64_t probes = 0;
        for (uint64_t m = shifts_present_; m && probes <= cache_.size(); m &= m - 1) {
            const unsigned shift = static_cast<unsigned>(std::countr_zero(m));
            probes += ((end >> shift) - (base >> shift) + 1) * per_page;
        }
        if (probes <= cache_.size()) {
            const std::optional<uint32_t> pasid =
                r.pasid_present ? std::optional<uint32_t>(static_cast<uint32_t>(pf - 1)) : std::nullopt;
            auto one = [&](const iommu::CacheKey& k) {
                if (const Entry* e = cache_.peek(k)) {
                    drop(*e);
                    cache_.erase(k);
                    ++out.dropped;
                }
            };
            for (uint64_t m = shifts_present_; m; m &= m - 1) {
                const unsigned shift = static_cast<unsigned>(std::countr_zero(m));
                for (uint64_t page = base >> shift; page <= end >> shift; ++page) {
                    one(key(pasid, false, page << shift, shift));
                    if (globals) one(key(pasid, true, page << shift, shift));
                }
            }
            return drain(out, r, base, end, pf, now);
        }
    }
    out.dropped = cache_.invalidate_if([&](const iommu::CacheKey& k, const Entry& e) {
        const unsigned shift = static_cast<unsigned>(k.b & kShiftMask);
        const bool global = (k.b >> 8) & 1;
        const uint64_t kpf = k.b >> 16;
        // Without a PASID prefix every PASID's entries are in scope (§10.3.8); with one,
        // that PASID's entries, plus global entries when G=1.
        if (r.pasid_present && !(global ? r.global : kpf == pf)) return false;
        const uint64_t lo = k.a << shift, hi = lo + ((uint64_t{1} << shift) - 1);
        if (lo > end || hi < base) return false;
        drop(e);
        return true;
    });
    return drain(out, r, base, end, pf, now);
}

Atc::Invalidated& Atc::drain(Invalidated& out, const AtsInvalidateRequest& r, uint64_t base, uint64_t end,
                             uint64_t pf, Duration now) const {
    // Translated requests already issued through a dropped translation (their
    // IOVA in the range, their PASID in scope) must complete before the
    // completion is sent; requests through other translations need not.
    out.processed_at = out.drain_until = now;
    for (const InFlight& f : in_flight_) {
        if (f.done <= out.drain_until || f.iova < base || f.iova > end) continue;
        if (r.pasid_present && !r.global && f.pasid_key != pf) continue; // G=1 reaches global entries of every PASID
        out.drain_until = f.done;
    }
    return out;
}

} // namespace iommusim::pcie
