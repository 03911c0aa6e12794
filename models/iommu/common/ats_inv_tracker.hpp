// SPDX-License-Identifier: Apache-2.0
#pragma once
// AtsInvalidationTracker: device-ATC invalidations in flight, as a
// translation agent must track them (PCIe Base §10.3): per requester, 32
// ITags, bounded by the device's Invalidate Queue Depth; completions by ITag
// vector; completions naming an ITag not in flight are reported (VT-d ICE,
// SMMUv3/AMD-Vi treat them as errors too); each invalidation has a deadline
// (send time + time-out) after which the family reports a time-out (VT-d
// ITE, SMMUv3 CMD_SYNC completing with CERROR_ATC_INV_SYNC, AMD-Vi
// IOTLB_INV_TIMEOUT event).
//
// Plain C++ with no timers: the SystemC shell asks for the earliest
// deadline and keeps ONE timer per engine armed at it, instead of one timed
// wait per invalidation (each of which leaves a cancelled kernel timer
// behind). Ties between deadlines resolve to the lowest requester, then the
// lowest ITag, so the requester a time-out names is deterministic.
//
// Two issuers share the tracker: the unit's own command queue (issuer 0) and
// a queue engine beside it (issuer 1: the SMMUv3 CMDQV's VCMDQs). A device's
// ITags and queue depth belong to the device, whoever sends; a sync waits only
// for its own issuer's invalidations, and a time-out abandons only those.
#include <array>
#include <bit>
#include <cstdint>
#include <map>

#include "models/common/time.hpp"

namespace iommusim::iommu {

class AtsInvalidationTracker {
public:
    static constexpr unsigned kItags = 32; ///< PCIe ITag field is 5 bits

    /// A time-out that never expires (AMD-Vi Control.InvTimeOut = 0: no time-out).
    static constexpr Duration kNever = Duration::ps(uint64_t{1} << 62);

    explicit AtsInvalidationTracker(Duration timeout) : timeout_(timeout) {}
    Duration timeout() const { return timeout_; }
    /// Software changed the time-out (AMD-Vi Control.InvTimeOut): deadlines of invalidations
    /// in flight follow the new value.
    void set_timeout(Duration t) { timeout_ = t; }

    static constexpr unsigned kIssuers = 2;

    /// Invalidations in flight in total / for one requester / of one issuer.
    uint32_t outstanding() const { return count_; }
    uint32_t outstanding_of(unsigned issuer) const { return owned_[issuer]; }
    uint32_t outstanding(uint32_t requester) const {
        auto it = per_.find(requester);
        return it == per_.end() ? 0 : static_cast<uint32_t>(std::popcount(it->second.itags));
    }
    /// Whether another invalidation may be sent: fewer than `queue_depth` in flight
    /// (0 or more than 32 means 32) and an ITag free.
    bool can_issue(uint32_t requester, uint32_t queue_depth) const {
        const uint32_t depth = queue_depth == 0 || queue_depth > kItags ? kItags : queue_depth;
        return outstanding(requester) < depth;
    }
    /// Allocates the lowest free ITag (call only when can_issue()). The invalidation counts as
    /// sent at `sent`; `cookie` comes back with its completion (e.g. the command's sequence number).
    uint8_t issue(uint32_t requester, Duration sent, uint64_t cookie, uint8_t issuer = 0) {
        Slot& s = per_[requester];
        const unsigned itag = static_cast<unsigned>(std::countr_one(s.itags));
        s.itags |= 1u << itag;
        s.sent[itag] = sent;
        s.cookie[itag] = cookie;
        if (issuer) s.aux |= 1u << itag;
        else s.aux &= ~(1u << itag);
        ++count_;
        ++owned_[issuer];
        return static_cast<uint8_t>(itag);
    }

    /// Whether `requester` ever had an invalidation sent to it.
    bool knows(uint32_t requester) const { return per_.count(requester) != 0; }
    /// ITags of `itag_vector` not in flight for `requester` (all of them for an unknown requester).
    uint32_t unknown_itags(uint32_t requester, uint32_t itag_vector) const {
        auto it = per_.find(requester);
        return it == per_.end() ? itag_vector : itag_vector & ~it->second.itags;
    }

    struct Done {
        uint8_t itag;
        Duration sent;
        uint64_t cookie;
        uint8_t issuer;
    };
    struct CompletionResult {
        bool unknown = false;      ///< the vector named ITags (or a requester) not in flight
        uint32_t completed = 0;    ///< ITags retired
    };
    /// An Invalidate Completion from `requester` for the ITags in `itag_vector`. Calls
    /// on_done(Done) for each retired ITag in ascending order.
    template <class F>
    CompletionResult complete(uint32_t requester, uint32_t itag_vector, F&& on_done) {
        CompletionResult r;
        auto it = per_.find(requester);
        if (it == per_.end()) {
            r.unknown = true;
            return r;
        }
        Slot& s = it->second;
        if (itag_vector & ~s.itags) r.unknown = true;
        const uint32_t vec = itag_vector & s.itags;
        for (uint32_t v = vec; v; v &= v - 1) {
            const unsigned i = static_cast<unsigned>(std::countr_zero(v));
            on_done(Done{static_cast<uint8_t>(i), s.sent[i], s.cookie[i], static_cast<uint8_t>((s.aux >> i) & 1)});
        }
        s.itags &= ~vec;
        count_ -= static_cast<uint32_t>(std::popcount(vec));
        owned_[1] -= static_cast<uint32_t>(std::popcount(vec & s.aux));
        owned_[0] -= static_cast<uint32_t>(std::popcount(vec & ~s.aux));
        r.completed = vec;
        return r;
    }

    struct Deadline {
        bool any = false;
        uint32_t requester = 0;
        Duration at;
    };
    /// The earliest deadline over every requester.
    Deadline earliest() const {
        Deadline d;
        if (count_ == 0) return d;
        for (const auto& [rid, s] : per_) consider(d, rid, s);
        return d;
    }
    /// The earliest deadline over one issuer's invalidations.
    Deadline earliest_of(unsigned issuer) const {
        Deadline d;
        if (owned_[issuer] == 0) return d;
        for (const auto& [rid, s] : per_) consider(d, rid, s, of(s, issuer));
        return d;
    }
    /// The earliest deadline of one requester.
    Deadline earliest(uint32_t requester) const {
        Deadline d;
        if (auto it = per_.find(requester); it != per_.end()) consider(d, requester, it->second);
        return d;
    }
    /// Time-out: forget one requester's invalidations in flight (of one issuer or of both).
    uint32_t abandon(uint32_t requester) { return drop(requester, ~uint32_t{0}); }
    uint32_t abandon(uint32_t requester, unsigned issuer) {
        auto it = per_.find(requester);
        return it == per_.end() ? 0 : drop(requester, of(it->second, issuer));
    }
    /// Time-out: forget every invalidation in flight / every one of an issuer.
    void abandon_all() {
        for (auto& [rid, s] : per_) s.itags = 0;
        count_ = 0;
        owned_ = {};
    }
    void abandon_all(unsigned issuer) {
        for (auto& [rid, s] : per_) drop(rid, of(s, issuer));
    }

private:
    struct Slot {
        uint32_t itags = 0;
        uint32_t aux = 0; ///< ITags issuer 1 sent (valid where itags is set)
        std::array<Duration, kItags> sent{};
        std::array<uint64_t, kItags> cookie{};
    };
    static uint32_t of(const Slot& s, unsigned issuer) { return issuer ? s.itags & s.aux : s.itags & ~s.aux; }
    /// Forgets the ITags `mask` of one requester.
    uint32_t drop(uint32_t requester, uint32_t mask) {
        auto it = per_.find(requester);
        if (it == per_.end()) return 0;
        Slot& s = it->second;
        const uint32_t vec = s.itags & mask;
        s.itags &= ~vec;
        count_ -= static_cast<uint32_t>(std::popcount(vec));
        owned_[1] -= static_cast<uint32_t>(std::popcount(vec & s.aux));
        owned_[0] -= static_cast<uint32_t>(std::popcount(vec & ~s.aux));
        return static_cast<uint32_t>(std::popcount(vec));
    }
    void consider(Deadline& d, uint32_t rid, const Slot& s) const { consider(d, rid, s, s.itags); }
    void consider(Deadline& d, uint32_t rid, const Slot& s, uint32_t itags) const {
        for (uint32_t v = itags; v; v &= v - 1) {
            const Duration at = s.sent[static_cast<unsigned>(std::countr_zero(v))] + timeout_;
            if (!d.any || at < d.at) d = Deadline{true, rid, at};
        }
    }

    Duration timeout_;
    std::map<uint32_t, Slot> per_;
    uint32_t count_ = 0;
    std::array<uint32_t, kIssuers> owned_{};
};

} // namespace iommusim::iommu
